//! Rollback files: what an apply changed, written before the first change.
//!
//! One JSON file per apply in the state directory (default /var/lib/rstaudit),
//! named `rollback-YYYYMMDDTHHMMSS.mmmZ-PID-NNNN.json` so that names sort by time.
//! It records the network namespace (name, path, inode) the values belong
//! to, every key with its old and new value, and the persist file's previous
//! content. When a rollback has restored it, or an apply failed and restored
//! everything itself, the file is renamed with a `.done` / `.aborted` suffix
//! so "the latest" is always the last apply still in effect.
//!
//! A rollback file says which sysctls (possibly outside net.*) and which
//! file root writes, so it is trusted only when no one else could have
//! written it: the file must be a regular file (not reached through a
//! symbolic link) owned by the effective uid and not writable by group or
//! others, and the state directory must be owned by the effective uid and
//! not writable by group or others. Anything else is refused before
//! anything is changed.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::faults::Faults;
use crate::clock::civil_from_days;

/// Version of the rollback file format.
pub const SCHEMA: u32 = 1;

/// Where rollback files are kept unless the caller says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/rstaudit";

/// The words `--state-dir DIR` that select `dir` for a printed command, none for the default.
pub fn dir_words(dir: &Path) -> Vec<String> {
    if dir == Path::new(DEFAULT_DIR) {
        Vec::new()
    } else {
        vec!["--state-dir".to_string(), dir.display().to_string()]
    }
}

/// The content of a rollback file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRecord {
    pub schema: u32,
    /// UTC, `2026-11-23T19:28:00.123Z`.
    pub created_at: String,
    /// What was applied (`profile baseline`, `fixes`).
    pub what: String,
    pub netns: RecordedNetns,
    pub keys: Vec<RecordedKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<RecordedPersist>,
    /// The apply this file is one namespace of (an apply over several namespaces writes one
    /// file per namespace, all with the same group); `rollback` restores the whole group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The network namespace an apply ran in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedNetns {
    /// `host` or the name given to --netns.
    pub name: String,
    /// The namespace's inode; a rollback refuses to run in another namespace.
    pub inode: u64,
    /// The file given to --netns (none: the namespace rstaudit itself ran in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One key an apply changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedKey {
    pub key: String,
    pub old: String,
    pub new: String,
    /// The key is outside net.* (the profile allowed it explicitly).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_net: bool,
}

/// The persist file an apply wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedPersist {
    pub path: String,
    /// Its content before (none: the file did not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

impl RollbackRecord {
    pub fn new(
        what: &str,
        netns: RecordedNetns,
        keys: Vec<RecordedKey>,
        persist: Option<RecordedPersist>,
    ) -> Self {
        Self {
            schema: SCHEMA,
            created_at: utc_now().0,
            what: what.to_string(),
            netns,
            keys,
            persist,
            group: None,
        }
    }

    /// The same record, as one namespace of the apply `group`.
    pub fn in_group(mut self, group: Option<&str>) -> Self {
        self.group = group.map(str::to_string);
        self
    }

    /// Write the record into `dir` (created 0700), atomically, mode 0600. Returns its path.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| StateError::Create {
                dir: dir.to_path_buf(),
                error,
            })?;
        check_dir(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(StateError::Serialise)? + "\n";
        let stamp = utc_now().1;
        let pid = std::process::id();
        let mut n = 0;
        let path = loop {
            let p = dir.join(format!("rollback-{stamp}-{pid}-{n:04}.json"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        super::persist::write_atomic(&path, &json, 0o600, &Faults::default())
            .map_err(StateError::Write)?;
        Ok(path)
    }

    /// Read and check a rollback file: see the module's notes on whom it is trusted from.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = read_trusted(path)?;
        let record: Self = serde_json::from_str(&text).map_err(|error| LoadError::Parse {
            path: path.to_path_buf(),
            error,
        })?;
        if record.schema != SCHEMA {
            return Err(LoadError::Schema {
                path: path.to_path_buf(),
                found: record.schema,
            });
        }
        Ok(record)
    }
}

/// Why the rollback files could not be found or read. Each says that nothing was changed:
/// they are read before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The state directory is refused (see [`check_dir`]).
    #[error("{0}; nothing was changed")]
    Dir(StateError),
    #[error("reading state directory {}: {error}; nothing was changed", dir.display())]
    List { dir: PathBuf, error: std::io::Error },
    /// Someone else could have written the file (or it is no regular file).
    #[error(
        "rollback file {} {what}; refusing to use it (a rollback file says which values and \
         files root writes), nothing was changed",
        path.display()
    )]
    Refused { path: PathBuf, what: String },
    #[error(
        "rollback file {} belongs to root (rollback files are root's: run as root); nothing \
         was changed",
        path.display()
    )]
    RootOwned { path: PathBuf },
    #[error("reading rollback file {}: {error}{}; nothing was changed", path.display(), as_root(error))]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}:{}:{}: not a rollback file: {error}",
        path.display(),
        error.line(),
        error.column()
    )]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error(
        "{}: rollback file schema {found} is not supported (expected {SCHEMA})",
        path.display()
    )]
    Schema { path: PathBuf, found: u32 },
}

