//! Socket owners: one pass over /proc/*/fd building socket inode -> (pid, comm, fd).
//!
//! Built once per run, whatever the number of sockets or namespaces (socket inodes are
//! unique on the host). Each fd directory is opened once and every entry is resolved with
//! readlinkat(2) relative to it into a stack buffer, so scanning a process allocates
//! nothing per descriptor; the process name is read only for processes that hold a socket
//! and is shared between their sockets. Processes that exit during the scan are skipped
//! without a word; processes we may not inspect are counted and reported in one note.
//!
//! Written by hand, not through procfs: procfs's `Process::fd` opens, reads, stats and closes
//! each descriptor, and took 1.6 to 1.8 times as long over 100,000 sockets (748 ms against
//! 419 ms; docs/performance.md, "procfs and the hand-written readers", bench/proc_parsers.rs).

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::{Note, Owner};

/// The owner of every socket found, and notes about what could not be inspected.
#[derive(Debug, Default)]
pub struct OwnerMap {
    pub by_inode: HashMap<u64, Owner>,
    pub notes: Vec<Note>,
    /// Processes whose descriptors were read.
    pub processes_scanned: usize,
}

/// Scan `proc` (normally `/proc`).
pub fn scan(proc: &Path) -> OwnerMap {
    let mut map = OwnerMap::default();
    let (proc_fd, pids) = match list_pids(proc) {
        Ok(listed) => listed,
        Err(note) => {
            map.notes.push(note);
            return map;
        }
    };
    let mut denied: Vec<u32> = Vec::new();
    let mut found = scan_processes(&proc_fd, &pids);
    // Merge in /proc order, so a socket shared by several processes keeps the first.
    found.sort_unstable_by_key(|(k, _)| *k);
    map.by_inode.reserve(
        found
            .iter()
            .map(|(_, r)| r.as_ref().map_or(0, Vec::len))
            .sum(),
    );
    for (k, result) in found {
        match result {
            Ok(owned) => {
                map.processes_scanned += 1;
                for (inode, owner) in owned {
                    map.by_inode.entry(inode).or_insert(owner);
                }
            }
            Err(Errno::EACCES | Errno::EPERM) => denied.push(pids[k]),
            // ENOENT / ESRCH: the process exited during the scan.
            Err(_) => {}
        }
    }
    map.notes.extend(denied_note(&denied));
    map
}

/// `proc` opened, and the pids it lists in its order; a note when it cannot be read.
pub(super) fn list_pids(proc: &Path) -> Result<(OwnedFd, Vec<u32>), Note> {
    fn cannot(e: impl std::fmt::Display, subject: Option<String>) -> Note {
        Note::new("owners", subject, format!("socket owners not read: {e}"))
    }
    let mut proc_dir = Dir::open(
        proc,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| cannot(e, Some(proc.display().to_string())))?;
    let proc_fd = proc_dir
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| cannot(e, None))?;
    let pids = proc_dir
        .iter()
        .flatten()
        .filter_map(|entry| parse_pid(entry.file_name()))
        .collect();
    Ok((proc_fd, pids))
}

/// The one note for the processes whose /proc/PID/fd may not be read, if any.
pub(super) fn denied_note(denied: &[u32]) -> Option<Note> {
    if denied.is_empty() {
        return None;
    }
    let sample: Vec<String> = denied.iter().take(10).map(u32::to_string).collect();
    Some(Note::new(
        "owners",
        Some(format!("{} processes", denied.len())),
        format!(
            "permission denied reading /proc/PID/fd of {} processes (pids {}{}): their sockets \
             have no owner and no options; {}",
            denied.len(),
            sample.join(", "),
            if denied.len() > sample.len() {
                ", ..."
            } else {
                ""
            },
            super::process::privilege_hint("CAP_SYS_PTRACE (other users' /proc/PID/fd)")
        ),
    ))
}

/// What the scan of one process found: its index in `pids`, and its sockets or the error.
type Scanned = (usize, Result<Vec<(u64, Owner)>, Errno>);

