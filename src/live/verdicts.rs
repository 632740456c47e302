//! The verdict on each audit finding: confirmed only by resets whose mechanism is the rule's
//! own, otherwise not seen or cannot check, with the reason.

use std::collections::BTreeMap;

use serde::Serialize;

use super::attribute::Cause;
use super::summary::{CounterWindow, ProcessCount, ResetEvent, TOP, Tally};
use crate::rules::{Finding, FindingProcess, Severity};

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
    /// For a finding about no one process: the processes whose resets confirm it, most first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessCount>,
}

/// The rules of `findings` that reset `e` supports.
pub fn supported_rules(findings: &[Finding], e: &ResetEvent) -> Vec<String> {
    let mut rules: Vec<String> = findings
        .iter()
        .filter(|f| supports(f, e))
        .map(|f| f.rule.clone())
        .collect();
    rules.dedup();
    rules
}

/// Seed causes confirmed by resets received on idle connections rather than by a kernel reason.
fn is_middlebox_cause(cause: &str) -> bool {
    matches!(cause.trim(), "4" | "5" | "14")
}

/// Does this reset support this finding?
pub fn supports(f: &Finding, e: &ResetEvent) -> bool {
    supports_key(
        f,
        e.cause,
        e.reason,
        e.owner.as_ref().map(|o| o.pid),
        e.connection_seen,
    )
}

/// For findings whose NO_SOCKET resets are the late answers to connections the kernel already
/// destroyed (seed causes 7 and 11: a retransmission or keepalive timeout; 8: TIME_WAIT
/// overflow): the counter that moves when that happens. A NO_SOCKET reset alone does not show
/// it: a closed port, a port scan or a late SYN-ACK give the same reset.
fn no_socket_mechanism(cause: &str) -> Option<&'static str> {
    match cause.trim() {
        "7" | "11" => Some("TcpExt.TCPAbortOnTimeout"),
        "8" => Some("TcpExt.TCPTimeWaitOverflow"),
        _ => None,
    }
}

/// Seed cause 5: conntrack forgetting flows this host forwards for others.
fn is_forwarding_cause(cause: &str) -> bool {
    cause.trim() == "5"
}

/// [`supports`] on what it looks at: the reset's cause, kernel reason, process and whether its
/// connection had been seen.
pub(super) fn supports_key(
    f: &Finding,
    cause: Cause,
    reason: Option<&str>,
    pid: Option<u32>,
    seen: bool,
) -> bool {
    if is_middlebox_cause(&f.cause) {
        return cause == Cause::MiddleboxIdle;
    }
    let Some(reason) = reason else {
        return false;
    };
    if !f.evidence.rst_reasons.iter().any(|r| r == reason) {
        return false;
    }
    if reason == "NO_SOCKET" && no_socket_mechanism(&f.cause).is_some() && !seen {
        return false;
    }
    // A finding about one process is supported by that process's resets (or resets whose
    // process is unknown).
    match (&f.process, pid) {
        (Some(p), Some(pid)) => p.pid == pid,
        _ => true,
    }
}

