//! The apply transaction: validate every key, record the old values, write,
//! read back, and on any failure restore every key already written.
//!
//! The steps, in order, each of which can fail (and be made to fail, see
//! [`super::faults`]):
//! 1. validate: the key exists here, is writable in this namespace, is not a
//!    global key inside a non-initial namespace, and the value is well formed
//!    and in range. Any problem stops the run before anything is written.
//! 2. write the rollback file (before the first change);
//! 3. write each key and read it back;
//! 4. write the `--persist` file.
//!
//! A failure in 2 changes nothing; a failure in 3 or 4 restores every key
//! already written (in reverse order) and says which key failed and why.
//! Reads and writes go through [`SysctlIo`], so the logic is tested without
//! a kernel, and the real thing runs in a namespace thread
//! ([`crate::host::netns::run_in`]).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::faults::{Fault, Faults};
use super::persist;
use super::profiles::{Target, values_equal};
use super::state::{RecordedKey, RecordedNetns, RecordedPersist, RollbackRecord};
use crate::host::sysctl::{self, SysctlError, SysctlKey};

/// Reads and writes sysctls (the live /proc/sys, or a fake in tests).
pub trait SysctlIo {
    fn read(&self, key: &SysctlKey) -> Result<String, SysctlError>;
    fn write(&self, key: &SysctlKey, value: &str) -> Result<(), SysctlError>;
    /// Whether the key's file may be written (its mode has a write bit).
    fn writable(&self, key: &SysctlKey) -> Result<bool, SysctlError>;
}

/// The live /proc/sys of the calling thread's network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveIo;

impl SysctlIo for LiveIo {
    fn read(&self, key: &SysctlKey) -> Result<String, SysctlError> {
        sysctl::read(Path::new("/"), key)
    }
    fn write(&self, key: &SysctlKey, value: &str) -> Result<(), SysctlError> {
        sysctl::write(Path::new("/"), key, value)
    }
    fn writable(&self, key: &SysctlKey) -> Result<bool, SysctlError> {
        use std::os::unix::fs::PermissionsExt;
        let path = key.path(Path::new("/"));
        let meta = std::fs::metadata(&path).map_err(|e| SysctlError::Io {
            key: key.to_string(),
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if meta.permissions().mode() & 0o222 == 0 {
            return Ok(false);
        }
        // The mode says writable (for root); ask the kernel whether *we* may write it.
        nix::unistd::access(&path, nix::unistd::AccessFlags::W_OK).map_err(|_| {
            SysctlError::PermissionDenied {
                key: key.to_string(),
                path: path.display().to_string(),
            }
        })?;
        Ok(true)
    }
}

/// One key the caller wants, and why.
#[derive(Debug, Clone)]
pub struct Desired {
    pub key: SysctlKey,
    pub target: Target,
    pub reason: String,
}

/// One row of the diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub key: String,
    /// The live value (`None` when it could not be read).
    pub current: Option<String>,
    /// The value that would be written (or the target, when it cannot be resolved).
    pub target: String,
    pub why: String,
    /// Whether the value would change.
    pub change: bool,
    /// The key does not exist on this kernel, and the catalogue says why (a release that
    /// removed it or had not added it, a module not loaded): nothing is written for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_applicable: Option<String>,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(serialize_with = "ser_key")]
    pub key: SysctlKey,
    pub old: String,
    pub new: String,
}

fn ser_key<S: serde::Serializer>(key: &SysctlKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(key.as_str())
}

/// The result of validation: the diff, the changes, and every problem.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub rows: Vec<Row>,
    pub changes: Vec<Change>,
    /// Every key that cannot be applied, and why. Non-empty: nothing may be written.
    pub problems: Vec<String>,
    /// Resolved target per key, for the persist file.
    pub resolved: Vec<(SysctlKey, String, String)>,
}

