//! Socket owners and their options in one pass over /proc/*/fd.
//!
//! Every socket of the table needs the process that holds it and seven options read from
//! that process's own descriptor. Both come from the same place, so each process's fd
//! directory is listed once and each entry resolved with readlinkat(2) (`socket:[INODE]`,
//! the only way to tell a socket from a file without touching the file: closing a
//! duplicate of a FUSE or NFS file would flush it). The listing starts before the socket
//! tables are read and runs on up to four threads, processes handed out one at a time;
//! their socket descriptors go, in chunks, to a queue the threads share. Once the tables
//! are known, every thread (the caller's too) takes chunks and reads the options of the
//! sockets of the tables from duplicates (pidfd_getfd, fstat to check that it is still
//! that socket, getsockopt, close); sockets of no table (unix sockets, other protocols,
//! other namespaces) are never duplicated. The results are merged in /proc order, so a
//! socket held by several processes goes to the first, as in [`super::owners::scan`].
//!
//! Where the kernel allows it, all of this is done in the kernel instead ([`super::bpf`]):
//! one BPF iterator over every task's files gives each TCP socket's process, descriptor,
//! inode and options, with no system call per socket. [`OwnerScan`] chooses; in `auto` the
//! /proc pass is the fallback, and a note says why it ran.
//!
//! Where a process's descriptors may not be duplicated (no right to ptrace it, or no
//! pidfd_getfd on this kernel) its sockets still get their owner from the links, and the
//! notes say why their options are missing, in the words of [`super::options::read_all`].
//!
//! The listing is [`super::owners`]'s, by hand rather than through procfs, for the reason
//! (and the numbers) its header gives.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::errno::Errno;

use super::bpf;
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
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// Socket inode -> (table, index in it).
type Positions = HashMap<u64, (u32, u32), BuildHasherDefault<InodeHasher>>;

/// How owners and options are read (`--owner-scan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnerScan {
    /// The kernel's iterator where it can be used, else /proc (with a note saying why).
    #[default]
    Auto,
    /// The kernel's iterator only: an error where it cannot be used.
    Bpf,
    /// /proc/*/fd and pidfd_getfd only.
    Proc,
}

/// Set the owner and options of every socket of `tables` that a process of `proc`
/// (normally `/proc`) holds. Sockets whose inode is 0 (TIME_WAIT, SYN_RECV) have no
/// descriptor and are left alone.
pub fn read(proc: &Path, tables: &mut [&mut [Socket]]) -> Notes {
    std::thread::scope(|scope| ProcScan::start(scope, proc).finish(tables))
}

/// What the scanning threads share.
struct Shared {
    proc_fd: OwnedFd,
    pids: Vec<u32>,
    /// The next process to list (index in `pids`).
    next: AtomicUsize,
    /// Threads listing a process now.
    listing: AtomicUsize,
    /// Sockets listed, their options not read yet.
    queue: Mutex<Vec<Chunk>>,
    /// The sockets of the tables, once they are read.
    wanted: OnceLock<Positions>,
}

impl Shared {
    /// The processes `pids` of the /proc open as `proc_fd`, none listed yet.
    fn new(proc_fd: OwnedFd, pids: Vec<u32>) -> Self {
        Self {
            proc_fd,
            pids,
            next: AtomicUsize::new(0),
            listing: AtomicUsize::new(0),
            queue: Mutex::new(Vec::new()),
            wanted: OnceLock::new(),
        }
    }
}

/// A scan started before the socket tables are read, so that it runs while they are dumped;
/// [`Scan::finish`] gives it the tables and fills them.
pub struct Scan<'scope>(How<'scope>);

enum How<'scope> {
    Proc(ProcScan<'scope>),
    /// The kernel's iterator, running on a thread of its own; with `auto`, `proc` is read
    /// instead if it fails.
    Kernel {
        scan: OwnerScan,
        proc: PathBuf,
        iterator: std::thread::ScopedJoinHandle<
            'scope,
            Result<(bpf::Reader, bpf::TaskSockets, bool), bpf::Unavailable>,
        >,
        /// Set once the tables are read.
        tables_read: Arc<std::sync::atomic::AtomicBool>,
    },
    /// `auto`, after the kernel's iterator could not be used: the /proc pass, once the
    /// tables are read, with a note saying why.
    Fallback {
        proc: PathBuf,
        why: bpf::Unavailable,
    },
}

