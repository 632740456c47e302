//! Network namespaces: name them, and run work inside one.
//!
//! Work runs in a dedicated thread that calls setns(2); that thread then
//! reads /proc/thread-self/net/* and /proc/sys/net/* and opens netlink
//! sockets, all of which see the target namespace. The calling thread (and
//! the rest of the process) never changes namespace.
//!
//! Mount lines are parsed by procfs. The namespace of each process is one stat of
//! /proc/PID/ns/net, by hand: procfs's `Process::namespaces` stats every entry of
//! /proc/PID/ns, took 17 to 19 times as long (10 ms against 0.6 ms over 110 processes;
//! docs/performance.md, "procfs and the hand-written readers"), and turns a refused stat
//! into an internal error, so the processes whose namespace may not be inspected could no
//! longer be counted.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use super::Note;

/// A network namespace to work in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsRef {
    /// A file that refers to the namespace (/run/netns/NAME, /proc/PID/ns/net).
    pub path: PathBuf,
    /// A friendly name for reports.
    pub name: String,
    /// The namespace's inode.
    pub inode: u64,
}

/// The directory where `ip netns` keeps named namespaces.
pub const RUN_NETNS: &str = "/run/netns";

/// Why a namespace name or path cannot be used. The message says what is wrong with it; the
/// command layer adds the flag that gave it (see [`NetnsError::spec_shown`]).
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Empty, `.` or `..`.
    #[error("not a namespace name")]
    NotAName { spec: String },
    #[error(
        "cannot open {} (list names with `ip netns list`, or give /proc/PID/ns/net)",
        path.display()
    )]
    CannotOpen {
        spec: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "not a network namespace file ({why}); give a name from `ip netns list`, \
         /run/netns/NAME or /proc/PID/ns/net"
    )]
    NotNetns { spec: String, why: NotNetns },
}

impl NetnsError {
    /// The name or path as given.
    pub fn spec(&self) -> &str {
        match self {
            Self::NotAName { spec }
            | Self::CannotOpen { spec, .. }
            | Self::NotNetns { spec, .. } => spec,
        }
    }

    /// The name or path as a message shows it before the error: quoted when it is not a name
    /// (an empty one would not show at all).
    pub fn spec_shown(&self) -> String {
        match self {
            Self::NotAName { spec } => format!("{spec:?}"),
            _ => self.spec().to_string(),
        }
    }
}

/// Resolve a namespace name (in /run/netns) or a path to a namespace file (`all` is the
/// caller's to expand).
pub fn resolve(spec: &str) -> Result<NetnsRef, NetnsError> {
    let (path, name) = if spec.contains('/') {
        (PathBuf::from(spec), spec.to_string())
    } else {
        if spec.is_empty() || spec == "." || spec == ".." {
            return Err(NetnsError::NotAName {
                spec: spec.to_string(),
            });
        }
        (Path::new(RUN_NETNS).join(spec), spec.to_string())
    };
    let cannot_open = |source| NetnsError::CannotOpen {
        spec: spec.to_string(),
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(cannot_open)?;
    match open(&path) {
        Ok(file) => {
            check_net_ns(&file).map_err(|why| NetnsError::NotNetns {
                spec: spec.to_string(),
                why,
            })?;
        }
        // Left to the caller, whose message says which privilege is missing.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(cannot_open(e)),
    }
    Ok(NetnsRef {
        path,
        name,
        inode: meta.ino(),
    })
}

/// Open a namespace file for setns(2): read-only, close-on-exec, and without blocking, so a
/// FIFO given as the namespace's path is refused by [`check_net_ns`] instead of hanging the open.
pub fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// What a file that should refer to a network namespace is instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotNetns {
    #[error("fstatfs failed: {0}")]
    Statfs(nix::errno::Errno),
    #[error("a directory, not a namespace")]
    Directory,
    #[error("an ordinary file, not a namespace")]
    OrdinaryFile,
    #[error("a FIFO, device or socket, not a namespace")]
    Special,
    /// Not of nsfs, and its kind could not be read.
    #[error("not a namespace, not a namespace")]
    Unknown,
    #[error("a namespace of another kind (mount, pid, user, ...)")]
    OtherKind,
}