/// Which namespace a transaction runs in.
#[derive(Debug, Clone)]
pub struct NsContext {
    pub name: String,
    /// Whether it is the initial network namespace (the only one where global keys can be set).
    pub initial: bool,
    /// The running kernel, to tell a key this kernel lacks from a key that should be there.
    pub kernel: Option<crate::host::KernelVersion>,
}

/// Step 1: read every key and check the target. Never writes.
pub fn plan(io: &dyn SysctlIo, desired: &[Desired], ns: &NsContext, faults: &Faults) -> Plan {
    let mut plan = Plan::default();
    if let Err(e) = faults.check(Fault::Validate) {
        plan.problems.push(format!("validation: {e}"));
    }
    for d in desired {
        let key = &d.key;
        let global_here = key.is_global() && !ns.initial;
        let mut row = Row {
            key: key.to_string(),
            current: None,
            target: d.target.to_string(),
            why: d.reason.clone(),
            change: false,
            not_applicable: None,
        };
        let mut problem = |msg: String| plan.problems.push(format!("{key}: {msg}"));
        if global_here {
            problem(format!(
                "is global (shared by every network namespace) and can be set only in the initial namespace, not in {}",
                ns.name
            ));
            plan.rows.push(row);
            continue;
        }
        let current = match io.read(key) {
            Ok(v) => v,
            Err(SysctlError::Absent { .. }) => {
                match crate::valid::not_applicable(key, ns.kernel) {
                    Some(why) => row.not_applicable = Some(why),
                    None => problem(
                        "does not exist on this kernel (or its module is not loaded)".into(),
                    ),
                }
                plan.rows.push(row);
                continue;
            }
            Err(e) => {
                problem(e.to_string());
                plan.rows.push(row);
                continue;
            }
        };
        row.current = Some(current.clone());
        let target = match d
            .target
            .resolve(&current)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                sysctl::validate_value(key, &t, Some(&current)).map_err(|e| e.to_string())
            })
            .and_then(|t| match crate::valid::sysctls::spec(key.as_str()) {
                Some(spec) => spec.check(&t).map(|_| t).map_err(|e| e.to_string()),
                None => Ok(t),
            }) {
            Ok(t) => t,
            Err(why) => {
                problem(why);
                plan.rows.push(row);
                continue;
            }
        };
        row.target = target.clone();
        row.change = !values_equal(&current, &target);
        if row.change {
            match io.writable(key) {
                Ok(true) => {}
                Ok(false) => problem(format!("is read-only in network namespace {}", ns.name)),
                Err(e) => problem(e.to_string()),
            }
            plan.changes.push(Change {
                key: key.clone(),
                old: current,
                new: target.clone(),
            });
        }
        plan.resolved.push((key.clone(), target, d.reason.clone()));
        plan.rows.push(row);
    }
    plan
}

/// Where to persist, and what.
#[derive(Debug, Clone)]
pub struct PersistRequest {
    pub path: PathBuf,
    /// The new content; `None` removes the (managed) file (a rollback of a file an apply created).
    pub text: Option<String>,
}

/// Everything the transaction needs besides the plan.
#[derive(Debug, Clone)]
pub struct TxOptions<'a> {
    /// Write a rollback file here before the first change (`None` for a rollback itself).
    pub state_dir: Option<&'a Path>,
    /// What is being applied, for the rollback file (`profile baseline`).
    pub what: String,
    pub netns: RecordedNetns,
    pub persist: Option<PersistRequest>,
    pub faults: &'a Faults,
    /// The group of an apply over several namespaces (see [`RollbackRecord::group`]).
    pub group: Option<String>,
}

/// A transaction that went through.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    pub written: Vec<Change>,
    pub rollback_file: Option<PathBuf>,
    pub persisted: Option<PathBuf>,
    /// The persist file already had this content.
    pub persist_unchanged: bool,
}

