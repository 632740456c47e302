//! Socket options of owned sockets, read from the owner's own descriptor.
//!
//! sock_diag does not report SO_LINGER, the keepalive parameters, TCP_USER_TIMEOUT or
//! TCP_LINGER2. They are read with getsockopt(2) on a duplicate of the owner's descriptor:
//! pidfd_open(pid) once per process, pidfd_getfd(pidfd, fd) per socket. Each duplicate is
//! checked to still be the same socket (inode), read, and closed at once; nothing is ever
//! set on it. Without the right to ptrace the owner (root or CAP_SYS_PTRACE) pidfd_getfd
//! fails with EPERM: that becomes one note per run, as does a kernel without pidfd_getfd.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Linger, Note, SockOptions, Socket};

/// Why a process could not be read.
pub(super) enum Failure {
    /// The process or descriptor is gone (or is no longer that socket).
    Gone,
    /// EPERM / EACCES.
    Denied,
    /// ENOSYS: the kernel lacks pidfd_open (< 5.3) or pidfd_getfd (< 5.6).
    Unsupported(&'static str),
    Other(std::io::Error),
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn classify(err: std::io::Error, call: &'static str) -> Failure {
    match err.raw_os_error() {
        Some(libc::ESRCH | libc::EBADF | libc::ENOENT) => Failure::Gone,
        Some(libc::EPERM | libc::EACCES) => Failure::Denied,
        Some(libc::ENOSYS) => Failure::Unsupported(call),
        _ => Failure::Other(err),
    }
}

pub(super) fn pidfd_open(pid: u32) -> Result<OwnedFd, Failure> {
    // SAFETY: pidfd_open takes (pid_t, unsigned int flags) and returns a new descriptor.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if rc < 0 {
        return Err(classify(errno(), "pidfd_open (Linux 5.3)"));
    }
    // SAFETY: rc is a descriptor we just received and own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

pub(super) fn pidfd_getfd(pidfd: &OwnedFd, fd: u32) -> Result<OwnedFd, Failure> {
    // SAFETY: pidfd_getfd takes (int pidfd, int targetfd, unsigned int flags) and returns a
    // new descriptor (with O_CLOEXEC set by the kernel).
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd as i32, 0u32) };
    if rc < 0 {
        return Err(classify(errno(), "pidfd_getfd (Linux 5.6)"));
    }
    // SAFETY: rc is a descriptor we just received and own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// getsockopt for a plain value; `None` if the option cannot be read.
fn getopt<T: Copy>(fd: &OwnedFd, level: i32, name: i32, zero: T) -> Option<T> {
    let mut value = zero;
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: value is a writable T of `len` bytes; the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<T>()).then_some(value)
}

pub(super) fn read_options(dup: &OwnedFd) -> SockOptions {
    let int = |level, name| getopt::<libc::c_int>(dup, level, name, 0);
    let linger = getopt(
        dup,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        libc::linger {
            l_onoff: 0,
            l_linger: 0,
        },
    );
    let tcp = libc::IPPROTO_TCP;
    SockOptions {
        linger: linger.map(|l| Linger {
            on: l.l_onoff != 0,
            seconds: l.l_linger,
        }),
        keepalive: int(libc::SOL_SOCKET, libc::SO_KEEPALIVE).map(|v| v != 0),
        keepidle: int(tcp, libc::TCP_KEEPIDLE).and_then(|v| u32::try_from(v).ok()),
        keepintvl: int(tcp, libc::TCP_KEEPINTVL).and_then(|v| u32::try_from(v).ok()),
        keepcnt: int(tcp, libc::TCP_KEEPCNT).and_then(|v| u32::try_from(v).ok()),
        user_timeout: int(tcp, libc::TCP_USER_TIMEOUT).and_then(|v| u32::try_from(v).ok()),
        linger2: int(tcp, libc::TCP_LINGER2),
    }
}

/// Whether a descriptor refers to the socket with this inode.
pub(super) fn same_socket(dup: &OwnedFd, inode: u64) -> bool {
    nix::sys::stat::fstat(dup)
        .is_ok_and(|st| st.st_ino == inode && st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

/// What one pass over a slice of sockets met besides options.
#[derive(Default)]
pub(super) struct Outcome {
    /// pid -> process name, for processes whose descriptors may not be duplicated.
    pub(super) denied: BTreeMap<u32, String>,
    pub(super) other: Vec<String>,
    pub(super) unsupported: Option<&'static str>,
    /// Sockets whose process exited, or whose descriptor was closed or now holds another
    /// socket, between the socket dump and the read.
    pub(super) changed: usize,
}

impl Outcome {
    fn merge(mut self, other: Outcome) -> Outcome {
        self.denied.extend(other.denied);
        self.other.extend(other.other);
        self.unsupported = self.unsupported.or(other.unsupported);
        self.changed += other.changed;
        self
    }
}

/// From this many owned sockets on, two threads share the work (each with its own pidfds).
const PARALLEL_FROM: usize = 4096;

/// Fill `options` of every socket that has an owner. Returns the notes of the run.
pub fn read_all(sockets: &mut [Socket]) -> Vec<Note> {
    read_all_from(sockets, PARALLEL_FROM)
}

fn read_all_from(sockets: &mut [Socket], parallel_from: usize) -> Vec<Note> {
    let owned = sockets.iter().filter(|s| s.owner.is_some()).count();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let outcome = if owned >= parallel_from && cores >= 2 {
        let mid = sockets.len() / 2;
        let (a, b) = sockets.split_at_mut(mid);
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| read_part(a));
            let mine = read_part(b);
            let theirs = worker.join().unwrap_or_else(|_| Outcome {
                other: vec!["a worker reading socket options panicked".to_string()],
                ..Outcome::default()
            });
            mine.merge(theirs)
        })
    } else {
        read_part(sockets)
    };
    notes_of(outcome)
}

