//! The `apply` command: show the diff, then apply a profile or today's fixes
//! as one transaction (see `remedy::transaction`).

mod multi;
mod owners;
pub(crate) mod targets;

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{ApplyArgs, DiffFormat};
use crate::remedy::persist::{self, PersistEntry};
use crate::remedy::transaction::{
    self, Applied, Change, LiveIo, PersistRequest, Row, TxFailure, TxOptions,
};
use crate::remedy::{self, profiles, render};

#[derive(Serialize)]
struct Report<'a> {
    what: &'a str,
    netns: &'a str,
    dry_run: bool,
    rows: &'a [Row],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    problems: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<JsonResult<'a>>,
    #[serde(flatten)]
    ownership: &'a owners::OwnersJson,
    /// After an apply in the caller's own namespace: the other namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    other_namespaces: Option<&'a multi::Others>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    ok: bool,
    written: &'a [Change],
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persisted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

struct Outcome {
    ns_name: String,
    rows: Vec<Row>,
    problems: Vec<String>,
    result: Option<Result<Applied, Box<TxFailure>>>,
    ownership: owners::OwnersJson,
}

/// Run the command.
pub fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let faults = super::inject_faults(&args.inject_fault)?;
    let several = targets::several(args.netns.as_deref(), args.netns_scope.as_deref())?;
    if several.is_some() && args.profile.is_none() {
        anyhow::bail!(
            "--fixes applies the fixes of one namespace's findings: give one --netns NAME, or \
             --profile NAME for several namespaces"
        );
    }
    let ns = match several {
        Some(_) => None,
        None => args
            .netns
            .as_deref()
            .map(super::resolve_netns)
            .transpose()?,
    };
    let (what, desired) = match &args.profile {
        Some(spec) => {
            if !args.set.is_empty() {
                anyhow::bail!(
                    "--set works with --fixes; with --profile the parameters come from the profile file"
                );
            }
            let profile = profiles::load_named(spec, "--profile")?;
            (
                format!("profile {}", profile.name),
                remedy::desired_from_profile(&profile),
            )
        }
        None => (
            "fixes".to_string(),
            super::fix::desired_from_fixes(&args.set, args.netns.as_deref())?,
        ),
    };
    let table = args.format == DiffFormat::Table;
    let state_dir = args.state_dir.clone();
    let persist_path = args.persist.clone();
    let owner_check = owners::OwnerCheck::load(args.sysctl_root.as_deref(), &args.override_owned)?;
    if let Some((targets, notes)) = &several {
        let req = multi::Request {
            args: &args,
            what: &what,
            desired: &desired,
            owners: &owner_check,
            faults: &faults,
        };
        return multi::run(&req, targets, notes);
    }

    let outcome = remedy::in_namespace(ns.as_ref(), || -> anyhow::Result<Outcome> {
        let (ctx, recorded) = remedy::describe_current(ns.as_ref())?;
        let mut plan = transaction::plan(&LiveIo, &desired, &ctx, &faults);
        owner_check.refuse(&mut plan);
        let ownership = owner_check.report(&plan, persist_path.as_deref());
        if table {
            let text = render::diff_table(&plan.rows) + &ownership.text(plan.rows.len());
            super::write_output(None, text.as_bytes())?;
        }
        let mut outcome = Outcome {
            ns_name: ctx.name.clone(),
            rows: plan.rows.clone(),
            problems: plan.problems.clone(),
            result: None,
            ownership,
        };
        if !plan.problems.is_empty() || args.dry_run {
            return Ok(outcome);
        }
        let persist_path = persist_path
            .as_deref()
            .map(|p| persist::absolute(p).with_context(|| format!("--persist {}", p.display())))
            .transpose()?;
        let persist = persist_path.map(|path| PersistRequest {
            path,
            text: Some(persist::render(
                &what,
                &plan
                    .resolved
                    .iter()
                    .map(|(k, v, why)| PersistEntry {
                        key: k.to_string(),
                        value: v.clone(),
                        comment: why.clone(),
                    })
                    .collect::<Vec<_>>(),
            )),
        });
        let opts = TxOptions {
            state_dir: Some(&state_dir),
            what: what.clone(),
            netns: recorded,
            persist,
            faults: &faults,
            group: None,
        };
        outcome.result = Some(transaction::execute(&LiveIo, &plan, &opts));
        Ok(outcome)
    })??;

    let others = (ns.is_none() && matches!(outcome.result, Some(Ok(_))))
        .then(|| multi::others(&outcome.rows, args.netns_scope.as_deref()));
    if !table {
        let report = Report {
            what: &what,
            netns: &outcome.ns_name,
            dry_run: args.dry_run,
            rows: &outcome.rows,
            problems: &outcome.problems,
            ownership: &outcome.ownership,
            other_namespaces: others.as_ref(),
            result: outcome.result.as_ref().map(|r| match r {
                Ok(a) => JsonResult {
                    ok: true,
                    written: &a.written,
                    rollback_file: a.rollback_file.as_ref().map(|p| p.display().to_string()),
                    persisted: a.persisted.as_ref().map(|p| p.display().to_string()),
                    error: None,
                },
                Err(e) => JsonResult {
                    ok: false,
                    written: &[],
                    rollback_file: None,
                    persisted: None,
                    error: Some(e.to_string()),
                },
            }),
        };
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        super::write_output(None, format!("{json}\n").as_bytes())?;
    }

    if !outcome.problems.is_empty() {
        anyhow::bail!(
            "{} cannot be applied in namespace {}; nothing was written:\n  {}",
            what,
            outcome.ns_name,
            outcome.problems.join("\n  ")
        );
    }
    if args.dry_run {
        if table {
            super::write_output(None, b"Dry run: nothing was written.\n")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match outcome.result {
        Some(Ok(applied)) => {
            if table {
                let mut msg = String::new();
                if applied.written.is_empty() {
                    msg.push_str("Nothing to change: every key is already at its target.\n");
                } else {
                    msg.push_str(&format!(
                        "Applied {} key(s) in namespace {}.\n",
                        applied.written.len(),
                        outcome.ns_name
                    ));
                }
                if let Some(rb) = &applied.rollback_file {
                    msg.push_str(&format!(
                        "Rollback file: {} (undo with `rstaudit rollback {}`).\n",
                        rb.display(),
                        rb.display()
                    ));
                }
                if let Some(p) = &applied.persisted {
                    if applied.persist_unchanged {
                        msg.push_str(&format!("{} is already up to date.\n", p.display()));
                    } else {
                        msg.push_str(&format!("Persisted to {}.\n", p.display()));
                    }
                }
                if let Some(o) = &others {
                    msg.push_str(&o.text(&outcome.ns_name));
                }
                super::write_output(None, msg.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failure)) => Err(anyhow::Error::new(failure)
            .context(format!("applying {what} in namespace {}", outcome.ns_name))),
        None => Ok(ExitCode::SUCCESS),
    }
}
