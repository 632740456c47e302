//! The lab: reproduce a finding in throwaway network namespaces with the
//! host's own values, count the resets, then apply the fix inside the lab
//! and show that they are gone (`rstaudit packet-check --lab`).
//!
//! The lab never changes the host: it reads the host's sysctls and writes
//! only inside anonymous namespaces it creates ([`netns::LabNs`]), which the
//! kernel removes with everything in them when the process ends, however it
//! ends. Traffic stays inside those namespaces (loopback and 10.77.x.x).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{PacketCheckArgs, PacketFormat};
use crate::host::sysctl::{self, Scope, SysctlError, SysctlKey};

pub mod evidence;
pub mod netns;
pub mod nft;
pub mod rtnl;
pub mod scale;
pub mod scenarios;
pub mod sock;

use scenarios::{Ctx, Outcome, RunReport, ScaleReport, Scenario};

/// The version of the lab JSON report.
pub const SCHEMA_VERSION: u32 = 1;

/// The verdict for one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Resets with the host's values, none with the fix.
    Confirmed,
    /// Resets with the host's values and still with the fix: the rule's fix is wrong.
    ReproducedButFixDidNotHelp,
    /// No resets with the host's values: the host is safe here.
    NotReproduced,
    /// The kernel cannot show this (a removed key).
    NotReproducibleOnThisKernel,
    /// The scenario could not run.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::ReproducedButFixDidNotHelp => "REPRODUCED BUT THE FIX DID NOT HELP",
            Self::NotReproduced => "not reproduced",
            Self::NotReproducibleOnThisKernel => "not reproducible on this kernel",
            Self::Error => "error",
        }
    }

    fn from_resets(host: u64, fix: u64) -> Self {
        match (host, fix) {
            (0, _) => Self::NotReproduced,
            (_, 0) => Self::Confirmed,
            _ => Self::ReproducedButFixDidNotHelp,
        }
    }
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub title: String,
    /// The rules (findings) this scenario ran for; empty with `--all` or a scenario name.
    pub rules: Vec<String>,
    pub verdict: Verdict,
    /// One line: why this verdict.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
    /// The run with the host's values (and `--with` overrides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_run: Option<RunReport>,
    /// The run with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_run: Option<RunReport>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// The whole lab report.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub schema: u32,
    pub kernel: String,
    /// `--with` overrides in force.
    pub with: BTreeMap<String, String>,
    pub scenarios: Vec<ScenarioReport>,
    /// What the whole lab could not do (no reasons on this kernel, ...).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// Start the packet check's private ftrace instance to learn the kernel's reason for each
/// reset; on kernels (or hosts) without it, say so and go on with capture and counters.
fn start_trace(
    named: Option<&std::path::Path>,
    notes: &mut Vec<String>,
) -> Option<crate::packet::ftrace::TraceSession> {
    use crate::packet::ftrace::{TraceOptions, TraceSession, Tracefs, clean_stale};
    let tracefs = match Tracefs::locate(named) {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("no reset reasons: {e}"));
            return None;
        }
    };
    if let Err(e) = clean_stale(&tracefs) {
        notes.push(format!("removing stale trace instances: {e:#}"));
    }
    let opts = TraceOptions {
        buffer_kb: 1024,
        ..TraceOptions::default()
    };
    match TraceSession::start(&tracefs, &opts) {
        Ok((session, rx)) => {
            if session.support.reasons.is_none() {
                notes.push("this kernel's tcp_send_reset has no reason field (before 6.10): resets are counted without reasons".into());
            }
            notes.extend(session.support.notes.iter().cloned());
            evidence::collect_events(rx);
            evidence::set_tracing(true);
            Some(session)
        }
        Err(e) => {
            notes.push(format!("no reset reasons: {e}"));
            None
        }
    }
}

/// One scenario to run, and for which findings.
struct Job {
    scenario: &'static Scenario,
    rules: Vec<String>,
    fix_sysctls: Vec<(String, String)>,
}

