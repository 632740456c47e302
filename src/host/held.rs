//! Socket owners and their options in one pass over /proc/*/fd.
//!
//! Every socket of the table needs the process that holds it and seven options read from
//! that process's own descriptor. Both come from the same place, so each process's fd
//! directory is listed once and each entry resolved with readlinkat(2) (`socket:[INODE]`,
//! the only way to tell a socket from a file without touching the file: closing a
//! duplicate of a FUSE or NFS file would flush it). A socket of the table has its options
//! read there and then, from a duplicate (pidfd_getfd, fstat to check that it is still
//! that socket, getsockopt, close), while the process is at hand; sockets that are not in
//! the table (unix sockets, other protocols) are never duplicated. Processes are handed
//! out to up to four threads, and the results are merged in /proc order, so a socket held
//! by several processes goes to the first, as in [`super::owners::scan`].
//!
//! Where a process's descriptors may not be duplicated (no right to ptrace it, or no
//! pidfd_getfd on this kernel) its sockets still get their owner from the links, and the
//! notes say why their options are missing, in the words of [`super::options::read_all`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::options::{self, Failure, Outcome};
use super::owners;
use super::{Note, Owner, SockOptions, Socket};

/// Why the options of a socket were not read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unread {
    /// EPERM / EACCES duplicating the owner's descriptors.
    Denied,
    /// The kernel lacks this call.
    Unsupported(&'static str),
    /// Another error, said once for its process ("pid P[ fd F]: error").
    Failed(String),
    /// Not read after another error of the same process (said with its first socket).
    Skipped,
    /// The process exited, or closed or reused the descriptor, before it could be read.
    Changed,
}

/// A socket of the table as found in one process.
struct Found {
    /// Index of the table, and of the socket in it.
    table: u32,
    index: u32,
    owner: Owner,
    options: Result<SockOptions, Unread>,
}

/// What [`read`] did not find.
#[derive(Debug, Default)]
pub struct Notes {
    /// Processes whose descriptors could not be listed; the same for every table.
    pub owners: Vec<Note>,
    /// Options that could not be read, one list per table.
    pub options: Vec<Vec<Note>>,
}

/// Socket inodes are dense numbers, and the sockets of one process were mostly created one
/// after the other: the hash keeps the inode in its low bits (which pick the bucket, so
/// neighbouring inodes are looked up in neighbouring memory) and mixes it into the top
/// seven bits (which the table compares first).
#[derive(Default)]
struct InodeHasher(u64);

impl Hasher for InodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n ^ (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xFE00_0000_0000_0000);
    }
}

/// Socket inode -> (table, index in it).
type Positions = HashMap<u64, (u32, u32), BuildHasherDefault<InodeHasher>>;

/// Set the owner and options of every socket of `tables` that a process of `proc`
/// (normally `/proc`) holds. Sockets whose inode is 0 (TIME_WAIT, SYN_RECV) have no
/// descriptor and are left alone.
pub fn read(proc: &Path, tables: &mut [&mut [Socket]]) -> Notes {
    let mut positions = Positions::default();
    for (t, table) in tables.iter().enumerate() {
        positions.reserve(table.len());
        for (i, socket) in table.iter().enumerate() {
            if socket.inode != 0 {
                positions
                    .entry(socket.inode)
                    .or_insert((t as u32, i as u32));
            }
        }
    }
    let mut notes = Notes::default();
    let mut outcomes: Vec<Outcome> = tables.iter().map(|_| Outcome::default()).collect();
    match owners::list_pids(proc) {
        Ok((proc_fd, pids)) => {
            let mut scanned = scan_processes(&proc_fd, &pids, &positions);
            // Merge in /proc order, so a socket shared by several processes keeps the first.
            scanned.sort_unstable_by_key(|(k, _)| *k);
            let mut denied = Vec::new();
            for (k, result) in scanned {
                match result {
                    Ok(found) => {
                        for f in found {
                            let socket = &mut tables[f.table as usize][f.index as usize];
                            if socket.owner.is_none() {
                                tally(&mut outcomes[f.table as usize], &f);
                                socket.owner = Some(f.owner);
                                socket.options = f.options.ok();
                            }
                        }
                    }
                    Err(Errno::EACCES | Errno::EPERM) => denied.push(pids[k]),
                    // ENOENT / ESRCH: the process exited during the scan.
                    Err(_) => {}
                }
            }
            notes.owners.extend(owners::denied_note(&denied));
        }
        Err(note) => notes.owners.push(note),
    }
    notes.options = outcomes.into_iter().map(options::notes_of).collect();
    notes
}

fn tally(outcome: &mut Outcome, found: &Found) {
    match &found.options {
        Ok(_) | Err(Unread::Skipped) => {}
        Err(Unread::Denied) => {
            outcome
                .denied
                .insert(found.owner.pid, found.owner.comm.to_string());
        }
        Err(Unread::Unsupported(call)) => outcome.unsupported = Some(call),
        Err(Unread::Failed(why)) => outcome.other.push(why.clone()),
        Err(Unread::Changed) => outcome.changed += 1,
    }
}