/// The latest rollback file still in effect in `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>, LoadError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => check_dir(dir).map_err(LoadError::Dir)?,
    }
    Ok(rollback_files(dir)?.pop())
}

/// The rollback files in effect in `dir` (`rollback-*.json`), in name (time) order.
fn rollback_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|error| LoadError::List {
        dir: dir.to_path_buf(),
        error,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("rollback-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A new group name for the rollback files of one apply over several namespaces.
pub fn new_group() -> String {
    format!("{}-{}", utc_now().1, std::process::id())
}

/// The rollback files still in effect in `dir` that belong to `group`, in name (time) order.
/// Each is checked and read as [`RollbackRecord::load`] does.
pub fn group_files(dir: &Path, group: &str) -> Result<Vec<(PathBuf, RollbackRecord)>, LoadError> {
    check_dir(dir).map_err(LoadError::Dir)?;
    let mut out = Vec::new();
    for f in rollback_files(dir)? {
        let record = RollbackRecord::load(&f)?;
        if record.group.as_deref() == Some(group) {
            out.push((f, record));
        }
    }
    Ok(out)
}

/// The effective uid of this process.
fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// What is wrong with an owner and mode for a file or directory that only the effective uid
/// may have written (`None`: nothing).
fn untrusted(meta: &std::fs::Metadata) -> Option<String> {
    let euid = euid();
    if meta.uid() != euid {
        Some(format!(
            "is owned by uid {}, not by uid {euid} (the user running rstaudit)",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// Why the state directory is refused, or a rollback file could not be written into it.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("creating state directory {}: {error}", dir.display())]
    Create { dir: PathBuf, error: std::io::Error },
    #[error("state directory {}: {error}{}", dir.display(), as_root(error))]
    Unreadable { dir: PathBuf, error: std::io::Error },
    #[error(
        "state directory {} belongs to root (rollback files are root's: run as root)",
        dir.display()
    )]
    Root { dir: PathBuf },
    /// Not a directory, or one that someone else could put files in.
    #[error(
        "state directory {} {what}; rollback files say which values and files root writes, so \
         they are kept only in a directory no one else can write: fix its owner and mode \
         (chown, chmod 0700) or choose another state directory",
        dir.display()
    )]
    Untrusted { dir: PathBuf, what: String },
    #[error("{0}")]
    Serialise(serde_json::Error),
    #[error("writing rollback file: {0}")]
    Write(super::persist::PersistError),
}

/// Whether a rollback file could be written into `dir`, writing nothing: the checks
/// [`RollbackRecord::save`] makes, so that an apply refuses (and a dry run reports) before the
/// first change what the write of the rollback file would refuse.
pub fn check_writable(dir: &Path) -> Result<(), StateError> {
    match std::fs::metadata(dir) {
        Ok(_) => check_dir(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // save() creates it (0700, and the directories on the way): the nearest directory
            // that exists must let this user.
            let mut up = dir.parent();
            while let Some(p) = up {
                if p.as_os_str().is_empty() || p.exists() {
                    break;
                }
                up = p.parent();
            }
            let parent = match up {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let flags = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
            nix::unistd::access(parent, flags).map_err(|errno| StateError::Create {
                dir: dir.to_path_buf(),
                error: std::io::Error::from(errno),
            })
        }
        Err(error) => Err(StateError::Unreadable {
            dir: dir.to_path_buf(),
            error,
        }),
    }
}

/// Refuse a state directory that someone other than the effective uid could put files in.
pub fn check_dir(dir: &Path) -> Result<(), StateError> {
    let meta = std::fs::metadata(dir).map_err(|error| StateError::Unreadable {
        dir: dir.to_path_buf(),
        error,
    })?;
    if meta.uid() == 0 && euid() != 0 {
        return Err(StateError::Root {
            dir: dir.to_path_buf(),
        });
    }
    let what = if !meta.is_dir() {
        Some("is not a directory".to_string())
    } else {
        untrusted(&meta)
    };
    match what {
        None => Ok(()),
        Some(what) => Err(StateError::Untrusted {
            dir: dir.to_path_buf(),
            what,
        }),
    }
}

/// The hint for a state directory or rollback file this user may not read.
fn as_root(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (rollback files are root's: run as root)"
    } else {
        ""
    }
}

/// Read a rollback file without following a symbolic link, and only if the effective uid
/// owns it and no one else can write it.
fn read_trusted(path: &Path) -> Result<String, LoadError> {
    let refuse = |what: &str| LoadError::Refused {
        path: path.to_path_buf(),
        what: what.to_string(),
    };
    let read = |error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    };
    // O_NOFOLLOW: a link is refused, not followed; O_NONBLOCK: a FIFO cannot hang the open.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse("is a symbolic link"));
        }
        Err(e) => return Err(read(e)),
    };
    let meta = file.metadata().map_err(read)?;
    if !meta.file_type().is_file() {
        return Err(refuse(
            "is not a regular file (a directory, device, FIFO or socket)",
        ));
    }
    if meta.uid() == 0 && euid() != 0 {
        return Err(LoadError::RootOwned {
            path: path.to_path_buf(),
        });
    }
    if let Some(what) = untrusted(&meta) {
        return Err(refuse(&what));
    }
    crate::input::read_at_most(file, crate::input::MAX_DATA_BYTES).map_err(read)
}

