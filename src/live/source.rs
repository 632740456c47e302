//! Where the window's facts come from, and the threads that bring them: the kernel's trace
//! (the reset tracepoints, or the reset sites where the kernel gives no reason), the capture of
//! the watched namespace and its counter baseline, and three threads of their own: the
//! socket-table refresh with the audit, the counters every second, and the namespace's links
//! and addresses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::counters;
use super::error::{BinaryTraceRefused, RunError};
use super::snapshots::{Refresh, Shared, snapshot_loop};
use super::summary::TracingSummary;
use super::{CauseMode, LiveOptions};
use crate::host::CounterSample;
use crate::host::counters::{SampleError, read_out_rsts, read_reset_sample};
use crate::host::facts::{self, NamespaceFacts};
use crate::host::netns::{self, EnterError, NetnsRef};
use crate::trace::capture::{Capture, CaptureError, CaptureOptions};
use crate::trace::ftrace::{self, TraceOptions, TraceReader, TraceSession, Tracefs};

/// How the kernel's trace is started.
#[derive(Debug, Clone, Default)]
pub struct TraceStart {
    /// A tracefs root to use instead of finding or mounting one.
    pub tracefs: Option<std::path::PathBuf>,
    /// Binary records or text.
    pub reader: TraceReader,
    /// Where sent resets' causes come from.
    pub cause_source: CauseMode,
}

/// The trace session (one for every namespace watched: the tracepoints are global) and what
/// the verdicts say when it has no reasons. Dropping it removes the instance and the probes.
pub struct Tracing {
    pub session: Option<TraceSession>,
    pub rx: Option<ftrace::TraceReceiver>,
    pub reason_note: String,
}

impl Tracing {
    /// Whether send events (the tracepoint's or the reset sites') and receive events come.
    pub fn traced(&self) -> (bool, bool) {
        let s = self.session.as_ref();
        (
            s.is_some_and(|s| s.support.send_reset || s.sites),
            s.is_some_and(|s| s.support.receive_reset),
        )
    }

    /// Whether the kernel's own reasons are read.
    pub fn reasons(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.support.send_reset && !s.sites && s.support.reasons.is_some())
    }
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
pub fn start_tracing(
    opts: &TraceStart,
    notes: &mut Vec<String>,
    tracing: &mut TracingSummary,
) -> Result<Tracing, BinaryTraceRefused> {
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
        reader: opts.reader,
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
        Err(e) if opts.reader == TraceReader::Binary => Err(BinaryTraceRefused(e)),
        Err(e) => {
            notes.push(format!("no kernel reset reasons: {e}"));
            Ok(none(e.to_string()))
        }
    }
}

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

/// The capture of the watched namespace (opened once tracing is armed, so that every reset
/// captured can meet its trace event).
pub(super) fn open_capture(
    ns: Option<&NetnsRef>,
    opts: &LiveOptions,
) -> Result<Capture, CaptureError> {
    let cap_opts = CaptureOptions {
        iface: opts.iface.clone(),
        port: opts.port,
        ..Default::default()
    };
    match ns {
        Some(ns) => Capture::open_in(ns, &cap_opts),
        None => Capture::open(&cap_opts),
    }
}

/// The counters at the start, read once the capture is open, and the time a frame must come
/// after to be the window's: Tcp.OutRsts is read last and alone (one read of snmp), and the
/// cut is the time right after that read, so that the resets captured and the change of
/// Tcp.OutRsts cover the same window (a full counter read takes long enough for resets to fall
/// between its files).
pub(super) fn baseline(
    ns: Option<&NetnsRef>,
) -> Result<(Result<CounterSample, SampleError>, Duration), EnterError> {
    let (mut baseline, fast) = netns::in_namespace(ns, || (read_reset_sample(), read_out_rsts()))?;
    let at = match (&mut baseline, fast) {
        (Ok(b), Some((out_rsts, at))) => {
            b.values.insert("Tcp.OutRsts".to_string(), out_rsts);
            at
        }
        _ => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    };
    Ok((baseline, at))
}

