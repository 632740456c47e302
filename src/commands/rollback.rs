//! The `rollback` command: restore the values recorded before an apply, as
//! one transaction, in the namespace the rollback file names.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::RollbackArgs;
use crate::host::netns;
use crate::host::sysctl::{Scope, SysctlKey};
use crate::remedy::faults::Faults;
use crate::remedy::persist;
use crate::remedy::profiles::Target;
use crate::remedy::state::{self, RollbackRecord};
use crate::remedy::transaction::{self, Desired, LiveIo, PersistRequest, TxOptions};
use crate::remedy::{self, render};

/// Run the command.
pub fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let faults = Faults::parse(&args.inject_fault)?;
    let file = match &args.file {
        Some(f) => f.clone(),
        None => state::latest(&args.state_dir)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no rollback file in {} (nothing applied, or already rolled back); give one as `rstaudit rollback FILE`",
                args.state_dir.display()
            )
        })?,
    };
    let record = RollbackRecord::load(&file)?;
    // The persist file is written or removed as root: only where the apply could have
    // written it, in a directory no one else can write. With --skip-persist it is not
    // touched, so its path is not checked.
    let persist = if args.skip_persist {
        None
    } else {
        record.persist.as_ref()
    };
    if let Some(p) = persist {
        persist::check_location(Path::new(&p.path)).map_err(|e| {
            anyhow::anyhow!(
                "{}: the persist file it records, {}: {e}; refusing to write or remove it, nothing \
                 was changed; to restore the values and leave the persist file to you, run \
                 `rstaudit rollback --skip-persist {}`",
                file.display(),
                p.path,
                file.display()
            )
        })?;
    }
    let ns = match &record.netns.path {
        Some(path) => {
            let ns = netns::resolve(path).map_err(|e| {
                anyhow::anyhow!(
                    "{}: the network namespace it belongs to ({}) is gone: {e:#}",
                    file.display(),
                    record.netns.name
                )
            })?;
            Some(ns)
        }
        None => None,
    };
    let mut desired = Vec::new();
    for k in &record.keys {
        let scope = if k.outside_net {
            Scope::AnyKey
        } else {
            Scope::NetOnly
        };
        let key = SysctlKey::parse(&k.key, scope)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        desired.push(Desired {
            key,
            target: Target::Value(k.old.clone()),
            reason: format!("value before {} ({})", record.what, record.created_at),
        });
    }

    let result = remedy::in_namespace(ns.as_ref(), || -> anyhow::Result<_> {
        let (ctx, recorded) = remedy::describe_current(ns.as_ref())?;
        if recorded.inode != record.netns.inode {
            anyhow::bail!(
                "{} belongs to network namespace {} (inode {}), but this is {} (inode {}); nothing was changed",
                file.display(),
                record.netns.name,
                record.netns.inode,
                ctx.name,
                recorded.inode
            );
        }
        let plan = transaction::plan(&LiveIo, &desired, &ctx, &faults);
        let mut out = render::diff_table(&plan.rows);
        for (row, k) in plan.rows.iter().zip(&record.keys) {
            if let Some(cur) = &row.current
                && !crate::remedy::profiles::values_equal(cur, &k.new)
            {
                out.push_str(&format!(
                    "note: {} was changed after the apply (it set {}, it is now {cur}); restoring {} anyway\n",
                    k.key, k.new, k.old
                ));
            }
        }
        super::write_output(None, out.as_bytes())?;
        if !plan.problems.is_empty() {
            anyhow::bail!(
                "{} cannot be restored; nothing was written:\n  {}",
                file.display(),
                plan.problems.join("\n  ")
            );
        }
        if args.dry_run {
            return Ok(None);
        }
        let opts = TxOptions {
            state_dir: None,
            what: format!("rollback {}", file.display()),
            netns: recorded,
            persist: persist.map(|p| PersistRequest {
                path: p.path.clone().into(),
                text: p.previous.clone(),
            }),
            faults: &faults,
        };
        Ok(Some(transaction::execute(&LiveIo, &plan, &opts)))
    })??;

    match result {
        None => {
            super::write_output(None, b"Dry run: nothing was written.\n")?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Ok(applied)) => {
            let done = state::retire(&file, "done")
                .map_err(|e| anyhow::anyhow!("restored, but renaming {}: {e}", file.display()))?;
            let mut msg = format!(
                "Restored {} key(s) in namespace {}",
                applied.written.len(),
                record.netns.name
            );
            if let Some(p) = persist {
                msg.push_str(&match &p.previous {
                    Some(_) => format!(" and the previous {}", p.path),
                    None => format!(" and removed {}", p.path),
                });
            }
            msg.push_str(&format!(
                ". Rollback file marked done: {}\n",
                done.display()
            ));
            if args.skip_persist
                && let Some(p) = &record.persist
            {
                msg.push_str(&format!(
                    "persist file {} left as it is (--skip-persist)\n",
                    p.path
                ));
            }
            super::write_output(None, msg.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failure)) => {
            Err(anyhow::Error::new(failure).context(format!("rolling back {}", file.display())))
        }
    }
}