/// Check that an open file refers to a network namespace: a file of nsfs (the namespace
/// filesystem behind /proc/PID/ns/* and /run/netns/*) of type CLONE_NEWNET. Anything else
/// would make setns(2) fail with a bare EINVAL. `Err` says what the file is instead.
pub fn check_net_ns(file: &File) -> Result<(), NotNetns> {
    use std::os::fd::AsRawFd;
    let fs = nix::sys::statfs::fstatfs(file).map_err(NotNetns::Statfs)?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(match file.metadata() {
            Ok(m) if m.file_type().is_dir() => NotNetns::Directory,
            Ok(m) if m.file_type().is_file() => NotNetns::OrdinaryFile,
            Ok(_) => NotNetns::Special,
            Err(_) => NotNetns::Unknown,
        });
    }
    // NS_GET_NSTYPE (Linux 4.11): which kind of namespace. Older kernels answer ENOTTY, and
    // then setns(2) itself checks the kind.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: an ioctl without an argument on a descriptor we own.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind >= 0 && kind != libc::CLONE_NEWNET {
        return Err(NotNetns::OtherKind);
    }
    Ok(())
}

/// A descriptor of the calling thread's network namespace (to enter it again later).
pub fn open_current() -> std::io::Result<File> {
    File::open("/proc/thread-self/ns/net")
}

/// The inode of the calling thread's network namespace.
pub fn current_inode() -> std::io::Result<u64> {
    std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino())
}

/// The inode of the initial network namespace: that of PID 1 (/proc/1/ns/net), or, where
/// PID 1 cannot be inspected (an init that is not dumpable refuses even root), that of the
/// kernel's thread `kthreadd` (PID 2), which always runs in the initial namespace.
pub fn initial_inode() -> Option<u64> {
    if let Ok(meta) = std::fs::metadata("/proc/1/ns/net") {
        return Some(meta.ino());
    }
    let kthreadd = std::fs::read_to_string("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd");
    kthreadd
        .then(|| std::fs::metadata("/proc/2/ns/net").ok())
        .flatten()
        .map(|m| m.ino())
}

/// The friendly name of the namespace with this inode, when it is the caller's own:
/// `host` only for the initial namespace ([`initial_inode`]), else its name in /run/netns
/// (as under `ip netns exec NAME`), else `net:[INODE]` as the kernel writes it. When the
/// initial namespace cannot be identified (without root) or the inode is unknown, it stays
/// `host`: an unprivileged caller cannot tell.
pub fn own_name(inode: Option<u64>) -> String {
    let Some(inode) = inode else {
        return "host".to_string();
    };
    match initial_inode() {
        Some(initial) if initial != inode => {}
        _ => return "host".to_string(),
    }
    let named = std::fs::read_dir(RUN_NETNS).ok().and_then(|entries| {
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.into_iter().next()
    });
    named.unwrap_or_else(|| format!("net:[{inode}]"))
}

/// Why work could not run inside a network namespace. Each message is whole (it holds its
/// cause), so it reads the same shown alone or in a chain.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("opening network namespace {}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "network namespace {name}: {} is not a network namespace file ({why})",
        path.display()
    )]
    NotNetns {
        name: String,
        path: PathBuf,
        why: NotNetns,
    },
    #[error(
        "entering network namespace {name} needs CAP_SYS_ADMIN; {}",
        crate::host::process::privilege_hint("CAP_SYS_ADMIN")
    )]
    NeedsRoot { name: String },
    #[error("entering network namespace {name}: {errno}")]
    Setns {
        name: String,
        errno: nix::errno::Errno,
    },
    #[error("the worker in network namespace {name} panicked")]
    Panicked { name: String },
}

/// Run `work` in a new thread that has entered the namespace `ns`.
///
/// Entering a namespace needs CAP_SYS_ADMIN; without it this returns an error saying so.
pub fn run_in<T, F>(ns: &NetnsRef, work: F) -> Result<T, EnterError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = open(&ns.path).map_err(|error| EnterError::Open {
        path: ns.path.clone(),
        error,
    })?;
    check_net_ns(&file).map_err(|why| EnterError::NotNetns {
        name: ns.name.clone(),
        path: ns.path.clone(),
        why,
    })?;
    run_in_file(&file, &ns.name, work)
}

/// Run `work` in the namespace `ns`, or in the calling thread's own one when `ns` is None.
pub fn in_namespace<T, F>(ns: Option<&NetnsRef>, work: F) -> Result<T, EnterError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    match ns {
        Some(ns) => run_in(ns, work),
        None => Ok(work()),
    }
}

