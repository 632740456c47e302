//! The result of a live packet check: every reset, the per-second
//! timeline, totals by cause and a verdict per audit finding.
//!
//! Pure: built from events, counter samples and findings; rendered by
//! `report::packet_check`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::attribute::{Cause, EventOwner};
use crate::host::CounterSample;
use crate::packet::capture::{CaptureStats, PacketDir};
use crate::packet::live::correlate::MatchStats;
use crate::rules::{Finding, FindingProcess, Severity};

/// Version of the packet-check JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// One reset seen in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetEvent {
    /// Seconds since the start of the window.
    pub t: f64,
    /// Kernel timestamp of the frame, ms since the Unix epoch.
    pub ts_ms: u64,
    /// `sent` (by this namespace; on `lo` also received here) or `received`.
    pub direction: PacketDir,
    pub interface: String,
    /// Both ends are in this namespace (captured on `lo`).
    pub loopback: bool,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    /// The kernel's reason (`sk_rst_reason` name), for resets sent here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The sending socket's state as the kernel printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Whether a local socket took the reset (tcp_receive_reset), when that can be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_by_socket: Option<bool>,
    /// The local process it is attributed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<EventOwner>,
    pub cause: Cause,
    /// What the cause rests on.
    pub basis: String,
    /// Audit findings this reset supports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

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

/// The verdict on one finding of the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Resets of its kind were seen.
    Confirmed,
    /// None seen in the window.
    NotSeen,
    /// This window cannot tell (why is in `detail`).
    CannotCheck,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::NotSeen => "not seen",
            Self::CannotCheck => "cannot check",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingVerdict {
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<FindingProcess>,
    pub verdict: Verdict,
    /// Resets that confirm it.
    pub resets: u64,
    pub detail: String,
    /// Changes of the finding's evidence counters over the window.
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
    pub events: u64,
    /// Events dropped because the reader fell behind.
    pub dropped: u64,
    /// Events the kernel overwrote in the trace buffer before they were read.
    pub overrun: u64,
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
    pub events: Vec<ResetEvent>,
    /// What could not be told, and why.
    pub notes: Vec<String>,
}

const TOP: usize = 5;

