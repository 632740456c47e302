//! Live packet check: watch real resets in one network namespace and tie
//! each to a cause, a process and an audit finding.
//!
//! The check is a pipeline of small stages over one window: the sources (`source`: the
//! kernel's trace or the reset sites, the capture, the counters, the namespace's facts, the
//! socket-table refresh with the audit) feed the namespace's [`stream::Stream`], which matches
//! frames with trace events (`correlate`), makes each a reset event with its owner and cause
//! (`events`, `attribute`, `derive`) and hands it to a sink: for a window (`window`), the
//! tally the report is built from (`summary`, `verdicts`, `support`) and the events file.
//!
//! Threads: the caller's thread runs the capture loop and the stages; one thread samples the
//! counters every second inside the namespace, one follows its links and addresses, one
//! refreshes the socket table (sockets, owners, options) and the audit findings; the ftrace
//! reader has its own. The caller's stop token (SIGINT/SIGTERM) ends the window early; every
//! guard (ftrace instance, probes, pcap file) is then closed normally.
//!
//! May import `host`, `rules` and `trace`; never the command layer. It does not render: it
//! returns a [`summary::PacketReport`].

pub mod attribute;
pub mod correlate;
pub mod counters;
pub mod derive;
mod error;
pub mod event;
pub mod events;
pub mod events_file;
pub mod evidence;
#[cfg(test)]
mod fixtures;
pub mod router;
mod slab;
mod snapshots;
mod source;
pub mod stream;
pub mod summary;
mod support;
mod verdicts;
mod waits;
mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;

use self::attribute::Cause;
pub use self::derive::{CauseMode, CauseSource};
pub use self::error::{BinaryTraceRefused, EventsFileError, RefreshError, RunError};
use self::events::Ctx;
pub use self::snapshots::Refresh;
pub use self::source::{TraceStart, Tracing, start_tracing};
use self::stream::Stream;
use self::summary::{PacketReport, Tally, TracingSummary};
use self::window::{Header, Window};
use crate::host::{facts, netns};
use crate::trace::caps::check_privileges;
use crate::trace::ftrace::TraceReader;

/// How long a frame waits for its trace event and the other way round.
pub const GRACE_MS: u64 = 300;

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// `--netns NAME|PATH`; `None` = the caller's namespace.
    pub netns: Option<String>,
    /// Seconds to watch.
    pub duration: f64,
    pub iface: Option<String>,
    pub port: Option<u16>,
    pub pcap: Option<PathBuf>,
    /// Rule parameters (`--set`), e.g. idle_timeout.
    pub params: Vec<(String, String)>,
    /// A tracefs root to use instead of finding or mounting one.
    pub tracefs: Option<PathBuf>,
    /// Keep at most this many events whole in the report (every reset is still counted).
    pub max_events: usize,
    /// Also write every event, as it is seen, to this file (JSON lines).
    pub events_file: Option<PathBuf>,
    /// Binary records or text.
    pub trace_reader: TraceReader,
    /// Set by the caller (on SIGINT/SIGTERM) to end the window early.
    pub stop: crate::stop::Stop,
    /// Where sent resets' causes come from (`--cause-source`).
    pub cause_source: CauseMode,
}

/// How far the window is, for a caller that shows progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Seconds watched so far, and in all.
    pub elapsed: f64,
    pub total: f64,
    /// Resets so far by cause.
    pub by_cause: BTreeMap<Cause, u64>,
    /// Frames the kernel dropped from the capture ring so far.
    pub drops: u64,
}

/// What the caller is told while the window runs: the library prints nothing itself.
pub trait Observer {
    /// Everything is armed and the window starts (a caller may start traffic now).
    fn watching(&mut self, netns: &str, seconds: f64);
    /// About four times a second while watching.
    fn progress(&mut self, _p: &Progress) {}
    /// The window is over; the report is being put together.
    fn finished(&mut self) {}
}

