//! The result of a live packet check: every reset, the per-second
//! timeline, totals by cause and a verdict per audit finding.
//!
//! Pure: built from events, counter samples and findings; rendered by
//! `report::packet_check`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::attribute::Cause;
pub use super::event::ResetEvent;
pub use super::evidence::Evidence;
pub use super::support::{scoped_process, supported_rules, supports};
pub use super::verdicts::{FindingVerdict, Verdict, verdicts};
use crate::host::CounterSample;
use crate::live::correlate::MatchStats;
use crate::rules::Finding;
use crate::trace::capture::{CaptureStats, PacketDir};

/// Version of the packet-check JSON.
pub const SCHEMA_VERSION: u32 = 2;

/// Resets of one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CauseSummary {
    pub cause: Cause,
    pub title: String,
    pub count: u64,
    /// Kernel reasons among them.
    pub reasons: BTreeMap<String, u64>,
    /// Remote addresses with the most resets.
    pub top_peers: Vec<PeerCount>,
    /// Local processes with the most resets.
    pub top_processes: Vec<ProcessCount>,
    /// On loopback, the local processes the resets were sent to (for a TIME_WAIT answer: the
    /// ones that wrote late), most first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_peer_processes: Vec<ProcessCount>,
    /// More distinct peers or processes than are counted exactly (see `TRACKED`): the top
    /// lists may miss or undercount some.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerCount {
    pub addr: IpAddr,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessCount {
    pub pid: u32,
    pub comm: String,
    pub count: u64,
    /// Its systemd unit, container and pod (when it has any of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Arc<crate::host::workload::Workload>>,
}

/// One second of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the start (this bucket covers [second, second + 1)).
    pub second: u64,
    pub resets: u64,
    pub by_cause: BTreeMap<Cause, u64>,
    /// Counter changes during this second (from the samples taken each second).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

/// How tracing went.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TracingSummary {
    /// Kernel reasons were available and collected.
    pub reasons: bool,
    /// The private instance used (removed at exit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// How the trace was read: `binary` (trace_pipe_raw) or `text` (trace_pipe).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader: Option<crate::trace::ftrace::TraceReader>,
    /// Where sent resets' causes were asked to come from (`--cause-source`).
    pub cause_source: super::derive::CauseMode,
    /// The reset sites were probed (kprobes), so sent resets' causes were derived from where
    /// the kernel sent them.
    pub sites: bool,
    pub events: u64,
    /// Events dropped because the reader fell behind.
    pub dropped: u64,
    /// Events the kernel overwrote in the trace buffer before they were read.
    pub overrun: u64,
    /// Trace lines or records of the traced events that could not be decoded (each an event
    /// lost).
    pub undecoded: u64,
    /// Events about addresses that are not this namespace's (other namespaces).
    pub foreign: u64,
    pub matching: MatchStats,
}

/// Counters at the start and the end, and the change.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct CounterWindow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<CounterSample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<CounterSample>,
    pub delta: BTreeMap<String, u64>,
}

/// The whole result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PacketReport {
    pub schema: u32,
    pub mode: &'static str,
    pub netns: String,
    pub started_at_ms: u64,
    /// Seconds actually watched.
    pub duration_s: f64,
    /// Stopped early by SIGINT/SIGTERM.
    pub interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub resets: u64,
    pub sent: u64,
    pub received: u64,
    pub capture: CaptureStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<String>,
    pub tracing: TracingSummary,
    pub causes: Vec<CauseSummary>,
    pub findings: Vec<FindingVerdict>,
    pub counters: CounterWindow,
    pub timeline: Vec<Second>,
    /// The first `--max-events` resets, whole.
    pub events: Vec<ResetEvent>,
    /// Resets counted everywhere above but not listed in `events`.
    pub events_omitted: u64,
    /// What could not be told, and why.
    pub notes: Vec<String>,
}

pub(super) const TOP: usize = 5;

/// Distinct peers (or processes) counted exactly per cause before the least frequent are
/// dropped; past that, the top lists are approximate (`CauseSummary::approximate`).
pub const TRACKED: usize = 1024;

/// Counts per key, keeping at most `2 * TRACKED` keys: when full, only the `TRACKED` most
/// frequent stay (their counts are exact unless they were themselves dropped once).
#[derive(Debug)]
struct TopCounter<K> {
    counts: HashMap<K, u64>,
    pruned: bool,
}

impl<K: std::hash::Hash + Eq + Clone + Ord> TopCounter<K> {
    fn new() -> Self {
        Self {
            counts: HashMap::default(),
            pruned: false,
        }
    }

