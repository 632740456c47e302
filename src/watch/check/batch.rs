//! The per-reset path of the check that never ends: each reset counted into the namespace's
//! evidence and into a batch of counts by kind (namespace, direction, cause, reason, process),
//! and, when events are written, kept small for its line. The batch goes to the recorder
//! (labels, metrics, event lines) about once a second, or sooner when a process not seen
//! before appears (so its labels are read while it still runs): one metrics update per kind
//! and batch, not one per reset, and no allocation per reset beyond the event line asked for.

use std::net::SocketAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::live::attribute::Cause;
use crate::live::event::ResetEvent;
use crate::live::evidence::Evidence;
use crate::live::stream::Sink;
use crate::live::summary::supported_rules;
use crate::rules::Finding;
use crate::trace::capture::PacketDir;
use crate::watch::metrics::Direction;

/// What resets are counted apart by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    pub ns: u32,
    pub direction: Option<Direction>,
    pub cause: Cause,
    /// The kernel's reason, by address: reasons are kept once per run, so one name is one
    /// address (two addresses of one name are two kinds with the same labels, which add up).
    reason: usize,
    pub pid: Option<u32>,
}

/// Resets of one kind in a batch.
#[derive(Debug, Clone)]
pub struct Counted {
    pub count: u64,
    pub netns: Arc<str>,
    pub reason: Option<&'static str>,
    pub comm: Option<Arc<str>>,
}

/// A reset as its event line needs it.
#[derive(Debug, Clone)]
pub struct Line {
    pub time_ms: u64,
    pub direction: Option<Direction>,
    pub netns: Arc<str>,
    pub cause: Cause,
    pub reason: Option<&'static str>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub pid: Option<u32>,
    pub comm: Option<Arc<str>>,
    pub rule: Option<String>,
}

/// Counts and lines gathered since the last flush.
#[derive(Default)]
pub struct Batch {
    pub counts: HashMap<Kind, Counted>,
    pub lines: Vec<Line>,
    /// Lines not kept because the batch held `max_lines` already (counted as dropped).
    pub lines_dropped: u64,
    /// Processes flushed before (the recorder has read their labels).
    known_pids: HashSet<u32>,
    /// A process not flushed before is in the batch.
    pub new_pid: bool,
}

/// Processes remembered as labelled before a batch forgets them all (a host making processes
/// for a week).
const KNOWN_PIDS: usize = 65_536;

impl Batch {
    /// Take what was gathered, to flush it.
    pub fn take(&mut self) -> (HashMap<Kind, Counted>, Vec<Line>, u64) {
        if self.known_pids.len() > KNOWN_PIDS {
            self.known_pids.clear();
        }
        for k in self.counts.keys() {
            if let Some(pid) = k.pid {
                self.known_pids.insert(pid);
            }
        }
        self.new_pid = false;
        (
            std::mem::take(&mut self.counts),
            std::mem::take(&mut self.lines),
            std::mem::take(&mut self.lines_dropped),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.lines.is_empty() && self.lines_dropped == 0
    }

    fn count(&mut self, ns: u32, netns: &Arc<str>, e: &ResetEvent) {
        let pid = e.owner.as_ref().map(|o| o.pid);
        let kind = Kind {
            ns,
            direction: direction(e.direction),
            cause: e.cause,
            reason: e.reason.map_or(0, |r| r.as_ptr() as usize),
            pid,
        };
        match self.counts.get_mut(&kind) {
            Some(c) => c.count += 1,
            None => {
                if let Some(pid) = pid
                    && !self.known_pids.contains(&pid)
                {
                    self.new_pid = true;
                }
                self.counts.insert(
                    kind,
                    Counted {
                        count: 1,
                        netns: netns.clone(),
                        reason: e.reason,
                        comm: e.owner.as_ref().map(|o| o.comm.clone()),
                    },
                );
            }
        }
    }
}

/// The metrics' direction of a captured one (`None`: the capture could not tell).
pub fn direction(d: PacketDir) -> Option<Direction> {
    match d {
        PacketDir::Sent => Some(Direction::Sent),
        PacketDir::Received => Some(Direction::Received),
        PacketDir::Other => None,
    }
}

/// The sink of one namespace's stream for one delivery.
pub struct WatchSink<'a> {
    pub ns: u32,
    pub netns: &'a Arc<str>,
    pub evidence: &'a mut Evidence,
    pub batch: &'a mut Batch,
    /// Event lines are written: keep each reset for its line (at most `max_lines` a batch).
    pub lines: bool,
    pub max_lines: usize,
    pub findings: &'a [Finding],
    /// Set when a reset had no owner (the socket table may lack one).
    pub unowned: &'a mut bool,
}

impl WatchSink<'_> {
    fn take(&mut self, e: ResetEvent) {
        self.evidence.add(&e);
        self.batch.count(self.ns, self.netns, &e);
        if e.owner.is_none() {
            *self.unowned = true;
        }
        if !self.lines {
            return;
        }
        if self.batch.lines.len() >= self.max_lines {
            self.batch.lines_dropped += 1;
            return;
        }
        let (local, remote) = match e.direction {
            PacketDir::Received => (e.dst, e.src),
            _ => (e.src, e.dst),
        };
        self.batch.lines.push(Line {
            time_ms: e.ts_ms,
            direction: direction(e.direction),
            netns: self.netns.clone(),
            cause: e.cause,
            reason: e.reason,
            local,
            remote,
            pid: e.owner.as_ref().map(|o| o.pid),
            comm: e.owner.as_ref().map(|o| o.comm.clone()),
            rule: supported_rules(self.findings, &e).into_iter().next(),
        });
    }
}

impl Sink for WatchSink<'_> {
    fn event(&mut self, e: ResetEvent, _: &[Finding]) {
        self.take(e);
    }

    /// Nothing here says whether a socket took a reset: none waits for it.
    fn wants_outcome(&self, _: usize) -> bool {
        false
    }

    fn unlisted(&mut self, e: ResetEvent) {
        self.take(e);
    }
}