/// A transaction that failed, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFailure {
    /// `validate`, `rollback-file`, `write`, `read-back` or `persist`.
    pub step: String,
    /// The key that failed, when a key did.
    pub key: Option<String>,
    pub why: String,
    /// Keys restored to their old values.
    pub restored: Vec<String>,
    /// Keys that could not be restored (and why): the rollback file is kept for `rollback`.
    pub restore_failures: Vec<String>,
    pub rollback_file: Option<PathBuf>,
}

impl fmt::Display for TxFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{} of {k} failed: {}", self.step, self.why)?,
            None => write!(f, "{} failed: {}", self.step, self.why)?,
        }
        if self.restore_failures.is_empty() {
            if self.restored.is_empty() {
                write!(f, "; nothing was changed")?;
            } else {
                write!(
                    f,
                    "; restored every key already written ({}), nothing was changed",
                    self.restored.join(", ")
                )?;
            }
        } else {
            write!(
                f,
                "; COULD NOT RESTORE: {}",
                self.restore_failures.join("; ")
            )?;
            if let Some(rb) = &self.rollback_file {
                let rb = rb.display().to_string();
                write!(
                    f,
                    "; run `{}`",
                    crate::hint::command(["rstaudit", "rollback", &rb])
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for TxFailure {}

/// Steps 2 to 4: record, write, read back, persist; restore on failure.
/// The plan must be free of problems (the caller reports those).
pub fn execute(
    io: &dyn SysctlIo,
    plan: &Plan,
    opts: &TxOptions,
) -> Result<Applied, Box<TxFailure>> {
    execute_inner(io, plan, opts).map_err(Box::new)
}

// The public wrapper boxes the failure; inside, the plain value keeps the code simple.
#[allow(clippy::result_large_err)]
fn execute_inner(io: &dyn SysctlIo, plan: &Plan, opts: &TxOptions) -> Result<Applied, TxFailure> {
    assert!(
        plan.problems.is_empty(),
        "execute() called with an invalid plan"
    );
    let persist = persist_step(opts)?;
    let mut applied = Applied {
        persist_unchanged: opts.persist.is_some() && !persist.needed,
        ..Applied::default()
    };
    if plan.changes.is_empty() && !persist.needed {
        return Ok(applied);
    }
    if let Some(dir) = opts.state_dir {
        applied.rollback_file = Some(record_rollback(dir, plan, opts, &persist)?);
    }
    let (written, mut failure) = write_changes(io, plan, opts);
    if failure.is_none()
        && let Some(p) = &opts.persist
    {
        let persisted = if persist.needed {
            write_persist(p, opts)
        } else {
            Ok(())
        };
        match persisted {
            Ok(()) => applied.persisted = Some(p.path.clone()),
            Err(f) => failure = Some(f),
        }
    }
    match failure {
        None => {
            applied.written = plan.changes.clone();
            Ok(applied)
        }
        Some(mut failure) => {
            restore(io, &written, opts, &mut failure);
            if let Some(rb) = &applied.rollback_file {
                if failure.restore_failures.is_empty() {
                    let _ = super::state::retire(rb, "aborted");
                } else {
                    failure.rollback_file = Some(rb.clone());
                }
            }
            Err(failure)
        }
    }
}

impl TxFailure {
    /// The failure of `step` (of `key`), before anything was restored.
    fn at(step: &str, key: Option<&SysctlKey>, why: String) -> Self {
        TxFailure {
            step: step.to_string(),
            key: key.map(|k| k.to_string()),
            why,
            restored: Vec::new(),
            restore_failures: Vec::new(),
            rollback_file: None,
        }
    }
}

/// What the persist step will do, decided before anything changes.
struct PersistStep {
    /// The file's content changes.
    needed: bool,
    /// What the managed file held (`None`: there was none).
    previous: Option<String>,
}

/// Whether the persist file (if any) changes, and what it held.
#[allow(clippy::result_large_err)]
fn persist_step(opts: &TxOptions) -> Result<PersistStep, TxFailure> {
    let Some(p) = &opts.persist else {
        return Ok(PersistStep {
            needed: false,
            previous: None,
        });
    };
    let previous = persist::existing_managed(&p.path)
        .map_err(|e| TxFailure::at("persist", None, format!("{e:#}")))?;
    Ok(PersistStep {
        needed: previous != p.text,
        previous,
    })
}

/// Step 2: the rollback file, saved in `dir` before anything changes: the old and new value
/// of every key, and the persist file's previous content when it changes.
#[allow(clippy::result_large_err)]
fn record_rollback(
    dir: &Path,
    plan: &Plan,
    opts: &TxOptions,
    persist: &PersistStep,
) -> Result<PathBuf, TxFailure> {
    let record = RollbackRecord::new(
        &opts.what,
        opts.netns.clone(),
        plan.changes
            .iter()
            .map(|c| RecordedKey {
                key: c.key.to_string(),
                old: c.old.clone(),
                new: c.new.clone(),
                outside_net: !c.key.as_str().starts_with("net."),
            })
            .collect(),
        opts.persist
            .as_ref()
            .filter(|_| persist.needed)
            .map(|p| RecordedPersist {
                path: p.path.display().to_string(),
                previous: persist.previous.clone(),
            }),
    )
    .in_group(opts.group.as_deref());
    opts.faults
        .check(Fault::RollbackFile)
        .map_err(|e| e.to_string())
        .and_then(|_| record.save(dir).map_err(|e| e.to_string()))
        .map_err(|why| TxFailure::at("rollback-file", None, why))
}

/// Step 3: write each change and read it back, in order, up to the first that fails. The
/// changes written (to restore on failure), and the failure.
fn write_changes<'p>(
    io: &dyn SysctlIo,
    plan: &'p Plan,
    opts: &TxOptions,
) -> (Vec<&'p Change>, Option<TxFailure>) {
    let mut written: Vec<&Change> = Vec::new();
    for change in &plan.changes {
        let key = &change.key;
        if let Err(why) = opts.faults.check(Fault::Write(key.to_string())) {
            return (
                written,
                Some(TxFailure::at("write", Some(key), why.to_string())),
            );
        }
        if let Err(e) = io.write(key, &change.new) {
            return (
                written,
                Some(TxFailure::at("write", Some(key), e.to_string())),
            );
        }
        written.push(change);
        if let Err(failure) = read_back(io, change, opts) {
            return (written, Some(failure));
        }
    }
    (written, None)
}

/// Whether the kernel holds the value just written.
#[allow(clippy::result_large_err)]
fn read_back(io: &dyn SysctlIo, change: &Change, opts: &TxOptions) -> Result<(), TxFailure> {
    let key = &change.key;
    let back = io.read(key).map_err(|e| e.to_string()).and_then(|v| {
        opts.faults
            .check(Fault::ReadBack(key.to_string()))
            .map(|_| v)
            .map_err(|e| e.to_string())
    });
    match back {
        Ok(v) if values_equal(&v, &change.new) => {
            if opts.faults.hits(&Fault::PauseAfterWrite(key.to_string())) {
                std::thread::sleep(super::faults::PAUSE);
            }
            Ok(())
        }
        Ok(v) => Err(TxFailure::at(
            "read-back",
            Some(key),
            format!("wrote {:?} but the kernel holds {v:?}", change.new),
        )),
        Err(why) => Err(TxFailure::at("read-back", Some(key), why)),
    }
}

/// Step 4: write the persist file, or remove it (a rollback of a file an apply created).
#[allow(clippy::result_large_err)]
fn write_persist(p: &PersistRequest, opts: &TxOptions) -> Result<(), TxFailure> {
    match &p.text {
        Some(text) => {
            persist::write_atomic(&p.path, text, 0o644, opts.faults).map_err(|e| e.to_string())
        }
        None => opts
            .faults
            .check(Fault::PersistWrite)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                std::fs::remove_file(&p.path)
                    .map_err(|e| format!("removing {}: {e}", p.path.display()))
            }),
    }
    .map_err(|why| TxFailure::at("persist", None, why))
}

