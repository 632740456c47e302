//! The namespaces of the host, followed: listed every [`LIST_EVERY`] (`host::netns::list_all`:
//! the caller's own, those named in /run/netns, those bind-mounted elsewhere, those of
//! processes), each new one opened (its descriptor, a capture inside it, its links and
//! addresses, a netlink socket for their changes) and handed to the check, each one gone
//! closed, so the kernel can free it. Between listings the thread waits on the netlink
//! sockets, reads a namespace's facts again when they change, and samples every namespace's
//! reset counters every [`SAMPLE_EVERY`].
//!
//! A namespace is known by its inode and kept by its descriptor: a path (`/proc/PID/ns/net`)
//! may name another namespace once its process is gone. Entering one is a short-lived thread
//! (`host::netns::run_in_file`), so no thread of the process stays in another namespace.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::host::CounterSample;
use crate::host::counters::{SampleError, read_reset_sample};
use crate::host::facts::{LinkEvents, NamespaceFacts, namespace_facts};
use crate::host::netns::{self, NetnsRef};
use crate::trace::capture::{Capture, CaptureOptions};

/// How often the namespaces are listed: a new one is watched within this (and the time to
/// open it) of its first process or bind mount.
pub const LIST_EVERY: Duration = Duration::from_secs(2);

/// How often each namespace's reset counters (and its sysctl) are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Notes kept to say each once.
const NOTES_KEPT: usize = 256;

/// A namespace opened for watching.
pub struct Opened {
    pub id: u32,
    pub inode: u64,
    pub name: Arc<str>,
    /// A path that names it now, for the audit (`--netns PATH`).
    pub path: PathBuf,
    pub capture: Capture,
    pub facts: NamespaceFacts,
    pub baseline: Result<CounterSample, SampleError>,
}

/// What the thread tells the check.
pub enum NsMsg {
    Up(Box<Opened>),
    Down(u32),
    Facts(u32, NamespaceFacts),
    Sample(u32, Result<CounterSample, SampleError>),
    Note(String),
}

struct Held {
    inode: u64,
    name: Arc<str>,
    file: File,
    link: Option<LinkEvents>,
    next_sample: Instant,
}

/// Follow the namespaces until `done`, opening captures with `capture`.
pub fn follow(capture: CaptureOptions, done: Arc<AtomicBool>, tx: Sender<NsMsg>) {
    let mut held: BTreeMap<u32, Held> = BTreeMap::new();
    let mut next_id = 0u32;
    let mut said: HashSet<String> = HashSet::new();
    let mut say = |tx: &Sender<NsMsg>, note: String| {
        if said.len() < NOTES_KEPT && said.insert(note.clone()) {
            let _ = tx.send(NsMsg::Note(note));
        }
    };
    // Namespaces that could not be opened, not tried again until they go and come back.
    let mut refused: HashSet<u64> = HashSet::new();
    let mut next_list = Instant::now();
    while !done.load(Ordering::SeqCst) {
        if Instant::now() >= next_list {
            next_list = Instant::now() + LIST_EVERY;
            let mut notes = Vec::new();
            let listed = netns::list_all(&mut notes);
            for n in notes {
                say(&tx, format!("namespaces: {}", n.message));
            }
            let live: HashSet<u64> = listed.iter().map(|n| n.inode).collect();
            refused.retain(|i| live.contains(i));
            let gone: Vec<u32> = held
                .iter()
                .filter(|(_, h)| !live.contains(&h.inode))
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                held.remove(&id);
                if tx.send(NsMsg::Down(id)).is_err() {
                    return;
                }
            }
            let known: HashSet<u64> = held.values().map(|h| h.inode).collect();
            for ns in listed {
                if known.contains(&ns.inode) || refused.contains(&ns.inode) {
                    continue;
                }
                let id = next_id;
                match open(&ns, id, &capture) {
                    Ok((opened, h)) => {
                        next_id += 1;
                        held.insert(id, h);
                        if tx.send(NsMsg::Up(Box::new(opened))).is_err() {
                            return;
                        }
                    }
                    // Gone between the listing and the opening: not a problem.
                    Err(Refusal::Gone) => {}
                    Err(Refusal::Failed(why)) => {
                        refused.insert(ns.inode);
                        say(
                            &tx,
                            format!("namespace {} cannot be watched: {why}", ns.name),
                        );
                    }
                }
            }
        }
        wait_for_links(&mut held, next_list, &done, &tx);
        let now = Instant::now();
        for (id, h) in held.iter_mut() {
            if now < h.next_sample {
                continue;
            }
            h.next_sample = now + SAMPLE_EVERY;
            match netns::run_in_file(&h.file, &h.name, || {
                (read_reset_sample(), namespace_facts())
            }) {
                Ok((sample, facts)) => {
                    if tx.send(NsMsg::Sample(*id, sample)).is_err()
                        || tx.send(NsMsg::Facts(*id, facts)).is_err()
                    {
                        return;
                    }
                }
                Err(e) => say(&tx, format!("namespace {}: {e}", h.name)),
            }
        }
    }
}

