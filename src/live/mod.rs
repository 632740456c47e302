//! Live packet check: watch real resets in one network namespace and tie
//! each to a cause, a process and an audit finding.
//!
//! Threads: the caller's thread runs the capture loop and the matching; one
//! thread samples the counters every second inside the namespace; one
//! refreshes the host snapshot (sockets, owners, options) and the audit
//! findings; the ftrace reader has its own. the caller's stop token (SIGINT/SIGTERM) ends
//! the window early; every guard (ftrace instance, pcap file) is then closed normally.
//!
//! This module does not render: it returns a [`summary::PacketReport`].

pub mod attribute;
pub mod correlate;
pub mod counters;
pub mod derive;
mod events;
mod slab;
mod snapshots;
pub mod summary;
mod verdicts;
mod waits;

use crate::trace::caps::check_privileges;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use self::attribute::{Cause, TaskResolver};
use self::correlate::{CapturedReset, Correlator, Matched, ReceiveOutcome};
pub use self::derive::{CauseMode, CauseSource};
use self::events::{Ctx, Delivery, EventStream};
pub use self::snapshots::Refresh;
use self::snapshots::{Shared, snapshot_loop};
use self::summary::{PacketReport, Tally, TracingSummary};
use crate::host::counters::{SampleError, read_out_rsts, read_reset_sample};
use crate::host::facts::{self, NamespaceFacts};
use crate::host::{CounterSample, netns};
use crate::trace::capture::{Capture, CaptureOptions, parse_rst};
use crate::trace::ftrace::{self, TraceEvent, TraceOptions, TraceReader, TraceSession, Tracefs};
use crate::trace::pcap::PcapSink;

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

