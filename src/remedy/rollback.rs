//! Rollback: restore the values rollback files recorded before an apply, as one
//! transaction per file, in the namespace each file names.
//!
//! [`plan`] picks the files (the one asked for; or the latest in the state directory with,
//! when it is one namespace of an apply over several, every file of its group, the latest
//! first) and validates each in its namespace; nothing is written. In a group, a namespace
//! that is gone since (a container that ended) took its values with it: it is left out and
//! said so, and its file is marked `.gone` once the others are restored. A single file whose
//! namespace is gone is an error. [`Planned::execute`] restores each file (its persist file
//! too, unless asked to leave it) and marks it `.done`.

use std::path::{Path, PathBuf};

use super::faults::Faults;
use super::persist::{self, PersistError};
use super::profiles::{Target, values_equal};
use super::state::{self, LoadError, RecordedNetns, RecordedPersist, RollbackRecord};
use super::transaction::{self, Desired, LiveIo, PersistRequest, Plan, TxFailure, TxOptions};
use super::{NsError, describe_current};
use crate::host::netns::{self, NetnsError, NetnsRef};
use crate::host::sysctl::{Scope, SysctlError, SysctlKey};

/// What to roll back.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where the rollback files are.
    pub state_dir: PathBuf,
    /// The file to restore; `None`: the latest in the state directory (and its group).
    pub file: Option<PathBuf>,
    /// Restore the values only: leave the persist file a rollback file records as it is
    /// (not written, not removed, its path not checked).
    pub skip_persist: bool,
    pub faults: Faults,
}

/// Why a rollback did not run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(
        "no rollback file in {} (nothing applied, or already rolled back); give one as \
         `rstaudit rollback FILE`",
        dir.display()
    )]
    NoFile { dir: PathBuf },
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The persist file it records may not be written or removed (see
    /// [`persist::check_location`]); the values alone can still be restored.
    #[error(
        "{}: the persist file it records, {path}: {error}; refusing to write or remove it, \
         nothing was changed",
        file.display()
    )]
    PersistRefused {
        file: PathBuf,
        path: String,
        error: PersistError,
    },
    #[error("{}: {error}", file.display())]
    BadKey { file: PathBuf, error: SysctlError },
    /// The namespace the file belongs to is gone.
    #[error(
        "{}: the network namespace it belongs to ({name}) is gone: {path}: {error}{}",
        file.display(),
        cause(error)
    )]
    Gone {
        file: PathBuf,
        name: String,
        path: String,
        error: Box<NetnsError>,
    },
    /// The file's namespace path now names another namespace.
    #[error(
        "{} belongs to network namespace {name} (inode {inode}), but this is {now} (inode \
         {now_inode}); nothing was changed",
        file.display()
    )]
    Moved {
        file: PathBuf,
        name: String,
        inode: u64,
        now: String,
        now_inode: u64,
    },
    #[error(transparent)]
    Ns(#[from] NsError),
    #[error("rolling back {}: {failure}", file.display())]
    Failed {
        file: PathBuf,
        failure: Box<TxFailure>,
    },
    #[error("restored, but renaming {}: {error}", file.display())]
    Retire {
        file: PathBuf,
        error: std::io::Error,
    },
    /// A file failed after others of the same apply were restored.
    #[error(
        "namespaces already restored: {}; the others of this apply ({left} left) keep their \
         rollback files: {error}",
        restored.join(", ")
    )]
    Stopped {
        restored: Vec<String>,
        left: usize,
        error: Box<RollbackError>,
    },
}

impl RollbackError {
    /// The namespace of the file is gone (or its path names another one now).
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Gone { .. } | Self::Moved { .. })
    }
}

/// `: CAUSE` for an error that has one.
fn cause(e: &NetnsError) -> String {
    std::error::Error::source(e).map_or_else(String::new, |s| format!(": {s}"))
}

/// One rollback file, validated in its namespace.
#[derive(Debug)]
pub struct PlannedFile {
    pub file: PathBuf,
    pub record: RollbackRecord,
    ns: Option<NetnsRef>,
    recorded: RecordedNetns,
    pub plan: Plan,
    /// The persist file to restore (none with `skip_persist`).
    persist: Option<RecordedPersist>,
    /// Keys changed since the apply: they are restored anyway.
    pub changed: Vec<Changed>,
}