    fn add(&mut self, key: K) {
        *self.counts.entry(key).or_default() += 1;
        if self.counts.len() > 2 * TRACKED {
            let mut all: Vec<(K, u64)> = self.counts.drain().collect();
            all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            all.truncate(TRACKED);
            self.counts.extend(all);
            self.pruned = true;
        }
    }

    /// The `n` most frequent, most frequent first (ties by key).
    fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut all: Vec<(K, u64)> = self.counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[derive(Debug)]
struct CauseAcc {
    count: u64,
    reasons: BTreeMap<&'static str, u64>,
    peers: TopCounter<IpAddr>,
    procs: TopCounter<(u32, Arc<str>)>,
    peer_procs: TopCounter<(u32, Arc<str>)>,
}

/// Everything the report says about the resets of a window, built as they arrive.
///
/// Memory grows with the length of the window (one timeline entry a second), the number of
/// distinct causes, reasons and processes, and at most `2 * TRACKED` peers per cause; not
/// with the number of resets. Only the first `max_events` events are kept whole.
#[derive(Debug)]
pub struct Tally {
    started_at_ms: u64,
    pub resets: u64,
    pub sent: u64,
    pub received: u64,
    causes: BTreeMap<Cause, CauseAcc>,
    /// What the verdicts are judged on.
    pub evidence: Evidence,
    seconds: Vec<Second>,
    /// Index of the window's last second: later stamps (a clock step) count there.
    last_second: usize,
    events: Vec<ResetEvent>,
    max_events: usize,
    /// Events counted but not kept (past `max_events`).
    pub omitted: u64,
    first_sample: Option<CounterSample>,
    last_sample: Option<CounterSample>,
}

impl Tally {
    /// A window starting at `started_at_ms` (Unix ms) and meant to last `duration_s`.
    pub fn new(started_at_ms: u64, duration_s: f64, max_events: usize) -> Self {
        Self {
            started_at_ms,
            last_second: (duration_s.ceil().clamp(1.0, 1e9) as usize) - 1,
            resets: 0,
            sent: 0,
            received: 0,
            causes: BTreeMap::new(),
            evidence: Evidence::default(),
            seconds: Vec::new(),
            events: Vec::new(),
            max_events,
            omitted: 0,
            first_sample: None,
            last_sample: None,
        }
    }

    fn second(&mut self, i: usize) -> &mut Second {
        let i = i.min(self.last_second);
        while self.seconds.len() <= i {
            let second = self.seconds.len() as u64;
            self.seconds.push(Second {
                second,
                resets: 0,
                by_cause: BTreeMap::new(),
                counters: BTreeMap::new(),
            });
        }
        &mut self.seconds[i]
    }

    /// Whether an event counted after `waiting` more would still be kept whole.
    pub fn keeps_more(&self, waiting: usize) -> bool {
        self.events.len().saturating_add(waiting) < self.max_events
    }

    /// Count one reset without listing it.
    pub fn add_unlisted(&mut self, e: ResetEvent) {
        self.count(&e);
        self.omitted += 1;
    }

    /// Count one reset (and keep it, while fewer than `max_events` are kept).
    pub fn add(&mut self, e: ResetEvent) {
        self.count(&e);
        if self.events.len() < self.max_events {
            self.events.push(e);
        } else {
            self.omitted += 1;
        }
    }

    /// Count one reset in every total.
    fn count(&mut self, e: &ResetEvent) {
        self.resets += 1;
        match e.direction {
            PacketDir::Sent => self.sent += 1,
            PacketDir::Received => self.received += 1,
            _ => {}
        }
        let acc = self.causes.entry(e.cause).or_insert_with(|| CauseAcc {
            count: 0,
            reasons: BTreeMap::new(),
            peers: TopCounter::new(),
            procs: TopCounter::new(),
            peer_procs: TopCounter::new(),
        });
        acc.count += 1;
        if let Some(r) = e.reason {
            *acc.reasons.entry(r).or_default() += 1;
        }
        acc.peers.add(match e.direction {
            PacketDir::Received => e.src.ip(),
            _ => e.dst.ip(),
        });
        if let Some(p) = &e.peer {
            acc.peer_procs.add((p.pid, p.comm.clone()));
        }
        if let Some(o) = &e.owner {
            acc.procs.add((o.pid, o.comm.clone()));
        }
        self.evidence.add(e);
        let i = e.t.max(0.0) as usize;
        let sec = self.second(i);
        sec.resets += 1;
        *sec.by_cause.entry(e.cause).or_default() += 1;
    }

