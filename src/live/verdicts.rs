//! The verdict on each audit finding: confirmed only by resets whose mechanism is the rule's
//! own and, for a finding about one process, only by that process's resets (sent or received);
//! otherwise not seen or cannot check, with the reason. A verdict never contradicts the
//! counters it quotes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::evidence::Evidence;
use super::summary::{CounterWindow, ProcessCount, TOP};
use super::support::{
    is_forwarding_cause, is_middlebox_cause, no_socket_mechanism, scoped_process,
};
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
    /// For a host finding: the processes the audit suspected (holding sockets of the kind when
    /// it ran); the verdict is on the host, and `processes` names who really sent the resets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspected: Vec<FindingProcess>,
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

/// Counters that move exactly when a reset with one of these kernel reasons is sent.
fn reset_counter(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "TcpExt.TCPAbortOnClose" => &["TCP_ABORT_ON_CLOSE"],
        "TcpExt.TCPAbortOnLinger" => &["TCP_ABORT_ON_LINGER"],
        "TcpExt.TCPAbortOnMemory" => &["TCP_ABORT_ON_MEMORY"],
        "TcpExt.EmbryonicRsts" => &["INVALID_SYN"],
        _ => return None,
    })
}

/// "from nginx (pid 7) 3, curl (pid 9) 1, 1 of unknown process"
fn who(procs: &[ProcessCount], unknown: u64) -> String {
    let mut parts: Vec<String> = procs
        .iter()
        .take(TOP)
        .map(|p| format!("{} (pid {}) {}", p.comm, p.pid, p.count))
        .collect();
    if procs.len() > TOP {
        parts.push(format!("{} more processes", procs.len() - TOP));
    }
    if unknown > 0 {
        parts.push(format!("{unknown} of unknown process"));
    }
    parts.join(", ")
}

/// One row per finding: a host finding split per suspected process by the audit is one row.
fn rows(findings: &[Finding]) -> Vec<(Finding, Vec<FindingProcess>)> {
    let mut rows: Vec<(Finding, Vec<FindingProcess>)> = Vec::new();
    for f in findings {
        if f.subject == "host"
            && let Some(p) = &f.process
        {
            if let Some((_, suspects)) = rows
                .iter_mut()
                .find(|(g, _)| g.rule == f.rule && g.subject == "host" && g.process.is_none())
            {
                suspects.push(p.clone());
                continue;
            }
            let mut host = f.clone();
            host.process = None;
            rows.push((host, vec![p.clone()]));
        } else {
            rows.push((f.clone(), Vec::new()));
        }
    }
    rows
}

/// Verdicts for each finding.
pub fn verdicts(
    findings: &[Finding],
    tally: &Evidence,
    counters: &CounterWindow,
    reason_note: &str,
) -> Vec<FindingVerdict> {
    rows(findings)
        .into_iter()
        .map(|(f, suspected)| verdict(&f, suspected, tally, counters, reason_note))
        .collect()
}

/// What the window shows for one finding, as every kind of verdict reads it.
struct Seen<'a> {
    f: &'a Finding,
    tally: &'a Evidence,
    counters: &'a CounterWindow,
    /// Resets that support the finding.
    resets: u64,
    /// "; counters: X +1, Y +2" of the finding's evidence counters that moved.
    counters_text: String,
    /// "TCP_STATE or TCP_ABORT_ON_DATA".
    wanted: String,
}