/// Scan the fd directories of `pids`, on up to 4 cores: on a busy host the readlinkat
/// per descriptor is the second largest cost of an audit. Workers take processes one at
/// a time from a shared counter, so a few large processes still spread over the cores.
fn scan_processes(proc_fd: &OwnedFd, pids: &[u32]) -> Vec<Scanned> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut path = [0u8; 32];
        let mut found = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = pids.get(k) else { break };
            let mut owned = Vec::new();
            let result = scan_process(proc_fd, pid, &mut path, &mut owned).map(|()| owned);
            found.push((k, result));
        }
        found
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().min(4))
        .min(pids.len().div_ceil(16).max(1));
    if threads == 1 {
        return work();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

pub(super) fn parse_pid(name: &CStr) -> Option<u32> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// `PID/fd` into `buf` as a NUL-terminated C string.
pub(super) fn c_path<'a>(buf: &'a mut [u8; 32], pid: u32, leaf: &str) -> &'a CStr {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{pid}/{leaf}\0");
    let end = cursor.position() as usize;
    CStr::from_bytes_with_nul(&buf[..end]).unwrap_or(c"")
}

fn scan_process(
    proc_fd: &OwnedFd,
    pid: u32,
    path: &mut [u8; 32],
    out: &mut Vec<(u64, Owner)>,
) -> Result<(), Errno> {
    let mut comm: Option<Arc<str>> = None;
    let mut comm_path = [0u8; 32];
    each_socket(proc_fd, pid, path, |fd, inode| {
        let comm = comm
            .get_or_insert_with(|| read_comm(proc_fd, pid, &mut comm_path))
            .clone();
        out.push((inode, Owner { pid, comm, fd }));
    })
}

/// Call `each` with (fd, inode) for every socket descriptor of `pid`. A process that exits
/// while it is listed ends the listing quietly.
pub(super) fn each_socket(
    proc_fd: &OwnedFd,
    pid: u32,
    path: &mut [u8; 32],
    mut each: impl FnMut(u32, u64),
) -> Result<(), Errno> {
    let fd_dir = openat(
        proc_fd,
        c_path(path, pid, "fd"),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let raw_dir = fd_dir.as_raw_fd();
    let mut dir = Dir::from_fd(fd_dir)?;
    let mut link = [0u8; 64];
    for entry in dir.iter() {
        let entry = match entry {
            Ok(e) => e,
            // The process exited while we listed its descriptors.
            Err(Errno::ENOENT | Errno::ESRCH) => return Ok(()),
            Err(e) => return Err(e),
        };
        let name = entry.file_name();
        let Some(fd) = parse_pid(name) else {
            continue;
        };
        // SAFETY: raw_dir is the open fd directory owned by `dir`; name is NUL-terminated;
        // link is a writable buffer of the given length.
        let n = unsafe {
            libc::readlinkat(raw_dir, name.as_ptr(), link.as_mut_ptr().cast(), link.len())
        };
        if n <= 0 {
            continue;
        }
        if let Some(inode) = socket_inode(&link[..n as usize]) {
            each(fd, inode);
        }
    }
    Ok(())
}

/// `socket:[12345]` -> 12345.
pub(super) fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        d.is_ascii_digit()
            .then(|| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

pub(super) fn read_comm(proc_fd: &OwnedFd, pid: u32, path: &mut [u8; 32]) -> Arc<str> {
    let fd = match openat(
        proc_fd,
        c_path(path, pid, "comm"),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(_) => return Arc::from("?"),
    };
    let mut buf = [0u8; 64];
    match nix::unistd::read(&fd, &mut buf) {
        Ok(n) => Arc::from(String::from_utf8_lossy(&buf[..n]).trim_end_matches('\n')),
        Err(_) => Arc::from("?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::test_support;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode(b"socket:[23769]"), Some(23769));
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"pipe:[23769]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"socket:[99999999999999999999999]"), None);
    }

    #[test]
    fn finds_our_own_socket() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        let inode = test_support::inode_of(fd);
        let map = scan(Path::new("/proc"));
        let owner = map.by_inode.get(&inode).expect("our socket");
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(owner.fd, fd as u32);
        assert!(!owner.comm.is_empty());
    }

    #[test]
    fn a_socket_held_by_two_processes_goes_to_the_first_in_proc_order() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        let inode = test_support::inode_of(fd);
        let mut child = test_support::sleeper_holding(fd);
        let map = scan(Path::new("/proc"));
        child.kill().ok();
        child.wait().ok();
        let owner = map.by_inode.get(&inode).expect("our socket");
        assert_eq!(owner.pid, std::process::id().min(child.id()));
        assert!(map.processes_scanned >= 2);
    }
}
