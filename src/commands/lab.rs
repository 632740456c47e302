//! `rstaudit packet-check --lab`: read the flags, choose the scenarios (every one, the ones
//! named, or those of today's findings, which needs an audit of this host), run them in the
//! lab and map the verdicts to an exit code.

use super::Exit;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::cli::{PacketCheckArgs, PacketFormat};
use crate::host::sysctl::{self, Scope};
use crate::lab::scenarios::{self, Scenario};
use crate::lab::{self, Job, LabReport, Verdict};
use crate::rules::RuleSet;

/// `rstaudit packet-check --lab`.
pub fn run(args: PacketCheckArgs, set: &RuleSet) -> anyhow::Result<Exit> {
    if !matches!(args.format, PacketFormat::Table | PacketFormat::Json) {
        anyhow::bail!("--lab writes --format table or json");
    }
    let with = parse_with(&args.with)?;
    let params = parse_params(&args.set, set)?;
    let jobs = select(&args, set, &params, &with)?;
    check_with_is_used(&with, &jobs)?;
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

/// `--with KEY=VALUE`: a key some supported kernel has and a value it means
/// ([`crate::valid`]), of the shape of the host's value; a later one replaces an earlier one.
fn parse_with(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in super::parse_assignments(items, "--with")? {
        let context = || format!("--with {k}={v}");
        let key = crate::valid::key(&k, Scope::NetOnly).with_context(context)?;
        let value = crate::valid::value(&key, &v).with_context(context)?;
        let current = sysctl::read(Path::new("/"), &key.key).ok();
        let value =
            sysctl::validate_value(&key.key, &value, current.as_deref()).with_context(context)?;
        out.retain(|(existing, _)| existing != key.key.as_str());
        out.push((key.key.to_string(), value));
    }
    Ok(out)
}

/// `--set NAME=VALUE`: a parameter of the rules or of the lab, and a value it takes
/// ([`crate::valid::params`]).
fn parse_params(items: &[String], set: &RuleSet) -> anyhow::Result<BTreeMap<String, f64>> {
    Ok(super::checked_params(items, &set.params().with_lab())?
        .into_iter()
        .map(|(k, _, n)| (k, n))
        .collect())
}

fn check_with_is_used(with: &[(String, String)], jobs: &[Job]) -> anyhow::Result<()> {
    for (key, _) in with {
        let used = jobs.iter().any(|j| j.scenario.keys.contains(&key.as_str()));
        if !used {
            let mut keys: Vec<&str> = jobs
                .iter()
                .flat_map(|j| j.scenario.keys.iter().copied())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let unused = crate::valid::Invalid::new(
                rstaudit::diag::Code::UnknownParam,
                format!(
                    "no selected scenario uses this key (they use: {})",
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                ),
                "",
            );
            return Err(anyhow::Error::new(unused).context(format!("--with {key}")));
        }
    }
    Ok(())
}

fn scenario_names() -> String {
    scenarios::CATALOGUE
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn select(
    args: &PacketCheckArgs,
    set: &RuleSet,
    params: &BTreeMap<String, f64>,
    with: &[(String, String)],
) -> anyhow::Result<Vec<Job>> {
    let job = |scenario: &'static Scenario| Job {
        scenario,
        rules: Vec::new(),
        fix_sysctls: Vec::new(),
    };
    if args.all {
        return Ok(scenarios::CATALOGUE.iter().map(job).collect());
    }
    if args.rule.is_empty() {
        return audit_jobs(set, &[], params, with, true);
    }
    let mut jobs: Vec<Job> = Vec::new();
    let mut rule_ids = Vec::new();
    for id in &args.rule {
        if let Some(scenario) = scenarios::find(id) {
            if !jobs.iter().any(|j| j.scenario.name == scenario.name) {
                jobs.push(job(scenario));
            }
            continue;
        }
        let Some(rule) = set.get(id) else {
            anyhow::bail!(
                "--rule {id}: no such lab scenario or rule (scenarios: {}; rules: `rstaudit rules list`)",
                scenario_names()
            );
        };
        let Some(lab) = rule.lab.as_deref() else {
            anyhow::bail!("--rule {id}: this rule has no lab scenario");
        };
        let Some(scenario) = scenarios::find(lab) else {
            anyhow::bail!(
                "--rule {id}: its lab scenario {lab:?} is not in the catalogue ({})",
                scenario_names()
            );
        };
        rule_ids.push(id.clone());
        if !jobs.iter().any(|j| j.scenario.name == scenario.name) {
            jobs.push(Job {
                scenario,
                rules: vec![id.clone()],
                fix_sysctls: Vec::new(),
            });
        } else if let Some(j) = jobs.iter_mut().find(|j| j.scenario.name == scenario.name) {
            j.rules.push(id.clone());
        }
    }
    if !rule_ids.is_empty() {
        // The fix of a named rule, as the audit of this host (with the --with values) gives it.
        for found in audit_jobs(set, &rule_ids, params, with, false)? {
            if let Some(j) = jobs
                .iter_mut()
                .find(|j| j.scenario.name == found.scenario.name)
            {
                j.fix_sysctls = found.fix_sysctls;
            }
        }
    }
    Ok(jobs)
}

/// Audit this host, with the `--with` values in place of the host's (what if it had them?),
/// and turn the findings that have a lab scenario into jobs carrying the finding's fix.
fn audit_jobs(
    set: &RuleSet,
    only: &[String],
    params: &BTreeMap<String, f64>,
    with: &[(String, String)],
    sockets: bool,
) -> anyhow::Result<Vec<Job>> {
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
        params: params
            .iter()
            .filter(|(k, _)| {
                crate::valid::params::spec(k)
                    .is_none_or(|p| p.user != crate::valid::params::User::Lab)
            })
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let mut snapshots = crate::host::collect(&opts).context(context)?;
    let mut jobs: Vec<Job> = Vec::new();
    for snapshot in &mut snapshots {
        for (k, v) in with {
            snapshot.sysctls.insert(k.clone(), v.clone());
        }
        let outcome = crate::rules::run(set, &selection, snapshot).context(context)?;
        for finding in outcome.findings {
            let Some(scenario) = finding.lab.as_deref().and_then(scenarios::find) else {
                continue;
            };
            let fix: Vec<(String, String)> = finding
                .fix
                .sysctls
                .iter()
                .map(|f| (f.key.clone(), f.value.clone()))
                .collect();
            match jobs.iter_mut().find(|j| j.scenario.name == scenario.name) {
                Some(j) => {
                    if !j.rules.contains(&finding.rule) {
                        j.rules.push(finding.rule.clone());
                    }
                    for f in fix {
                        if !j.fix_sysctls.iter().any(|(k, _)| *k == f.0) {
                            j.fix_sysctls.push(f);
                        }
                    }
                }
                None => jobs.push(Job {
                    scenario,
                    rules: vec![finding.rule.clone()],
                    fix_sysctls: fix,
                }),
            }
        }
    }
    Ok(jobs)
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