/// Verdicts for each finding. `reasons_available`: the kernel reported reasons in this window.
pub fn verdicts(
    findings: &[Finding],
    tally: &Tally,
    reasons_available: bool,
    counters: &CounterWindow,
    reason_note: &str,
) -> Vec<FindingVerdict> {
    findings
        .iter()
        .map(|f| {
            let resets = tally.supporting(f);
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
            let (verdict, detail) = if is_forwarding_cause(&f.cause) {
                if resets > 0 {
                    (
                        Verdict::CannotCheck,
                        format!(
                            "cannot tell: {resets} resets received on idle local connections, but the \
                             rule is about flows this host forwards for others, which they do not \
                             show{counters_text}"
                        ),
                    )
                } else {
                    (
                        Verdict::NotSeen,
                        format!("no reset received on a connection idle longer than the idle timeout{counters_text}"),
                    )
                }
            } else if is_middlebox_cause(&f.cause) {
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
            } else if let Some(counter) = no_socket_mechanism(&f.cause)
                && let (all, seen) = tally.with_reason(f, "NO_SOCKET")
                && all > 0
                && resets == seen
                && (seen == 0 || counters.delta.get(counter).copied().unwrap_or(0) == 0)
            {
                // Only NO_SOCKET resets, and not with this rule's mechanism.
                let why = if seen == 0 {
                    "none answered a connection the socket table had seen: a closed port, a \
                     port scan or a late SYN-ACK give the same reset"
                        .to_string()
                } else {
                    format!("{seen} answered connections seen before, but {counter} did not move")
                };
                (
                    Verdict::CannotCheck,
                    format!(
                        "cannot tell: {all} NO_SOCKET resets sent here; {why}{counters_text}"
                    ),
                )
            } else if resets > 0 {
                let who = match &f.process {
                    Some(p) => format!(" from {} (pid {})", p.comm, p.pid),
                    None => {
                        let (procs, unknown) = tally.supporting_processes(f);
                        let mut parts: Vec<String> = procs
                            .iter()
                            .take(TOP)
                            .map(|p| format!("{} (pid {}) {}", p.comm, p.pid, p.count))
                            .collect();
                        if procs.len() > TOP {
                            parts.push(format!("{} more processes", procs.len() - TOP));
                        }
                        if unknown > 0 && !parts.is_empty() {
                            parts.push(format!("{unknown} of unknown process"));
                        }
                        if parts.is_empty() {
                            String::new()
                        } else {
                            format!(" from {}", parts.join(", "))
                        }
                    }
                };
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
            let processes = if f.process.is_none() && verdict == Verdict::Confirmed {
                tally.supporting_processes(f).0
            } else {
                Vec::new()
            };
            FindingVerdict {
                processes,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::summary::tests::{event, finding, tally};
    use crate::trace::capture::PacketDir;

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
        // Kept or not, every event counts.
        for max_events in [10, 1, 0] {
            let t = tally(&events, max_events);
            let v = verdicts(&fs, &t, true, &CounterWindow::default(), "");
            assert_eq!(v[0].verdict, Verdict::Confirmed);
            assert_eq!(v[0].resets, 1, "only pid 10's resets");
            assert_eq!(v[1].verdict, Verdict::NotSeen);
            assert_eq!(
                v[2].verdict,
                Verdict::NotSeen,
                "NO_SOCKET alone is not a middlebox"
            );
            assert_eq!(v[3].verdict, Verdict::CannotCheck);
            let v = verdicts(&fs, &t, false, &CounterWindow::default(), "no reason field");
            assert_eq!(v[0].verdict, Verdict::CannotCheck);
            assert!(v[0].detail.contains("no reason field"));
        }
        let mut t = tally(&events, 10);
        let kept = t.take_events(&fs);
        assert_eq!(kept[0].rules, vec!["linger-zero".to_string()]);
        assert!(
            kept[1].rules.is_empty(),
            "pid 11 is not the finding's process"
        );
    }

    #[test]
    fn a_no_socket_reset_confirms_only_the_rules_whose_mechanism_it_shows() {
        // Regression: any NO_SOCKET reset (a port scan) confirmed retries2-low and
        // time-wait-near-max, and any reset received on an idle connection confirmed
        // conntrack-timeout-below-keepalive.
        let scan = event(Cause::NoSocket, Some("NO_SOCKET"), None, 0.5);
        let fs = vec![
            finding("retries2-low", &["NO_SOCKET"], None, "7"),
            finding("time-wait-near-max", &["NO_SOCKET"], None, "8"),
            finding(
                "resets-timeouts",
                &["TCP_KEEPALIVE_TIMEOUT", "NO_SOCKET"],
                None,
                "11",
            ),
            finding(
                "conntrack-timeout-below-keepalive",
                &["NO_SOCKET"],
                None,
                "5",
            ),
        ];
        let mut idle = event(Cause::MiddleboxIdle, None, None, 0.7);
        idle.direction = PacketDir::Received;
        let t = tally(&[scan.clone(), idle], 10);
        let v = verdicts(&fs, &t, true, &CounterWindow::default(), "");
        for f in &v {
            assert_eq!(f.verdict, Verdict::CannotCheck, "{f:?}");
            assert!(f.detail.starts_with("cannot tell"), "{f:?}");
        }
        assert!(v[0].detail.contains("port scan"), "{}", v[0].detail);
        assert!(v[3].detail.contains("forwards"), "{}", v[3].detail);
        // The answer to a connection that was there, with the rule's counter moving: confirmed.
        let mut late = scan;
        late.connection_seen = true;
        let t = tally(&[late], 10);
        let moved = CounterWindow {
            delta: [("TcpExt.TCPAbortOnTimeout".to_string(), 1)].into(),
            ..Default::default()
        };
        let v = verdicts(&fs, &t, true, &moved, "");
        assert_eq!(v[0].verdict, Verdict::Confirmed, "{:?}", v[0]);
        assert_eq!(v[1].verdict, Verdict::CannotCheck, "{:?}", v[1]);
        assert!(v[1].detail.contains("TCPTimeWaitOverflow did not move"));
        // Without resets of its kind: not seen.
        let t = tally(&[], 10);
        let v = verdicts(&fs, &t, true, &moved, "");
        assert_eq!(v[0].verdict, Verdict::NotSeen);
        assert_eq!(v[3].verdict, Verdict::NotSeen);
    }

    #[test]
    fn a_confirmed_host_finding_names_the_processes_of_its_resets() {
        let events = vec![
            event(
                Cause::UnreadClose,
                Some("TCP_ABORT_ON_CLOSE"),
                Some(10),
                0.5,
            ),
            event(
                Cause::UnreadClose,
                Some("TCP_ABORT_ON_CLOSE"),
                Some(10),
                0.6,
            ),
            event(
                Cause::UnreadClose,
                Some("TCP_ABORT_ON_CLOSE"),
                Some(11),
                0.7,
            ),
            event(Cause::UnreadClose, Some("TCP_ABORT_ON_CLOSE"), None, 0.8),
        ];
        let fs = vec![finding(
            "resets-abort-on-close",
            &["TCP_ABORT_ON_CLOSE"],
            None,
            "3",
        )];
        let t = tally(&events, 10);
        let v = verdicts(&fs, &t, true, &CounterWindow::default(), "");
        assert_eq!(v[0].verdict, Verdict::Confirmed);
        assert_eq!(v[0].resets, 4);
        let named: Vec<(u32, u64)> = v[0].processes.iter().map(|p| (p.pid, p.count)).collect();
        assert_eq!(named, [(10, 2), (11, 1)]);
        assert!(
            v[0].detail
                .contains("from app (pid 10) 2, app (pid 11) 1, 1 of unknown process"),
            "{}",
            v[0].detail
        );
    }
}
