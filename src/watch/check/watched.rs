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
    pub findings: Vec<Finding>,
    pub evidence: EvidenceWindow,
    pub counters: CounterHistory,
    /// Its findings as last judged.
    pub seen: Vec<Seen>,
    /// When watching it began: its first window ends `window` later.
    pub since: Instant,
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

    /// Judge the findings over the window ending at `now`: add their rows to `rows` and
    /// return the `finding` events of what changed since the last judging.
    pub fn judge(
        &mut self,
        now: Instant,
        window: Duration,
        reason_note: &str,
        rows: &mut Vec<FindingRow>,
    ) -> Vec<FindingEvent> {
        let evidence = self.evidence.total(now);
        let counters = self.counters.window();
        let verdicts = summary::verdicts(&self.findings, &evidence, &counters, reason_note);
        let first_window = now.saturating_duration_since(self.since) < window;
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
