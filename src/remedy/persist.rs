//! sysctl.d files: write ours atomically, read everyone's in `sysctl --system` order.
//!
//! A file rstaudit writes starts with [`MARKER`]; a file without it was not
//! created by rstaudit and is never overwritten. Writes go to a temporary
//! file in the same directory, which is fsynced and then renamed over the
//! target (and the directory fsynced), so a crash leaves either the old or
//! the new file, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::faults::{Fault, Faults};
use crate::host::sysctl::{Scope, SysctlKey};

/// The first line of every file rstaudit manages.
pub const MARKER: &str = "# Managed by rstaudit";

/// The directories `sysctl --system` reads, in precedence order (procps-ng sysctl(8)):
/// a file name found in an earlier directory hides the same name in later ones;
/// the files are then applied in lexical order of their names, /etc/sysctl.conf last.
pub const SYSTEM_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// The file `sysctl --system` reads after the directories.
pub const SYSTEM_CONF: &str = "/etc/sysctl.conf";

/// One key to persist.
#[derive(Debug, Clone)]
pub struct PersistEntry {
    pub key: String,
    pub value: String,
    pub comment: String,
}

/// Render a managed sysctl.d file.
pub fn render(source: &str, entries: &[PersistEntry]) -> String {
    let mut out = String::new();
    out.push_str(MARKER);
    out.push_str(": written by `rstaudit apply --persist`. Do not edit by hand;\n");
    out.push_str(
        "# rstaudit rewrites it. To stop using it, delete it and run `sysctl --system`.\n",
    );
    out.push_str(&format!("# Source: {source}\n"));
    for e in entries {
        out.push('\n');
        for line in e.comment.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("{} = {}\n", e.key, e.value));
    }
    out
}

