//! The last `--window` of one namespace, sliding: the verdicts' evidence kept in slices of a
//! twentieth of the window (added up when the verdicts are judged), and the counter samples
//! that cover the window. Memory is bounded by the number of slices and, in each, by
//! [`MAX_KEYS`] distinct kinds of reset.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::host::CounterSample;
use crate::live::evidence::Evidence;
use crate::live::summary::{CounterWindow, delta};

/// Slices a window is cut into.
const SLICES: u32 = 20;

/// Distinct kinds of reset (cause, reason, owner, peer) one slice counts apart; past it a new
/// slice starts early, so memory stays bounded while nothing is lost.
pub const MAX_KEYS: usize = 4096;

/// The evidence of the last `window`, in slices.
pub struct EvidenceWindow {
    window: Duration,
    slice: Duration,
    slices: VecDeque<(Instant, Evidence)>,
}

impl EvidenceWindow {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            slice: (window / SLICES).max(Duration::from_secs(1)),
            slices: VecDeque::new(),
        }
    }

    /// The slice resets seen at `now` go into (a new one when the last is full or old; slices
    /// older than the window go).
    pub fn current(&mut self, now: Instant) -> &mut Evidence {
        let fresh = self.slices.back().is_some_and(|(at, e)| {
            now.saturating_duration_since(*at) < self.slice && e.keys() < MAX_KEYS
        });
        if !fresh {
            self.forget(now);
            self.slices.push_back((now, Evidence::default()));
        }
        &mut self.slices.back_mut().expect("just pushed").1
    }

    fn forget(&mut self, now: Instant) {
        while self
            .slices
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
        {
            self.slices.pop_front();
        }
    }

    /// The evidence of the window ending at `now`.
    pub fn total(&mut self, now: Instant) -> Evidence {
        self.forget(now);
        let mut all = Evidence::default();
        for (_, e) in &self.slices {
            all.merge(e);
        }
        all
    }

    /// Slices held.
    pub fn slices(&self) -> usize {
        self.slices.len()
    }
}

/// The counter samples covering the last `window` (and the one just before it).
pub struct CounterHistory {
    window_ms: u64,
    samples: VecDeque<CounterSample>,
}

impl CounterHistory {
    pub fn new(window: Duration) -> Self {
        Self {
            window_ms: window.as_millis() as u64,
            samples: VecDeque::new(),
        }
    }

    /// Take in a sample; those no longer needed go.
    pub fn add(&mut self, s: CounterSample) {
        let now = s.at_ms;
        self.samples.push_back(s);
        // Keep the newest sample at or before the window's start, to measure from.
        while self.samples.len() > 2 && self.samples[1].at_ms <= now.saturating_sub(self.window_ms)
        {
            self.samples.pop_front();
        }
    }

    /// The change of the counters over the window, as the verdicts read it.
    pub fn window(&self) -> CounterWindow {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => CounterWindow {
                delta: delta(a, b),
                start: Some(a.clone()),
                end: Some(b.clone()),
            },
            _ => CounterWindow::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample(at_ms: u64, v: u64) -> CounterSample {
        CounterSample {
            at_ms,
            values: BTreeMap::from([("TcpExt.TCPAbortOnClose".to_string(), v)]),
        }
    }

    #[test]
    fn counters_change_over_the_window_only() {
        let mut h = CounterHistory::new(Duration::from_secs(60));
        for (i, v) in [0u64, 5, 5, 9, 12].iter().enumerate() {
            h.add(sample(i as u64 * 30_000, *v));
        }
        // Samples at 0, 30, 60, 90, 120 s: the window is 60..120 s.
        assert_eq!(h.len(), 3);
        assert_eq!(h.window().delta["TcpExt.TCPAbortOnClose"], 7);
    }

    #[test]
    fn evidence_older_than_the_window_goes() {
        use crate::live::attribute::Cause;
        use crate::live::derive::CauseSource;
        use crate::trace::capture::PacketDir;
        let reset = crate::live::event::ResetEvent {
            t: 0.0,
            ts_ms: 0,
            direction: PacketDir::Sent,
            interface: "lo".into(),
            loopback: true,
            src: "127.0.0.1:1".parse().unwrap(),
            dst: "127.0.0.1:2".parse().unwrap(),
            seq: 0,
            ack: None,
            reason: Some("NO_SOCKET"),
            state: None,
            taken_by_socket: None,
            connection_seen: false,
            owner: None,
            peer: None,
            cause: Cause::NoSocket,
            cause_source: CauseSource::KernelReason,
            derived_reason: None,
            site: None,
            basis: "".into(),
            rules: Vec::new(),
        };
        let mut w = EvidenceWindow::new(Duration::from_secs(100));
        let t0 = Instant::now();
        w.current(t0).add(&reset);
        w.current(t0 + Duration::from_secs(1)).add(&reset);
        w.current(t0 + Duration::from_secs(50)).add(&reset);
        assert_eq!(w.slices(), 2, "5 s slices: the first two resets share one");
        assert_eq!(w.total(t0 + Duration::from_secs(60)).resets(), 3);
        assert_eq!(w.total(t0 + Duration::from_secs(100)).resets(), 1);
        assert_eq!(w.total(t0 + Duration::from_secs(150)).resets(), 0);
        assert_eq!(w.slices(), 0);
    }
}