impl Seen<'_> {
    /// Resets with one of `reasons` sent by any process, and who sent those of the finding's
    /// kind.
    fn by_anyone(&self, reasons: &[String]) -> (u64, Vec<ProcessCount>, u64) {
        let mut unscoped = self.f.clone();
        unscoped.process = None;
        let all = reasons
            .iter()
            .map(|r| self.tally.with_reason(&unscoped, r).1)
            .sum();
        let (procs, unknown) = self.tally.supporting_processes(&unscoped);
        (all, procs, unknown)
    }

    /// A counter that moves with every reset of one of the finding's reasons moved, and no
    /// such reset was captured (nor any whose cause could not be told): "TcpExt.X +N".
    fn uncaptured(&self, moves: &BTreeMap<String, u64>) -> Option<String> {
        moves.iter().find_map(|(name, d)| {
            let relevant: Vec<String> = reset_counter(name)?
                .iter()
                .filter(|r| self.f.evidence.rst_reasons.iter().any(|x| x == *r))
                .map(|r| r.to_string())
                .collect();
            if relevant.is_empty() || *d == 0 {
                return None;
            }
            let (seen, _, _) = self.by_anyone(&relevant);
            (seen == 0 && self.tally.untold == 0).then(|| format!("{name} +{d}"))
        })
    }

    /// Seed cause 5: flows this host forwards, which its own connections do not show.
    fn forwarding(&self) -> (Verdict, String) {
        let (resets, counters_text) = (self.resets, &self.counters_text);
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
                format!(
                    "no reset received on a connection idle longer than the idle timeout{counters_text}"
                ),
            )
        }
    }

    /// Seed causes 4 and 14: resets received on connections idle past the timeout.
    fn idle_flows(&self) -> (Verdict, String) {
        let counters_text = &self.counters_text;
        match (self.resets, scoped_process(self.f)) {
            (n, _) if n > 0 => (
                Verdict::Confirmed,
                format!(
                    "{n} resets received on connections idle longer than the idle timeout{counters_text}"
                ),
            ),
            (_, Some(p)) => (
                Verdict::NotSeen,
                format!(
                    "no reset received by {} (pid {}) on a connection idle longer than the idle \
                     timeout{counters_text}",
                    p.comm, p.pid
                ),
            ),
            (_, None) => (
                Verdict::NotSeen,
                format!(
                    "no reset received on a connection idle longer than the idle timeout{counters_text}"
                ),
            ),
        }
    }

    /// Only NO_SOCKET resets, and not with this rule's mechanism (seed causes 7, 8, 11).
    fn no_socket_only(&self) -> Option<(Verdict, String)> {
        let counter = no_socket_mechanism(&self.f.cause)?;
        let (all, seen) = self.tally.with_reason(self.f, "NO_SOCKET");
        let moved = self.counters.delta.get(counter).copied().unwrap_or(0);
        if all == 0 || self.resets != seen || (seen > 0 && moved > 0) {
            return None;
        }
        let why = if seen == 0 {
            "none answered a connection the socket table had seen: a closed port, a \
             port scan or a late SYN-ACK give the same reset"
                .to_string()
        } else {
            format!("{seen} answered connections seen before, but {counter} did not move")
        };
        Some((
            Verdict::CannotCheck,
            format!(
                "cannot tell: {all} NO_SOCKET resets sent here; {why}{}",
                self.counters_text
            ),
        ))
    }

    fn confirmed(&self) -> (Verdict, String) {
        let f = self.f;
        let from = match scoped_process(f) {
            Some(p) => format!(" from {} (pid {})", p.comm, p.pid),
            None => {
                let (procs, unknown) = self.tally.supporting_processes(f);
                if procs.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", who(&procs, unknown))
                }
            }
        };
        let how = match self.tally.supporting_derived(f) {
            0 => String::new(),
            n if n == self.resets => " (derived from where the kernel sent them)".to_string(),
            n => format!(" ({n} derived from where the kernel sent them)"),
        };
        (
            Verdict::Confirmed,
            format!(
                "{} resets with reason {}{how}{from}{}",
                self.resets, self.wanted, self.counters_text
            ),
        )
    }

    /// No reset of its kind: not seen, unless the window cannot say so.
    fn not_confirmed(&self, uncaptured: Option<String>, reason_note: &str) -> (Verdict, String) {
        let (wanted, counters_text) = (&self.wanted, &self.counters_text);
        if let Some(c) = uncaptured {
            return (
                Verdict::CannotCheck,
                format!(
                    "cannot tell: {c} says resets with reason {wanted} were sent, but none was \
                     captured (left out by --port or --iface, or sent on an interface not watched)\
                     {counters_text}"
                ),
            );
        }
        if let Some(p) = scoped_process(self.f)
            && let (n, procs, unknown) = self.by_anyone(&self.f.evidence.rst_reasons)
            && n > 0
        {
            return (
                Verdict::NotSeen,
                format!(
                    "no reset with reason {wanted} from or to {} (pid {}) in the window; the {n} \
                     with that reason came from {}{counters_text}",
                    p.comm,
                    p.pid,
                    who(&procs, unknown)
                ),
            );
        }
        if self.tally.untold > 0 {
            let why = if reason_note.is_empty() {
                String::new()
            } else {
                format!(" ({reason_note})")
            };
            return (
                Verdict::CannotCheck,
                format!(
                    "no reset with reason {wanted} was seen, but the cause of {} sent resets could \
                     not be told{why}{counters_text}",
                    self.tally.untold
                ),
            );
        }
        (
            Verdict::NotSeen,
            format!("no reset with reason {wanted} in the window{counters_text}"),
        )
    }
}