/// Why a persist path is refused or could not be read or written. The messages name the path
/// and say what to do; the command layer adds the flag that named it.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{}: does not name a file", path.display())]
    NotAFile { path: PathBuf },
    #[error("directory {} does not exist", dir.display())]
    NoDirectory { dir: PathBuf },
    #[error("directory {}: {source}", dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// The path is not one rstaudit writes to (see [`check_location`]).
    #[error("{}", why)]
    Location { why: String },
    #[error("{}: not a regular file; refusing to replace it", path.display())]
    NotRegular { path: PathBuf },
    #[error(
        "{}: the file exists and was not created by rstaudit (its first line is not {MARKER:?}); \
         refusing to overwrite it. Choose another file name",
        path.display()
    )]
    NotOurs { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A persist file's path made absolute: its directory resolved (links, `..`), its name kept.
/// This is what the rollback file records, so a rollback writes exactly this path.
pub fn absolute(path: &Path) -> Result<PathBuf, PersistError> {
    let name = path.file_name().ok_or_else(|| PersistError::NotAFile {
        path: path.to_path_buf(),
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => PersistError::NoDirectory {
            dir: parent.to_path_buf(),
        },
        _ => PersistError::Directory {
            dir: parent.to_path_buf(),
            source: e,
        },
    })?;
    Ok(dir.join(name))
}

/// Refuse a persist path that someone other than the effective uid (or root) could swap:
/// it must be absolute, without `..`, and its directory must be owned by the effective uid or
/// root and not writable by group or others. Apply and rollback write or remove a file there
/// as root, so a directory anyone can write (`/tmp`, a 0777 directory) is refused.
pub fn check_location(path: &Path) -> Result<(), PersistError> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| Err(PersistError::Location { why });
    if !path.is_absolute() {
        return refuse("is not an absolute path".into());
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        || path.file_name().is_none()
    {
        return refuse("is not a plain file path (it has `..` or no file name)".into());
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let meta = match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return refuse(format!("{} is not a directory", parent.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PersistError::NoDirectory {
                dir: parent.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(PersistError::Directory {
                dir: parent.to_path_buf(),
                source: e,
            });
        }
    };
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return refuse(format!(
            "directory {} is owned by uid {}, not by root or uid {euid} (the user running \
             rstaudit): someone else could put a file there or replace it",
            parent.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "directory {} is writable by group or others (mode {:04o}): someone else could put \
             a file there or replace it",
            parent.display(),
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// What is at `path` now: `Ok(None)` when nothing, `Ok(Some(text))` when a managed file,
/// an error when a file rstaudit did not create (or cannot read), or when the path is not
/// one rstaudit writes to (see [`check_location`]).
pub fn existing_managed(path: &Path) -> Result<Option<String>, PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    };
    check_location(path)?;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(PersistError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => {}
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    if !text.starts_with(MARKER) {
        return Err(PersistError::NotOurs {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(text))
}

/// Write `text` to `path` atomically ([`crate::output::replace`]: temp file, fsync, rename,
/// fsync the directory), with the fault-injection points of the persist step.
pub fn write_atomic(
    path: &Path,
    text: &str,
    mode: u32,
    faults: &Faults,
) -> Result<(), PersistError> {
    let injected = |fault| faults.check(fault).map_err(std::io::Error::other);
    crate::output::replace(path, mode, |f| {
        injected(Fault::PersistWrite)?;
        f.write_all(text.as_bytes())?;
        injected(Fault::PersistRename)
    })
    .map_err(|source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A value found in a sysctl configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedValue {
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

/// The files `sysctl --system` would read, in the order it applies them, and a note for each
/// directory that exists but could not be read (its files would be missing from the answer).
pub fn system_files(dirs: &[PathBuf], conf: Option<&Path>) -> (Vec<PathBuf>, Vec<String>) {
    system_files_with(dirs, conf, None)
}

/// Like [`system_files`], as if `extra` (a file that may not exist yet, in one of `dirs`)
/// were there too: where a file about to be written would sit in the order.
pub fn system_files_with(
    dirs: &[PathBuf],
    conf: Option<&Path>,
    extra: Option<&Path>,
) -> (Vec<PathBuf>, Vec<String>) {
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut notes = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                notes.push(format!("{}: not read: {e}", dir.display()));
                continue;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) if e.path().extension().is_some_and(|x| x == "conf") => names.push(e.path()),
                Ok(_) => {}
                Err(e) => notes.push(format!("{}: not read whole: {e}", dir.display())),
            }
        }
        if let Some(extra) = extra
            && extra.parent() == Some(dir.as_path())
            && !names.iter().any(|n| n == extra)
        {
            names.push(extra.to_path_buf());
        }
        names.sort();
        for p in names {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            by_name.entry(name).or_insert(p);
        }
    }
    let mut files: Vec<PathBuf> = by_name.into_values().collect();
    if let Some(conf) = conf
        && conf.exists()
    {
        files.push(conf.to_path_buf());
    }
    (files, notes)
}

/// Parse sysctl.conf syntax (`key = value`, `-key = value`, `#`/`;` comments) into the
/// value each key ends up with after reading `files` in order (later wins).
/// Unreadable files and malformed lines are returned as notes.
pub fn effective_values(files: &[PathBuf]) -> (BTreeMap<String, PersistedValue>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut notes = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                notes.push(format!("{}:{}: not `key = value`", file.display(), i + 1));
                continue;
            };
            let k = k.trim().trim_start_matches('-');
            // Glob keys (systemd-sysctl) and invalid keys are not values of one key.
            if k.contains('*') || k.contains('?') {
                continue;
            }
            let Ok(key) = SysctlKey::parse(k, Scope::AnyKey) else {
                notes.push(format!("{}:{}: invalid key {k:?}", file.display(), i + 1));
                continue;
            };
            values.insert(
                key.as_str().to_string(),
                PersistedValue {
                    value: crate::host::sysctl::normalize(v),
                    file: file.clone(),
                    line: i + 1,
                },
            );
        }
    }
    (values, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_sysctl_system() {
        let root = tempfile::tempdir().unwrap();
        let d = |n: &str| {
            let p = root.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (etc, run, usr) = (d("etc"), d("run"), d("usr"));
        std::fs::write(
            usr.join("10-a.conf"),
            "net.ipv4.tcp_syncookies = 0\nnet.core.somaxconn=128\n",
        )
        .unwrap();
        std::fs::write(etc.join("10-a.conf"), "net.ipv4.tcp_syncookies = 1\n").unwrap();
        std::fs::write(
            run.join("20-b.conf"),
            "-net/ipv4/tcp_fin_timeout = 30\n; c\n# c\nbad line\n",
        )
        .unwrap();
        std::fs::write(usr.join("05-z.conf"), "net.core.somaxconn = 64\n").unwrap();
        let conf = root.path().join("sysctl.conf");
        std::fs::write(&conf, "net.ipv4.tcp_fin_timeout = 40\n").unwrap();
        // A directory that is not there is normal; one that cannot be read is a note.
        let (files, dir_notes) = system_files(
            &[etc.clone(), root.path().join("absent"), run, usr],
            Some(&conf),
        );
        assert!(dir_notes.is_empty(), "{dir_notes:?}");
        let (_, dir_notes) = system_files(std::slice::from_ref(&conf), None);
        assert_eq!(dir_notes.len(), 1, "{dir_notes:?}");
        assert!(dir_notes[0].contains("not read"), "{dir_notes:?}");
        let names: Vec<_> = files
            .iter()
            .map(|f| f.strip_prefix(root.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            [
                "usr/05-z.conf",
                "etc/10-a.conf",
                "run/20-b.conf",
                "sysctl.conf"
            ]
            .map(PathBuf::from)
        );
        let (values, notes) = effective_values(&files);
        assert_eq!(values["net.ipv4.tcp_syncookies"].value, "1");
        // usr/10-a.conf is hidden by etc/10-a.conf, so only 05-z sets somaxconn.
        assert_eq!(values["net.core.somaxconn"].value, "64");
        assert_eq!(values["net.ipv4.tcp_fin_timeout"].value, "40");
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn persist_paths_only_in_directories_no_one_else_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(check_location(&dir.path().join("90-x.conf")).is_ok());
        let err = check_location(Path::new("90-x.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an absolute path"), "{err}");
        let err = check_location(&dir.path().join("a/../90-x.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`..`"), "{err}");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        for m in [0o777, 0o1777, 0o770, 0o702] {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(m)).unwrap();
            let err = check_location(&open.join("90-x.conf"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("writable by group or others"), "{m:o}: {err}");
            let err = existing_managed(&open.join("90-x.conf"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("writable by group or others"), "{m:o}: {err}");
        }
        // `absolute` resolves the directory and keeps the name.
        let abs = absolute(&open.join("../90-y.conf")).unwrap();
        assert_eq!(abs, dir.path().canonicalize().unwrap().join("90-y.conf"));
        assert!(
            absolute(&dir.path().join("nodir/x.conf"))
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }

    #[test]
    fn refuses_foreign_files_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("90-x.conf");
        std::fs::write(&path, "net.core.somaxconn = 1\n").unwrap();
        assert!(
            existing_managed(&path)
                .unwrap_err()
                .to_string()
                .contains("not created by rstaudit")
        );
        assert!(
            existing_managed(&dir.path().join("nodir/x.conf"))
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        let ours = dir.path().join("91-ours.conf");
        assert_eq!(existing_managed(&ours).unwrap(), None);
        let text = render(
            "profile t",
            &[PersistEntry {
                key: "net.core.somaxconn".into(),
                value: "4096".into(),
                comment: "why".into(),
            }],
        );
        write_atomic(&ours, &text, 0o644, &Faults::default()).unwrap();
        assert_eq!(
            existing_managed(&ours).unwrap().as_deref(),
            Some(text.as_str())
        );
        for fault in [Fault::PersistWrite, Fault::PersistRename] {
            let err = write_atomic(&ours, "changed", 0o644, &Faults::from(vec![fault]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("injected"), "{err}");
            assert_eq!(std::fs::read_to_string(&ours).unwrap(), text);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }
}