/// Watch for `opts.duration` seconds (or until `opts.stop` is set) and report. `refresh` re-reads
/// the watched namespace and audits it, once a second on a thread of its own.
pub fn run(
    opts: &LiveOptions,
    refresh: Refresh,
    observer: &mut dyn Observer,
) -> anyhow::Result<PacketReport> {
    if !(opts.duration > 0.0 && opts.duration <= MAX_DURATION) {
        return Err(LiveError::Duration(opts.duration).into());
    }
    let mut notes = check_privileges(opts.netns.is_some(), opts.tracefs.as_deref())?;
    let ns = opts.netns.as_deref().map(netns::resolve).transpose()?;
    let ns_name = ns
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "host".into());
    let interrupted = &opts.stop;
    let facts = netns::in_namespace(ns.as_ref(), facts::namespace_facts)?;
    notes.extend(facts.notes.iter().cloned());

    // The kernel's reasons, or the reset sites.
    let mut tracing = TracingSummary {
        cause_source: opts.cause_source,
        ..TracingSummary::default()
    };
    let Tracing {
        session,
        mut rx,
        reason_note,
    } = start_tracing(opts, &mut notes, &mut tracing)?;
    let mut trace_rx = rx.take();
    let send_traced = session
        .as_ref()
        .is_some_and(|s| s.support.send_reset || s.sites);
    let receive_traced = session.as_ref().is_some_and(|s| s.support.receive_reset);
    tracing.reasons = session
        .as_ref()
        .is_some_and(|s| s.support.send_reset && !s.sites && s.support.reasons.is_some());

    // The capture opens only once tracing is armed, so that every reset captured can meet
    // its trace event.
    let cap_opts = CaptureOptions {
        iface: opts.iface.clone(),
        port: opts.port,
        ..Default::default()
    };
    let mut capture = match &ns {
        Some(ns) => Capture::open_in(ns, &cap_opts)?,
        None => Capture::open(&cap_opts)?,
    };
    // The counter baseline is read once the capture is open, and a frame stamped before the
    // read ended is left out (its reset is in the baseline), so that the resets captured and
    // the change of Tcp.OutRsts cover the same window.
    // Tcp.OutRsts is read last and alone (one read of snmp), and the cut is the time right
    // after that read.
    let (mut baseline, fast) =
        netns::in_namespace(ns.as_ref(), || (read_reset_sample(), read_out_rsts()))?;
    let baseline_at = match (&mut baseline, fast) {
        (Ok(b), Some((out_rsts, at))) => {
            b.values.insert("Tcp.OutRsts".to_string(), out_rsts);
            at
        }
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    };
    let mut before_baseline = 0u64;
    let mut stream = opts
        .events_file
        .as_deref()
        .map(EventStream::create)
        .transpose()?;
    let mut pcap = opts
        .pcap
        .as_deref()
        .map(|p| PcapSink::create(p, cap_opts.snaplen))
        .transpose()?;

    // Background work.
    let done = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Shared::default()));
    let snap_thread = {
        let (shared, done) = (shared.clone(), done.clone());
        std::thread::Builder::new()
            .name("rstaudit-snapshot".into())
            .spawn(move || snapshot_loop(refresh, shared, done))
            .context("starting the snapshot thread")?
    };
    let (ctx_tx, counter_rx) = std::sync::mpsc::channel::<Result<CounterSample, SampleError>>();
    let sampler_thread = {
        let (ns, done) = (ns.clone(), done.clone());
        std::thread::Builder::new()
            .name("rstaudit-counters".into())
            .spawn(move || {
                let work = move || counters::sample_loop(Duration::from_secs(1), done, ctx_tx);
                netns::in_namespace(ns.as_ref(), work)
            })
            .context("starting the counter thread")?
    };

    let (facts_tx, facts_rx) = std::sync::mpsc::channel::<NamespaceFacts>();
    let facts_thread = {
        let (ns, done) = (ns.clone(), done.clone());
        std::thread::Builder::new()
            .name("rstaudit-links".into())
            .spawn(move || {
                let work = move || facts::follow_facts(Duration::from_secs(1), done, facts_tx);
                netns::in_namespace(ns.as_ref(), work)
            })
            .context("starting the link and address thread")?
    };

    let idle_timeout_s = match opts.params.iter().rev().find(|(k, _)| k == "idle_timeout") {
        Some((_, v)) => Some(
            v.parse::<f64>()
                .map_err(|_| LiveError::IdleTimeout(v.clone()))?,
        ),
        None => Some(300.0),
    };
    // The first socket table is read before the window starts: the listeners and connections
    // that exist then are known for its first resets (a slow host may take seconds to read it).
    first_table(&shared, &snap_thread);
    let started_at_ms = crate::clock::now_ms();
    let mono = Instant::now();
    let mut ctx = Ctx {
        started_at_ms,
        facts,
        resolver: TaskResolver::default(),
        receive_traced,
        idle_timeout_s,
        bh_flag_known: session.as_ref().is_some_and(|s| s.bh_flag),
        cause_mode: opts.cause_source,
    };
    let mut correlator = Correlator::new(GRACE_MS, send_traced, receive_traced);
    let mut matched: Vec<Matched> = Vec::new();
    let mut outcomes: Vec<ReceiveOutcome> = Vec::new();
    let mut delivery = Delivery::default();
    let mut tally = Tally::new(started_at_ms, opts.duration, opts.max_events);
    let mut counter_notes: Vec<String> = Vec::new();
    let mut pcap_error: Option<String> = None;
    let window = Duration::from_secs_f64(opts.duration);
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let mut last_drops = 0u64;
    let lo = capture.loopback_ifindex;

    // The baseline is taken before the window is announced, so that the change over the
    // window covers every reset in it (a caller may start traffic on the announcement).
    take_sample(&mut tally, &mut counter_notes, baseline);
    observer.watching(&ns_name, opts.duration);
    let mut draining_until: Option<Instant> = None;
    let mut watched = 0.0;
    loop {
        let now = Instant::now();
        let stop = interrupted.is_stopped() || now.duration_since(mono) >= window;
        if stop && draining_until.is_none() {
            // Let the trace events of the last frames arrive.
            draining_until = Some(now + Duration::from_millis(GRACE_MS));
            watched = now.duration_since(mono).as_secs_f64().min(opts.duration);
        }
        if let Some(until) = draining_until
            && now >= until
        {
            break;
        }
        let now_ms = mono.elapsed().as_millis() as u64;
        let capturing = draining_until.is_none();
        capture
            .poll(
                Duration::from_millis(if capturing { 100 } else { 20 }),
                &mut |f| {
                    if !capturing {
                        return;
                    }
                    if f.ts < baseline_at {
                        before_baseline += 1;
                        return;
                    }
                    let Ok(seg) = parse_rst(f.ip) else { return };
                    if let Some(sink) = pcap.as_mut()
                        && pcap_error.is_none()
                        && let Err(e) = sink.write(f)
                    {
                        pcap_error = Some(format!("{e:#}"));
                    }
                    correlator.packet(
                        CapturedReset {
                            ts_ms: f.ts.as_millis() as u64,
                            dir: f.dir(),
                            ifindex: f.ifindex,
                            loopback: Some(f.ifindex) == lo,
                            seg,
                        },
                        now_ms,
                        &mut matched,
                    );
                },
            )
            .context("reading the capture ring")?;
        for later in facts_rx.try_iter() {
            for n in &later.notes {
                if !notes.contains(n) {
                    notes.push(n.clone());
                }
            }
            ctx.facts.update(later);
        }
        if let Some(rx) = trace_rx.as_mut() {
            for ev in rx.try_iter() {
                match ev {
                    TraceEvent::NewTask(t) => {
                        ctx.resolver.new_task(&t);
                        continue;
                    }
                    TraceEvent::Rename(r) => {
                        ctx.resolver.rename(&r);
                        continue;
                    }
                    // Joined to its site's event by the reader; one left over has none.
                    TraceEvent::Stack(_) => continue,
                    _ => tracing.events += 1,
                }
                match ev {
                    TraceEvent::SendReset(s) => {
                        let ours = s.src.is_none_or(|a| {
                            let a = correlate::canon(a);
                            a.ip().is_unspecified() || ctx.facts.addresses.contains(&a.ip())
                        });
                        // Every event goes to the matcher (a captured frame is the proof that
                        // a reset is this namespace's); `foreign` counts those whose address
                        // is not configured here, as far as known when they arrive.
                        if !ours {
                            tracing.foreign += 1;
                        }
                        correlator.send_event(s, now_ms, &mut matched);
                    }
                    TraceEvent::ReceiveReset(r) => {
                        let ours = r.local.is_none_or(|a| {
                            ctx.facts.addresses.contains(&correlate::canon(a).ip())
                        });
                        if !ours {
                            tracing.foreign += 1;
                        }
                        correlator.receive_event(r, now_ms);
                    }
                    TraceEvent::NewTask(_) | TraceEvent::Rename(_) | TraceEvent::Stack(_) => {}
                }
            }
        }
        correlator.expire(now_ms, &mut matched);
        correlator.receive_outcomes(&mut outcomes);
        if !matched.is_empty() || !outcomes.is_empty() {
            let sh = shared.lock().unwrap_or_else(|p| p.into_inner());
            for m in &matched {
                delivery.matched(
                    m,
                    &mut ctx,
                    &sh.index,
                    &mut tally,
                    stream.as_mut(),
                    &sh.findings,
                );
            }
            matched.clear();
            for o in outcomes.drain(..) {
                delivery.outcome(o, &mut tally, stream.as_mut(), &sh.findings);
            }
        }
        for s in counter_rx.try_iter() {
            take_sample(&mut tally, &mut counter_notes, s);
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            if let Ok(st) = capture.stats() {
                last_drops = st.drops;
            }
            observer.progress(&Progress {
                elapsed: mono.elapsed().as_secs_f64().min(opts.duration),
                total: opts.duration,
                by_cause: tally.by_cause(),
                drops: last_drops,
            });
        }
    }
    let duration_s = watched;
    correlator.flush(&mut matched);
    done.store(true, Ordering::SeqCst);
    // A socket-table refresh can take a while on a busy host: wait a little, then go on with
    // what the finished refreshes gave (the thread ends with the process).
    let waited = Instant::now();
    while !snap_thread.is_finished() && waited.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let refresh_running = !snap_thread.is_finished();
    let shared = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    if refresh_running {
        notes.push(
            "a socket-table refresh was still running at the end; owners and findings come from the finished ones"
                .into(),
        );
    }
    if shared.index.snapshots == 0 && shared.audit_error.is_none() {
        notes.push("no socket table was read during the window: no owners from sockets, no verdicts per finding".into());
    }
    correlator.receive_outcomes(&mut outcomes);
    for m in matched.drain(..) {
        delivery.matched(
            &m,
            &mut ctx,
            &shared.index,
            &mut tally,
            stream.as_mut(),
            &shared.findings,
        );
    }
    for o in outcomes.drain(..) {
        delivery.outcome(o, &mut tally, stream.as_mut(), &shared.findings);
    }
    debug_assert_eq!(delivery.held(), 0, "every held event has its outcome");
    if let Some(note) = stream.and_then(EventStream::finish) {
        notes.push(note);
    }
    observer.finished();
    if let Some(s) = &session {
        tracing.dropped = s.counts.dropped.load(Ordering::Relaxed);
        tracing.overrun = s.overruns();
        tracing.undecoded = s.counts.undecoded();
        notes.extend(reader_notes(tracing.undecoded, s.counts.stopped()));
    }
    let pre_6_10 = send_traced && !tracing.reasons;
    notes.extend(missing_events_note(
        correlator.stats.sent_without_event,
        tracing.overrun,
        tracing.dropped,
        pre_6_10,
    ));
    if before_baseline > 0 {
        notes.push(format!(
            "{before_baseline} resets captured before the counters were first read were left out: \
             they happened before the window (the baseline of Tcp.OutRsts has them)"
        ));
    }
    if let Some(s) = session
        && let Err(e) = s.finish()
    {
        notes.push(format!("{e:#}"));
    }
    tracing.matching = correlator.stats;
    let capture_stats = capture.stats().context("reading PACKET_STATISTICS")?;
    drop(capture);
    let pcap_path = opts.pcap.as_ref().map(|p| p.display().to_string());
    if let Some(sink) = pcap {
        sink.finish()?;
    }
    if let Some(e) = pcap_error {
        notes.push(format!("writing the pcap file stopped: {e}"));
    }
    match facts_thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => notes.push(format!("following links and addresses: {e:#}")),
        Err(_) => notes.push("the link and address thread panicked".into()),
    }
    match sampler_thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => notes.push(format!("counters: {e:#}")),
        Err(_) => notes.push("the counter thread panicked".into()),
    }
    for s in counter_rx.try_iter() {
        take_sample(&mut tally, &mut counter_notes, s);
    }
    for n in counter_notes {
        if !notes.contains(&n) {
            notes.push(n);
        }
    }
    let counters = tally.counter_window();

    notes.extend(shared.notes.iter().cloned());
    if let Some(e) = &shared.audit_error {
        notes.push(format!(
            "the audit could not run ({e}): no verdicts per finding"
        ));
    }
    if !tracing.reasons && !send_traced {
        notes.push(
            "without the kernel's reasons, resets sent here are counted by direction and counters only"
                .into(),
        );
    }
    if capture_stats.drops > 0 {
        notes.push(format!(
            "the kernel dropped {} captured resets (ring full): counts are a lower bound; compare Tcp.OutRsts",
            capture_stats.drops
        ));
    }
    if tally.omitted > 0 {
        notes.push(format!(
            "the report lists the first {} of {} resets (--max-events); every reset is counted in \
             the causes, the timeline and the verdicts{}",
            tally.resets - tally.omitted,
            tally.resets,
            match &opts.events_file {
                Some(p) => format!(", and {} has them all", p.display()),
                None => "; --events-file FILE writes them all".into(),
            }
        ));
    }
    let findings = shared.findings;
    let verdicts = summary::verdicts(&findings, &tally, &counters, &reason_note);
    let timeline = tally.timeline(duration_s);
    let events = tally.take_events(&findings);
    Ok(PacketReport {
        schema: summary::SCHEMA_VERSION,
        mode: "live",
        netns: ns_name,
        started_at_ms,
        duration_s,
        interrupted: interrupted.is_stopped(),
        iface: opts.iface.clone(),
        port: opts.port,
        resets: tally.resets,
        sent: tally.sent,
        received: tally.received,
        capture: capture_stats,
        pcap: pcap_path,
        tracing,
        causes: tally.causes(),
        findings: verdicts,
        counters,
        timeline,
        events,
        events_omitted: tally.omitted,
        notes,
    })
}