/// What the caller asked for that cannot be watched (the command names its flag).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LiveError {
    #[error(
        "give a number of seconds above 0 and at most {MAX_DURATION} (a week); the timeline keeps one entry a second"
    )]
    Duration(f64),
    #[error("expected seconds")]
    IdleTimeout(String),
}

/// Longest `--duration` accepted, in seconds.
pub const MAX_DURATION: f64 = 604_800.0;

/// The idle timeout (`--set idle_timeout=SECONDS`, default 300) a received reset's connection
/// is measured against.
pub fn idle_timeout(params: &[(String, String)]) -> Result<f64, LiveError> {
    match params.iter().rev().find(|(k, _)| k == "idle_timeout") {
        Some((_, v)) => v
            .parse::<f64>()
            .map_err(|_| LiveError::IdleTimeout(v.clone())),
        None => Ok(300.0),
    }
}

/// Watch for `opts.duration` seconds (or until `opts.stop` is set) and report. `refresh` re-reads
/// the watched namespace and audits it, once a second on a thread of its own.
pub fn run(
    opts: &LiveOptions,
    refresh: Refresh,
    observer: &mut dyn Observer,
) -> Result<PacketReport, RunError> {
    if !(opts.duration > 0.0 && opts.duration <= MAX_DURATION) {
        return Err(LiveError::Duration(opts.duration).into());
    }
    let idle_timeout_s = idle_timeout(&opts.params)?;
    let mut notes = check_privileges(opts.netns.is_some(), opts.tracefs.as_deref())?;
    let ns = opts.netns.as_deref().map(netns::resolve).transpose()?;
    let ns_name = ns
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "host".into());
    let facts = netns::in_namespace(ns.as_ref(), facts::namespace_facts)?;
    notes.extend(facts.notes.iter().cloned());

    let mut tracing = TracingSummary {
        cause_source: opts.cause_source,
        ..TracingSummary::default()
    };
    let start = TraceStart {
        tracefs: opts.tracefs.clone(),
        reader: opts.trace_reader,
        cause_source: opts.cause_source,
    };
    let mut trace = source::start_tracing(&start, &mut notes, &mut tracing)?;
    let (send_traced, receive_traced) = trace.traced();
    tracing.reasons = trace.reasons();
    let capture = source::open_capture(ns.as_ref(), opts)?;
    let (baseline, baseline_at) = source::baseline(ns.as_ref())?;
    let background = source::Background::spawn(ns.clone(), refresh)?;
    // The first socket table is read before the window starts: the listeners and connections
    // that exist then are known for its first resets (a slow host may take seconds to read it).
    background.first_table();

    let started_at_ms = crate::clock::now_ms();
    let ctx = Ctx {
        started_at_ms,
        facts,
        receive_traced,
        idle_timeout_s: Some(idle_timeout_s),
        bh_flag_known: trace.session.as_ref().is_some_and(|s| s.bh_flag),
        cause_mode: opts.cause_source,
    };
    let mut window = Window::new(
        opts,
        capture,
        trace.rx.take(),
        Stream::new(ctx, GRACE_MS, send_traced, receive_traced),
        Tally::new(started_at_ms, opts.duration, opts.max_events),
        background,
        baseline_at,
        notes,
    )?;
    // The baseline is taken before the window is announced, so that the change over the
    // window covers every reset in it (a caller may start traffic on the announcement).
    window.sample(baseline);
    observer.watching(&ns_name, opts.duration);
    let watched = window.watch(observer)?;
    observer.finished();
    window.report(
        trace,
        tracing,
        Header {
            netns: ns_name,
            started_at_ms,
            watched,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_give_the_matching_window_the_code_uses() {
        let docs = include_str!("../../docs/packet-check.md");
        assert!(
            docs.contains(&format!("within {GRACE_MS} ms")),
            "docs/packet-check.md must say events are matched within {GRACE_MS} ms"
        );
        assert!(!docs.contains("half a second"));
    }
}