/// What the scan of one process found: its index in `pids`, and its sockets or the error.
type Scanned = (usize, Result<Vec<Found>, Errno>);

/// Scan the processes on up to 4 cores. Workers take processes one at a time from a
/// shared counter, so a few large processes still spread over the cores.
fn scan_processes(proc_fd: &OwnedFd, pids: &[u32], positions: &Positions) -> Vec<Scanned> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut path = [0u8; 32];
        let mut scanned = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = pids.get(k) else { break };
            let mut found = Vec::new();
            let result =
                scan_process(proc_fd, pid, positions, &mut path, &mut found).map(|()| found);
            scanned.push((k, result));
        }
        scanned
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

fn scan_process(
    proc_fd: &OwnedFd,
    pid: u32,
    positions: &Positions,
    path: &mut [u8; 32],
    out: &mut Vec<Found>,
) -> Result<(), Errno> {
    let fd_dir = openat(
        proc_fd,
        owners::c_path(path, pid, "fd"),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let raw_dir = fd_dir.as_raw_fd();
    let mut dir = Dir::from_fd(fd_dir)?;
    let mut comm: Option<Arc<str>> = None;
    let mut dups = Dups::Unopened;
    let mut link = [0u8; 64];
    for entry in dir.iter() {
        let entry = match entry {
            Ok(e) => e,
            // The process exited while we listed its descriptors.
            Err(Errno::ENOENT | Errno::ESRCH) => return Ok(()),
            Err(e) => return Err(e),
        };
        let name = entry.file_name();
        let Some(fd) = owners::parse_pid(name) else {
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
        let Some(inode) = owners::socket_inode(&link[..n as usize]) else {
            continue;
        };
        let Some(&(table, index)) = positions.get(&inode) else {
            continue;
        };
        let comm = comm
            .get_or_insert_with(|| owners::read_comm(proc_fd, pid, path))
            .clone();
        out.push(Found {
            table,
            index,
            owner: Owner { pid, comm, fd },
            options: dups.read(pid, fd, inode),
        });
    }
    Ok(())
}

/// How the descriptors of one process are duplicated: through a pidfd opened at its first
/// socket of the table, or not at all, and why.
enum Dups {
    Unopened,
    Open(OwnedFd),
    Refused(Unread),
}

impl Dups {
    fn read(&mut self, pid: u32, fd: u32, inode: u64) -> Result<SockOptions, Unread> {
        if let Dups::Unopened = self {
            *self = match options::pidfd_open(pid) {
                Ok(pidfd) => Dups::Open(pidfd),
                Err(failure) => Dups::Refused(unread(failure, || format!("pid {pid}"))),
            };
        }
        let Dups::Open(pidfd) = self else {
            return Err(self.refusal());
        };
        match options::pidfd_getfd(pidfd, fd) {
            Ok(dup) if options::same_socket(&dup, inode) => Ok(options::read_options(&dup)),
            Ok(_) | Err(Failure::Gone) => Err(Unread::Changed),
            Err(failure) => {
                let why = unread(failure, || format!("pid {pid} fd {fd}"));
                *self = Dups::Refused(match &why {
                    Unread::Failed(_) => Unread::Skipped,
                    other => other.clone(),
                });
                Err(why)
            }
        }
    }
}

impl Dups {
    /// Why a process's socket is not read: an error other than a refusal is said once.
    fn refusal(&mut self) -> Unread {
        match self {
            Dups::Refused(why) => {
                let now = why.clone();
                if let Unread::Failed(_) = why {
                    *why = Unread::Skipped;
                }
                now
            }
            Dups::Unopened | Dups::Open(_) => Unread::Skipped,
        }
    }
}

fn unread(failure: Failure, subject: impl FnOnce() -> String) -> Unread {
    match failure {
        Failure::Gone => Unread::Changed,
        Failure::Denied => Unread::Denied,
        Failure::Unsupported(call) => Unread::Unsupported(call),
        Failure::Other(e) => Unread::Failed(format!("{}: {e}", subject())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Family, TcpState, Timer};
    use std::os::unix::fs::MetadataExt;

    fn inode_of(fd: i32) -> u64 {
        std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino()
    }

    fn set(fd: i32, level: i32, name: i32, v: libc::c_int) {
        // SAFETY: v is a c_int of the given size.
        let rc = unsafe { libc::setsockopt(fd, level, name, (&v as *const libc::c_int).cast(), 4) };
        assert_eq!(rc, 0);
    }

    fn socket(inode: u64) -> Socket {
        Socket {
            family: Family::Inet,
            state: TcpState::Established,
            local_addr: "127.0.0.1".parse().unwrap(),
            local_port: 1,
            remote_addr: "127.0.0.1".parse().unwrap(),
            remote_port: 2,
            rx_queue: 0,
            tx_queue: 0,
            accept_queue: None,
            backlog: None,
            timer: Timer::None,
            timer_expires_ms: None,
            retransmits: 0,
            inode,
            uid: 0,
            tcp_info: None,
            owner: None,
            options: None,
        }
    }

    /// The one pass gives every socket the owner and options that the owner scan followed by
    /// the option read gave, with the same notes, in two tables (as for `--netns all`).
    #[test]
    fn one_pass_gives_what_the_two_passes_gave() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let with_keepalive = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let without = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let ka = with_keepalive.as_raw_fd();
        set(ka, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        set(ka, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 33);
        set(ka, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
        set(
            without.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            5000,
        );
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: linger is a struct linger of the given size.
        let rc = unsafe {
            libc::setsockopt(
                accepted.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let first = vec![
            socket(inode_of(listener.as_raw_fd())),
            socket(inode_of(ka)),
            // No descriptor (TIME_WAIT), and an inode that no process holds.
            socket(0),
            socket(u64::MAX - 7),
        ];
        let second = vec![
            socket(inode_of(without.as_raw_fd())),
            socket(inode_of(accepted.as_raw_fd())),
        ];

        let mut old = [first.clone(), second.clone()];
        let map = owners::scan(Path::new("/proc"));
        let mut old_notes = Vec::new();
        for table in &mut old {
            for s in table.iter_mut() {
                if s.inode != 0 {
                    s.owner = map.by_inode.get(&s.inode).cloned();
                }
            }
            let mut notes = map.notes.clone();
            notes.extend(options::read_all(table));
            old_notes.push(notes);
        }

        let mut new = [first, second];
        let notes = {
            let mut tables: Vec<&mut [Socket]> = new.iter_mut().map(|t| &mut t[..]).collect();
            read(Path::new("/proc"), &mut tables)
        };
        let new_notes: Vec<Vec<Note>> = notes
            .options
            .into_iter()
            .map(|options| {
                let mut all = notes.owners.clone();
                all.extend(options);
                all
            })
            .collect();
        assert_eq!(new, old);
        assert_eq!(new_notes, old_notes);

        let me = std::process::id();
        let owner = new[0][1].owner.as_ref().expect("owner");
        assert_eq!((owner.pid, owner.fd), (me, ka as u32));
        let o = new[0][1].options.clone().expect("options");
        assert_eq!(
            (o.keepalive, o.keepidle, o.keepcnt),
            (Some(true), Some(33), Some(4))
        );
        // A socket without keepalive still shows the keepalive values the kernel holds for
        // it: they are read, never left out or guessed.
        let o = new[1][0].options.clone().expect("options");
        assert_eq!(o.keepalive, Some(false));
        assert!(o.keepidle.is_some() && o.keepintvl.is_some() && o.keepcnt.is_some());
        assert_eq!(o.user_timeout, Some(5000));
        let o = new[1][1].options.clone().expect("options");
        assert_eq!(o.linger.map(|l| (l.on, l.seconds)), Some((true, 0)));
        assert_eq!(
            (new[0][2].owner.clone(), new[0][2].options.clone()),
            (None, None)
        );
        assert_eq!(
            (new[0][3].owner.clone(), new[0][3].options.clone()),
            (None, None)
        );
        // No duplicate was left open.
        for fd in [ka, accepted.as_raw_fd()] {
            let inode = inode_of(fd);
            let count = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode))
                .count();
            assert_eq!(count, 1);
        }
    }

    /// A process that exits before its turn (or while it is listed) is skipped without a
    /// word; the processes after it are still read.
    #[test]
    fn a_process_gone_before_its_turn_is_skipped_and_the_rest_read() {
        use std::os::fd::AsRawFd;
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = inode_of(listener.as_raw_fd());
        let mut positions = Positions::default();
        positions.insert(inode, (0, 0));
        let (proc_fd, _) = owners::list_pids(Path::new("/proc")).unwrap();
        let pids = [gone, std::process::id()];
        let mut scanned = scan_processes(&proc_fd, &pids, &positions);
        scanned.sort_unstable_by_key(|(k, _)| *k);
        assert!(
            matches!(scanned[0], (0, Err(Errno::ENOENT))),
            "{:?}",
            scanned[0].1.as_ref().err()
        );
        let found = scanned[1].1.as_ref().expect("our own process");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].owner.fd, listener.as_raw_fd() as u32);
        assert!(found[0].options.is_ok());
    }

    /// A process whose descriptors cannot be duplicated: a refusal holds for all its
    /// sockets, another error is said once (its first socket) and the rest are skipped.
    #[test]
    fn refusals_hold_for_the_process_and_other_errors_are_said_once() {
        let mut denied = Dups::Refused(Unread::Denied);
        assert_eq!(denied.read(1, 3, 9), Err(Unread::Denied));
        assert_eq!(denied.read(1, 4, 9), Err(Unread::Denied));
        let mut failed = Dups::Refused(Unread::Failed("pid 1: boom".into()));
        assert_eq!(
            failed.read(1, 3, 9),
            Err(Unread::Failed("pid 1: boom".into()))
        );
        assert_eq!(failed.read(1, 4, 9), Err(Unread::Skipped));
        let mut gone = Dups::Refused(Unread::Changed);
        assert_eq!(gone.read(1, 3, 9), Err(Unread::Changed));
        assert_eq!(gone.read(1, 4, 9), Err(Unread::Changed));
    }
}