/// Wait on the namespaces' netlink sockets until `until` (a quarter of a second at most, to see
/// `done`); read the facts again of each namespace whose links or addresses changed.
fn wait_for_links(
    held: &mut BTreeMap<u32, Held>,
    until: Instant,
    done: &AtomicBool,
    tx: &Sender<NsMsg>,
) {
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(held.len());
    let mut ids: Vec<u32> = Vec::with_capacity(held.len());
    for (id, h) in held.iter() {
        if let Some(link) = &h.link {
            fds.push(libc::pollfd {
                fd: link.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            ids.push(*id);
        }
    }
    let wait = until
        .saturating_duration_since(Instant::now())
        .min(Duration::from_millis(250));
    if fds.is_empty() {
        std::thread::sleep(wait);
        return;
    }
    // SAFETY: `fds` is a valid array of pollfd of the length given.
    let ready = unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            wait.as_millis() as i32,
        )
    };
    if ready <= 0 || done.load(Ordering::SeqCst) {
        return;
    }
    for (pfd, id) in fds.iter().zip(ids) {
        if pfd.revents == 0 {
            continue;
        }
        let Some(h) = held.get_mut(&id) else { continue };
        let changed = h.link.as_mut().is_some_and(LinkEvents::drain);
        if changed && let Ok(facts) = netns::run_in_file(&h.file, &h.name, namespace_facts) {
            let _ = tx.send(NsMsg::Facts(id, facts));
        }
    }
}

enum Refusal {
    Gone,
    Failed(String),
}

/// Open `ns` for watching: its descriptor (checked to be the namespace listed), a capture, its
/// facts, a netlink socket and the counters' baseline, all from inside it.
fn open(ns: &NetnsRef, id: u32, capture: &CaptureOptions) -> Result<(Opened, Held), Refusal> {
    let file = netns::open(&ns.path).map_err(|_| Refusal::Gone)?;
    if file.metadata().map(|m| m.ino()).ok() != Some(ns.inode) {
        return Err(Refusal::Gone);
    }
    netns::check_net_ns(&file).map_err(|e| Refusal::Failed(e.to_string()))?;
    let name: Arc<str> = ns.name.as_str().into();
    let cap = Capture::open_in_file(&file, &name, capture)
        .map_err(|e| Refusal::Failed(crate::error::chain(&e)))?;
    let (facts, link, baseline) = netns::run_in_file(&file, &name, || {
        (namespace_facts(), LinkEvents::open(), read_reset_sample())
    })
    .map_err(|e| Refusal::Failed(e.to_string()))?;
    let mut facts = facts;
    let link = match link {
        Ok(l) => Some(l),
        Err(e) => {
            facts.notes.push(format!(
                "address and link changes are read every {} s only: no netlink socket ({e})",
                SAMPLE_EVERY.as_secs()
            ));
            None
        }
    };
    let held = Held {
        inode: ns.inode,
        name: name.clone(),
        file,
        link,
        next_sample: Instant::now() + SAMPLE_EVERY,
    };
    Ok((
        Opened {
            id,
            inode: ns.inode,
            name,
            path: ns.path.clone(),
            capture: cap,
            facts,
            baseline,
        },
        held,
    ))
}
