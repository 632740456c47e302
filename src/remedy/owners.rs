//! Who owns a key at boot: the sysctl configuration file `sysctl --system` takes it from.
//!
//! tuned and similar tools have rewritten keys that other tools own (a CNI's
//! `ip_forward`, a distribution's hardening file) and lost those settings at
//! the next boot or broke the other tool at once. Before an apply, each key is
//! looked up in the files `sysctl --system` reads, in its order (see
//! [`super::persist::system_files`]): the last file that sets a key is its
//! owner. A file rstaudit manages (it starts with [`MARKER`]) is not another
//! owner. This module finds owners and conflicts; it names no flag and
//! prints nothing: the command layer decides what to refuse and how to say so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::persist::{self, MARKER, PersistedValue, SYSTEM_CONF, SYSTEM_DIRS};
use super::profiles::values_equal;

/// The configuration `sysctl --system` reads: its directories and the final file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub dirs: Vec<PathBuf>,
    pub conf: Option<PathBuf>,
}

impl Sources {
    /// The system's own: /etc/sysctl.d, /run/sysctl.d, ..., /etc/sysctl.conf.
    pub fn system() -> Self {
        Self {
            dirs: SYSTEM_DIRS.iter().map(PathBuf::from).collect(),
            conf: Some(PathBuf::from(SYSTEM_CONF)),
        }
    }

    /// The same layout under another root (`ROOT/etc/sysctl.d`, ..., `ROOT/etc/sysctl.conf`):
    /// a copied tree, or a test's own.
    pub fn under(root: &Path) -> Self {
        let rooted = |p: &str| root.join(p.trim_start_matches('/'));
        Self {
            dirs: SYSTEM_DIRS.iter().map(|d| rooted(d)).collect(),
            conf: Some(rooted(SYSTEM_CONF)),
        }
    }

    /// The files, in the order `sysctl --system` applies them, and notes on unreadable dirs.
    pub fn files(&self) -> (Vec<PathBuf>, Vec<String>) {
        persist::system_files(&self.dirs, self.conf.as_deref())
    }
}

/// The file that sets a key today (the last one in `sysctl --system` order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub key: String,
    pub file: PathBuf,
    pub line: usize,
    /// The value the file sets.
    pub value: String,
    /// The file is one rstaudit manages (it starts with the marker line): not another owner.
    pub managed: bool,
}

impl Owner {
    /// `/etc/sysctl.d/60-k8s.conf:3`
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Every key set by a configuration file, with its owner, and notes on what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    pub by_key: BTreeMap<String, Owner>,
    pub notes: Vec<String>,
}

/// Read the files of `sources` and name the owner of every key they set.
pub fn load(sources: &Sources) -> Owners {
    let (files, mut notes) = sources.files();
    let (values, file_notes) = persist::effective_values(&files);
    notes.extend(file_notes);
    let mut managed: BTreeMap<PathBuf, bool> = BTreeMap::new();
    let by_key = values
        .into_iter()
        .map(|(key, PersistedValue { value, file, line })| {
            let managed = *managed
                .entry(file.clone())
                .or_insert_with(|| is_managed(&file));
            let owner = Owner {
                key: key.clone(),
                file,
                line,
                value,
                managed,
            };
            (key, owner)
        })
        .collect();
    Owners { by_key, notes }
}

/// Whether a file starts with rstaudit's marker line.
fn is_managed(file: &Path) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; MARKER.len()];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == MARKER.as_bytes())
}

impl Owners {
    /// The owner of `key`, if a file sets it.
    pub fn get(&self, key: &str) -> Option<&Owner> {
        self.by_key.get(key)
    }

    /// The owners of the keys among `changing` (key, new value) that another file (not one
    /// rstaudit manages) sets to a different value, except the keys in `allowed`. Writing the
    /// value the owner's file itself sets does not go against it.
    pub fn conflicts<'a, 'k>(
        &'a self,
        changing: impl IntoIterator<Item = (&'k str, &'k str)>,
        allowed: &[String],
    ) -> Vec<&'a Owner> {
        changing
            .into_iter()
            .filter(|(k, _)| !allowed.iter().any(|a| a == k))
            .filter_map(|(k, new)| {
                self.by_key
                    .get(k)
                    .filter(|o| !o.managed && !values_equal(&o.value, new))
            })
            .collect()
    }
}

/// Why a value written to a persist file would not hold at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PersistWarning {
    /// The file is not in a directory `sysctl --system` reads.
    NotRead { path: PathBuf },
    /// A file of the same name in an earlier directory hides it.
    Hidden { path: PathBuf, by: PathBuf },
    /// A later file sets the key to another value.
    Overridden {
        key: String,
        persisted: String,
        file: PathBuf,
        line: usize,
        value: String,
    },
}

impl std::fmt::Display for PersistWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRead { path } => write!(
                f,
                "{} is not in a directory `sysctl --system` reads: nothing loads it at boot",
                path.display()
            ),
            Self::Hidden { path, by } => write!(
                f,
                "{} is hidden by {} (same name, earlier directory): `sysctl --system` never \
                 reads it",
                path.display(),
                by.display()
            ),
            Self::Overridden {
                key,
                persisted,
                file,
                line,
                value,
            } => write!(
                f,
                "{}:{line} sets {key} = {value} and comes later in `sysctl --system` order: at \
                 boot it overrides the persisted {persisted}",
                file.display()
            ),
        }
    }
}

