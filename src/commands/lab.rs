//! `rstaudit packet-check --lab`: turn the flags into the lab's jobs (`--all`, `--rule`, or
//! today's findings, for which this command runs the audit of this host) and its `--with`
//! values, which src/lab/select.rs chooses and checks, run them in the lab and map the
//! verdicts to an exit code.

use super::Exit;
use std::collections::BTreeMap;

use anyhow::Context;

use crate::cli::{PacketCheckArgs, PacketFormat};
use crate::lab::{self, Job, LabReport, Verdict};
use crate::rules::{Finding, RuleSet};

/// `rstaudit packet-check --lab`.
pub fn run(args: PacketCheckArgs, set: &RuleSet) -> anyhow::Result<Exit> {
    if !matches!(args.format, PacketFormat::Table | PacketFormat::Json) {
        anyhow::bail!("--lab writes --format table or json");
    }
    let with = parse_with(&args.with)?;
    let params = parse_params(&args.set, set)?;
    let jobs = select(&args, set, &params, &with)?;
    lab::select::check_with_is_used(&with, &jobs).map_err(|e| {
        let flag = format!("--with {}", e.key);
        anyhow::Error::new(e.invalid).context(flag)
    })?;
    if !jobs.is_empty() {
        crate::trace::caps::check_lab_privileges()?;
    }
    let show = super::terminal::progress_allowed(args.format == PacketFormat::Json);
    let bar = super::terminal::bar(show, jobs.len() as u64, "lab: building namespaces");
    let mut report = lab::run_jobs(
        &jobs,
        &with,
        &params,
        args.tracefs.as_deref(),
        &super::signal::stop_on_signals()?,
        &mut |i, job| {
            bar.set_position(i as u64);
            bar.set_message(format!(
                "lab: scenario {} (host values, then the fix)",
                job.scenario.name
            ));
        },
    )?;
    super::terminal::done(&bar);
    if jobs.is_empty() {
        report.notes.insert(
            0,
            "no finding of today's audit has a lab scenario (run `rstaudit audit`; `--all` runs every scenario)".into(),
        );
    }
    let bytes = match args.format {
        PacketFormat::Json => {
            let mut b = serde_json::to_vec_pretty(&report).context("rendering JSON")?;
            b.push(b'\n');
            b
        }
        _ => crate::report::lab::render_table(
            &report,
            super::terminal::term(args.output.is_some()).columns(),
        )
        .into_bytes(),
    };
    super::write_output(args.output.as_deref(), &bytes)?;
    Ok(exit_code(&report))
}

/// 2 when a scenario could not run, 1 when a fix did not help, else 0.
pub fn exit_code(report: &LabReport) -> Exit {
    let has = |v: Verdict| report.scenarios.iter().any(|s| s.verdict == v);
    if has(Verdict::Error) {
        Exit::CouldNotRun
    } else if has(Verdict::ReproducedButFixDidNotHelp) {
        Exit::Findings
    } else {
        Exit::Clean
    }
}

/// `--with KEY=VALUE`: checked by [`lab::select::checked_with`].
fn parse_with(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let pairs = super::parse_assignments(items, "--with")?;
    lab::select::checked_with(pairs).map_err(|e| {
        let flag = format!("--with {}={}", e.key, e.value);
        anyhow::Error::new(*e.problem).context(flag)
    })
}

/// `--set NAME=VALUE`: a parameter of the rules or of the lab, and a value it takes
/// ([`crate::valid::params`]).
fn parse_params(items: &[String], set: &RuleSet) -> anyhow::Result<BTreeMap<String, f64>> {
    Ok(super::checked_params(items, &set.params().with_lab())?
        .into_iter()
        .map(|(k, _, n)| (k, n))
        .collect())
}

/// The jobs of `--all`, of `--rule NAME...`, or of today's findings.
fn select(
    args: &PacketCheckArgs,
    set: &RuleSet,
    params: &BTreeMap<String, f64>,
    with: &[(String, String)],
) -> anyhow::Result<Vec<Job>> {
    if args.all {
        return Ok(lab::select::every());
    }
    if args.rule.is_empty() {
        let findings = audit(set, &[], params, with, true)?;
        return Ok(lab::select::for_findings(&findings));
    }
    let named = lab::select::named(&args.rule, set).map_err(|e| {
        let flag = format!("--rule {}", e.name);
        anyhow::Error::new(e).context(flag)
    })?;
    if named.rules.is_empty() {
        return Ok(named.jobs);
    }
    // The fix of a named rule, as the audit of this host (with the --with values) gives it.
    let findings = audit(set, &named.rules, params, with, false)?;
    Ok(named.with_fixes(&findings))
}

/// Audit this host, with the `--with` values in place of the host's (what if it had them?):
/// the findings of the rules `only` (every rule when empty), with the sockets' owners and
/// options when `sockets`.
fn audit(
    set: &RuleSet,
    only: &[String],
    params: &BTreeMap<String, f64>,
    with: &[(String, String)],
    sockets: bool,
) -> anyhow::Result<Vec<Finding>> {
    let context = "auditing this host to find today's findings (or give --all or --rule NAME)";
    let opts = crate::host::CollectOptions {
        source: crate::host::Source::Live,
        netns: None,
        interval: None,
        owners: sockets,
        options: sockets,
        scan: crate::host::OwnerScan::Auto,
    };
    let selection = crate::rules::Selection {
        only: only.to_vec(),
        params: lab::select::rule_params(params),
        ..Default::default()
    };
    let mut findings = Vec::new();
    for mut snapshot in crate::host::collect(&opts).context(context)? {
        snapshot.sysctls.extend(with.iter().cloned());
        let outcome = crate::rules::run(set, &selection, &snapshot).context(context)?;
        findings.extend(outcome.findings);
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::RunReport;
    use crate::lab::ScenarioReport;

    #[test]
    fn a_fix_that_does_not_help_exits_1_and_is_loud() {
        let report = LabReport {
            schema: crate::lab::SCHEMA_VERSION,
            kernel: "6.18".into(),
            with: BTreeMap::new(),
            notes: vec![],
            seconds: 1.0,
            scenarios: vec![ScenarioReport {
                scenario: "accept-overflow".into(),
                title: "t".into(),
                rules: vec!["abort-on-overflow".into()],
                verdict: Verdict::ReproducedButFixDidNotHelp,
                summary: "s".into(),
                expected_reason: None,
                fix: Some("net.ipv4.tcp_abort_on_overflow=1".into()),
                scale: None,
                host_run: Some(RunReport::default()),
                fix_run: Some(RunReport::default()),
                notes: vec![],
                seconds: 1.0,
            }],
        };
        assert_eq!(exit_code(&report), Exit::Findings);
        let table = crate::report::lab::render_table(&report, None);
        assert!(table.contains("REPRODUCED BUT THE FIX DID NOT HELP"));
        assert!(table.contains(
            "WARNING: the recommended fix did not remove the resets in: accept-overflow"
        ));
    }
}
