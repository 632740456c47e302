//! The `rollback` command: restore the values recorded before an apply, as
//! one transaction, in the namespace the rollback file names. An apply over
//! several namespaces wrote one rollback file per namespace, all of one
//! group: `rollback` without FILE restores every namespace of the group.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::RollbackArgs;
use crate::host::netns::{self, NetnsRef};
use crate::host::sysctl::{Scope, SysctlKey};
use crate::remedy::faults::Faults;
use crate::remedy::persist;
use crate::remedy::profiles::Target;
use crate::remedy::state::{self, RecordedNetns, RecordedPersist, RollbackRecord};
use crate::remedy::transaction::{
    self, Desired, LiveIo, NsContext, PersistRequest, Plan, TxOptions,
};
use crate::remedy::{self, render};

/// The namespace a rollback file records is gone, or its path now names another one.
#[derive(Debug)]
struct Gone(String);

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Gone {}

/// One rollback file, checked and ready to plan.
struct Prepared {
    file: PathBuf,
    record: RollbackRecord,
    ns: Option<NetnsRef>,
    desired: Vec<Desired>,
    persist: Option<RecordedPersist>,
}

/// One rollback file, validated in its namespace.
struct Planned {
    prep: Prepared,
    recorded: RecordedNetns,
    plan: Plan,
}