/// How long the window waits for its first socket table before it starts without one.
const FIRST_TABLE_WAIT: Duration = Duration::from_secs(60);

/// Wait until the refresh thread has read the socket table once (or given up on it).
fn first_table(shared: &Mutex<Shared>, thread: &std::thread::JoinHandle<()>) {
    let began = Instant::now();
    while began.elapsed() < FIRST_TABLE_WAIT && !thread.is_finished() {
        let sh = shared.lock().unwrap_or_else(|p| p.into_inner());
        if sh.index.snapshots > 0 || sh.audit_error.is_some() {
            return;
        }
        drop(sh);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The trace session of the window and what the verdicts say when it has no reasons.
struct Tracing {
    session: Option<TraceSession>,
    rx: Option<ftrace::TraceReceiver>,
    reason_note: String,
}

/// Whether this kernel's trace names the reason of every reset it sends: a reason field
/// (6.10) filled in for resets from a close or a timer too (6.12).
fn kernel_names_every_reason(support: &ftrace::ResetSupport) -> bool {
    support.send_reset
        && support.reasons.is_some()
        && crate::host::kernel::running()
            .version
            .is_none_or(|v| (v.major, v.minor) >= (6, 12))
}

/// Find tracefs, remove what dead runs left, and start the session: with the reset sites
/// probed where the kernel does not name every reason (or `--cause-source derived` asks), else
/// (or where they cannot be probed, said once) with `tcp:tcp_send_reset`.
fn start_tracing(
    opts: &LiveOptions,
    notes: &mut Vec<String>,
    tracing: &mut TracingSummary,
) -> anyhow::Result<Tracing> {
    let none = |reason_note: String| Tracing {
        session: None,
        rx: None,
        reason_note,
    };
    let tfs = match Tracefs::locate(opts.tracefs.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("no kernel reset reasons: {e}"));
            return Ok(none(e.to_string()));
        }
    };
    match ftrace::clean_stale(&tfs) {
        Ok(removed) if !removed.is_empty() => notes.push(format!(
            "removed ftrace instances left by processes that no longer exist: {}",
            removed.join(", ")
        )),
        Ok(_) => {}
        Err(e) => notes.push(format!("cleaning stale ftrace instances: {e:#}")),
    }
    match ftrace::probes::clean_stale_probes(&tfs, crate::host::process::exists) {
        Ok(removed) if !removed.is_empty() => notes.push(format!(
            "removed kprobe events left by processes that no longer exist: {}",
            removed.join(", ")
        )),
        Ok(_) => {}
        Err(e) => notes.push(format!("cleaning stale kprobe events: {e}")),
    }
    let support = tfs.reset_support();
    let mut reason_note = String::new();
    if support.reasons.is_none() {
        reason_note = support.notes.join("; ");
    }
    let want_sites = match opts.cause_source {
        CauseMode::Kernel => false,
        CauseMode::Derived => true,
        CauseMode::Auto => !kernel_names_every_reason(&support),
    };
    let mut trace_opts = TraceOptions {
        reader: opts.trace_reader,
        tasks: true,
        sites: want_sites,
        ..TraceOptions::default()
    };
    let mut started = TraceSession::start(&tfs, &trace_opts);
    if let Err(ftrace::TraceError::Sites(e)) = &started {
        notes.push(format!(
            "the reset sites cannot be probed here ({e}): sent resets' causes come from the \
             kernel's trace, the packets and the socket table, and some cannot be told"
        ));
        trace_opts.sites = false;
        started = TraceSession::start(&tfs, &trace_opts);
    }
    if !trace_opts.sites || started.is_err() {
        notes.extend(support.notes.iter().cloned());
    }
    match started {
        Ok((s, rx)) => {
            tracing.instance = Some(s.instance().display().to_string());
            tracing.reader = Some(s.reader);
            tracing.sites = s.sites;
            notes.push(reader_note(&s));
            if s.sites {
                notes.push(format!(
                    "the reset sites are probed (kprobes on tcp_v4_send_reset, tcp_v6_send_reset \
                     and tcp_send_active_reset, group {}, each with the kernel's stack): sent \
                     resets' causes are derived from where the kernel sent them",
                    ftrace::probes::group_of(std::process::id())
                ));
                notes.extend(s.site_notes.iter().cloned());
                if reason_note.is_empty() {
                    reason_note =
                        "the kernel's reasons are not read while the reset sites are probed".into();
                }
            }
            Ok(Tracing {
                session: Some(s),
                rx: Some(rx),
                reason_note,
            })
        }
        // Asked for by name: not silently replaced by the text.
        Err(e) if opts.trace_reader == TraceReader::Binary => Err(anyhow::Error::new(e)
            .context("--trace-reader binary: the kernel trace cannot be read as binary records")),
        Err(e) => {
            notes.push(format!("no kernel reset reasons: {e}"));
            Ok(none(e.to_string()))
        }
    }
}

