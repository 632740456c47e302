//! Sysctl keys and their files under /proc/sys, read and written safely.
//!
//! A key (`net.ipv4.tcp_fin_timeout`) maps to exactly one file below
//! `ROOT/proc/sys`. Validation is strict so that no key, from a rule, a
//! profile or the command line, can name a file outside that tree: every
//! component must be a plain name (no `..`, no `/`, no NUL, no empty part).
//! Keys outside `net.` are refused unless the caller allows them explicitly.
//! As in sysctl(8), a `/` inside a dotted key stands for a literal `.` in a
//! path component (interface names such as `eth0.100`).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use thiserror::Error;

use super::Note;
use super::files::Place;

/// A validated sysctl key in dotted form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlKey(String);

/// Why a key or a value was refused, or a read or write failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SysctlError {
    #[error("sysctl key {key:?} is not valid: {why}")]
    InvalidKey { key: String, why: String },
    #[error("sysctl key {key:?} is outside net.*; only net.* keys may be read or written here")]
    NotNet { key: String },
    #[error("sysctl key {key} does not exist on this kernel ({path})")]
    Absent { key: String, path: String },
    #[error(
        "sysctl key {key}: permission denied ({path}); {}",
        crate::host::process::privilege_hint(
            "write access to it (root, CAP_NET_ADMIN in its namespace, a read-write /proc/sys)"
        )
    )]
    PermissionDenied { key: String, path: String },
    #[error("sysctl key {key}: {message} ({path})")]
    Io {
        key: String,
        path: String,
        message: String,
    },
    #[error("sysctl value {value:?} for {key} is not valid: {why}")]
    InvalidValue {
        key: String,
        value: String,
        why: String,
    },
}

/// Whether keys outside `net.` are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only `net.*` (the default everywhere).
    NetOnly,
    /// Any key below /proc/sys (only when a profile says so explicitly).
    AnyKey,
}

impl SysctlKey {
    /// Validate a key given in dotted (`net.ipv4.tcp_syncookies`) or slashed
    /// (`net/ipv4/tcp_syncookies`) form.
    pub fn parse(input: &str, scope: Scope) -> Result<Self, SysctlError> {
        let invalid = |why: &str| SysctlError::InvalidKey {
            key: input.to_string(),
            why: why.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        if trimmed.starts_with('/') || trimmed.starts_with('.') {
            return Err(invalid(
                "it must be a key such as net.ipv4.tcp_syncookies, not a path",
            ));
        }
        // A key with dots is dotted form ('/' then means a literal '.');
        // a key with slashes and no dots is path form.
        let dotted = if trimmed.contains('.') {
            trimmed.to_string()
        } else {
            trimmed.replace('/', ".")
        };
        if dotted.len() > 255 {
            return Err(invalid("it is longer than 255 bytes"));
        }
        for component in dotted.split('.') {
            if component.is_empty() {
                return Err(invalid("it has an empty component"));
            }
            let as_path = component.replace('/', ".");
            if as_path == "." || as_path == ".." || as_path.starts_with('.') {
                return Err(invalid(
                    "a component may not be '.' or '..' or start with '.'",
                ));
            }
            if !component.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '@' | ':' | '+')
            }) {
                return Err(invalid(
                    "components may contain only letters, digits and _ - @ : + (and / for a literal dot)",
                ));
            }
        }
        if scope == Scope::NetOnly && !dotted.starts_with("net.") {
            return Err(SysctlError::NotNet { key: dotted });
        }
        Ok(Self(dotted))
    }

    /// The dotted key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file that holds this key below `root` (`/` for the live host).
    pub fn path(&self, root: &Path) -> PathBuf {
        let mut path = root.join("proc/sys");
        for component in self.0.split('.') {
            path.push(component.replace('/', "."));
        }
        path
    }

    /// Whether the key is global (not per network namespace) on Linux.
    pub fn is_global(&self) -> bool {
        GLOBAL_KEYS.contains(&self.0.as_str()) || !self.0.starts_with("net.")
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// net.* keys that are shared by every network namespace (docs/causes.md, orphans):
/// they can be read in a namespace but written only in the initial one.
pub const GLOBAL_KEYS: &[&str] = &[
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_rmem_global",
    "net.netfilter.nf_conntrack_max",
    "net.nf_conntrack_max",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.netdev_max_backlog",
];

fn io_error(key: &SysctlKey, path: &Path, err: &std::io::Error) -> SysctlError {
    let key = key.to_string();
    let path = path.display().to_string();
    match err.kind() {
        std::io::ErrorKind::NotFound => SysctlError::Absent { key, path },
        std::io::ErrorKind::PermissionDenied => SysctlError::PermissionDenied { key, path },
        _ => SysctlError::Io {
            key,
            path,
            message: err.to_string(),
        },
    }
}

/// Refuse a path whose parents below `ROOT/proc/sys` are symlinks (a copied tree could hold one
/// that points outside it). The live /proc/sys holds no symlinks.
fn check_no_symlink(root: &Path, key: &SysctlKey) -> Result<PathBuf, SysctlError> {
    let base = root.join("proc/sys");
    let path = key.path(root);
    let mut cur = base.clone();
    for component in path
        .strip_prefix(&base)
        .into_iter()
        .flat_map(|p| p.components())
    {
        cur.push(component);
        match std::fs::symlink_metadata(&cur) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(SysctlError::Io {
                    key: key.to_string(),
                    path: cur.display().to_string(),
                    message: "is a symbolic link; refusing to follow it".to_string(),
                });
            }
            Ok(_) => {}
            Err(e) => return Err(io_error(key, &cur, &e)),
        }
    }
    Ok(path)
}