/// What would undo the values of `persist` (an absolute path, see [`persist::absolute`]) at
/// boot: the file not read at all, hidden by a same-named file, or a later file setting a key
/// of `values` (key, value) to something else.
pub fn persist_warnings(
    sources: &Sources,
    persist: &Path,
    values: &[(String, String)],
) -> Vec<PersistWarning> {
    if sources.conf.as_deref() == Some(persist) {
        return Vec::new();
    }
    // Directories compared as the kernel sees them (/lib may be a link to /usr/lib).
    let dirs: Vec<PathBuf> = sources
        .dirs
        .iter()
        .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
        .collect();
    if !persist
        .parent()
        .is_some_and(|p| dirs.iter().any(|d| d == p))
    {
        return vec![PersistWarning::NotRead {
            path: persist.to_path_buf(),
        }];
    }
    let (files, _) = persist::system_files_with(&dirs, sources.conf.as_deref(), Some(persist));
    let Some(at) = files.iter().position(|f| f == persist) else {
        let by = files
            .iter()
            .find(|f| f.file_name() == persist.file_name())
            .cloned()
            .unwrap_or_default();
        return vec![PersistWarning::Hidden {
            path: persist.to_path_buf(),
            by,
        }];
    };
    let (later, _) = persist::effective_values(&files[at + 1..]);
    values
        .iter()
        .filter_map(|(key, ours)| {
            let p = later.get(key)?;
            (!values_equal(&p.value, ours)).then(|| PersistWarning::Overridden {
                key: key.clone(),
                persisted: ours.clone(),
                file: p.file.clone(),
                line: p.line,
                value: p.value.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Sources) {
        let root = tempfile::tempdir().unwrap();
        let s = Sources::under(root.path());
        for d in &s.dirs[..2] {
            std::fs::create_dir_all(d).unwrap();
        }
        (root, s)
    }

    #[test]
    fn the_last_file_owns_and_managed_files_are_not_other_owners() {
        let (_root, s) = tree();
        let etc = &s.dirs[0];
        let run = &s.dirs[1];
        std::fs::write(etc.join("10-a.conf"), "net.core.somaxconn = 1024\n").unwrap();
        std::fs::write(
            run.join("20-b.conf"),
            "# c\nnet.core.somaxconn = 2048\nnet.ipv4.ip_forward=1\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("90-rstaudit.conf"),
            format!("{MARKER}: x\nnet.ipv4.tcp_syncookies = 1\n"),
        )
        .unwrap();
        let o = load(&s);
        let somax = o.get("net.core.somaxconn").unwrap();
        assert_eq!(somax.file, run.join("20-b.conf"));
        assert_eq!((somax.line, somax.value.as_str()), (2, "2048"));
        assert!(!somax.managed);
        assert!(o.get("net.ipv4.tcp_syncookies").unwrap().managed);
        let keys = [
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_syncookies", "0"),
            ("net.ipv4.tcp_fin_timeout", "30"),
            ("net.ipv4.ip_forward", "0"),
        ];
        let c: Vec<_> = o
            .conflicts(keys, &["net.ipv4.ip_forward".to_string()])
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(c, ["net.core.somaxconn"]);
        // The value the owner sets itself is no conflict.
        assert!(
            o.conflicts([("net.core.somaxconn", "2048")], &[])
                .is_empty()
        );
    }

    #[test]
    fn persist_warnings_name_what_undoes_the_file_at_boot() {
        let (root, s) = tree();
        let etc = s.dirs[0].canonicalize().unwrap();
        let run = s.dirs[1].canonicalize().unwrap();
        std::fs::write(run.join("99-late.conf"), "net.core.somaxconn = 128\n").unwrap();
        std::fs::write(run.join("10-early.conf"), "net.ipv4.tcp_fin_timeout = 90\n").unwrap();
        let vals = vec![
            ("net.core.somaxconn".to_string(), "4096".to_string()),
            ("net.ipv4.tcp_fin_timeout".to_string(), "30".to_string()),
        ];
        let w = persist_warnings(&s, &etc.join("50-rstaudit.conf"), &vals);
        assert_eq!(
            w,
            [PersistWarning::Overridden {
                key: "net.core.somaxconn".into(),
                persisted: "4096".into(),
                file: run.join("99-late.conf"),
                line: 1,
                value: "128".into(),
            }]
        );
        assert!(w[0].to_string().contains("99-late.conf:1 sets"), "{}", w[0]);
        // Same value later: nothing undone.
        let same = vec![("net.core.somaxconn".to_string(), "128".to_string())];
        assert!(persist_warnings(&s, &etc.join("50-rstaudit.conf"), &same).is_empty());
        // A name that /etc/sysctl.d hides in /run/sysctl.d.
        std::fs::write(etc.join("99-late.conf"), "\n").unwrap();
        let w = persist_warnings(&s, &run.join("99-late.conf"), &vals);
        assert_eq!(
            w,
            [PersistWarning::Hidden {
                path: run.join("99-late.conf"),
                by: etc.join("99-late.conf"),
            }]
        );
        // Outside the directories.
        let elsewhere = root.path().canonicalize().unwrap().join("x.conf");
        assert_eq!(
            persist_warnings(&s, &elsewhere, &vals),
            [PersistWarning::NotRead { path: elsewhere }]
        );
    }
}
