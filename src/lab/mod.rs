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
use std::time::Instant;

use crate::host::sysctl::{self, Scope, SysctlError, SysctlKey};

mod error;
pub mod evidence;
pub mod netns;
pub mod nft;
pub mod report;
pub mod rtnl;
pub mod scale;
pub mod scenarios;
pub mod select;
pub mod sock;

pub use error::{LabError, Step};
pub use report::{
    LabReport, LabSetting, RunReport, SCHEMA_VERSION, ScaleReport, ScenarioReport, Verdict,
};
use scenarios::{Ctx, Outcome, Scenario};

/// Start the packet check's private ftrace instance to learn the kernel's reason for each
/// reset; on kernels (or hosts) without it, say so and go on with capture and counters.
fn start_trace(
    named: Option<&std::path::Path>,
    notes: &mut Vec<String>,
) -> Option<crate::trace::ftrace::TraceSession> {
    use crate::trace::ftrace::{TraceOptions, TraceSession, Tracefs, clean_stale};
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
pub struct Job {
    pub scenario: &'static Scenario,
    /// The rules (findings) it runs for; empty for `--all` or a scenario named directly.
    pub rules: Vec<String>,
    /// The fix to apply inside the lab for the second run, as the audit gives it.
    pub fix_sysctls: Vec<(String, String)>,
}

/// Run the jobs one after another and report on each. The private ftrace instance (for the
/// kernel's reasons) lives for the whole run; `stop` (set on SIGINT/SIGTERM by the caller) stops
/// the scenarios, their
/// namespaces go with their threads, and the instance is removed before this returns an error.
/// `on_job` is told which job starts, before it starts (the caller may show progress).
pub fn run_jobs(
    jobs: &[Job],
    with: &[(String, String)],
    params: &BTreeMap<String, f64>,
    tracefs: Option<&Path>,
    stop: &crate::stop::Stop,
    on_job: &mut dyn FnMut(usize, &Job),
) -> Result<LabReport, LabError> {
    evidence::set_interrupt_flag(stop.flag());
    let mut notes = Vec::new();
    let trace = if jobs.is_empty() {
        None
    } else {
        start_trace(tracefs, &mut notes)
    };
    let started = Instant::now();
    let mut reports = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if evidence::interrupted() {
            break;
        }
        on_job(i, job);
        reports.push(run_job(job, with, params));
    }
    if let Some(trace) = trace {
        evidence::set_tracing(false);
        if let Err(e) = trace.finish() {
            notes.push(format!("removing the ftrace instance: {e:#}"));
        }
    }
    if evidence::interrupted() {
        return Err(LabError::Stopped);
    }
    Ok(LabReport {
        schema: SCHEMA_VERSION,
        kernel: crate::host::kernel::running_release().unwrap_or_else(|e| format!("unknown ({e})")),
        with: with.iter().cloned().collect(),
        scenarios: reports,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
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
                .map_err(|_| LabError::Panicked("the scenario"))?
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
            report.summary = err.summary();
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// The host's value of every key the scenario copies, `--with` taking precedence.
fn host_values(
    scenario: &Scenario,
    with: &[(String, String)],
) -> Result<BTreeMap<String, Option<String>>, LabError> {
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
            Err(e) => return Err(e).step("reading the host's value"),
        };
    }
    Ok(out)
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
}