/// Read a key's current value (trimmed; multi-value keys keep their inner whitespace).
pub fn read(root: &Path, key: &SysctlKey) -> Result<String, SysctlError> {
    let path = check_no_symlink(root, key)?;
    let file = std::fs::File::open(&path).map_err(|e| io_error(key, &path, &e))?;
    // In one read with room for the whole value (see crate::input::read_small): list and bitmap
    // values would otherwise come back cut short.
    let bytes = crate::input::read_small(file, MAX_VALUE_BYTES)
        .map_err(|e| io_error(key, &path, &e))?
        .ok_or_else(|| {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("longer than {MAX_VALUE_BYTES} bytes, more than any sysctl value"),
            );
            io_error(key, &path, &e)
        })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text");
        io_error(key, &path, &e)
    })?;
    Ok(normalize(&text))
}

/// Write a value to a key. The caller validates the value first ([`validate_value`]).
pub fn write(root: &Path, key: &SysctlKey, value: &str) -> Result<(), SysctlError> {
    let path = check_no_symlink(root, key)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(key, &path, &e))?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| io_error(key, &path, &e))
}

/// Collapse whitespace the way sysctl(8) prints values: `4096\t16384\t4194304` -> `4096 16384 4194304`.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Check that a value is well formed for writing: no NUL or newline, at most 4096 bytes, and
/// when the key's current value is numeric, the same number of integer fields, each in i64 range.
pub fn validate_value(
    key: &SysctlKey,
    value: &str,
    current: Option<&str>,
) -> Result<String, SysctlError> {
    let invalid = |why: String| SysctlError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        why,
    };
    if value.contains('\0') || value.contains('\n') {
        return Err(invalid("it contains a NUL byte or a newline".to_string()));
    }
    if value.len() > 4096 {
        return Err(invalid("it is longer than 4096 bytes".to_string()));
    }
    let normalized = normalize(value);
    if let Some(current) = current {
        let cur_fields: Vec<&str> = current.split_whitespace().collect();
        let numeric = !cur_fields.is_empty() && cur_fields.iter().all(|f| f.parse::<i64>().is_ok());
        if numeric {
            let new_fields: Vec<&str> = normalized.split_whitespace().collect();
            if new_fields.len() != cur_fields.len() {
                return Err(invalid(format!(
                    "expected {} integer field(s) like the current value {current:?}",
                    cur_fields.len()
                )));
            }
            for f in &new_fields {
                if f.parse::<i64>().is_err() {
                    return Err(invalid(format!("{f:?} is not an integer")));
                }
            }
        }
    }
    Ok(normalized)
}

/// Longest sysctl value read. The longest under /proc/sys/net is a few hundred bytes
/// (`net.core.netdev_rss_key`: 156); a longer file in a copied tree is a note, not a value.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Read every key below `proc/sys/net` (live: the calling thread's namespace) into
/// dotted key -> trimmed raw value. A value longer than [`MAX_VALUE_BYTES`] or holding a NUL
/// byte is a note. Write-only files (no read bit, such as
/// `net.ipv4.route.flush`) are skipped; keys that cannot be read become notes.
pub fn walk_net(place: Place<'_>, notes: &mut Vec<Note>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let base = place.sys_root().join("proc/sys/net");
    if let Err(e) = place.open(&base) {
        notes.push(Note::new(
            "sysctls",
            Some(base.display().to_string()),
            format!("not read: {e}"),
        ));
        return out;
    }
    let mut key = String::from("net");
    walk_dir(place, &base, &mut key, &mut out, notes);
    out
}