/// A scan whose first run is done ([`Scan::ready`]).
pub enum Ready<'scope> {
    /// The kernel's iterator: sockets are joined one at a time as the table is read.
    Join(Joiner),
    /// The /proc pass, which needs the whole tables ([`Scan::finish`]).
    Table(Scan<'scope>),
}

impl<'scope> Scan<'scope> {
    /// Start reading the owners and options of the processes of `proc` (the kernel's iterator
    /// is used for `/proc` only), on threads of `scope`.
    pub fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        proc: &Path,
        scan: OwnerScan,
    ) -> Self {
        if scan == OwnerScan::Proc || (scan == OwnerScan::Auto && proc != Path::new("/proc")) {
            return Scan(How::Proc(ProcScan::start(scope, proc)));
        }
        let tables_read = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let read_after = Arc::clone(&tables_read);
        Scan(How::Kernel {
            scan,
            proc: proc.to_path_buf(),
            // Loading takes a few milliseconds; the first run then goes on while the tables
            // are read, unless they are read already (it says which).
            iterator: scope.spawn(move || {
                let loaded = bpf::load()?;
                let after = read_after.load(Ordering::SeqCst);
                let (iterator, first) = loaded.read()?;
                Ok((iterator, first, after))
            }),
            tables_read,
        })
    }

    /// Whether [`Scan::ready`] would answer at once: the kernel's iterator has run (or
    /// failed), or it is not used.
    pub fn is_ready(&self) -> bool {
        match &self.0 {
            How::Kernel { iterator, .. } => iterator.is_finished(),
            How::Proc(_) | How::Fallback { .. } => true,
        }
    }

    /// Wait until the kernel's iterator has run once, so that sockets can be given their
    /// owner one at a time as the table is read; the /proc pass (asked for, or the fallback
    /// of `auto`) needs the whole tables instead. An error only where the kernel's iterator
    /// was asked for and could not be used.
    pub fn ready(self) -> Result<Ready<'scope>, bpf::Unavailable> {
        match self.0 {
            How::Kernel {
                scan,
                proc,
                iterator,
                tables_read: _,
            } => match iterator
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
            {
                Ok((reader, first, _)) => Ok(Ready::Join(Joiner::new(reader, first, &proc))),
                Err(why) if scan == OwnerScan::Bpf => Err(why),
                Err(why) => Ok(Ready::Table(Scan(How::Fallback { proc, why }))),
            },
            how => Ok(Ready::Table(Scan(how))),
        }
    }

    /// Give the scan the tables it fills, wait for it, and set the owner and options of
    /// every socket found. An error only where the kernel's iterator was asked for and
    /// could not be used.
    pub fn finish(self, tables: &mut [&mut [Socket]]) -> Result<Notes, bpf::Unavailable> {
        match self.0 {
            How::Proc(scan) => Ok(scan.finish(tables)),
            How::Kernel {
                scan,
                proc,
                iterator,
                tables_read,
            } => {
                tables_read.store(true, Ordering::SeqCst);
                let iterated = iterator
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                match iterated {
                    Ok((again, first, after)) => Ok(merge_kernel(
                        Joiner::new(again, first, &proc),
                        after,
                        tables,
                    )),
                    Err(why) if scan == OwnerScan::Bpf => Err(why),
                    Err(why) => Scan(How::Fallback { proc, why }).finish(tables),
                }
            }
            How::Fallback { proc, why } => {
                let mut notes = read(&proc, tables);
                notes.owners.push(Note::new(
                    "scan",
                    None,
                    format!(
                        "owners and socket options read from /proc/*/fd and duplicated \
                         descriptors (several system calls a socket), not by the \
                         kernel's socket iterator: {why}"
                    ),
                ));
                Ok(notes)
            }
        }
    }
}