fn verdict(
    f: &Finding,
    suspected: Vec<FindingProcess>,
    tally: &Evidence,
    counters: &CounterWindow,
    reason_note: &str,
) -> FindingVerdict {
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
    let seen = Seen {
        f,
        tally,
        counters,
        resets: tally.supporting(f),
        counters_text: if moved.is_empty() {
            String::new()
        } else {
            format!("; counters: {}", moved.join(", "))
        },
        wanted: f.evidence.rst_reasons.join(" or "),
    };
    let (verdict, detail) = if is_forwarding_cause(&f.cause) {
        seen.forwarding()
    } else if is_middlebox_cause(&f.cause) {
        seen.idle_flows()
    } else if f.evidence.rst_reasons.is_empty() {
        (
            Verdict::CannotCheck,
            format!(
                "the rule names no kernel reset reason to look for{}",
                seen.counters_text
            ),
        )
    } else if let Some(v) = seen.no_socket_only() {
        v
    } else if seen.resets > 0 {
        seen.confirmed()
    } else {
        seen.not_confirmed(seen.uncaptured(&counter_moves), reason_note)
    };
    let processes = if scoped_process(f).is_none() && verdict == Verdict::Confirmed {
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
        suspected,
        verdict,
        resets: seen.resets,
        detail,
        counters: counter_moves,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::attribute::Cause;
    use crate::live::attribute::{EventOwner, OwnerSource};
    use crate::live::derive::CauseSource;
    use crate::live::summary::tests::{event, finding, tally};
    use crate::trace::capture::PacketDir;

    fn moved(c: &[(&str, u64)]) -> CounterWindow {
        CounterWindow {
            delta: c.iter().map(|(n, d)| (n.to_string(), *d)).collect(),
            ..Default::default()
        }
    }

    fn with_counters(mut f: Finding, counters: &[&str]) -> Finding {
        f.evidence.counters = counters
            .iter()
            .map(|c| serde_json::from_value(serde_json::json!({ "name": c })).unwrap())
            .collect();
        f
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
        // Kept or not, every event counts.
        for max_events in [10, 1, 0] {
            let t = tally(&events, max_events);
            let v = verdicts(&fs, &t.evidence, &CounterWindow::default(), "");
            assert_eq!(v[0].verdict, Verdict::Confirmed);
            assert_eq!(v[0].resets, 1, "only pid 10's resets");
            assert_eq!(v[1].verdict, Verdict::NotSeen);
            assert_eq!(
                v[2].verdict,
                Verdict::NotSeen,
                "NO_SOCKET alone is not a middlebox"
            );
            assert_eq!(v[3].verdict, Verdict::CannotCheck);
        }
        let mut t = tally(&events, 10);
        let kept = t.take_events(&fs);
        assert_eq!(kept[0].rules, vec!["linger-zero".to_string()]);
        assert!(
            kept[1].rules.is_empty(),
            "pid 11 is not the finding's process"
        );
        // A sent reset whose cause could not be told: "not seen" is not known.
        let mut untold = event(Cause::SentUnknown, None, Some(12), 0.2);
        untold.cause_source = CauseSource::CannotTell;
        let t = tally(&[untold], 10);
        let v = verdicts(
            &fs,
            &t.evidence,
            &CounterWindow::default(),
            "no reason field here",
        );
        assert_eq!(v[1].verdict, Verdict::CannotCheck, "{:?}", v[1]);
        assert!(
            v[1].detail
                .contains("could not be told (no reason field here)"),
            "{}",
            v[1].detail
        );
    }

    #[test]
    fn a_process_finding_is_confirmed_only_by_what_it_sent_or_received() {
        let f = vec![finding("linger-zero", &["TCP_STATE"], Some(10), "6")];
        // Sent by pid 11 to pid 10 (loopback): pid 10 received it.
        let mut to_10 = event(Cause::LingerZero, Some("TCP_STATE"), Some(11), 0.5);
        to_10.peer = Some(EventOwner {
            pid: 10,
            comm: "app".into(),
            source: OwnerSource::PeerSocket,
            workload: None,
        });
        // Of no known process: confirms no process's finding.
        let nobody = event(Cause::LingerZero, Some("TCP_STATE"), None, 0.6);
        let t = tally(&[to_10, nobody.clone()], 10);
        let v = verdicts(&f, &t.evidence, &CounterWindow::default(), "");
        assert_eq!(
            (v[0].verdict, v[0].resets),
            (Verdict::Confirmed, 1),
            "{:?}",
            v[0]
        );
        let t = tally(&[nobody], 10);
        let v = verdicts(&f, &t.evidence, &CounterWindow::default(), "");
        assert_eq!(v[0].verdict, Verdict::NotSeen, "{:?}", v[0]);
        assert!(
            v[0].detail.contains("1 of unknown process"),
            "{}",
            v[0].detail
        );
    }

    #[test]
    fn suspects_of_a_host_finding_are_one_row_confirmed_by_the_real_sender() {
        // Regression (memcached closing a client whose long command it did not read): the
        // audit split resets-abort-on-close under the two python3 clients holding unread
        // data; memcached sent the reset. One row, confirmed, naming memcached; the event links
        // to the finding.
        let suspect = |pid| {
            let mut f = with_counters(
                finding(
                    "resets-abort-on-close",
                    &["TCP_ABORT_ON_CLOSE"],
                    Some(pid),
                    "3",
                ),
                &["TcpExt.TCPAbortOnClose"],
            );
            f.subject = "host".into();
            f.process.as_mut().unwrap().comm = "python3".into();
            f
        };
        let fs = vec![suspect(20), suspect(21)];
        let mut e = event(Cause::UnreadClose, Some("TCP_ABORT_ON_CLOSE"), Some(7), 0.5);
        e.owner.as_mut().unwrap().comm = "memcached".into();
        let mut t = tally(&[e], 10);
        let v = verdicts(
            &fs,
            &t.evidence,
            &moved(&[("TcpExt.TCPAbortOnClose", 1)]),
            "",
        );
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(v[0].verdict, Verdict::Confirmed, "{:?}", v[0]);
        assert_eq!(v[0].process, None);
        assert_eq!(
            v[0].suspected.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [20, 21]
        );
        assert_eq!(v[0].processes[0].comm, "memcached");
        assert!(
            v[0].detail.contains("from memcached (pid 7) 1"),
            "{}",
            v[0].detail
        );
        let kept = t.take_events(&fs);
        assert_eq!(kept[0].rules, ["resets-abort-on-close".to_string()]);
    }

    #[test]
    fn a_verdict_never_contradicts_the_counters_it_quotes() {
        let f = vec![with_counters(
            finding("unread-close", &["TCP_ABORT_ON_CLOSE"], Some(20), "3"),
            &["TcpExt.TCPAbortOnClose"],
        )];
        let counters = moved(&[("TcpExt.TCPAbortOnClose", 1)]);
        // The counter moved, and no such reset was captured at all.
        let t = tally(&[], 10);
        let v = verdicts(&f, &t.evidence, &counters, "");
        assert_eq!(v[0].verdict, Verdict::CannotCheck, "{:?}", v[0]);
        assert!(
            v[0].detail.contains("TCPAbortOnClose +1"),
            "{}",
            v[0].detail
        );
        // A sent reset whose cause could not be told may be it: not "none captured".
        let mut untold = event(Cause::SentUnknown, None, Some(7), 0.5);
        untold.cause_source = CauseSource::CannotTell;
        let t = tally(&[untold], 10);
        let v = verdicts(&f, &t.evidence, &counters, "");
        assert_eq!(v[0].verdict, Verdict::CannotCheck, "{:?}", v[0]);
        assert!(v[0].detail.contains("could not be told"), "{}", v[0].detail);
        assert!(
            !v[0].detail.contains("none was captured"),
            "{}",
            v[0].detail
        );
        // Another process sent it: not seen from this one, and who did is said.
        let mut e = event(Cause::UnreadClose, Some("TCP_ABORT_ON_CLOSE"), Some(7), 0.5);
        e.owner.as_mut().unwrap().comm = "memcached".into();
        let t = tally(&[e], 10);
        let v = verdicts(&f, &t.evidence, &counters, "");
        assert_eq!(v[0].verdict, Verdict::NotSeen, "{:?}", v[0]);
        assert!(
            v[0].detail.contains("came from memcached (pid 7) 1"),
            "{}",
            v[0].detail
        );
    }

    #[test]
    fn an_idle_flow_finding_of_one_pool_is_not_confirmed_by_the_other_pools_resets() {
        // Regression: two pools without keepalive behind a middlebox that forgets idle flows;
        // pool A (pid 30) got the resets, pool B's (pid 31) finding was confirmed too.
        let fs = vec![
            finding("idle-without-keepalive", &[], Some(30), "4"),
            finding("idle-without-keepalive", &[], Some(31), "4"),
        ];
        let mut e = event(Cause::MiddleboxIdle, None, Some(30), 0.5);
        e.direction = PacketDir::Received;
        let t = tally(&[e.clone(), e.clone(), e], 10);
        let v = verdicts(&fs, &t.evidence, &CounterWindow::default(), "");
        assert_eq!((v[0].verdict, v[0].resets), (Verdict::Confirmed, 3));
        assert_eq!(v[1].verdict, Verdict::NotSeen, "{:?}", v[1]);
        assert!(v[1].detail.contains("(pid 31)"), "{}", v[1].detail);
    }

    #[test]
    fn derived_reasons_confirm_and_say_so() {
        let fs = vec![finding("unread-close", &["TCP_ABORT_ON_CLOSE"], None, "3")];
        let mut e = event(Cause::UnreadClose, None, Some(7), 0.5);
        e.cause_source = CauseSource::Derived;
        e.derived_reason = Some("TCP_ABORT_ON_CLOSE");
        let t = tally(&[e], 10);
        let v = verdicts(&fs, &t.evidence, &CounterWindow::default(), "");
        assert_eq!(v[0].verdict, Verdict::Confirmed);
        assert!(
            v[0].detail
                .contains("derived from where the kernel sent them"),
            "{}",
            v[0].detail
        );
        // A derived reason is never the kernel's: the event's own `reason` stays empty.
        assert_eq!(t.take_events_for_test()[0].reason, None);
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
        let v = verdicts(&fs, &t.evidence, &CounterWindow::default(), "");
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
        let moved = moved(&[("TcpExt.TCPAbortOnTimeout", 1)]);
        let v = verdicts(&fs, &t.evidence, &moved, "");
        assert_eq!(v[0].verdict, Verdict::Confirmed, "{:?}", v[0]);
        assert_eq!(v[1].verdict, Verdict::CannotCheck, "{:?}", v[1]);
        assert!(v[1].detail.contains("TCPTimeWaitOverflow did not move"));
        // Without resets of its kind: not seen.
        let t = tally(&[], 10);
        let v = verdicts(&fs, &t.evidence, &moved, "");
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
        let v = verdicts(&fs, &t.evidence, &CounterWindow::default(), "");
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