/// Mark a rollback file as no longer in effect (`.done`, `.aborted`).
pub fn retire(path: &Path, suffix: &str) -> std::io::Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    let to = PathBuf::from(name);
    std::fs::rename(path, &to)?;
    Ok(to)
}

/// Now in UTC: (`2026-11-23T19:28:00.123Z`, `20261123T192800.123Z`).
fn utc_now() -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let ms = now.subsec_millis();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    (
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z"),
        format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}.{ms:03}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_latest_retire() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let rec = RollbackRecord::new(
            "profile x",
            RecordedNetns {
                name: "host".into(),
                inode: 4026531840,
                path: None,
            },
            vec![RecordedKey {
                key: "net.core.somaxconn".into(),
                old: "128".into(),
                new: "4096".into(),
                outside_net: false,
            }],
            None,
        );
        let a = rec.save(&state).unwrap();
        let b = rec.save(&state).unwrap();
        assert_ne!(a, b);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(RollbackRecord::load(&a).unwrap(), rec);
        assert_eq!(latest(&state).unwrap(), Some(b.clone()));
        retire(&b, "done").unwrap();
        assert_eq!(latest(&state).unwrap(), Some(a));
        std::fs::write(state.join("rollback-bad.json"), "{\"schema\": 1, \"x\": 2}").unwrap();
        let err = RollbackRecord::load(&state.join("rollback-bad.json")).unwrap_err();
        assert!(err.to_string().contains("rollback-bad.json:1:"), "{err}");
    }

    #[test]
    fn group_files_are_the_files_of_one_apply_still_in_effect() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |g: Option<&str>| {
            RollbackRecord::new(
                "profile x",
                RecordedNetns {
                    name: "a".into(),
                    inode: 1,
                    path: None,
                },
                vec![],
                None,
            )
            .in_group(g)
        };
        let a = rec(Some("g1")).save(dir.path()).unwrap();
        let _other = rec(Some("g2")).save(dir.path()).unwrap();
        let _none = rec(None).save(dir.path()).unwrap();
        let b = rec(Some("g1")).save(dir.path()).unwrap();
        let c = rec(Some("g1")).save(dir.path()).unwrap();
        retire(&c, "done").unwrap();
        let found: Vec<PathBuf> = group_files(dir.path(), "g1")
            .unwrap()
            .into_iter()
            .map(|(p, r)| {
                assert_eq!(r.group.as_deref(), Some("g1"));
                p
            })
            .collect();
        assert_eq!(found, [a, b]);
    }

    #[test]
    fn only_files_and_directories_no_one_else_can_write_are_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        let rec = RollbackRecord::new(
            "profile x",
            RecordedNetns {
                name: "host".into(),
                inode: 1,
                path: None,
            },
            vec![],
            None,
        );
        let file = rec.save(&state).unwrap();
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700,
            "a new state directory is 0700"
        );
        // Writable by others: refused, naming the file and the mode.
        mode(&file, 0o666);
        let err = RollbackRecord::load(&file).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(
            err.contains("writable by group or others (mode 0666)"),
            "{err}"
        );
        mode(&file, 0o620);
        assert!(RollbackRecord::load(&file).is_err());
        mode(&file, 0o600);
        assert_eq!(RollbackRecord::load(&file).unwrap(), rec);
        // A link is refused, not followed.
        let link = state.join("rollback-99999999T000000.000Z-1-0000.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = RollbackRecord::load(&link).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        std::fs::remove_file(&link).unwrap();
        // A directory others can write: neither read from nor written to.
        mode(&state, 0o777);
        let err = latest(&state).unwrap_err().to_string();
        assert!(
            err.contains("state directory") && err.contains("(mode 0777)"),
            "{err}"
        );
        let err = rec.save(&state).unwrap_err().to_string();
        assert!(err.contains("(mode 0777)"), "{err}");
        mode(&state, 0o1777);
        assert!(latest(&state).is_err());
        mode(&state, 0o750);
        assert_eq!(latest(&state).unwrap(), Some(file));
        // A missing directory is no rollback file, not an error.
        assert_eq!(latest(&dir.path().join("none")).unwrap(), None);
    }
}