/// On failure: restore the changes written, last first, each read back; the failure says
/// which were restored (in the order written) and which could not be.
fn restore(io: &dyn SysctlIo, written: &[&Change], opts: &TxOptions, failure: &mut TxFailure) {
    for change in written.iter().rev() {
        let restored = opts
            .faults
            .check(Fault::Restore(change.key.to_string()))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                io.write(&change.key, &change.old)
                    .map_err(|e| e.to_string())
            })
            .and_then(|_| io.read(&change.key).map_err(|e| e.to_string()))
            .and_then(|v| {
                if values_equal(&v, &change.old) {
                    Ok(())
                } else {
                    Err(format!("holds {v:?} instead of {:?}", change.old))
                }
            });
        match restored {
            Ok(()) => failure.restored.push(change.key.to_string()),
            Err(why) => failure
                .restore_failures
                .push(format!("{}: {why}", change.key)),
        }
    }
    failure.restored.reverse();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::sysctl::Scope;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory /proc/sys: `ro` keys refuse writes, `bad` keys read back something else.
    #[derive(Default)]
    struct FakeIo {
        values: RefCell<BTreeMap<String, String>>,
        ro: Vec<String>,
        eio: Vec<String>,
    }

    impl SysctlIo for FakeIo {
        fn read(&self, key: &SysctlKey) -> Result<String, SysctlError> {
            self.values
                .borrow()
                .get(key.as_str())
                .cloned()
                .ok_or(SysctlError::Absent {
                    key: key.to_string(),
                    path: "fake".into(),
                })
        }
        fn write(&self, key: &SysctlKey, value: &str) -> Result<(), SysctlError> {
            if self.eio.iter().any(|k| k == key.as_str()) {
                return Err(SysctlError::Io {
                    key: key.to_string(),
                    path: "fake".into(),
                    message: "Invalid argument".into(),
                });
            }
            self.values
                .borrow_mut()
                .insert(key.to_string(), value.to_string());
            Ok(())
        }
        fn writable(&self, key: &SysctlKey) -> Result<bool, SysctlError> {
            Ok(!self.ro.iter().any(|k| k == key.as_str()))
        }
    }

    fn fake() -> FakeIo {
        let io = FakeIo::default();
        for (k, v) in [
            ("net.ipv4.tcp_syncookies", "0"),
            ("net.ipv4.tcp_fin_timeout", "120"),
            ("net.core.somaxconn", "128"),
            ("net.ipv4.tcp_keepalive_time", "7200"),
        ] {
            io.values.borrow_mut().insert(k.into(), v.into());
        }
        io
    }

    fn desired() -> Vec<Desired> {
        [
            ("net.ipv4.tcp_syncookies", Target::Value("1".into())),
            ("net.ipv4.tcp_fin_timeout", Target::AtMost(60)),
            ("net.core.somaxconn", Target::AtLeast(4096)),
            ("net.ipv4.tcp_keepalive_time", Target::AtMost(9000)),
        ]
        .into_iter()
        .map(|(k, t)| Desired {
            key: SysctlKey::parse(k, Scope::NetOnly).unwrap(),
            target: t,
            reason: "test".into(),
        })
        .collect()
    }

    fn ns() -> NsContext {
        NsContext {
            name: "test".into(),
            initial: false,
            kernel: Some(crate::host::KernelVersion {
                major: 6,
                minor: 18,
                patch: 0,
            }),
        }
    }

    /// A key the catalogue knows this kernel lacks is not applicable here: shown, not written,
    /// no problem; a key that should exist and does not is a problem.
    #[test]
    fn a_key_this_kernel_lacks_is_not_applicable_here() {
        let io = fake();
        let d = vec![
            Desired {
                key: SysctlKey::parse("net.ipv4.tcp_tw_recycle", Scope::NetOnly).unwrap(),
                target: Target::Value("0".into()),
                reason: "x".into(),
            },
            Desired {
                key: SysctlKey::parse("net.netfilter.nf_conntrack_tcp_loose", Scope::NetOnly)
                    .unwrap(),
                target: Target::Value("1".into()),
                reason: "x".into(),
            },
        ];
        let p = plan(&io, &d, &ns(), &Faults::default());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.changes.is_empty() && p.resolved.is_empty());
        let why: Vec<&str> = p
            .rows
            .iter()
            .filter_map(|r| r.not_applicable.as_deref())
            .collect();
        assert_eq!(why.len(), 2, "{:?}", p.rows);
        assert_eq!(
            why[0],
            "net.ipv4.tcp_tw_recycle does not exist on this kernel (removed in Linux 4.12)"
        );
        assert!(why[1].contains("nf_conntrack"), "{why:?}");
    }

    fn opts<'a>(
        dir: &'a Path,
        faults: &'a Faults,
        persist: Option<PersistRequest>,
    ) -> TxOptions<'a> {
        TxOptions {
            state_dir: Some(dir),
            what: "test".into(),
            netns: RecordedNetns {
                name: "test".into(),
                inode: 1,
                path: None,
            },
            persist,
            faults,
            group: None,
        }
    }

    #[test]
    fn applies_and_is_idempotent() {
        let io = fake();
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        let p = plan(&io, &desired(), &ns(), &faults);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.changes.len(), 3);
        let applied = execute(&io, &p, &opts(dir.path(), &faults, None)).unwrap();
        assert_eq!(applied.written.len(), 3);
        assert_eq!(io.values.borrow()["net.core.somaxconn"], "4096");
        assert_eq!(io.values.borrow()["net.ipv4.tcp_keepalive_time"], "7200");
        let rb = applied.rollback_file.unwrap();
        let record = RollbackRecord::load(&rb).unwrap();
        assert_eq!(record.keys.len(), 3);
        let somax = record
            .keys
            .iter()
            .find(|k| k.key == "net.core.somaxconn")
            .unwrap();
        assert_eq!((somax.old.as_str(), somax.new.as_str()), ("128", "4096"));

        let again = plan(&io, &desired(), &ns(), &faults);
        assert!(again.changes.is_empty());
        let applied = execute(&io, &again, &opts(dir.path(), &faults, None)).unwrap();
        assert!(applied.rollback_file.is_none());
    }

    fn assert_untouched(io: &FakeIo) {
        let v = io.values.borrow();
        assert_eq!(v["net.ipv4.tcp_syncookies"], "0");
        assert_eq!(v["net.ipv4.tcp_fin_timeout"], "120");
        assert_eq!(v["net.core.somaxconn"], "128");
    }

    #[test]
    fn every_step_can_fail_and_leaves_everything_as_it_was() {
        let cases: Vec<(Fault, &str, Option<&str>)> = vec![
            (Fault::RollbackFile, "rollback-file", None),
            (
                Fault::Write("net.ipv4.tcp_syncookies".into()),
                "write",
                Some("net.ipv4.tcp_syncookies"),
            ),
            (
                Fault::Write("net.core.somaxconn".into()),
                "write",
                Some("net.core.somaxconn"),
            ),
            (
                Fault::ReadBack("net.ipv4.tcp_fin_timeout".into()),
                "read-back",
                Some("net.ipv4.tcp_fin_timeout"),
            ),
            (Fault::PersistWrite, "persist", None),
            (Fault::PersistRename, "persist", None),
        ];
        for (fault, step, key) in cases {
            let io = fake();
            let dir = tempfile::tempdir().unwrap();
            let persist_path = dir.path().join("99-test.conf");
            let faults = Faults::from(vec![fault.clone()]);
            let p = plan(&io, &desired(), &ns(), &faults);
            let req = PersistRequest {
                path: persist_path.clone(),
                text: Some(persist::render("test", &[])),
            };
            let err = execute(&io, &p, &opts(dir.path(), &faults, Some(req))).unwrap_err();
            assert_eq!(err.step, step, "{fault}: {err}");
            assert_eq!(err.key.as_deref(), key, "{fault}: {err}");
            assert!(err.restore_failures.is_empty(), "{err}");
            assert!(err.to_string().contains("nothing was changed"), "{err}");
            assert_untouched(&io);
            assert!(!persist_path.exists(), "{fault}: persist file left behind");
            // No live rollback file is left to confuse a later `rollback`.
            assert_eq!(
                super::super::state::latest(dir.path()).unwrap(),
                None,
                "{fault}"
            );
        }
    }

    #[test]
    fn validation_problems_stop_everything() {
        let mut io = fake();
        io.ro.push("net.core.somaxconn".into());
        let mut d = desired();
        d.push(Desired {
            key: SysctlKey::parse("net.ipv4.tcp_max_orphans", Scope::NetOnly).unwrap(),
            target: Target::Value("1".into()),
            reason: "x".into(),
        });
        d.push(Desired {
            key: SysctlKey::parse("net.ipv4.tcp_syn_retries", Scope::NetOnly).unwrap(),
            target: Target::Value("3".into()),
            reason: "x".into(),
        });
        let p = plan(&io, &d, &ns(), &Faults::from(vec![Fault::Validate]));
        let text = p.problems.join("\n");
        assert!(text.contains("net.core.somaxconn: is read-only"), "{text}");
        assert!(
            text.contains("net.ipv4.tcp_max_orphans: is global"),
            "{text}"
        );
        assert!(
            text.contains("net.ipv4.tcp_syn_retries: does not exist"),
            "{text}"
        );
        assert!(text.contains("validation: injected failure"), "{text}");
    }

    #[test]
    fn a_key_that_cannot_be_restored_is_named_and_keeps_the_rollback_file() {
        let io = fake();
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::from(vec![
            Fault::ReadBack("net.ipv4.tcp_syncookies".into()),
            Fault::Restore("net.ipv4.tcp_fin_timeout".into()),
        ]);
        let p = plan(&io, &desired(), &ns(), &faults);
        let keys: Vec<_> = p.changes.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "net.ipv4.tcp_syncookies",
                "net.ipv4.tcp_fin_timeout",
                "net.core.somaxconn"
            ]
        );
        // Reorder so that fin_timeout and somaxconn are written before syncookies fails.
        let mut p = p;
        p.changes.rotate_left(1);
        let err = execute(&io, &p, &opts(dir.path(), &faults, None)).unwrap_err();
        assert_eq!(err.step, "read-back");
        assert_eq!(
            err.restored,
            ["net.core.somaxconn", "net.ipv4.tcp_syncookies"]
        );
        assert_eq!(err.restore_failures.len(), 1, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(
                "COULD NOT RESTORE: net.ipv4.tcp_fin_timeout: injected failure (restore:net.ipv4.tcp_fin_timeout)"
            ),
            "{text}"
        );
        let rb = err.rollback_file.clone().unwrap();
        assert!(text.contains(&format!("run `rstaudit rollback {}`", rb.display())));
        assert_eq!(super::super::state::latest(dir.path()).unwrap(), Some(rb));
        assert_eq!(io.values.borrow()["net.ipv4.tcp_fin_timeout"], "60");
        assert_eq!(io.values.borrow()["net.core.somaxconn"], "128");
    }

    #[test]
    fn a_kernel_refusal_mid_way_restores_the_keys_before_it() {
        let mut io = fake();
        io.eio.push("net.ipv4.tcp_keepalive_time".into());
        let mut d = desired();
        d[3].target = Target::Value("100".into());
        let faults = Faults::default();
        let dir = tempfile::tempdir().unwrap();
        let p = plan(&io, &d, &ns(), &faults);
        let err = execute(&io, &p, &opts(dir.path(), &faults, None)).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("net.ipv4.tcp_keepalive_time"));
        assert_eq!(err.restored.len(), 3);
        assert!(err.to_string().contains("Invalid argument"), "{err}");
        assert_untouched(&io);
    }
}