fn walk_dir(
    place: Place<'_>,
    dir: &Path,
    key: &mut String,
    out: &mut BTreeMap<String, String>,
    notes: &mut Vec<Note>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            notes.push(Note::new(
                "sysctls",
                Some(key.clone()),
                format!("not read: {e}"),
            ));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            notes.push(Note::new(
                "sysctls",
                Some(format!("{}/{}", dir.display(), name.to_string_lossy())),
                "not read: the name is not UTF-8",
            ));
            continue;
        };
        let len = key.len();
        key.push('.');
        key.push_str(&name.replace('.', "/"));
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_dir(place, &path, key, out, notes),
            Ok(t) if t.is_symlink() => notes.push(Note::new(
                "sysctls",
                Some(key.clone()),
                format!("not read: {}", super::files::symlink_refused(&path)),
            )),
            Ok(_) => read_key(place, &entry, &path, key, out, notes),
            Err(e) => notes.push(Note::new(
                "sysctls",
                Some(key.clone()),
                format!("not read: {e}"),
            )),
        }
        key.truncate(len);
    }
}

/// Keys the kernel keeps only for old programs, each with a `_ms` twin that holds the same
/// setting: `net.ipv{4,6}.neigh.DEV.base_reachable_time` and `.retrans_time`. Reading the IPv6
/// ones writes "process ... is using deprecated sysctl" to the kernel log, so they are never
/// read (neither family, to keep one rule).
pub fn is_deprecated(key: &str) -> bool {
    (key.starts_with("net.ipv4.neigh.") || key.starts_with("net.ipv6.neigh."))
        && key
            .rsplit('.')
            .next()
            .is_some_and(|last| last == "base_reachable_time" || last == "retrans_time")
}