/// Totals by cause, most frequent first.
pub fn summarize_causes(events: &[ResetEvent]) -> Vec<CauseSummary> {
    struct Acc {
        count: u64,
        reasons: BTreeMap<String, u64>,
        peers: HashMap<IpAddr, u64>,
        procs: HashMap<(u32, String), u64>,
    }
    let mut by: BTreeMap<Cause, Acc> = BTreeMap::new();
    for e in events {
        let acc = by.entry(e.cause).or_insert_with(|| Acc {
            count: 0,
            reasons: BTreeMap::new(),
            peers: HashMap::new(),
            procs: HashMap::new(),
        });
        acc.count += 1;
        if let Some(r) = &e.reason {
            *acc.reasons.entry(r.clone()).or_default() += 1;
        }
        let peer = match e.direction {
            PacketDir::Received => e.src.ip(),
            _ => e.dst.ip(),
        };
        *acc.peers.entry(peer).or_default() += 1;
        if let Some(o) = &e.owner {
            *acc.procs.entry((o.pid, o.comm.clone())).or_default() += 1;
        }
    }
    let mut out: Vec<CauseSummary> = by
        .into_iter()
        .map(|(cause, acc)| {
            let mut peers: Vec<PeerCount> = acc
                .peers
                .into_iter()
                .map(|(addr, count)| PeerCount { addr, count })
                .collect();
            peers.sort_by(|a, b| b.count.cmp(&a.count).then(a.addr.cmp(&b.addr)));
            peers.truncate(TOP);
            let mut procs: Vec<ProcessCount> = acc
                .procs
                .into_iter()
                .map(|((pid, comm), count)| ProcessCount { pid, comm, count })
                .collect();
            procs.sort_by(|a, b| b.count.cmp(&a.count).then(a.pid.cmp(&b.pid)));
            procs.truncate(TOP);
            CauseSummary {
                cause,
                title: cause.title().to_string(),
                count: acc.count,
                reasons: acc.reasons,
                top_peers: peers,
                top_processes: procs,
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
    out
}

/// Seed causes confirmed by resets received on idle connections rather than by a kernel reason.
fn is_middlebox_cause(cause: &str) -> bool {
    matches!(cause.trim(), "4" | "5" | "14")
}

/// Does this reset support this finding?
pub fn supports(f: &Finding, e: &ResetEvent) -> bool {
    if is_middlebox_cause(&f.cause) {
        return e.cause == Cause::MiddleboxIdle;
    }
    let Some(reason) = &e.reason else {
        return false;
    };
    if !f.evidence.rst_reasons.iter().any(|r| r == reason) {
        return false;
    }
    // A finding about one process is supported by that process's resets (or resets whose
    // process is unknown).
    match (&f.process, &e.owner) {
        (Some(p), Some(o)) => p.pid == o.pid,
        _ => true,
    }
}

/// Verdicts for each finding. `reasons_available`: the kernel reported reasons in this window.
pub fn verdicts(
    findings: &[Finding],
    events: &[ResetEvent],
    reasons_available: bool,
    counters: &CounterWindow,
    reason_note: &str,
) -> Vec<FindingVerdict> {
    findings
        .iter()
        .map(|f| {
            let resets = events.iter().filter(|e| supports(f, e)).count() as u64;
            let counter_moves: BTreeMap<String, u64> = f
                .evidence
                .counters
                .iter()
                .filter_map(|c| counters.delta.get(&c.name).map(|d| (c.name.clone(), *d)))
                .collect();
            let moved: Vec<String> = counter_moves
                .iter()
                .filter(|(_, d)| **d > 0)
                .map(|(n, d)| format!("{n} +{d}"))
                .collect();
            let counters_text = if moved.is_empty() {
                String::new()
            } else {
                format!("; counters: {}", moved.join(", "))
            };
            let (verdict, detail) = if is_middlebox_cause(&f.cause) {
                if resets > 0 {
                    (
                        Verdict::Confirmed,
                        format!("{resets} resets received on connections idle longer than the idle timeout{counters_text}"),
                    )
                } else {
                    (
                        Verdict::NotSeen,
                        format!("no reset received on a connection idle longer than the idle timeout{counters_text}"),
                    )
                }
            } else if f.evidence.rst_reasons.is_empty() {
                (
                    Verdict::CannotCheck,
                    format!("the rule names no kernel reset reason to look for{counters_text}"),
                )
            } else if !reasons_available {
                (
                    Verdict::CannotCheck,
                    format!(
                        "needs the kernel's reset reasons ({}), not available here: {reason_note}{counters_text}",
                        f.evidence.rst_reasons.join(", ")
                    ),
                )
            } else if resets > 0 {
                let who = f
                    .process
                    .as_ref()
                    .map(|p| format!(" from {} (pid {})", p.comm, p.pid))
                    .unwrap_or_default();
                (
                    Verdict::Confirmed,
                    format!(
                        "{resets} resets with reason {}{who}{counters_text}",
                        f.evidence.rst_reasons.join(" or ")
                    ),
                )
            } else {
                (
                    Verdict::NotSeen,
                    format!(
                        "no reset with reason {} in the window{counters_text}",
                        f.evidence.rst_reasons.join(" or ")
                    ),
                )
            };
            FindingVerdict {
                rule: f.rule.clone(),
                title: f.title.clone(),
                severity: f.severity,
                process: f.process.clone(),
                verdict,
                resets,
                detail,
                counters: counter_moves,
            }
        })
        .collect()
}

/// Changes between two samples (counters present in both; a counter that went down, after a
/// namespace was recreated, counts as 0).
pub fn delta(a: &CounterSample, b: &CounterSample) -> BTreeMap<String, u64> {
    b.values
        .iter()
        .filter_map(|(k, v)| {
            a.values
                .get(k)
                .map(|old| (k.clone(), v.saturating_sub(*old)))
        })
        .collect()
}

/// The per-second timeline from events and the counter samples.
pub fn timeline(
    events: &[ResetEvent],
    samples: &[CounterSample],
    started_at_ms: u64,
    duration_s: f64,
) -> Vec<Second> {
    let n = duration_s.ceil().max(1.0) as u64;
    let mut secs: Vec<Second> = (0..n)
        .map(|second| Second {
            second,
            resets: 0,
            by_cause: BTreeMap::new(),
            counters: BTreeMap::new(),
        })
        .collect();
    for e in events {
        let i = (e.t.max(0.0) as u64).min(n - 1) as usize;
        secs[i].resets += 1;
        *secs[i].by_cause.entry(e.cause).or_default() += 1;
    }
    for pair in samples.windows(2) {
        let at = pair[1].at_ms.saturating_sub(started_at_ms);
        let i = (at.saturating_sub(1) / 1000).min(n - 1) as usize;
        for (k, d) in delta(&pair[0], &pair[1]) {
            if d > 0 {
                *secs[i].counters.entry(k).or_default() += d;
            }
        }
    }
    secs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cause: Cause, reason: Option<&str>, pid: Option<u32>, t: f64) -> ResetEvent {
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
            reason: reason.map(str::to_string),
            state: None,
            taken_by_socket: None,
            owner: pid.map(|pid| EventOwner {
                pid,
                comm: "app".into(),
                source: super::super::attribute::OwnerSource::Task,
            }),
            cause,
            basis: String::new(),
            rules: vec![],
        }
    }

    fn finding(rule: &str, reasons: &[&str], pid: Option<u32>, cause: &str) -> Finding {
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

    #[test]
    fn verdicts_follow_reasons_and_processes() {
        let events = vec![
            event(Cause::LingerZero, Some("TCP_STATE"), Some(10), 0.5),
            event(Cause::LingerZero, Some("TCP_STATE"), Some(11), 1.5),
            event(Cause::NoSocket, Some("NO_SOCKET"), None, 1.7),
        ];
        let fs = vec![
            finding("linger-zero", &["TCP_STATE"], Some(10), "6"),
            finding("abort-on-overflow", &["INVALID_SYN"], None, "2b"),
            finding("keepalive-above-idle-timeout", &["NO_SOCKET"], None, "4"),
            finding("somaxconn-low", &[], None, "2"),
        ];
        let v = verdicts(&fs, &events, true, &CounterWindow::default(), "");
        assert_eq!(v[0].verdict, Verdict::Confirmed);
        assert_eq!(v[0].resets, 1, "only pid 10's resets");
        assert_eq!(v[1].verdict, Verdict::NotSeen);
        assert_eq!(
            v[2].verdict,
            Verdict::NotSeen,
            "NO_SOCKET alone is not a middlebox"
        );
        assert_eq!(v[3].verdict, Verdict::CannotCheck);
        let v = verdicts(
            &fs,
            &events,
            false,
            &CounterWindow::default(),
            "no reason field",
        );
        assert_eq!(v[0].verdict, Verdict::CannotCheck);
        assert!(v[0].detail.contains("no reason field"));
    }

    #[test]
    fn causes_and_timeline() {
        let events = vec![
            event(Cause::NoSocket, Some("NO_SOCKET"), Some(1), 0.1),
            event(Cause::NoSocket, Some("NO_SOCKET"), Some(1), 1.1),
            event(Cause::UnreadClose, Some("TCP_ABORT_ON_CLOSE"), Some(2), 1.2),
        ];
        let c = summarize_causes(&events);
        assert_eq!(c[0].cause, Cause::NoSocket);
        assert_eq!(c[0].count, 2);
        assert_eq!(c[0].top_processes[0].pid, 1);
        let s = |at_ms: u64, v: u64| CounterSample {
            at_ms,
            values: [("Tcp.OutRsts".to_string(), v)].into(),
        };
        let t = timeline(&events, &[s(1000, 5), s(2000, 6), s(3000, 8)], 1000, 2.0);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].resets, 1);
        assert_eq!(t[1].resets, 2);
        assert_eq!(t[0].counters.get("Tcp.OutRsts"), Some(&1));
        assert_eq!(t[1].counters.get("Tcp.OutRsts"), Some(&2));
    }
}
