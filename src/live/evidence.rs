//! What the verdicts are judged on: the resets counted by what decides whether they support a
//! finding ([`SupportKey`]), the names of their processes, and the sent resets whose cause
//! could not be told. Small and mergeable: a window's tally holds one, and a check that never
//! ends keeps one per slice of time and adds up those of its window.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::derive::CauseSource;
use super::event::ResetEvent;
use super::summary::{ProcessCount, TRACKED};
use super::support::{SupportKey, supports_key};
use crate::rules::Finding;
use crate::trace::capture::PacketDir;

/// Resets by [`SupportKey`], with the names of their owners.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    support: HashMap<SupportKey, u64>,
    /// Names of the owners seen (pid -> comm), at most `2 * TRACKED`.
    comms: HashMap<u32, Arc<str>>,
    /// Sent resets whose cause could not be told.
    pub untold: u64,
}

impl Evidence {
    /// Count one reset.
    pub fn add(&mut self, e: &ResetEvent) {
        if let Some(o) = &e.owner {
            self.name(o.pid, &o.comm);
        }
        if e.direction == PacketDir::Sent && e.cause_source == CauseSource::CannotTell {
            self.untold += 1;
        }
        *self.support.entry(SupportKey::of(e)).or_default() += 1;
    }

    fn name(&mut self, pid: u32, comm: &Arc<str>) {
        let room = self.comms.len() < 2 * TRACKED;
        match self.comms.get_mut(&pid) {
            Some(c) if c != comm => *c = comm.clone(),
            Some(_) => {}
            None if room => {
                self.comms.insert(pid, comm.clone());
            }
            None => {}
        }
    }

    /// Add up `other` into this one (names: the later one's win).
    pub fn merge(&mut self, other: &Evidence) {
        for (k, n) in &other.support {
            *self.support.entry(*k).or_default() += n;
        }
        for (pid, comm) in &other.comms {
            self.name(*pid, comm);
        }
        self.untold += other.untold;
    }

    /// Resets counted.
    pub fn resets(&self) -> u64 {
        self.support.values().sum()
    }

    /// Distinct keys held (what the memory of one grows with).
    pub fn keys(&self) -> usize {
        self.support.len()
    }

    /// Resets that support finding `f`.
    pub fn supporting(&self, f: &Finding) -> u64 {
        self.support
            .iter()
            .filter(|(k, _)| supports_key(f, k))
            .map(|(_, n)| n)
            .sum()
    }

    /// Of the resets that support `f`, those whose reason was derived.
    pub fn supporting_derived(&self, f: &Finding) -> u64 {
        self.support
            .iter()
            .filter(|(k, _)| k.derived && supports_key(f, k))
            .map(|(_, n)| n)
            .sum()
    }

    /// The processes whose resets support finding `f` (most first), and how many supporting
    /// resets have no known process.
    pub fn supporting_processes(&self, f: &Finding) -> (Vec<ProcessCount>, u64) {
        let mut by_pid: HashMap<u32, u64> = HashMap::default();
        let mut unknown = 0;
        for (k, n) in &self.support {
            if !supports_key(f, k) {
                continue;
            }
            match k.owner {
                Some(p) => *by_pid.entry(p).or_default() += n,
                None => unknown += n,
            }
        }
        let mut list: Vec<ProcessCount> = by_pid
            .into_iter()
            .map(|(pid, count)| ProcessCount {
                pid,
                comm: self
                    .comms
                    .get(&pid)
                    .map_or_else(|| "?".into(), |c| c.to_string()),
                count,
                workload: None,
            })
            .collect();
        list.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
        (list, unknown)
    }

    /// Resets with kernel reason `reason` (whatever their mechanism), and how many of them
    /// support `f`.
    pub(super) fn with_reason(&self, f: &Finding, reason: &str) -> (u64, u64) {
        let mut all = 0;
        let mut supporting = 0;
        for (k, n) in &self.support {
            if k.reason == Some(reason) {
                all += n;
                if supports_key(f, k) {
                    supporting += n;
                }
            }
        }
        (all, supporting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::attribute::{Cause, EventOwner, OwnerSource};

    fn reset(pid: Option<u32>, comm: &str, reason: &'static str) -> ResetEvent {
        let a = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        ResetEvent {
            t: 0.0,
            ts_ms: 0,
            direction: PacketDir::Sent,
            interface: "lo".into(),
            loopback: true,
            src: a(80),
            dst: a(4000),
            seq: 0,
            ack: None,
            reason: Some(reason),
            state: None,
            taken_by_socket: None,
            connection_seen: false,
            owner: pid.map(|pid| EventOwner {
                pid,
                comm: comm.into(),
                source: OwnerSource::Task,
                workload: None,
            }),
            peer: None,
            cause: Cause::UnreadClose,
            cause_source: CauseSource::KernelReason,
            derived_reason: None,
            site: None,
            basis: "".into(),
            rules: Vec::new(),
        }
    }

    fn finding() -> Finding {
        serde_json::from_value(serde_json::json!({
            "rule": "resets-abort-on-close", "title": "t", "severity": "medium", "cause": "2",
            "subject": "host", "netns": "host", "message": "",
            "evidence": { "rst_reasons": ["TCP_ABORT_ON_CLOSE"] }, "fix": {}
        }))
        .unwrap()
    }

    #[test]
    fn merged_slices_count_as_one_window_would() {
        let events = [
            reset(Some(7), "nginx", "TCP_ABORT_ON_CLOSE"),
            reset(Some(7), "nginx", "TCP_ABORT_ON_CLOSE"),
            reset(Some(9), "redis", "TCP_ABORT_ON_CLOSE"),
            reset(None, "", "TCP_ABORT_ON_CLOSE"),
            reset(Some(9), "redis", "NO_SOCKET"),
        ];
        let mut whole = Evidence::default();
        let (mut a, mut b) = (Evidence::default(), Evidence::default());
        for (i, e) in events.iter().enumerate() {
            whole.add(e);
            if i < 2 { a.add(e) } else { b.add(e) }
        }
        let mut merged = Evidence::default();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged, whole);
        let f = finding();
        assert_eq!(merged.supporting(&f), 4);
        assert_eq!(merged.resets(), 5);
        let (procs, unknown) = merged.supporting_processes(&f);
        let got: Vec<(u32, &str, u64)> = procs
            .iter()
            .map(|p| (p.pid, p.comm.as_str(), p.count))
            .collect();
        assert_eq!((got, unknown), (vec![(7, "nginx", 2), (9, "redis", 1)], 1));
        assert_eq!(merged.with_reason(&f, "NO_SOCKET"), (1, 0));
    }
}
