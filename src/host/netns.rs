//! Network namespaces: name them, and run work inside one.
//!
//! Work runs in a dedicated thread that calls setns(2); that thread then
//! reads /proc/thread-self/net/* and /proc/sys/net/* and opens netlink
//! sockets, all of which see the target namespace. The calling thread (and
//! the rest of the process) never changes namespace.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
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

/// Resolve `--netns NAME|PATH` (not `all`) to a namespace file.
pub fn resolve(spec: &str) -> anyhow::Result<NetnsRef> {
    let (path, name) = if spec.contains('/') {
        (PathBuf::from(spec), spec.to_string())
    } else {
        if spec.is_empty() || spec == "." || spec == ".." {
            anyhow::bail!("--netns {spec:?}: not a namespace name");
        }
        (Path::new(RUN_NETNS).join(spec), spec.to_string())
    };
    let meta = std::fs::metadata(&path).with_context(|| {
        format!(
            "--netns {spec}: cannot open {} (list names with `ip netns list`, or give /proc/PID/ns/net)",
            path.display()
        )
    })?;
    Ok(NetnsRef {
        path,
        name,
        inode: meta.ino(),
    })
}

/// The inode of the calling thread's network namespace.
pub fn current_inode() -> std::io::Result<u64> {
    std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino())
}

/// Run `work` in a new thread that has entered the namespace `ns`.
///
/// Entering a namespace needs CAP_SYS_ADMIN; without it this returns an error saying so.
pub fn run_in<T, F>(ns: &NetnsRef, work: F) -> anyhow::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let file = File::open(&ns.path)
        .with_context(|| format!("opening network namespace {}", ns.path.display()))?;
    run_in_file(&file, &ns.name, work)
}

/// Like [`run_in`], with the namespace already open (`name` is for messages).
pub fn run_in_file<T, F>(file: &File, name: &str, work: F) -> anyhow::Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> anyhow::Result<T> {
                setns(file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    if errno == nix::errno::Errno::EPERM {
                        anyhow::anyhow!(
                            "entering network namespace {name} needs CAP_SYS_ADMIN: run as root"
                        )
                    } else {
                        anyhow::anyhow!("entering network namespace {name}: {errno}")
                    }
                })?;
                Ok(work())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the worker in network namespace {name} panicked"))?
    })
}

/// Every distinct network namespace on the host: the caller's own (named `host`), those
/// named in /run/netns, and those of processes (/proc/PID/ns/net), deduplicated by inode.
/// Processes whose namespace cannot be inspected are counted in a note.
pub fn list_all(notes: &mut Vec<Note>) -> Vec<NetnsRef> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    match current_inode() {
        Ok(inode) => {
            seen.insert(inode);
            out.push(NetnsRef {
                path: PathBuf::from("/proc/thread-self/ns/net"),
                name: "host".to_string(),
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
                 namespaces only they use are missing: run as root"
            ),
        ));
    }
    out
}