/// A key whose value is no longer the one the apply set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub key: String,
    /// What the apply set.
    pub applied: String,
    pub now: String,
    /// What the rollback restores.
    pub restoring: String,
}

/// A rollback validated in every namespace, nothing written yet.
#[derive(Debug)]
pub struct Planned {
    /// The files of an apply over several namespaces (more than one).
    pub several: bool,
    pub files: Vec<PlannedFile>,
    /// Files whose namespace is gone, and why: nothing to restore there.
    pub gone: Vec<(PathBuf, String)>,
    skip_persist: bool,
    faults: Faults,
}

/// One file restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub netns: String,
    pub keys: usize,
    /// The persist file restored (path, whether it had a previous content, else removed).
    pub persist: Option<(String, bool)>,
    /// The persist file the rollback file records, left as it is (`skip_persist`).
    pub persist_left: Option<String>,
    /// The rollback file, renamed.
    pub done: PathBuf,
}

/// What a rollback did: the files restored and marked gone, in order, and what stopped it.
#[derive(Debug)]
pub struct Done {
    pub restored: Vec<Restored>,
    pub marked_gone: Vec<PathBuf>,
    pub error: Option<RollbackError>,
}

/// Pick the files and validate each in its namespace; nothing is written.
pub fn plan(req: &Request) -> Result<Planned, RollbackError> {
    let files = pick(req)?;
    let several = files.len() > 1;
    let mut gone = Vec::new();
    let mut skip = |file: &Path, e: RollbackError| match e {
        e if several && e.is_gone() => {
            gone.push((file.to_path_buf(), e.to_string()));
            Ok(())
        }
        e => Err(e),
    };
    let mut prepared = Vec::new();
    for (file, record) in files {
        match prepare(&file, record, req) {
            Ok(p) => prepared.push(p),
            Err(e) => skip(&file, e)?,
        }
    }
    // Every namespace is validated before anything is written.
    let mut planned = Vec::new();
    for prep in prepared {
        let file = prep.file.clone();
        match plan_in(prep, &req.faults) {
            Ok(p) => planned.push(p),
            Err(e) => skip(&file, e)?,
        }
    }
    Ok(Planned {
        several,
        files: planned,
        gone,
        skip_persist: req.skip_persist,
        faults: req.faults.clone(),
    })
}

/// The files to restore: the one asked for, or the latest and the rest of its group.
fn pick(req: &Request) -> Result<Vec<(PathBuf, RollbackRecord)>, RollbackError> {
    if let Some(f) = &req.file {
        return Ok(vec![(f.clone(), RollbackRecord::load(f)?)]);
    }
    let file = state::latest(&req.state_dir)?.ok_or_else(|| RollbackError::NoFile {
        dir: req.state_dir.clone(),
    })?;
    let record = RollbackRecord::load(&file)?;
    Ok(match &record.group {
        Some(group) => {
            let mut all = state::group_files(&req.state_dir, group)?;
            // The latest first: the initial namespace, applied last, is restored first.
            all.reverse();
            all
        }
        None => vec![(file, record)],
    })
}

/// A file checked, not yet validated in its namespace.
struct Prepared {
    file: PathBuf,
    record: RollbackRecord,
    ns: Option<NetnsRef>,
    desired: Vec<Desired>,
    persist: Option<RecordedPersist>,
}