/// Like [`run_in`], with the namespace already open (`name` is for messages): a file from
/// /run/netns or /proc/PID/ns/net, or the descriptor of a namespace made with unshare.
/// The one place that enters a namespace: a new thread that calls setns(2), runs `work`
/// and ends, so no other thread ever changes namespace.
pub fn run_in_file<T, F>(file: impl AsFd + Send, name: &str, work: F) -> Result<T, EnterError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> Result<T, EnterError> {
                setns(file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    let name = name.to_string();
                    if errno == nix::errno::Errno::EPERM {
                        EnterError::NeedsRoot { name }
                    } else {
                        EnterError::Setns { name, errno }
                    }
                })?;
                Ok(work())
            })
            .join()
            .map_err(|_| EnterError::Panicked {
                name: name.to_string(),
            })?
    })
}

/// The mount points of network namespaces (nsfs mounts whose root is `net:[INODE]`) in a
/// mountinfo text, in order, and the number of lines that could not be parsed (skipped, so one
/// odd mount elsewhere does not hide the namespaces). Each line is parsed by procfs; the
/// kernel's octal escapes in paths (`\040` for a space, ...) are undone here.
pub fn net_namespace_mounts(text: impl std::io::BufRead) -> std::io::Result<(Vec<PathBuf>, usize)> {
    let mut found = Vec::new();
    let mut skipped = 0;
    for line in text.split(b'\n') {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        match procfs::process::MountInfo::from_line(&String::from_utf8_lossy(&line)) {
            Ok(m) if m.fs_type == "nsfs" && m.root.starts_with("net:[") => found.push(
                PathBuf::from(unescape_mount_path(&m.mount_point.to_string_lossy())),
            ),
            Ok(_) => {}
            Err(_) => skipped += 1,
        }
    }
    Ok((found, skipped))
}

