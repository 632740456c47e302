//! Network namespaces: name them, and run work inside one.
//!
//! Work runs in a dedicated thread that calls setns(2); that thread then
//! reads /proc/thread-self/net/* and /proc/sys/net/* and opens netlink
//! sockets, all of which see the target namespace. The calling thread (and
//! the rest of the process) never changes namespace.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sched::{CloneFlags, setns};

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
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> anyhow::Result<T> {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                    if errno == nix::errno::Errno::EPERM {
                        anyhow::anyhow!(
                            "entering network namespace {} needs CAP_SYS_ADMIN: run as root",
                            ns.name
                        )
                    } else {
                        anyhow::anyhow!("entering network namespace {}: {errno}", ns.name)
                    }
                })?;
                Ok(work())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the worker in network namespace {} panicked", ns.name))?
    })
}