/// How long the window waits for its first socket table before it starts without one.
const FIRST_TABLE_WAIT: Duration = Duration::from_secs(60);

/// Wait until the refresh thread has read the socket table once (or given up on it).
fn first_table(shared: &Mutex<Shared>, thread: &JoinHandle<()>) {
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

/// The window's threads: the socket-table refresh (with the audit), the counters, and the
/// links and addresses of the namespace.
pub(super) struct Background {
    done: Arc<AtomicBool>,
    pub shared: Arc<Mutex<Shared>>,
    snapshots: JoinHandle<()>,
    pub counters: Receiver<Result<CounterSample, SampleError>>,
    sampler: JoinHandle<Result<(), EnterError>>,
    pub facts: Receiver<NamespaceFacts>,
    links: JoinHandle<Result<(), EnterError>>,
}

impl Background {
    pub fn spawn(ns: Option<NetnsRef>, refresh: Refresh) -> Result<Self, RunError> {
        let thread = |what| move |source| RunError::Thread { what, source };
        let done = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let snapshots = {
            let (shared, done) = (shared.clone(), done.clone());
            std::thread::Builder::new()
                .name("rstaudit-snapshot".into())
                .spawn(move || snapshot_loop(refresh, shared, done))
                .map_err(thread("snapshot"))?
        };
        let (counters_tx, counters) = std::sync::mpsc::channel();
        let sampler = {
            let (ns, done) = (ns.clone(), done.clone());
            std::thread::Builder::new()
                .name("rstaudit-counters".into())
                .spawn(move || {
                    let work =
                        move || counters::sample_loop(Duration::from_secs(1), done, counters_tx);
                    netns::in_namespace(ns.as_ref(), work)
                })
                .map_err(thread("counter"))?
        };
        let (facts_tx, facts) = std::sync::mpsc::channel();
        let links = {
            let done = done.clone();
            std::thread::Builder::new()
                .name("rstaudit-links".into())
                .spawn(move || {
                    let work = move || facts::follow_facts(Duration::from_secs(1), done, facts_tx);
                    netns::in_namespace(ns.as_ref(), work)
                })
                .map_err(thread("link and address"))?
        };
        Ok(Self {
            done,
            shared,
            snapshots,
            counters,
            sampler,
            facts,
            links,
        })
    }

    /// Wait for the first socket table (the window starts with it).
    pub fn first_table(&self) {
        first_table(&self.shared, &self.snapshots);
    }

    /// Stop the threads. A socket-table refresh can take a while on a busy host: it is given a
    /// moment, then what the finished refreshes gave is taken (the thread ends with the
    /// process). Returns that, with notes on what went wrong.
    pub fn stop(&mut self, notes: &mut Vec<String>) -> Shared {
        self.done.store(true, Ordering::SeqCst);
        let waited = Instant::now();
        while !self.snapshots.is_finished() && waited.elapsed() < Duration::from_millis(1500) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.snapshots.is_finished() {
            notes.push(
                "a socket-table refresh was still running at the end; owners and findings come from the finished ones"
                    .into(),
            );
        }
        let shared = std::mem::take(&mut *self.shared.lock().unwrap_or_else(|p| p.into_inner()));
        if shared.index.snapshots == 0 && shared.audit_error.is_none() {
            notes.push("no socket table was read during the window: no owners from sockets, no verdicts per finding".into());
        }
        shared
    }

    /// Wait for the counter and link threads (after [`Background::stop`]); the counter
    /// samples that came meanwhile (the last one is read as the thread stops).
    pub fn join(self, notes: &mut Vec<String>) -> Vec<Result<CounterSample, SampleError>> {
        for (what, thread) in [
            ("following links and addresses", self.links),
            ("counters", self.sampler),
        ] {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => notes.push(format!("{what}: {}", crate::error::chain(&e))),
                Err(_) => notes.push(format!("the thread {what} panicked")),
            }
        }
        self.counters.try_iter().collect()
    }
}
