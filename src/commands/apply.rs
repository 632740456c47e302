//! The `apply` command: turn the flags into an apply request (`remedy::apply`), show the
//! diff, then run it; one namespace or several, one path.

use super::Exit;

use anyhow::Context;

use crate::cli::{ApplyArgs, DiffFormat};
use crate::remedy::apply::{self, ApplyError, Planned, Request};
use crate::remedy::owners::Sources;
use crate::remedy::ownership::OwnerCheck;
use crate::remedy::{self, profiles};
use crate::report::apply as show;

/// Run the command.
pub fn run(args: ApplyArgs) -> anyhow::Result<Exit> {
    let planned = apply::plan(request(&args)?)?;
    let table = args.format == DiffFormat::Table;
    if table {
        super::write_output(None, show::diff_text(&planned).as_bytes())?;
    }
    let problems = show::problems(&planned);
    if !problems.is_empty() {
        if !table {
            write_json(&planned, args.dry_run, None)?;
        }
        anyhow::bail!(
            "{} cannot be applied in {}; nothing was written{}:\n  {}",
            planned.request.what,
            place(&planned),
            if planned.request.several {
                " in any"
            } else {
                ""
            },
            problems.join("\n  ")
        );
    }
    if args.dry_run {
        if table {
            super::write_output(None, b"Dry run: nothing was written.\n")?;
        } else {
            write_json(&planned, true, None)?;
        }
        return Ok(Exit::Clean);
    }
    let result = match planned.execute() {
        Ok(outcome) => Ok(outcome),
        Err(ApplyError::Failed(failure)) => Err(failure),
        Err(e @ ApplyError::PersistPath(_)) => {
            let path = args.persist.as_deref().unwrap_or(std::path::Path::new(""));
            return Err(anyhow::Error::new(e).context(format!("--persist {}", path.display())));
        }
        Err(e @ ApplyError::Refused) => return Err(e.into()),
    };
    if table {
        if let Ok(outcome) = &result {
            super::write_output(None, show::result_text(&planned, outcome).as_bytes())?;
        }
    } else {
        write_json(&planned, false, Some(&result))?;
    }
    match result {
        Ok(_) => Ok(Exit::Clean),
        Err(failure) if planned.request.several => Err(anyhow::Error::new(failure).context(
            format!("applying {} in {}", planned.request.what, place(&planned)),
        )),
        Err(failure) => Err(anyhow::Error::new(failure.error).context(format!(
            "applying {} in {}",
            planned.request.what,
            place(&planned)
        ))),
    }
}

/// The flags as a request: what to apply (a profile, or today's fixes), where, and how.
fn request(args: &ApplyArgs) -> anyhow::Result<Request> {
    let faults = super::inject_faults(&args.inject_fault)?;
    let targets = super::targets::targets(args.netns.as_deref(), args.netns_scope.as_deref())?;
    if targets.several && args.profile.is_none() {
        anyhow::bail!(
            "--fixes applies the fixes of one namespace's findings: give one --netns NAME, or \
             --profile NAME for several namespaces"
        );
    }
    let selects = match &args.profile {
        Some(spec) => vec!["--profile".to_string(), spec.clone()],
        None => std::iter::once("--fixes".to_string())
            .chain(
                args.set
                    .iter()
                    .flat_map(|s| ["--set".to_string(), s.clone()]),
            )
            .collect(),
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
    let sources = args
        .sysctl_root
        .as_deref()
        .map_or_else(Sources::system, Sources::under);
    let owners = OwnerCheck::load(sources, &args.override_owned)
        .map_err(|e| anyhow::anyhow!("--override-owned {e}"))?;
    Ok(Request {
        what,
        selects,
        desired,
        targets: targets.list,
        several: targets.several,
        notes: targets.notes,
        persist: args.persist.clone(),
        state_dir: args.state_dir.clone(),
        owners,
        faults,
        scope: args.netns_scope.clone(),
    })
}

/// `namespace NAME`, or `N namespaces`.
fn place(planned: &Planned) -> String {
    match (planned.request.several, planned.namespaces.as_slice()) {
        (false, [one]) => format!("namespace {}", one.ctx.name),
        (_, all) => format!("{} namespaces", all.len()),
    }
}

fn write_json(planned: &Planned, dry_run: bool, executed: show::Executed) -> anyhow::Result<()> {
    let json = show::json(planned, dry_run, executed).context("serialising the report")?;
    super::write_output(None, &json)
}