/// Undo the kernel's escaping of ` `, tab, newline and `\` in mount paths (`\040` ...).
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\')
            .then(|| b.get(i + 1..i + 4))
            .flatten()
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                u8::try_from(d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'))).ok()
            });
        if let Some(code) = code {
            out.push(code);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every distinct network namespace on the host: the caller's own (named by [`own_name`]), those
/// named in /run/netns, those bind-mounted elsewhere (named by their path), and those of
/// processes (/proc/PID/ns/net), deduplicated by inode.
/// Processes whose namespace cannot be inspected are counted in a note.
pub fn list_all(notes: &mut Vec<Note>) -> Vec<NetnsRef> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    match current_inode() {
        Ok(inode) => {
            seen.insert(inode);
            out.push(NetnsRef {
                path: PathBuf::from("/proc/thread-self/ns/net"),
                name: own_name(Some(inode)),
                inode,
            });
        }
        Err(e) => notes.push(Note::new(
            "netns",
            Some("/proc/thread-self/ns/net".to_string()),
            format!("the caller's namespace could not be identified: {e}"),
        )),
    }
    match std::fs::read_dir(RUN_NETNS) {
        Ok(entries) => {
            let mut named: Vec<(String, PathBuf)> = entries
                .filter_map(Result::ok)
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect();
            named.sort();
            for (name, path) in named {
                match std::fs::metadata(&path) {
                    Ok(meta) if seen.insert(meta.ino()) => out.push(NetnsRef {
                        path,
                        name,
                        inode: meta.ino(),
                    }),
                    Ok(_) => {}
                    Err(e) => notes.push(Note::new(
                        "netns",
                        Some(path.display().to_string()),
                        format!("not read: {e}"),
                    )),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => notes.push(Note::new(
            "netns",
            Some(RUN_NETNS.to_string()),
            format!("not read: {e}"),
        )),
    }
    // Namespaces kept alive by a bind mount elsewhere (container runtimes keep them under
    // /var/run/docker/netns, /run/user/UID/netns, ...), found in this process's mount table.
    match std::fs::File::open("/proc/self/mountinfo") {
        Ok(f) => match net_namespace_mounts(std::io::BufReader::new(f)) {
            Ok((paths, skipped)) => {
                if skipped > 0 {
                    notes.push(Note::new(
                        "netns",
                        Some("/proc/self/mountinfo".to_string()),
                        format!(
                            "{skipped} lines could not be parsed and were skipped; a namespace \
                             held only by such a mount may be missing"
                        ),
                    ));
                }
                for path in paths {
                    match std::fs::metadata(&path) {
                        Ok(meta) if seen.insert(meta.ino()) => out.push(NetnsRef {
                            name: path.display().to_string(),
                            path,
                            inode: meta.ino(),
                        }),
                        Ok(_) => {}
                        // Unmounted since the mount table was read: gone, not hidden.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => notes.push(Note::new(
                            "netns",
                            Some(path.display().to_string()),
                            format!("a bind-mounted namespace that could not be looked at: {e}"),
                        )),
                    }
                }
            }
            Err(e) => notes.push(Note::new(
                "netns",
                Some("/proc/self/mountinfo".to_string()),
                format!("not read: {e}; namespaces held only by a bind mount may be missing"),
            )),
        },
        Err(e) => notes.push(Note::new(
            "netns",
            Some("/proc/self/mountinfo".to_string()),
            format!("not read: {e}; namespaces held only by a bind mount may be missing"),
        )),
    }
    let mut pids: Vec<u32> = match std::fs::read_dir("/proc") {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) => {
            notes.push(Note::new(
                "netns",
                Some("/proc".to_string()),
                format!("not read: {e}"),
            ));
            Vec::new()
        }
    };
    pids.sort_unstable();
    let mut denied = 0usize;
    for pid in pids {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        match std::fs::metadata(&path) {
            Ok(meta) if seen.insert(meta.ino()) => {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_else(|_| "?".to_string());
                out.push(NetnsRef {
                    path,
                    name: format!("pid {pid} ({comm})"),
                    inode: meta.ino(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => denied += 1,
            Err(_) => {} // the process exited
        }
    }
    if denied > 0 {
        notes.push(Note::new(
            "netns",
            Some(format!("{denied} processes")),
            format!(
                "the namespace of {denied} processes could not be inspected (permission denied); \
                 namespaces only they use are missing; {}",
                super::process::privilege_hint("CAP_SYS_PTRACE (other users' /proc/PID/ns/net)")
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_namespace_mounts_are_found_in_mountinfo() {
        // Lines as a 6.18 kernel writes them: a /run/netns entry, a runtime's namespace with a
        // space in its path, another kind of namespace, and an ordinary mount.
        let text = "\
36 25 0:4 net:[4026532581] /run/netns/web rw shared:5 - nsfs nsfs rw
37 25 0:4 net:[4026532650] /var/run/docker/netns/a\\040b rw - nsfs nsfs rw
38 25 0:4 mnt:[4026532700] /run/mntns/x rw - nsfs nsfs rw
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
";
        let (found, skipped) = net_namespace_mounts(text.as_bytes()).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(
            found,
            [
                PathBuf::from("/run/netns/web"),
                PathBuf::from("/var/run/docker/netns/a b")
            ]
        );
        // An odd line (here garbage, or a path that is not UTF-8) is skipped, not fatal.
        let mut odd = b"garbage\n".to_vec();
        odd.extend_from_slice(text.as_bytes());
        odd.extend_from_slice(b"39 25 0:4 net:[4026532999] /run/\xff rw - nsfs nsfs rw\n");
        let (found, skipped) = net_namespace_mounts(&odd[..]).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn mount_paths_are_unescaped_without_panicking() {
        assert_eq!(unescape_mount_path("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape_mount_path("end\\04"), "end\\04");
        assert_eq!(unescape_mount_path("big\\777"), "big\\777");
        assert_eq!(unescape_mount_path("\\"), "\\");
    }

    #[test]
    fn only_network_namespace_files_pass() {
        let own = open(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(check_net_ns(&own), Ok(()));
        let mnt = open(Path::new("/proc/self/ns/mnt")).unwrap();
        assert_eq!(
            check_net_ns(&mnt).unwrap_err().to_string(),
            "a namespace of another kind (mount, pid, user, ...)"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // Opening a FIFO with no writer returns at once (O_NONBLOCK), then it is refused.
        let f = open(&fifo).unwrap();
        assert_eq!(
            check_net_ns(&f).unwrap_err().to_string(),
            "a FIFO, device or socket, not a namespace"
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert_eq!(
            check_net_ns(&open(&plain).unwrap())
                .unwrap_err()
                .to_string(),
            "an ordinary file, not a namespace"
        );
        // The library says what is wrong with the path; the command names its flag.
        let err = resolve(fifo.to_str().unwrap()).unwrap_err();
        assert_eq!(err.spec(), fifo.to_str().unwrap());
        assert!(
            err.to_string()
                .starts_with("not a network namespace file (a FIFO, device or socket"),
            "{err}"
        );
        assert!(resolve("/proc/self/ns/net").is_ok());
    }
}