/// Set the owner and options of every socket of `tables` that the kernel's iterator saw.
///
/// Unless it started after the tables were read (`after`), the first run went on while they
/// were dumped: a socket opened after it passed its process is in a table but not in that
/// run, and one it saw in another state may have had other options then. Then the iterator
/// runs once more for those ([`Joiner::again`]).
fn merge_kernel(mut joiner: Joiner, after: bool, tables: &mut [&mut [Socket]]) -> Notes {
    let mut missed = 0usize;
    for socket in tables.iter_mut().flat_map(|t| t.iter_mut()) {
        // A run that started after the tables were read has no second run behind it: what
        // it read is the latest, whatever state the socket has moved to.
        if !joiner.join_with(socket, !after) {
            missed += 1;
        }
    }
    let mut notes = Notes {
        owners: Vec::new(),
        options: tables.iter().map(|_| Vec::new()).collect(),
    };
    if missed > 0 && !after {
        let unowned = tables
            .iter_mut()
            .flat_map(|t| t.iter_mut())
            .filter(|s| s.inode != 0 && s.owner.is_none());
        notes.owners.extend(joiner.again(unowned));
    }
    notes
}

/// Joins the sockets of a table, one at a time or a batch at a time, to what one run of the
/// kernel's iterator saw: the lowest pid (its lowest descriptor) holding each socket, as in
/// /proc order.
pub struct Joiner {
    reader: bpf::Reader,
    sockets: bpf::TaskSockets,
    proc_fd: Option<OwnedFd>,
    comms: HashMap<u32, Arc<str>, BuildHasherDefault<InodeHasher>>,
    /// Scratch space of [`Joiner::join_all`], kept between batches.
    inodes: Vec<u64>,
    positions: Vec<Option<u32>>,
    found: Vec<Option<bpf::Held>>,
}

impl Joiner {
    fn new(reader: bpf::Reader, sockets: bpf::TaskSockets, proc: &Path) -> Self {
        let proc_fd = nix::fcntl::open(
            proc,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok();
        Self {
            reader,
            sockets,
            proc_fd,
            comms: HashMap::default(),
            inodes: Vec::new(),
            positions: Vec::new(),
            found: Vec::new(),
        }
    }

    /// Set the owner and options of `socket` when a process holds it. False for a socket a
    /// process could hold (inode not 0) that this run did not see, or saw in another TCP
    /// state: a run before the table was read can have seen a socket before its process set
    /// its options and then listened or connected (only then does the table list it). Such
    /// a socket waits for [`Joiner::again`], which reads it after the table was.
    pub fn join(&mut self, socket: &mut Socket) -> bool {
        self.join_with(socket, true)
    }

    /// [`Joiner::join`] of each of `sockets`, into `joined` (cleared first): the sockets are
    /// looked up together, so that the cache misses of their lookups overlap instead of
    /// coming one after the other.
    pub fn join_all(&mut self, sockets: &mut [Socket], joined: &mut Vec<bool>) {
        self.inodes.clear();
        self.inodes.extend(sockets.iter().map(|s| s.inode));
        self.sockets
            .first_of_each(&self.inodes, &mut self.positions, &mut self.found);
        let found = std::mem::take(&mut self.found);
        joined.clear();
        joined.extend(
            sockets
                .iter_mut()
                .zip(&found)
                .map(|(socket, held)| socket.inode == 0 || self.set(socket, *held, true)),
        );
        self.found = found;
    }

    fn join_with(&mut self, socket: &mut Socket, same_state: bool) -> bool {
        if socket.inode == 0 {
            return true;
        }
        let held = self.sockets.first(socket.inode);
        self.set(socket, held, same_state)
    }

    /// Give `socket` the owner and options of `held`, its first holder in the run.
    fn set(&mut self, socket: &mut Socket, held: Option<bpf::Held>, same_state: bool) -> bool {
        let Some(held) = held else {
            return false;
        };
        if same_state && held.state() != Some(socket.state) {
            return false;
        }
        let (pid, fd) = (held.pid(), held.fd());
        let proc_fd = &self.proc_fd;
        let comm = self
            .comms
            .entry(pid)
            .or_insert_with(|| match proc_fd {
                Some(proc_fd) => owners::read_comm(proc_fd, pid, &mut [0u8; 32]),
                None => Arc::from("?"),
            })
            .clone();
        socket.owner = Some(Owner { pid, comm, fd });
        socket.options = Some(held.options());
        true
    }

    /// Run the iterator once more and join `missed`, sockets the first run did not see
    /// (opened after it passed their process). What this run does not see either was closed
    /// before the scan looked at its process, or is held by the kernel itself (no process has
    /// a descriptor of it). A note when the run fails.
    pub fn again<'s>(&mut self, missed: impl IntoIterator<Item = &'s mut Socket>) -> Vec<Note> {
        match self.reader.read() {
            Ok(sockets) => {
                self.sockets = sockets;
                // Read after the table: whatever state the socket is in now.
                for socket in missed {
                    self.join_with(socket, false);
                }
                Vec::new()
            }
            Err(e) => vec![Note::new(
                "owners",
                None,
                format!(
                    "the second run of the kernel's socket iterator failed ({e}): sockets \
                     opened while the socket tables were read may have no owner"
                ),
            )],
        }
    }
}

