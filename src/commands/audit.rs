//! The `audit` command: collect, evaluate, render, and exit 0/1/2.

use super::Exit;
use std::io::IsTerminal;

use anyhow::Context;

use crate::cli::{AuditArgs, AuditFormat, FailOn, RuleSelectArgs};
use crate::report::{self, AuditReport};
use crate::rules::{self, Selection, Threshold};

/// Run the command.
pub fn run(mut args: AuditArgs) -> anyhow::Result<Exit> {
    let config = super::config::merge(&mut args)?;
    let mut selection = selection(&args.select)?;
    let set = super::load_rules(selection.extra_dir.as_deref())?;
    if let Some((config, before_profile)) = config {
        super::config::check_names(&config, &set)?;
        selection.params.splice(0..0, before_profile);
    }
    let plan = selection.plan(&set)?;
    let accept = match &args.accept {
        Some(path) => {
            let ids = set.rules.iter().map(|r| r.id.clone()).collect();
            Some(rules::accept::load(path, &ids)?)
        }
        None => None,
    };
    // Each namespace's sockets are judged as they are read: the table is not kept.
    let collected = crate::host::collect_into(&super::collect_options(&args.source), &mut |h| {
        rules::eval::Fold::new(&plan.rules, &plan.params, h)
    })
    .map_err(super::name_flag)?;
    let (snapshots, outcomes): (Vec<_>, Vec<_>) = collected
        .into_iter()
        .map(|(snapshot, fold)| {
            let outcome = fold.finish(&snapshot);
            (snapshot, outcome)
        })
        .unzip();
    let mut audits: Vec<_> = snapshots.iter().zip(outcomes).collect();
    let waivers = accept.map(|file| {
        let findings = audits.iter_mut().flat_map(|(_, out)| &mut out.findings);
        rules::accept::apply(&file, findings, today())
    });
    let mut report = AuditReport::new(audits, threshold(args.fail_on.unwrap_or_default()));
    if let Some(waivers) = waivers {
        report = report.with_waivers(waivers);
    }
    let bytes = match args.format {
        AuditFormat::Table => report::table::table(&report, use_color(args.output.is_some())),
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

/// The rule selection from `--rules/--only/--skip/--profile/--set` (profile first, `--set` wins).
pub fn selection(args: &RuleSelectArgs) -> anyhow::Result<Selection> {
    let mut params = Vec::new();
    if let Some(profile) = &args.profile {
        params.extend(
            crate::remedy::profile_params(profile, "--profile")
                .with_context(|| format!("reading the parameters of profile {profile:?}"))?,
        );
    }
    params.extend(super::parse_assignments(&args.set, "--set")?);
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

/// Colour only on a terminal, and never with NO_COLOR set (https://no-color.org).
#[expect(
    clippy::disallowed_methods,
    reason = "colour depends on standard output"
)]
fn use_color(to_file: bool) -> bool {
    !to_file
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