fn take_sample(tally: &mut Tally, notes: &mut Vec<String>, s: Result<CounterSample, SampleError>) {
    match s {
        Ok(s) => tally.add_sample(s),
        Err(e) => {
            let msg = format!("counters: {e:#}");
            if !notes.contains(&msg) {
                notes.push(msg);
            }
        }
    }
}

/// Why resets sent here have no trace event, as far as the counts tell. Before 6.10 the kernel
/// traces a reset only when it has a full socket for it (none for a closed port, a TIME_WAIT or
/// SYN-RECV entry): missing events are expected there and not a loss.
/// Which way the kernel's trace was read, and why when it is the costlier one.
fn reader_note(s: &TraceSession) -> String {
    let tasks = if s.tasks {
        ""
    } else {
        "; task creation is not traced (no task:task_newtask / task:task_rename here), so a thread \
         that exits before it is looked up is named by its own id"
    };
    match (s.reader, &s.reader_note) {
        (TraceReader::Binary, _) => {
            format!("kernel trace read as binary records (per-CPU trace_pipe_raw){tasks}")
        }
        (_, Some(why)) => format!(
            "kernel trace read as text (trace_pipe), which costs more CPU per reset: {why}{tasks}"
        ),
        _ => format!("kernel trace read as text (trace_pipe), as asked{tasks}"),
    }
}