/// `rstaudit packet-check --lab`.
pub fn run(args: PacketCheckArgs) -> anyhow::Result<ExitCode> {
    if !matches!(args.format, PacketFormat::Table | PacketFormat::Json) {
        anyhow::bail!("--lab writes --format table or json");
    }
    let with = parse_with(&args.with)?;
    let params = parse_params(&args.set)?;
    let jobs = select(&args, &params, &with)?;
    check_with_is_used(&with, &jobs)?;
    if !jobs.is_empty() {
        crate::packet::live::check_lab_privileges()?;
    }
    // SIGINT/SIGTERM set a flag: the scenarios stop waiting, their namespaces go with their
    // threads, and the ftrace instance is removed before the process exits.
    evidence::set_interrupt_flag(crate::packet::ftrace::install_signal_flag()?);
    let mut notes = Vec::new();
    if jobs.is_empty() {
        notes.push(
            "no finding of today's audit has a lab scenario (run `rstaudit audit`; `--all` runs every scenario)".into(),
        );
    }
    let trace = if jobs.is_empty() {
        None
    } else {
        start_trace(args.tracefs.as_deref(), &mut notes)
    };
    let started = Instant::now();
    let mut reports = Vec::new();
    for job in &jobs {
        if evidence::interrupted() {
            break;
        }
        reports.push(run_job(job, &with, &params));
    }
    if let Some(trace) = trace {
        evidence::set_tracing(false);
        if let Err(e) = trace.finish() {
            notes.push(format!("removing the ftrace instance: {e:#}"));
        }
    }
    if evidence::interrupted() {
        anyhow::bail!("interrupted; the lab's namespaces and trace instance are gone");
    }
    let report = LabReport {
        schema: SCHEMA_VERSION,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})")),
        with: with.into_iter().collect(),
        scenarios: reports,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    };
    let bytes = match args.format {
        PacketFormat::Json => {
            let mut b = serde_json::to_vec_pretty(&report).context("rendering JSON")?;
            b.push(b'\n');
            b
        }
        _ => render_table(&report).into_bytes(),
    };
    crate::commands::write_output(args.output.as_deref(), &bytes)?;
    Ok(exit_code(&report))
}