fn read_part(sockets: &mut [Socket]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut by_pid: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, s) in sockets.iter().enumerate() {
        if let Some(owner) = &s.owner {
            by_pid.entry(owner.pid).or_default().push(i);
        }
    }
    let mut pids: Vec<u32> = by_pid.keys().copied().collect();
    pids.sort_unstable();
    'process: for pid in pids {
        let indices = &by_pid[&pid];
        let comm = || {
            sockets[indices[0]]
                .owner
                .as_ref()
                .map_or_else(String::new, |o| o.comm.to_string())
        };
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(Failure::Gone) => {
                outcome.changed += indices.len();
                continue;
            }
            Err(Failure::Denied) => {
                outcome.denied.insert(pid, comm());
                continue;
            }
            Err(Failure::Unsupported(call)) => {
                outcome.unsupported = Some(call);
                return outcome;
            }
            Err(Failure::Other(e)) => {
                outcome.other.push(format!("pid {pid}: {e}"));
                continue;
            }
        };
        for &i in indices {
            let socket = &mut sockets[i];
            let Some(owner) = &socket.owner else { continue };
            let dup = match pidfd_getfd(&pidfd, owner.fd) {
                Ok(fd) => fd,
                Err(Failure::Gone) => {
                    outcome.changed += 1;
                    continue;
                }
                Err(Failure::Denied) => {
                    outcome.denied.insert(pid, owner.comm.to_string());
                    continue 'process;
                }
                Err(Failure::Unsupported(call)) => {
                    outcome.unsupported = Some(call);
                    return outcome;
                }
                Err(Failure::Other(e)) => {
                    outcome
                        .other
                        .push(format!("pid {pid} fd {}: {e}", owner.fd));
                    continue 'process;
                }
            };
            if same_socket(&dup, socket.inode) {
                socket.options = Some(read_options(&dup));
            } else {
                outcome.changed += 1;
            }
            drop(dup);
        }
    }
    outcome
}

pub(super) fn notes_of(outcome: Outcome) -> Vec<Note> {
    let mut notes = Vec::new();
    if let Some(call) = outcome.unsupported {
        notes.push(unsupported(call));
    }
    let denied = &outcome.denied;
    if !denied.is_empty() {
        let sample: Vec<String> = denied
            .iter()
            .take(10)
            .map(|(pid, comm)| format!("{pid} ({comm})"))
            .collect();
        notes.push(Note::new(
            "options",
            Some(format!("{} processes", denied.len())),
            format!(
                "permission denied duplicating sockets of {} processes ({}{}): their socket \
                 options are unknown; {}",
                denied.len(),
                sample.join(", "),
                if denied.len() > sample.len() {
                    ", ..."
                } else {
                    ""
                },
                super::process::privilege_hint(
                    "CAP_SYS_PTRACE (duplicating other processes' sockets)"
                )
            ),
        ));
    }
    if outcome.changed > 0 {
        // Its own area: every owner was read, these sockets just went away or changed, so the
        // rules must not take this for owners or options that could not be read.
        notes.push(Note::new(
            "changed",
            Some(format!("{} sockets", outcome.changed)),
            format!(
                "socket options of {} sockets not read: their process exited, or closed or \
                 reused the descriptor, while the scan ran (short-lived connections)",
                outcome.changed
            ),
        ));
    }
    if !outcome.other.is_empty() {
        notes.push(Note::new(
            "options",
            None,
            format!(
                "socket options not read for {} processes: {}",
                outcome.other.len(),
                outcome
                    .other
                    .iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    notes
}

fn unsupported(call: &str) -> Note {
    Note::new(
        "options",
        Some(call.to_string()),
        format!("socket options not read: this kernel lacks {call}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Owner;
    use crate::host::test_support::{inode_of, set_int, socket};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn reads_options_of_our_own_socket_without_changing_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let fd = stream.as_raw_fd();
        set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 33);
        set_int(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 5000);
        let inode = inode_of(fd);
        let mut sockets = vec![Socket {
            owner: Some(Owner {
                pid: std::process::id(),
                comm: "test".into(),
                fd: fd as u32,
            }),
            ..socket(inode)
        }];
        // A socket whose descriptor number now holds something else is left alone.
        let mut wrong = sockets[0].clone();
        wrong.inode += 1_000_000;
        sockets.push(wrong);
        let mut sockets_in_two_parts = sockets.clone();
        let notes = read_all(&mut sockets);
        // The one left alone is said, not hidden.
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0]
                .message
                .contains("socket options of 1 sockets not read"),
            "{notes:?}"
        );
        assert_eq!(read_all_from(&mut sockets_in_two_parts, 1), notes);
        assert_eq!(sockets_in_two_parts, sockets);
        let o = sockets[0].options.clone().expect("options");
        assert_eq!(o.keepalive, Some(true));
        assert_eq!(o.keepidle, Some(33));
        assert_eq!(o.user_timeout, Some(5000));
        assert_eq!(o.linger.map(|l| l.on), Some(false));
        assert_eq!(sockets[1].options, None);
        // The duplicate was closed: no descriptor of ours points at the socket twice.
        let count = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode))
            .count();
        assert_eq!(count, 1);
    }
}
