//! The `audit` command: collect, evaluate, render, and exit 0/1/2.

use super::Exit;

use anyhow::Context;

use crate::cli::{AuditArgs, AuditFormat, FailOn, RuleSelectArgs};
use crate::host::workload::{WorkloadConfig, Workloads};
use crate::report::{self, AuditReport};
use crate::rules::{self, Selection, Threshold};

/// Run the command.
pub fn run(mut args: AuditArgs) -> anyhow::Result<Exit> {
    let super::config::Inputs {
        set,
        selection,
        accept,
        ..
    } = super::config::inputs(super::config::Flags::of_audit(&mut args))?;
    let plan = selection.plan(&set)?;
    // With --interval the audit waits between two samples of the counters: say so.
    let waiting = match args.source.interval {
        Some(s) if super::terminal::progress_allowed(args.format != AuditFormat::Table) => {
            super::terminal::spinner(
                true,
                format!("audit: sampling the counters twice, {s} s apart (Ctrl-C stops)"),
            )
        }
        _ => super::terminal::spinner(false, ""),
    };
    // Each namespace's sockets are judged as they are read: the table is not kept.
    let collected = crate::host::collect_into(&super::collect_options(&args.source), &mut |h| {
        rules::eval::Fold::new(&plan.rules, &plan.params, h)
    })
    .map_err(super::name_flag);
    super::terminal::done(&waiting);
    let collected = collected?;
    let (snapshots, outcomes): (Vec<_>, Vec<_>) = collected
        .into_iter()
        .map(|(mut snapshot, fold)| {
            let outcome = fold.finish(&snapshot);
            // The facts of `--snapshot FILE` came from that file (which says where it got
            // them).
            if let Some(file) = &args.source.snapshot {
                snapshot.source = format!("file:{} ({})", file.display(), snapshot.source);
            }
            (snapshot, outcome)
        })
        .unzip();
    let mut audits: Vec<_> = snapshots.iter().zip(outcomes).collect();
    if args.source.snapshot.is_none() && args.source.root.is_none() {
        // The live host: its processes' units, containers and pods, beside them.
        let mut workloads = Workloads::new(WorkloadConfig::default());
        let findings = audits.iter_mut().flat_map(|(_, out)| &mut out.findings);
        for p in findings.filter_map(|f| f.process.as_mut()) {
            p.workload = workloads.labels(p.pid).map(|w| (*w).clone());
        }
    }
    let waivers = accept.map(|file| {
        let findings = audits.iter_mut().flat_map(|(_, out)| &mut out.findings);
        rules::accept::apply(&file, findings, today())
    });
    let mut report = AuditReport::new(audits, threshold(args.fail_on.unwrap_or_default()));
    if let Some(waivers) = waivers {
        report = report.with_waivers(waivers);
    }
    let bytes = match args.format {
        AuditFormat::Table => {
            report::table::table(&report, super::terminal::term(args.output.is_some()))
        }
        AuditFormat::Json => report::json(&report),
        AuditFormat::Yaml => report::yaml(&report),
        AuditFormat::Junit => report::junit::junit(&report),
        AuditFormat::Prometheus => report::prometheus::prometheus(&report),
        AuditFormat::Html => report::html::audit(&report).into_bytes(),
    };
    super::write_output(args.output.as_deref(), &bytes)?;
    Ok(if report.summary.failed {
        Exit::Findings
    } else {
        Exit::Clean
    })
}

/// The rule selection from `--rules/--only/--skip/--profile/--set` over the rules loaded from
/// `--rules` (profile first, `--set` wins), each parameter checked once against what the rules
/// declare ([`crate::valid::params`]). `audit` adds the config file ([`super::config::inputs`]).
pub fn selection(args: &RuleSelectArgs, set: &rules::RuleSet) -> anyhow::Result<Selection> {
    let accepted = set.params();
    let mut params = Vec::new();
    if let Some(profile) = &args.profile {
        params.extend(
            crate::remedy::profiles::load_accepting(profile, "--profile", &accepted)
                .with_context(|| format!("reading the parameters of profile {profile:?}"))?
                .params,
        );
    }
    params.extend(super::parse_params(&args.set, &accepted)?);
    Ok(Selection {
        extra_dir: args.rules.clone(),
        only: args.only.clone(),
        skip: args.skip.clone(),
        params,
    })
}

/// `--fail-on` as a threshold (`never` = none).
pub fn threshold(fail_on: FailOn) -> Option<Threshold> {
    fail_on.0
}

/// Today (UTC), for the expiry of waivers.
fn today() -> rules::accept::Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rules::accept::Date::from_unix(secs)
}