/// 2 when a scenario could not run, 1 when a fix did not help, else 0.
pub fn exit_code(report: &LabReport) -> ExitCode {
    let has = |v: Verdict| report.scenarios.iter().any(|s| s.verdict == v);
    if has(Verdict::Error) {
        ExitCode::from(2)
    } else if has(Verdict::ReproducedButFixDidNotHelp) {
        ExitCode::from(crate::commands::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}

fn parse_with(items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in crate::commands::parse_assignments(items, "--with")? {
        let key =
            SysctlKey::parse(&k, Scope::NetOnly).with_context(|| format!("--with {k}={v}"))?;
        let current = sysctl::read(Path::new("/"), &key).ok();
        let value = sysctl::validate_value(&key, &v, current.as_deref())
            .with_context(|| format!("--with {k}={v}"))?;
        out.retain(|(existing, _)| existing != key.as_str());
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn parse_params(items: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    crate::commands::parse_assignments(items, "--set")?
        .into_iter()
        .map(|(k, v)| {
            let n = v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n > 0.0)
                .with_context(|| {
                    format!("--set {k}={v}: the lab's parameters are positive numbers of seconds")
                })?;
            Ok((k, n))
        })
        .collect()
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
            anyhow::bail!(
                "--with {key}: no selected scenario uses this key (they use: {})",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            );
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

/// Parameters only the lab knows (the rules would refuse them).
const LAB_PARAMS: &[&str] = &["outage"];

fn select(
    args: &PacketCheckArgs,
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
        return audit_jobs(args.rules.as_deref(), &[], params, with, true);
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
        let set = crate::rules::load::load(args.rules.as_deref()).context("loading the rules")?;
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
        for found in audit_jobs(args.rules.as_deref(), &rule_ids, params, with, false)? {
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
    rules: Option<&std::path::Path>,
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
    };
    let selection = crate::rules::Selection {
        extra_dir: rules.map(std::path::Path::to_path_buf),
        only: only.to_vec(),
        params: params
            .iter()
            .filter(|(k, _)| !LAB_PARAMS.contains(&k.as_str()))
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
        let outcome = crate::rules::run(&selection, snapshot).context(context)?;
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

fn run_job(job: &Job, with: &[(String, String)], params: &BTreeMap<String, f64>) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        scenario: job.scenario.name.to_string(),
        title: job.scenario.title.to_string(),
        rules: job.rules.clone(),
        verdict: Verdict::Error,
        summary: String::new(),
        expected_reason: None,
        fix: None,
        scale: None,
        host_run: None,
        fix_run: None,
        notes: Vec::new(),
        seconds: 0.0,
    };
    let result = host_values(job.scenario, with).and_then(|values| {
        let ctx = Ctx {
            values,
            params: params.clone(),
            fix_sysctls: job.fix_sysctls.clone(),
        };
        // A panic in a scenario becomes an error verdict; the namespaces go with its threads.
        std::thread::scope(|scope| {
            scope
                .spawn(|| (job.scenario.run)(&ctx))
                .join()
                .map_err(|_| anyhow::anyhow!("the scenario panicked"))?
        })
    });
    match result {
        Ok(Outcome::Ran(ran)) => {
            let scenarios::Ran {
                host,
                fix,
                fix_description,
                expected_reason,
                scale,
                notes,
            } = *ran;
            report.verdict = Verdict::from_resets(host.resets, fix.resets);
            report.summary = match report.verdict {
                Verdict::Confirmed => format!(
                    "{} reset(s) with the host's values, none with the fix",
                    host.resets
                ),
                Verdict::ReproducedButFixDidNotHelp => format!(
                    "{} reset(s) with the host's values and still {} with the fix: the recommended fix does not remove them",
                    host.resets, fix.resets
                ),
                _ => format!(
                    "no reset with the host's values ({} with the fix run)",
                    fix.resets
                ),
            };
            if scale.as_ref().is_some_and(|s| !s.outcome_preserved) {
                report.notes.push(
                    "rounding the scaled durations to whole seconds changes which comes first; the verdict may not hold at real scale".into(),
                );
            }
            let kernel_reasons: Vec<&String> = host
                .reasons
                .keys()
                .filter(|r| !r.starts_with("middlebox"))
                .collect();
            if !kernel_reasons.is_empty()
                && !kernel_reasons
                    .iter()
                    .any(|r| expected_reason.contains(r.as_str()))
            {
                report.notes.push(format!(
                    "the kernel's reasons ({}) are not the expected {expected_reason}",
                    kernel_reasons
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            report.expected_reason = Some(expected_reason);
            report.fix = Some(fix_description);
            report.scale = scale;
            report.host_run = Some(host);
            report.fix_run = Some(fix);
            report.notes.extend(notes);
        }
        Ok(Outcome::NotReproducibleOnThisKernel(why)) => {
            report.verdict = Verdict::NotReproducibleOnThisKernel;
            report.summary = why;
        }
        Err(err) => {
            report.verdict = Verdict::Error;
            report.summary = format!("{err:#}");
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// The host's value of every key the scenario copies, `--with` taking precedence.
fn host_values(
    scenario: &Scenario,
    with: &[(String, String)],
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for key in scenario.keys {
        if let Some((_, v)) = with.iter().find(|(k, _)| k == key) {
            out.insert(key.to_string(), Some(v.clone()));
            continue;
        }
        let k = SysctlKey::parse(key, Scope::NetOnly)?;
        match sysctl::read(Path::new("/"), &k) {
            Ok(v) => out.insert(key.to_string(), Some(v)),
            Err(SysctlError::Absent { .. }) => out.insert(key.to_string(), None),
            Err(e) => return Err(e).context("reading the host's value"),
        };
    }
    Ok(out)
}

/// The table: one row per scenario, then details.
pub fn render_table(report: &LabReport) -> String {
    use tabled::builder::Builder;
    use tabled::settings::Style;
    let mut b = Builder::default();
    b.push_record(["SCENARIO", "VERDICT", "RESETS host -> fix", "FIX"]);
    for s in &report.scenarios {
        let resets = match (&s.host_run, &s.fix_run) {
            (Some(h), Some(f)) => format!("{} -> {}", h.resets, f.resets),
            _ => "-".to_string(),
        };
        b.push_record([
            s.scenario.clone(),
            s.verdict.as_str().to_string(),
            resets,
            s.fix.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = b.build().with(Style::sharp()).to_string();
    out.push('\n');
    for s in &report.scenarios {
        out.push_str(&format!(
            "\n{} ({}): {}\n",
            s.scenario,
            s.title,
            s.verdict.as_str()
        ));
        if !s.rules.is_empty() {
            out.push_str(&format!("  findings: {}\n", s.rules.join(", ")));
        }
        out.push_str(&format!("  {}\n", s.summary));
        if let Some(r) = &s.expected_reason {
            out.push_str(&format!("  expected reason: {r}\n"));
        }
        if let Some(scale) = &s.scale {
            out.push_str(&format!(
                "  time scaled by {:.0} (real seconds per lab second): {}\n",
                scale.factor,
                scale.durations.join("; ")
            ));
        }
        for (label, run) in [("host values", &s.host_run), ("with the fix", &s.fix_run)] {
            let Some(run) = run else { continue };
            out.push_str(&format!("  {label}: {} reset(s)", run.resets));
            let settings: Vec<String> = run
                .settings
                .iter()
                .map(|st| match &st.lab_value {
                    Some(lab) => format!("{}={} (lab {lab})", st.key, st.value),
                    None => format!("{}={}", st.key, st.value),
                })
                .collect();
            if !settings.is_empty() {
                out.push_str(&format!(" [{}]", settings.join(", ")));
            }
            out.push('\n');
            if let Some(change) = &run.change {
                out.push_str(&format!("    change: {change}\n"));
            }
            if !run.reasons.is_empty() {
                let r: Vec<String> = run
                    .reasons
                    .iter()
                    .map(|(k, v)| format!("{k} x{v}"))
                    .collect();
                out.push_str(&format!("    reasons: {}\n", r.join(", ")));
            }
            if let Some(c) = run.captured_resets {
                out.push_str(&format!(
                    "    captured: {c}, counted by the kernel: {}\n",
                    run.counted_resets
                ));
            }
            for n in &run.notes {
                out.push_str(&format!("    note: {n}\n"));
            }
            if !run.counters.is_empty() {
                let c: Vec<String> = run
                    .counters
                    .iter()
                    .map(|(k, v)| format!("{k} +{v}"))
                    .collect();
                out.push_str(&format!("    counters: {}\n", c.join(", ")));
            }
            for line in &run.app {
                out.push_str(&format!("    {line}\n"));
            }
        }
        for n in &s.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    let loud: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.verdict == Verdict::ReproducedButFixDidNotHelp)
        .map(|s| s.scenario.as_str())
        .collect();
    if !loud.is_empty() {
        out.push_str(&format!(
            "\nWARNING: the recommended fix did not remove the resets in: {}. The rule's fix is wrong or incomplete.\n",
            loud.join(", ")
        ));
    }
    if !report.with.is_empty() {
        let w: Vec<String> = report
            .with
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "\nvalues replaced inside the lab (--with): {}\n",
            w.join(", ")
        ));
    }
    for n in &report.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&format!(
        "\n{} scenario(s) in {:.1} s on kernel {}\n",
        report.scenarios.len(),
        report.seconds,
        report.kernel
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_may_name_exactly_the_scenarios_of_the_catalogue() {
        let catalogue: Vec<&str> = scenarios::CATALOGUE.iter().map(|s| s.name).collect();
        assert_eq!(catalogue, crate::rules::known::LAB_SCENARIOS);
    }

    #[test]
    fn the_retry_decides_when_the_first_probe_is_lost() {
        use scenarios::keepalive_keeps_flow as keeps;
        // keepalive 250 s + 75 s against a 300 s idle timeout.
        assert!(keeps(250.0, 75.0, 300.0, false));
        assert!(!keeps(250.0, 75.0, 300.0, true));
        assert!(keeps(250.0, 16.0, 300.0, true));
        assert!(!keeps(7200.0, 75.0, 300.0, false));
        assert!(!keeps(300.0, 1.0, 300.0, true));
    }

    #[test]
    fn verdicts_follow_the_two_runs() {
        assert_eq!(Verdict::from_resets(3, 0), Verdict::Confirmed);
        assert_eq!(
            Verdict::from_resets(3, 1),
            Verdict::ReproducedButFixDidNotHelp
        );
        assert_eq!(Verdict::from_resets(0, 0), Verdict::NotReproduced);
        assert_eq!(Verdict::from_resets(0, 2), Verdict::NotReproduced);
    }

    #[test]
    fn verdict_names_are_stable_in_json() {
        let names: Vec<String> = [
            Verdict::Confirmed,
            Verdict::ReproducedButFixDidNotHelp,
            Verdict::NotReproduced,
            Verdict::NotReproducibleOnThisKernel,
            Verdict::Error,
        ]
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"confirmed\"",
                "\"reproduced-but-fix-did-not-help\"",
                "\"not-reproduced\"",
                "\"not-reproducible-on-this-kernel\"",
                "\"error\""
            ]
        );
    }

    #[test]
    fn a_fix_that_does_not_help_exits_1_and_is_loud() {
        let report = LabReport {
            schema: SCHEMA_VERSION,
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
        assert_eq!(exit_code(&report), ExitCode::from(1));
        let table = render_table(&report);
        assert!(table.contains("REPRODUCED BUT THE FIX DID NOT HELP"));
        assert!(table.contains(
            "WARNING: the recommended fix did not remove the resets in: accept-overflow"
        ));
    }
}