fn missing_events_note(missing: u64, overrun: u64, dropped: u64, pre_6_10: bool) -> Option<String> {
    if missing == 0 && overrun + dropped == 0 {
        return None;
    }
    let lost = overrun + dropped;
    Some(if lost > 0 {
        format!(
            "{missing} resets sent here have no trace event: trace events were lost ({overrun} \
             overwritten in the kernel buffer, {dropped} dropped by the reader)"
        )
    } else if pre_6_10 {
        format!(
            "{missing} resets sent here have no trace event: kernels before 6.10 trace a reset only \
             when it is sent for a full socket (not for a closed port, a TIME_WAIT or SYN-RECV \
             entry); none were lost"
        )
    } else {
        format!(
            "{missing} resets sent here have no kernel reason: their trace events did not arrive \
             within {GRACE_MS} ms (none were lost in the trace buffer)"
        )
    })
}

/// What the trace reader could not read, in words: the resets behind it are missing from the
/// events (the counters still have them).
fn reader_notes(undecoded: u64, stopped: Option<String>) -> Vec<String> {
    let mut notes = Vec::new();
    if undecoded > 0 {
        notes.push(format!(
            "{undecoded} trace events could not be decoded: their resets are not in the events \
             (the counters have them)"
        ));
    }
    if let Some(why) = stopped {
        notes.push(format!(
            "the trace stopped being read before the end ({why}): later resets are not in the \
             events (the counters have them)"
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_reader_could_not_read_is_said() {
        assert!(reader_notes(0, None).is_empty());
        let notes = reader_notes(3, Some("reading trace_pipe: Input/output error".into()));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("3 trace events could not be decoded"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("(reading trace_pipe: Input/output error)"),
            "{notes:?}"
        );
    }

    #[test]
    fn missing_events_are_called_lost_only_when_they_were() {
        assert_eq!(missing_events_note(0, 0, 0, false), None);
        let old = missing_events_note(3, 0, 0, true).unwrap();
        assert!(
            old.contains("before 6.10") && !old.contains("were lost ("),
            "{old}"
        );
        let late = missing_events_note(2, 0, 0, false).unwrap();
        assert!(
            late.contains("within 300 ms") && !late.contains("were lost ("),
            "{late}"
        );
        let lost = missing_events_note(2, 5, 1, true).unwrap();
        assert!(lost.contains("were lost (5 overwritten"), "{lost}");
    }

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