/// Check a rollback file's persist path and namespace, and turn its keys into targets.
fn prepare(file: &Path, record: RollbackRecord, req: &Request) -> Result<Prepared, RollbackError> {
    // The persist file is written or removed as root: only where the apply could have
    // written it, in a directory no one else can write. Left alone, its path is not checked.
    let persist = (!req.skip_persist)
        .then(|| record.persist.clone())
        .flatten();
    if let Some(p) = &persist {
        persist::check_location(Path::new(&p.path)).map_err(|error| {
            RollbackError::PersistRefused {
                file: file.to_path_buf(),
                path: p.path.clone(),
                error,
            }
        })?;
    }
    let ns = match &record.netns.path {
        Some(path) => Some(netns::resolve(path).map_err(|error| RollbackError::Gone {
            file: file.to_path_buf(),
            name: record.netns.name.clone(),
            path: path.clone(),
            error: Box::new(error),
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
        let key = SysctlKey::parse(&k.key, scope).map_err(|error| RollbackError::BadKey {
            file: file.to_path_buf(),
            error,
        })?;
        desired.push(Desired {
            key,
            target: Target::Value(k.old.clone()),
            reason: format!("value before {} ({})", record.what, record.created_at),
        });
    }
    Ok(Prepared {
        file: file.to_path_buf(),
        record,
        ns,
        desired,
        persist,
    })
}

/// Validate in the recorded namespace.
fn plan_in(prep: Prepared, faults: &Faults) -> Result<PlannedFile, RollbackError> {
    let (recorded, plan) = netns::in_namespace(prep.ns.as_ref(), || {
        let (ctx, recorded) = describe_current(prep.ns.as_ref())?;
        if recorded.inode != prep.record.netns.inode {
            return Err(RollbackError::Moved {
                file: prep.file.clone(),
                name: prep.record.netns.name.clone(),
                inode: prep.record.netns.inode,
                now: ctx.name,
                now_inode: recorded.inode,
            });
        }
        Ok((
            recorded,
            transaction::plan(&LiveIo, &prep.desired, &ctx, faults),
        ))
    })
    .map_err(NsError::from)??;
    let changed = plan
        .rows
        .iter()
        .zip(&prep.record.keys)
        .filter_map(|(row, k)| {
            let now = row.current.as_ref()?;
            (!values_equal(now, &k.new)).then(|| Changed {
                key: k.key.clone(),
                applied: k.new.clone(),
                now: now.clone(),
                restoring: k.old.clone(),
            })
        })
        .collect();
    Ok(PlannedFile {
        file: prep.file,
        record: prep.record,
        ns: prep.ns,
        recorded,
        plan,
        persist: prep.persist,
        changed,
    })
}

impl Planned {
    /// Every problem of every file's validation, each after its file.
    pub fn problems(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|p| {
                p.plan
                    .problems
                    .iter()
                    .map(move |x| format!("{}: {x}", p.file.display()))
            })
            .collect()
    }

    /// Restore every file in order, then mark the gone ones. A failure stops there: the
    /// files not yet restored keep their rollback files. The plans must be free of problems.
    pub fn execute(&self) -> Done {
        let mut done = Done {
            restored: Vec::new(),
            marked_gone: Vec::new(),
            error: None,
        };
        for p in &self.files {
            match self.restore(p) {
                Ok(r) => done.restored.push(r),
                Err(error) => {
                    done.error = Some(match done.restored.len() {
                        0 => error,
                        n => RollbackError::Stopped {
                            restored: done.restored.iter().map(|r| r.netns.clone()).collect(),
                            left: self.files.len() - n,
                            error: Box::new(error),
                        },
                    });
                    return done;
                }
            }
        }
        for (file, _) in &self.gone {
            match state::retire(file, "gone") {
                Ok(to) => done.marked_gone.push(to),
                Err(error) => {
                    done.error = Some(RollbackError::Retire {
                        file: file.clone(),
                        error,
                    });
                    return done;
                }
            }
        }
        done
    }

    /// Restore one file's values (and persist file) and mark it done.
    fn restore(&self, p: &PlannedFile) -> Result<Restored, RollbackError> {
        let opts = TxOptions {
            state_dir: None,
            what: format!("rollback {}", p.file.display()),
            netns: p.recorded.clone(),
            persist: p.persist.as_ref().map(|rp| PersistRequest {
                path: rp.path.clone().into(),
                text: rp.previous.clone(),
            }),
            faults: &self.faults,
            group: None,
        };
        let applied = netns::in_namespace(p.ns.as_ref(), || {
            transaction::execute(&LiveIo, &p.plan, &opts)
        })
        .map_err(NsError::from)?
        .map_err(|failure| RollbackError::Failed {
            file: p.file.clone(),
            failure,
        })?;
        let done = state::retire(&p.file, "done").map_err(|error| RollbackError::Retire {
            file: p.file.clone(),
            error,
        })?;
        Ok(Restored {
            netns: p.record.netns.name.clone(),
            keys: applied.written.len(),
            persist: p
                .persist
                .as_ref()
                .map(|rp| (rp.path.clone(), rp.previous.is_some())),
            persist_left: self
                .skip_persist
                .then(|| p.record.persist.as_ref().map(|rp| rp.path.clone()))
                .flatten(),
            done,
        })
    }
}
