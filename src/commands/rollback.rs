//! The `rollback` command: turn the flags into a rollback request (`remedy::rollback`),
//! show what would be restored, then restore it. An apply over several namespaces wrote one
//! rollback file per namespace, all of one group: `rollback` without FILE restores every
//! namespace of the group.

use super::Exit;

use crate::cli::RollbackArgs;
use crate::remedy::rollback::{self, Request, RollbackError};
use crate::report::rollback as show;

/// Run the command.
pub fn run(args: RollbackArgs) -> anyhow::Result<Exit> {
    let request = Request {
        state_dir: args.state_dir.clone(),
        file: args.file.clone(),
        skip_persist: args.skip_persist,
        faults: super::inject_faults(&args.inject_fault)?,
    };
    let planned = rollback::plan(&request).map_err(with_hint)?;
    super::write_output(None, show::diff_text(&planned).as_bytes())?;
    let problems = planned.problems();
    if !problems.is_empty() {
        anyhow::bail!(
            "{} cannot be restored; nothing was written:\n  {}",
            match planned.files.as_slice() {
                [one] if !planned.several => one.file.display().to_string(),
                all => format!("the {} namespaces of this apply", all.len()),
            },
            problems.join("\n  ")
        );
    }
    if args.dry_run {
        super::write_output(None, b"Dry run: nothing was written.\n")?;
        return Ok(Exit::Clean);
    }
    let done = planned.execute();
    let mut out = String::new();
    for r in &done.restored {
        out.push_str(&show::restored_text(r));
    }
    for to in &done.marked_gone {
        out.push_str(&format!("Rollback file marked gone: {}\n", to.display()));
    }
    super::write_output(None, out.as_bytes())?;
    match done.error {
        None => Ok(Exit::Clean),
        Some(e) => Err(e.into()),
    }
}

/// A persist path the rollback refuses: say how to restore the values alone.
fn with_hint(e: RollbackError) -> anyhow::Error {
    match &e {
        RollbackError::PersistRefused { file, .. } => {
            let file = file.display().to_string();
            let cmd = crate::hint::command(["rstaudit", "rollback", "--skip-persist", &file]);
            anyhow::anyhow!(
                "{e}; to restore the values and leave the persist file to you, run `{cmd}`"
            )
        }
        _ => e.into(),
    }
}