/// Run the command.
pub fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let faults = super::inject_faults(&args.inject_fault)?;
    let files: Vec<(PathBuf, RollbackRecord)> = match &args.file {
        Some(f) => vec![(f.clone(), RollbackRecord::load(f)?)],
        None => {
            let file = state::latest(&args.state_dir)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no rollback file in {} (nothing applied, or already rolled back); give one as `rstaudit rollback FILE`",
                    args.state_dir.display()
                )
            })?;
            let record = RollbackRecord::load(&file)?;
            match &record.group {
                Some(group) => {
                    let mut all = state::group_files(&args.state_dir, group)?;
                    // The latest first: the initial namespace, applied last, is restored first.
                    all.reverse();
                    all
                }
                None => vec![(file, record)],
            }
        }
    };
    // In a group (an apply over several namespaces), a namespace that is gone since (a
    // container that ended) took its values with it: it is skipped, said, and its file
    // marked `.gone` once the others are restored. A single file is refused as before.
    let several = files.len() > 1;
    let mut gone: Vec<(PathBuf, String)> = Vec::new();
    let mut skip_gone = |file: &Path, e: anyhow::Error| -> anyhow::Result<()> {
        match e.downcast_ref::<Gone>() {
            Some(g) if several => {
                gone.push((file.to_path_buf(), g.0.clone()));
                Ok(())
            }
            _ => Err(e),
        }
    };
    let mut prepared = Vec::new();
    for (file, record) in files {
        match prepare(file.clone(), record, &args) {
            Ok(p) => prepared.push(p),
            Err(e) => skip_gone(&file, e)?,
        }
    }
    // Validate every namespace before anything is written.
    let mut planned = Vec::new();
    let mut out = String::new();
    for prep in prepared {
        let file = prep.file.clone();
        let (p, text) = match plan_in(prep, &faults) {
            Ok(x) => x,
            Err(e) => {
                skip_gone(&file, e)?;
                continue;
            }
        };
        if several {
            out.push_str(&format!(
                "== network namespace {} ==\n",
                p.prep.record.netns.name
            ));
        }
        out.push_str(&text);
        planned.push(p);
    }
    for (file, why) in &gone {
        out.push_str(&format!(
            "note: {why}; nothing to restore there ({} will be marked .gone)\n",
            file.display()
        ));
    }
    super::write_output(None, out.as_bytes())?;
    let problems: Vec<String> = planned
        .iter()
        .flat_map(|p| {
            p.plan
                .problems
                .iter()
                .map(move |x| format!("{}: {x}", p.prep.file.display()))
        })
        .collect();
    if !problems.is_empty() {
        anyhow::bail!(
            "{} cannot be restored; nothing was written:\n  {}",
            if several {
                format!("the {} namespaces of this apply", planned.len())
            } else {
                planned[0].prep.file.display().to_string()
            },
            problems.join("\n  ")
        );
    }
    if args.dry_run {
        super::write_output(None, b"Dry run: nothing was written.\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut restored: Vec<String> = Vec::new();
    let total = planned.len();
    for p in planned {
        let msg = execute(p, &args, &faults).map_err(|e| {
            if restored.is_empty() {
                e
            } else {
                e.context(format!(
                    "namespaces already restored: {}; the others of this apply ({} left) keep \
                     their rollback files",
                    restored.join(", "),
                    total - restored.len()
                ))
            }
        })?;
        super::write_output(None, msg.0.as_bytes())?;
        restored.push(msg.1);
    }
    for (file, _) in &gone {
        let to = state::retire(file, "gone")
            .map_err(|e| anyhow::anyhow!("restored, but renaming {}: {e}", file.display()))?;
        super::write_output(
            None,
            format!("Rollback file marked gone: {}\n", to.display()).as_bytes(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Check a rollback file's persist path and namespace, and turn its keys into targets.
fn prepare(file: PathBuf, record: RollbackRecord, args: &RollbackArgs) -> anyhow::Result<Prepared> {
    // The persist file is written or removed as root: only where the apply could have
    // written it, in a directory no one else can write. With --skip-persist it is not
    // touched, so its path is not checked.
    let persist = if args.skip_persist {
        None
    } else {
        record.persist.clone()
    };
    if let Some(p) = &persist {
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
        Some(path) => Some(netns::resolve(path).map_err(|e| {
            // The path comes from the file, not from a flag: the error names it, not --netns.
            let e = anyhow::Error::new(e).context(path.clone());
            anyhow::Error::new(Gone(format!(
                "{}: the network namespace it belongs to ({}) is gone: {e:#}",
                file.display(),
                record.netns.name
            )))
        })?),
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
    Ok(Prepared {
        file,
        record,
        ns,
        desired,
        persist,
    })
}

/// Validate in the recorded namespace; the diff (and notes) as text.
fn plan_in(prep: Prepared, faults: &Faults) -> anyhow::Result<(Planned, String)> {
    let (recorded, plan, out) = remedy::in_namespace(
        prep.ns.as_ref(),
        || -> anyhow::Result<_> {
            let (ctx, recorded): (NsContext, RecordedNetns) =
                remedy::describe_current(prep.ns.as_ref())?;
            if recorded.inode != prep.record.netns.inode {
                return Err(anyhow::Error::new(Gone(format!(
                    "{} belongs to network namespace {} (inode {}), but this is {} (inode {}); nothing was changed",
                    prep.file.display(),
                    prep.record.netns.name,
                    prep.record.netns.inode,
                    ctx.name,
                    recorded.inode
                ))));
            }
            let plan = transaction::plan(&LiveIo, &prep.desired, &ctx, faults);
            let mut out = render::diff_table(&plan.rows);
            for (row, k) in plan.rows.iter().zip(&prep.record.keys) {
                if let Some(cur) = &row.current
                    && !crate::remedy::profiles::values_equal(cur, &k.new)
                {
                    out.push_str(&format!(
                    "note: {} was changed after the apply (it set {}, it is now {cur}); restoring {} anyway\n",
                    k.key, k.new, k.old
                ));
                }
            }
            Ok((recorded, plan, out))
        },
    )??;
    Ok((
        Planned {
            prep,
            recorded,
            plan,
        },
        out,
    ))
}

/// Restore one file's values (and persist file) and mark it done: the message, and the name
/// of its namespace.
fn execute(p: Planned, args: &RollbackArgs, faults: &Faults) -> anyhow::Result<(String, String)> {
    let Planned {
        prep,
        recorded,
        plan,
    } = p;
    let file = &prep.file;
    let opts = TxOptions {
        state_dir: None,
        what: format!("rollback {}", file.display()),
        netns: recorded,
        persist: prep.persist.as_ref().map(|p| PersistRequest {
            path: p.path.clone().into(),
            text: p.previous.clone(),
        }),
        faults,
        group: None,
    };
    let applied = remedy::in_namespace(prep.ns.as_ref(), || {
        transaction::execute(&LiveIo, &plan, &opts)
    })?
    .map_err(|failure| {
        anyhow::Error::new(*failure).context(format!("rolling back {}", file.display()))
    })?;
    let done = state::retire(file, "done")
        .map_err(|e| anyhow::anyhow!("restored, but renaming {}: {e}", file.display()))?;
    let record = &prep.record;
    let mut msg = format!(
        "Restored {} key(s) in namespace {}",
        applied.written.len(),
        record.netns.name
    );
    if let Some(p) = &prep.persist {
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
    Ok((msg, record.netns.name.clone()))
}