/// Socket inode -> (table, index) of every socket of the tables that a process can hold.
fn positions_of(tables: &[&mut [Socket]]) -> Positions {
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
    positions
}

/// The /proc pass: listing the fd directories and reading their links (a third of the work)
/// runs while the tables are dumped; the options of the sockets listed are read once the
/// tables are given to [`ProcScan::finish`].
struct ProcScan<'scope> {
    shared: Result<Arc<Shared>, Note>,
    workers: Vec<std::thread::ScopedJoinHandle<'scope, Vec<Scanned>>>,
}

impl<'scope> ProcScan<'scope> {
    /// List the processes of `proc` and start scanning them on up to 4 threads of `scope`.
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, proc: &Path) -> Self {
        let shared =
            owners::list_pids(proc).map(|(proc_fd, pids)| Arc::new(Shared::new(proc_fd, pids)));
        let workers = match &shared {
            Ok(shared) => {
                let threads = std::thread::available_parallelism()
                    .map_or(1, |n| n.get().min(4))
                    .min(shared.pids.len().div_ceil(16).max(1));
                (0..threads)
                    .map(|_| {
                        let shared = Arc::clone(shared);
                        scope.spawn(move || work(&shared))
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        ProcScan { shared, workers }
    }

    /// Give the scan the tables it fills, wait for it, and set the owner and options of
    /// every socket found (the first process in /proc order wins).
    fn finish(mut self, tables: &mut [&mut [Socket]]) -> Notes {
        let positions = positions_of(tables);
        let mut notes = Notes::default();
        let mut outcomes: Vec<Outcome> = tables.iter().map(|_| Outcome::default()).collect();
        match &self.shared {
            Ok(shared) => {
                let _ = shared.wanted.set(positions);
                // The calling thread has nothing else to do until the scan ends: it takes
                // chunks too (with few processes there is a single scanning thread).
                let mut scanned = work(shared);
                scanned.extend(
                    std::mem::take(&mut self.workers)
                        .into_iter()
                        .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
                );
                // Merge in /proc order, so a socket shared by several processes keeps the first.
                scanned.sort_unstable_by_key(|(k, _)| *k);
                let mut denied = Vec::new();
                // A process read in several chunks says another error once.
                let mut failed = std::collections::HashSet::new();
                for (k, result) in scanned {
                    match result {
                        Ok(found) => {
                            for mut f in found {
                                let socket = &mut tables[f.table as usize][f.index as usize];
                                if socket.owner.is_none() {
                                    if matches!(f.options, Err(Unread::Failed(_)))
                                        && !failed.insert((f.table, f.owner.pid))
                                    {
                                        f.options = Err(Unread::Skipped);
                                    }
                                    tally(&mut outcomes[f.table as usize], &f);
                                    socket.owner = Some(f.owner);
                                    socket.options = f.options.ok();
                                }
                            }
                        }
                        Err(Errno::EACCES | Errno::EPERM) => denied.push(shared.pids[k.0]),
                        // ENOENT / ESRCH: the process exited during the scan.
                        Err(_) => {}
                    }
                }
                notes.owners.extend(owners::denied_note(&denied));
            }
            Err(note) => notes.owners.push(note.clone()),
        }
        notes.options = outcomes.into_iter().map(options::notes_of).collect();
        notes
    }
}

impl Drop for ProcScan<'_> {
    /// A scan given up (the tables could not be read) releases the threads waiting for them.
    fn drop(&mut self) {
        if let Ok(shared) = &self.shared {
            let _ = shared.wanted.set(Positions::default());
        }
    }
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

/// What the scan of one part of a process found: (its index in `pids`, the part), and its
/// sockets or the error.
type Scanned = ((usize, usize), Result<Vec<Found>, Errno>);

/// The socket descriptors (fd, inode) of one process, or a part of them: the options of
/// a large process are read on every thread.
struct Chunk {
    k: usize,
    part: usize,
    pid: u32,
    comm: Arc<str>,
    sockets: Vec<(u32, u64)>,
}

/// Sockets per [`Chunk`]: small enough to spread one large process over the threads,
/// large enough that its pidfd_open does not count.
const CHUNK: usize = 1024;

/// One scanning thread. It lists processes taken one at a time from the shared counter,
/// and puts their sockets in the shared queue in chunks; once the tables are known it reads
/// the options of the queued chunks first (the most recently listed first), so that every
/// thread has work until the end. It stops when no process is left to list, no thread is
/// listing one, and the queue is empty.
fn work(shared: &Shared) -> Vec<Scanned> {
    let mut path = [0u8; 32];
    let mut scanned = Vec::new();
    loop {
        if let Some(positions) = shared.wanted.get() {
            let chunk = shared
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            if let Some(chunk) = chunk {
                scanned.push(((chunk.k, chunk.part), Ok(read_chunk(&chunk, positions))));
                continue;
            }
        }
        shared.listing.fetch_add(1, Ordering::SeqCst);
        let k = shared.next.fetch_add(1, Ordering::SeqCst);
        if let Some(&pid) = shared.pids.get(k) {
            if let Err(e) = list(shared, k, pid, &mut path) {
                scanned.push(((k, 0), Err(e)));
            }
            shared.listing.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        shared.listing.fetch_sub(1, Ordering::SeqCst);
        // Nothing left to list: wait for the tables, then for the threads still listing.
        shared.wanted.wait();
        let empty = shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty();
        if empty {
            if shared.listing.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
    scanned
}

/// List the socket descriptors of process `k` into the shared queue, a chunk as soon as
/// it is full, so that other threads can read their options while the listing goes on.
fn list(shared: &Shared, k: usize, pid: u32, path: &mut [u8; 32]) -> Result<(), Errno> {
    let mut comm: Option<Arc<str>> = None;
    let mut part = 0;
    let mut sockets = Vec::new();
    let mut push = |sockets: Vec<(u32, u64)>, comm: &mut Option<Arc<str>>| {
        let comm = comm
            .get_or_insert_with(|| owners::read_comm(&shared.proc_fd, pid, &mut [0u8; 32]))
            .clone();
        shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Chunk {
                k,
                part,
                pid,
                comm,
                sockets,
            });
        part += 1;
    };
    owners::each_socket(&shared.proc_fd, pid, path, |fd, inode| {
        sockets.push((fd, inode));
        if sockets.len() == CHUNK {
            push(std::mem::take(&mut sockets), &mut comm);
        }
    })?;
    if !sockets.is_empty() {
        push(sockets, &mut comm);
    }
    Ok(())
}

/// Read the options of the sockets of the tables in one chunk.
fn read_chunk(chunk: &Chunk, positions: &Positions) -> Vec<Found> {
    let mut dups = Dups::Unopened;
    chunk
        .sockets
        .iter()
        .filter_map(|&(fd, inode)| {
            let &(table, index) = positions.get(&inode)?;
            Some(Found {
                table,
                index,
                owner: Owner {
                    pid: chunk.pid,
                    comm: chunk.comm.clone(),
                    fd,
                },
                options: dups.read(chunk.pid, fd, inode),
            })
        })
        .collect()
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
mod tests;
