//! One namespace being watched: its capture and stream, its socket table and findings, the
//! evidence and counters of its last window, and what its findings were last judged (for the
//! `finding` events); and the judging itself: the verdicts of packet-check over the window,
//! `pending` while the first window is not over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::window::{CounterHistory, EvidenceWindow};
use crate::live::attribute::SocketIndex;
use crate::live::stream::Stream;
use crate::live::summary::{self, FindingVerdict};
use crate::rules::Finding;
use crate::trace::capture::Capture;
use crate::watch::events::{FindingEvent, Seen, changes};
use crate::watch::metrics::{FindingRow, Verdict, add_rows};

/// A namespace being watched.
pub struct Watched {
    pub id: u32,
    pub inode: u64,
    pub name: Arc<str>,
    /// A path that named it when it was found (for the audit).
    pub path: std::path::PathBuf,
    pub capture: Capture,
    pub stream: Stream,
    pub index: SocketIndex,
    /// Its findings and what they are judged on.
    pub judging: Judging,
    /// A refresh of its socket table was asked for and has not come back.
    pub refreshing: bool,
    /// When the last refresh was asked, and how long the last one took.
    pub refreshed_at: Option<Instant>,
    pub refresh_took: Duration,
    /// Captured frames the kernel dropped (ring full), as last read.
    pub drops: u64,
}

impl Watched {
    /// Whether a socket-table refresh may be asked now: at most one at a time, and no more
    /// often than every 2 s or ten times the time the last one took.
    pub fn may_refresh(&self, now: Instant) -> bool {
        !self.refreshing
            && self.refreshed_at.is_none_or(|at| {
                now.saturating_duration_since(at)
                    >= (self.refresh_took * 10).max(Duration::from_secs(2))
            })
    }
}

/// A namespace's findings, judged over its last window.
pub struct Judging {
    pub name: Arc<str>,
    pub findings: Vec<Finding>,
    pub evidence: EvidenceWindow,
    pub counters: CounterHistory,
    /// Its findings as last judged.
    pub seen: Vec<Seen>,
    /// When watching it began: its first window ends `window` later.
    pub since: Instant,
    pub window: Duration,
}

impl Judging {
    pub fn new(name: Arc<str>, window: Duration, since: Instant) -> Self {
        Self {
            name,
            findings: Vec::new(),
            evidence: EvidenceWindow::new(window),
            counters: CounterHistory::new(window),
            seen: Vec::new(),
            since,
            window,
        }
    }

    /// Judge the findings over the window ending at `now`: add their rows to `rows` and
    /// return the `finding` events of what changed since the last judging.
    pub fn judge(
        &mut self,
        now: Instant,
        reason_note: &str,
        rows: &mut Vec<FindingRow>,
    ) -> Vec<FindingEvent> {
        let evidence = self.evidence.total(now);
        let counters = self.counters.window();
        let verdicts = summary::verdicts(&self.findings, &evidence, &counters, reason_note);
        let first_window = now.saturating_duration_since(self.since) < self.window;
        let verdict_of = |f: &Finding| verdict(&verdicts, f, first_window);
        add_rows(rows, &self.name, &self.findings, verdict_of);
        let seen: Vec<Seen> = self
            .findings
            .iter()
            .map(|f| Seen::of(f, verdict_of(f)))
            .collect();
        let events = changes(&self.seen, &seen, crate::clock::now_ms());
        self.seen = seen;
        events
    }

    /// The namespace is gone: the `cleared` events of its findings.
    pub fn cleared(&mut self) -> Vec<FindingEvent> {
        let events = changes(&self.seen, &[], crate::clock::now_ms());
        self.seen.clear();
        events
    }
}

/// The verdict on `f` among the window's `verdicts` (a host finding split by the audit per
/// suspected process has one row, without a process); `pending` while the first window is not
/// over and nothing confirmed it yet.
fn verdict(verdicts: &[FindingVerdict], f: &Finding, first_window: bool) -> Verdict {
    let pid = f.process.as_ref().map(|p| p.pid);
    let row = verdicts.iter().find(|v| {
        v.rule == f.rule
            && (v.process.as_ref().map(|p| p.pid) == pid
                || (f.subject == "host" && v.process.is_none()))
    });
    match row.map(|r| r.verdict) {
        Some(summary::Verdict::Confirmed) => Verdict::Confirmed,
        _ if first_window => Verdict::Pending,
        Some(summary::Verdict::NotSeen) => Verdict::NotSeen,
        Some(summary::Verdict::CannotCheck) | None => Verdict::CannotCheck,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::attribute::Cause;
    use crate::live::derive::CauseSource;
    use crate::live::event::ResetEvent;
    use crate::trace::capture::PacketDir;

    fn finding() -> Finding {
        serde_json::from_value(serde_json::json!({
            "rule": "resets-abort-on-close", "title": "t", "severity": "low", "cause": "2",
            "subject": "host", "netns": "ns1", "message": "m", "exposure": "latent",
            "evidence": { "rst_reasons": ["TCP_ABORT_ON_CLOSE"] }, "fix": {}
        }))
        .unwrap()
    }

    fn unread_close() -> ResetEvent {
        ResetEvent {
            t: 0.0,
            ts_ms: 0,
            direction: PacketDir::Sent,
            interface: "lo".into(),
            loopback: true,
            src: "127.0.0.1:80".parse().unwrap(),
            dst: "127.0.0.1:4000".parse().unwrap(),
            seq: 0,
            ack: None,
            reason: Some("TCP_ABORT_ON_CLOSE"),
            state: None,
            taken_by_socket: None,
            connection_seen: false,
            owner: None,
            peer: None,
            cause: Cause::UnreadClose,
            cause_source: CauseSource::KernelReason,
            derived_reason: None,
            site: None,
            basis: "".into(),
            rules: Vec::new(),
        }
    }

    fn verdicts(j: &mut Judging, at: Instant) -> (Vec<Verdict>, Vec<(String, Verdict)>) {
        let mut rows = Vec::new();
        let events = j.judge(at, "", &mut rows);
        (
            rows.iter().map(|r| r.verdict).collect(),
            events
                .iter()
                .map(|e| (format!("{:?}", e.change), e.verdict))
                .collect(),
        )
    }

    #[test]
    fn pending_in_the_first_window_confirmed_by_its_resets_then_not_seen_once_they_are_old() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut j = Judging::new("ns1".into(), s(60), t0);
        j.findings = vec![finding()];
        assert_eq!(
            verdicts(&mut j, t0 + s(10)),
            (
                vec![Verdict::Pending],
                vec![("Appeared".into(), Verdict::Pending)]
            )
        );
        j.evidence.current(t0 + s(20)).add(&unread_close());
        assert_eq!(
            verdicts(&mut j, t0 + s(30)),
            (
                vec![Verdict::Confirmed],
                vec![("Changed".into(), Verdict::Confirmed)]
            )
        );
        // Still in the window: nothing changed, no event.
        assert_eq!(
            verdicts(&mut j, t0 + s(70)),
            (vec![Verdict::Confirmed], vec![])
        );
        // The resets left the window (60 s after their slice began).
        assert_eq!(
            verdicts(&mut j, t0 + s(81)),
            (
                vec![Verdict::NotSeen],
                vec![("Changed".into(), Verdict::NotSeen)]
            )
        );
        let cleared = j.cleared();
        assert_eq!(cleared.len(), 1);
        assert_eq!(format!("{:?}", cleared[0].change), "Cleared");
    }
}