    /// Take in the next counter sample: its change from the previous one goes into the second
    /// it ends.
    pub fn add_sample(&mut self, s: CounterSample) {
        if let Some(prev) = self.last_sample.take() {
            let at = s.at_ms.saturating_sub(self.started_at_ms);
            let i = (at.saturating_sub(1) / 1000) as usize;
            let moved: Vec<(String, u64)> = delta(&prev, &s)
                .into_iter()
                .filter(|(_, d)| *d > 0)
                .collect();
            let sec = self.second(i);
            for (k, d) in moved {
                *sec.counters.entry(k).or_default() += d;
            }
        } else {
            self.first_sample = Some(s.clone());
        }
        self.last_sample = Some(s);
    }

    /// Resets so far by cause.
    pub fn by_cause(&self) -> BTreeMap<Cause, u64> {
        self.causes.iter().map(|(c, a)| (*c, a.count)).collect()
    }

    /// Totals by cause, most frequent first.
    pub fn causes(&self) -> Vec<CauseSummary> {
        let mut out: Vec<CauseSummary> = self
            .causes
            .iter()
            .map(|(cause, acc)| CauseSummary {
                cause: *cause,
                title: cause.title().to_string(),
                count: acc.count,
                reasons: acc
                    .reasons
                    .iter()
                    .map(|(r, n)| (r.to_string(), *n))
                    .collect(),
                top_peers: acc
                    .peers
                    .top(TOP)
                    .into_iter()
                    .map(|(addr, count)| PeerCount { addr, count })
                    .collect(),
                top_processes: acc
                    .procs
                    .top(TOP)
                    .into_iter()
                    .map(|((pid, comm), count)| ProcessCount {
                        pid,
                        comm: comm.to_string(),
                        count,
                        workload: None,
                    })
                    .collect(),
                top_peer_processes: acc
                    .peer_procs
                    .top(TOP)
                    .into_iter()
                    .map(|((pid, comm), count)| ProcessCount {
                        pid,
                        comm: comm.to_string(),
                        count,
                        workload: None,
                    })
                    .collect(),
                approximate: acc.peers.pruned || acc.procs.pruned || acc.peer_procs.pruned,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
        out
    }

    /// The counters at the start and the end of the window, and the change.
    pub fn counter_window(&self) -> CounterWindow {
        CounterWindow {
            delta: match (&self.first_sample, &self.last_sample) {
                (Some(a), Some(b)) => delta(a, b),
                _ => BTreeMap::new(),
            },
            start: self.first_sample.clone(),
            end: self.last_sample.clone(),
        }
    }

    /// The per-second timeline of a window `duration_s` long (a reset or sample stamped after
    /// the end counts in the last second).
    pub fn timeline(&self, duration_s: f64) -> Vec<Second> {
        let n = duration_s.ceil().max(1.0) as usize;
        let mut secs: Vec<Second> = (0..n as u64)
            .map(|second| Second {
                second,
                resets: 0,
                by_cause: BTreeMap::new(),
                counters: BTreeMap::new(),
            })
            .collect();
        for s in &self.seconds {
            let into = &mut secs[(s.second as usize).min(n - 1)];
            into.resets += s.resets;
            for (c, k) in &s.by_cause {
                *into.by_cause.entry(*c).or_default() += k;
            }
            for (c, k) in &s.counters {
                *into.counters.entry(c.clone()).or_default() += k;
            }
        }
        secs
    }

    /// The events kept, each listing the findings (of `findings`) it supports.
    pub fn take_events(&mut self, findings: &[Finding]) -> Vec<ResetEvent> {
        let mut events = std::mem::take(&mut self.events);
        for e in &mut events {
            e.rules = supported_rules(findings, e);
        }
        events
    }
}

/// Changes between two samples (counters present in both; see [`crate::host::counters::delta`]).
pub fn delta(a: &CounterSample, b: &CounterSample) -> BTreeMap<String, u64> {
    crate::host::counters::delta(&a.values, &b.values)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::live::attribute::EventOwner;
    use std::net::SocketAddr;

    pub(in crate::live) fn event(
        cause: Cause,
        reason: Option<&'static str>,
        pid: Option<u32>,
        t: f64,
    ) -> ResetEvent {
        ResetEvent {
            t,
            ts_ms: 0,
            direction: PacketDir::Sent,
            interface: "lo".into(),
            loopback: true,
            src: "127.0.0.1:80".parse().unwrap(),
            dst: "127.0.0.1:5000".parse().unwrap(),
            seq: 0,
            ack: None,
            reason,
            state: None,
            taken_by_socket: None,
            connection_seen: false,
            peer: None,
            owner: pid.map(|pid| EventOwner {
                pid,
                comm: "app".into(),
                source: super::super::attribute::OwnerSource::Task,
                workload: None,
            }),
            cause,
            cause_source: super::super::derive::CauseSource::KernelReason,
            derived_reason: None,
            site: None,
            basis: "".into(),
            rules: vec![],
        }
    }

    pub(in crate::live) fn finding(
        rule: &str,
        reasons: &[&str],
        pid: Option<u32>,
        cause: &str,
    ) -> Finding {
        // Through serde so fields added to Finding later (with defaults) need no change here.
        let mut v = serde_json::json!({
            "rule": rule, "title": rule, "severity": "medium", "cause": cause,
            "subject": "socket", "netns": "x", "message": "",
            "evidence": { "rst_reasons": reasons }, "fix": {}
        });
        if let Some(pid) = pid {
            v["process"] = serde_json::json!({ "pid": pid, "comm": "app" });
        }
        serde_json::from_value(v).unwrap()
    }

    impl Tally {
        /// The events kept, as they are (for tests).
        pub(in crate::live) fn take_events_for_test(mut self) -> Vec<ResetEvent> {
            self.take_events(&[])
        }
    }

    pub(in crate::live) fn tally(events: &[ResetEvent], max_events: usize) -> Tally {
        let mut t = Tally::new(1000, 2.0, max_events);
        for e in events {
            t.add(e.clone());
        }
        t
    }

    #[test]
    fn causes_and_timeline() {
        let events = vec![
            event(Cause::NoSocket, Some("NO_SOCKET"), Some(1), 0.1),
            event(Cause::NoSocket, Some("NO_SOCKET"), Some(1), 1.1),
            event(Cause::UnreadClose, Some("TCP_ABORT_ON_CLOSE"), Some(2), 1.2),
            // A clock step: stamped long after the window, counted in its last second.
            event(Cause::NoSocket, Some("NO_SOCKET"), Some(1), 86_400.0),
        ];
        let mut t = tally(&events, 2);
        assert_eq!((t.resets, t.sent, t.received, t.omitted), (4, 4, 0, 2));
        let c = t.causes();
        assert_eq!(c[0].cause, Cause::NoSocket);
        assert_eq!(c[0].count, 3);
        assert_eq!(c[0].reasons.get("NO_SOCKET"), Some(&3));
        assert_eq!(c[0].top_processes[0].pid, 1);
        assert!(!c[0].approximate);
        let s = |at_ms: u64, v: u64| CounterSample {
            at_ms,
            values: [("Tcp.OutRsts".to_string(), v)].into(),
        };
        for (at, v) in [(1000, 5), (2000, 6), (3000, 8)] {
            t.add_sample(s(at, v));
        }
        let tl = t.timeline(2.0);
        assert_eq!(tl.len(), 2);
        assert_eq!(tl[0].resets, 1);
        assert_eq!(tl[1].resets, 3);
        assert_eq!(tl[0].counters.get("Tcp.OutRsts"), Some(&1));
        assert_eq!(tl[1].counters.get("Tcp.OutRsts"), Some(&2));
        let w = t.counter_window();
        assert_eq!(w.delta.get("Tcp.OutRsts"), Some(&3));
        assert_eq!(w.start.unwrap().at_ms, 1000);
        // A window cut short: what came later folds into its last second.
        let short = t.timeline(1.0);
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].resets, 4);
        assert_eq!(t.take_events(&[]).len(), 2);
    }

    #[test]
    fn many_peers_keep_the_heavy_ones_and_say_the_list_is_approximate() {
        let mut t = Tally::new(0, 10.0, 0);
        let heavy: SocketAddr = "10.9.9.9:443".parse().unwrap();
        for i in 0..(5 * TRACKED as u32) {
            let mut e = event(Cause::Received, None, None, 1.0);
            e.direction = PacketDir::Received;
            e.src = SocketAddr::new(
                IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000u32 + i)),
                443,
            );
            t.add(e);
            if i % 4 == 0 {
                let mut e = event(Cause::Received, None, None, 1.0);
                e.direction = PacketDir::Received;
                e.src = heavy;
                t.add(e);
            }
        }
        let c = t.causes();
        assert_eq!(c[0].count, 5 * TRACKED as u64 + 5 * TRACKED as u64 / 4);
        assert!(c[0].approximate);
        assert_eq!(c[0].top_peers[0].addr, heavy.ip());
        assert_eq!(c[0].top_peers[0].count, 5 * TRACKED as u64 / 4);
        assert!(t.causes.get(&Cause::Received).unwrap().peers.counts.len() <= 2 * TRACKED);
    }
}