fn read_key(
    place: Place<'_>,
    entry: &std::fs::DirEntry,
    path: &Path,
    key: &str,
    out: &mut BTreeMap<String, String>,
    notes: &mut Vec<Note>,
) {
    use std::os::unix::fs::PermissionsExt;
    if is_deprecated(key)
        || entry
            .metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o444 == 0)
    {
        return;
    }
    let result = place
        .open(path)
        .and_then(|f| crate::input::read_small(f, MAX_VALUE_BYTES));
    let not_read = |why: String| Note::new("sysctls", Some(key.to_string()), why);
    match result {
        Ok(None) => notes.push(not_read(format!(
            "not read: longer than {MAX_VALUE_BYTES} bytes, more than any sysctl value (a damaged copy?)"
        ))),
        Ok(Some(bytes)) if bytes.contains(&0) => notes.push(not_read(
            "not read: the value holds a NUL byte, which no sysctl value does (a damaged copy?)"
                .to_string(),
        )),
        Ok(Some(bytes)) => match String::from_utf8(bytes) {
            Ok(text) => {
                out.insert(key.to_string(), normalize(&text));
            }
            Err(_) => notes.push(not_read(
                "not read: the value is not UTF-8 text".to_string(),
            )),
        },
        // stable_secret reads EIO until a secret is set: that is a value ("unset"), not a failure.
        Err(e) if e.raw_os_error() == Some(libc::EIO) && key.ends_with(".stable_secret") => {}
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied (readable by root only)".to_string()
                }
                _ => e.to_string(),
            };
            notes.push(Note::new(
                "sysctls",
                Some(key.to_string()),
                format!("not read: {why}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_tree_skipping_write_only_keys_and_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("proc/sys/net");
        std::fs::create_dir_all(net.join("ipv4/conf/eth0.100")).unwrap();
        std::fs::create_dir_all(net.join("ipv4/route")).unwrap();
        std::fs::write(net.join("ipv4/tcp_rmem"), "4096\t131072\t6291456\n").unwrap();
        std::fs::write(net.join("ipv4/conf/eth0.100/rp_filter"), "2\n").unwrap();
        let flush = net.join("ipv4/route/flush");
        std::fs::write(&flush, "").unwrap();
        std::fs::set_permissions(&flush, std::fs::Permissions::from_mode(0o200)).unwrap();
        std::os::unix::fs::symlink("/etc", net.join("core")).unwrap();
        let mut notes = Vec::new();
        let keys = walk_net(Place::Root(dir.path()), &mut notes);
        assert_eq!(
            keys.get("net.ipv4.tcp_rmem").map(String::as_str),
            Some("4096 131072 6291456")
        );
        assert_eq!(
            keys.get("net.ipv4.conf.eth0/100.rp_filter")
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].subject.as_deref(), Some("net.core"));
        assert!(notes[0].message.contains("symbolic link"));
    }

    #[test]
    fn deprecated_neigh_keys_are_not_read_and_their_ms_twins_are() {
        let dir = tempfile::tempdir().unwrap();
        let neigh = dir.path().join("proc/sys/net/ipv6/neigh/eth0.7");
        std::fs::create_dir_all(&neigh).unwrap();
        for (name, value) in [
            ("base_reachable_time", "30"),
            ("base_reachable_time_ms", "30000"),
            ("retrans_time", "100"),
            ("retrans_time_ms", "1000"),
        ] {
            std::fs::write(neigh.join(name), value).unwrap();
        }
        let mut notes = Vec::new();
        let keys = walk_net(Place::Root(dir.path()), &mut notes);
        let names: Vec<&str> = keys.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "net.ipv6.neigh.eth0/7.base_reachable_time_ms",
                "net.ipv6.neigh.eth0/7.retrans_time_ms"
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert!(is_deprecated("net.ipv4.neigh.default.retrans_time"));
        assert!(!is_deprecated("net.ipv4.tcp_retrans_time"));
        assert!(!is_deprecated("net.ipv6.neigh.lo.retrans_time_ms"));
    }

    #[test]
    fn walks_the_live_tree() {
        let mut notes = Vec::new();
        let keys = walk_net(Place::Live, &mut notes);
        assert!(keys.contains_key("net.ipv4.tcp_fin_timeout"), "{notes:?}");
        assert!(keys.contains_key("net.core.somaxconn"));
        assert!(!keys.contains_key("net.ipv4.route.flush"));
        for key in keys.keys() {
            SysctlKey::parse(key, Scope::NetOnly).unwrap();
        }
    }

    #[test]
    fn accepts_plain_net_keys() {
        let k = SysctlKey::parse("net.ipv4.tcp_fin_timeout", Scope::NetOnly).unwrap();
        assert_eq!(
            k.path(Path::new("/")),
            PathBuf::from("/proc/sys/net/ipv4/tcp_fin_timeout")
        );
        let k = SysctlKey::parse("net/ipv4/tcp_syncookies", Scope::NetOnly).unwrap();
        assert_eq!(k.as_str(), "net.ipv4.tcp_syncookies");
        let k = SysctlKey::parse("net.ipv4.conf.eth0/100.rp_filter", Scope::NetOnly).unwrap();
        assert_eq!(
            k.path(Path::new("/r")),
            PathBuf::from("/r/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
    }

    #[test]
    fn refuses_hostile_keys() {
        for bad in [
            "net.ipv4/../../../etc/passwd",
            "/etc/passwd",
            "net..ipv4",
            "net.ipv4.",
            "",
            "net.ipv4.tcp\0x",
            "net.ipv4. tcp",
            "../net",
            "net/../kernel/panic",
        ] {
            assert!(
                SysctlKey::parse(bad, Scope::NetOnly).is_err(),
                "{bad:?} was accepted"
            );
            assert!(
                SysctlKey::parse(bad, Scope::AnyKey).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(
            SysctlKey::parse("kernel.panic", Scope::NetOnly),
            Err(SysctlError::NotNet {
                key: "kernel.panic".into()
            })
        );
        assert!(SysctlKey::parse("kernel.panic", Scope::AnyKey).is_ok());
    }

    #[test]
    fn values_are_checked_against_the_current_shape() {
        let k = SysctlKey::parse("net.ipv4.tcp_mem", Scope::NetOnly).unwrap();
        assert_eq!(
            validate_value(&k, "1 2  3", Some("4 5 6")).unwrap(),
            "1 2 3"
        );
        assert!(validate_value(&k, "1 2", Some("4 5 6")).is_err());
        assert!(validate_value(&k, "x", Some("1")).is_err());
        assert!(validate_value(&k, "99999999999999999999", Some("1")).is_err());
        assert!(validate_value(&k, "1\n2", None).is_err());
        assert_eq!(validate_value(&k, "reno", Some("cubic")).unwrap(), "reno");
    }

    #[test]
    fn reads_from_a_root_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let ipv4 = dir.path().join("proc/sys/net/ipv4");
        std::fs::create_dir_all(&ipv4).unwrap();
        std::fs::write(ipv4.join("tcp_fin_timeout"), "60\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", ipv4.join("evil")).unwrap();
        let k = SysctlKey::parse("net.ipv4.tcp_fin_timeout", Scope::NetOnly).unwrap();
        assert_eq!(read(dir.path(), &k).unwrap(), "60");
        let evil = SysctlKey::parse("net.ipv4.evil", Scope::NetOnly).unwrap();
        assert!(matches!(
            read(dir.path(), &evil),
            Err(SysctlError::Io { .. })
        ));
        let absent = SysctlKey::parse("net.ipv4.tcp_tw_recycle", Scope::NetOnly).unwrap();
        assert!(matches!(
            read(dir.path(), &absent),
            Err(SysctlError::Absent { .. })
        ));
    }
}
