//! The live check without end, in every network namespace of the host: the stages of
//! `packet-check` (`live::stream::Stream` per namespace, the trace session, the captures),
//! wired for a check that never ends and feeding the metrics and the event stream.
//!
//! Threads, each with one job: this one reads every namespace's capture and the trace, routes
//! each trace event to its namespace (`live::router`), attributes and counts resets
//! ([`batch`]) and judges the findings over the last window ([`watched`]); [`namespaces`]
//! follows the namespaces as they come and go and samples their counters; [`audit`] audits
//! every `audit_every` and reads a namespace's socket table again when a reset needs an
//! owner it lacks; [`recorder`] labels processes and records the batches in the metrics and
//! the event lines; the trace's reader, the endpoint and the event writer have their own.
//!
//! May import `host`, `live`, `trace`, `rules` and the other parts of `watch`; it parses no
//! flag, prints nothing (what it has to say goes to the caller's [`Log`]) and installs no
//! signal handler: the caller's [`Control`] stops it and asks for reloads.

pub mod audit;
pub mod batch;
pub mod namespaces;
pub mod recorder;
pub mod watched;
pub mod window;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::audit::{AuditCmd, AuditMsg, AuditSetup, AuditThread, Audited};
use self::batch::{Batch, WatchSink};
use self::namespaces::{NsMsg, Opened};
use self::recorder::Flush;
use self::watched::{Judging, Watched};
use crate::host::workload::Workloads;
use crate::live::attribute::{SocketIndex, TaskResolver};
use crate::live::correlate::CapturedReset;
use crate::live::events::Ctx;
use crate::live::router::Router;
use crate::live::stream::{Attribution, Stream};
use crate::live::summary::TracingSummary;
use crate::live::{GRACE_MS, RunError, TraceStart, Tracing, start_tracing};
use crate::stop::Stop;
use crate::trace::capture::{CaptureOptions, parse_rst};
use crate::trace::ftrace::TraceReceiver;
use crate::watch::events::{Event, EventSink};
use crate::watch::health::Health;
use crate::watch::metrics::Metrics;

/// How the check runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub trace: TraceStart,
    /// Verdicts are judged over this last stretch of time.
    pub window: Duration,
    /// The audit runs this often.
    pub audit_every: Duration,
    /// Each namespace's capture (its ring's size bounds the memory a namespace costs).
    pub capture: CaptureOptions,
    /// Event lines kept between two flushes (about a second) at most; more are dropped and
    /// counted, as a slow reader's are.
    pub max_lines: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            trace: TraceStart::default(),
            window: Duration::from_secs(300),
            audit_every: Duration::from_secs(300),
            capture: CaptureOptions {
                block_size: 1 << 19,
                block_count: 16,
                ..CaptureOptions::default()
            },
            max_lines: 200_000,
        }
    }
}

/// Where the check's results go.
pub struct Outputs {
    pub metrics: Arc<Metrics>,
    pub health: Health,
    pub events: Option<Arc<EventSink>>,
    /// The processes' units, containers and pods, shared by the recorder and the audit.
    pub workloads: Arc<Mutex<Workloads>>,
}

/// How the caller steers a running check.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub stop: Stop,
    /// Set by the caller (on SIGHUP): reload the audit's rules and reopen the event output.
    pub reload: Arc<AtomicBool>,
}

/// Loads the audit's rules, profiles and configuration again (on a reload). An error keeps
/// what was loaded before; its message (with its causes) says why.
pub type Reload = Box<dyn FnMut() -> Result<AuditSetup, ReloadError> + Send>;

/// Why a reload was refused, as the caller words it (it names its files and flags).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReloadError(pub String);

/// What the check tells its caller (the library prints nothing).
pub trait Log {
    /// Tracing is armed and the namespaces found so far are watched.
    fn watching(&mut self, namespaces: usize);
    /// Something to say: a note, a namespace that came or went, a reload.
    fn note(&mut self, line: &str);
}

/// How often the batch goes to the recorder, and how soon when a new process is in it.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const FLUSH_NEW_PROCESS: Duration = Duration::from_millis(50);
/// How often the findings are judged (and at once after an audit).
const JUDGE_EVERY: Duration = Duration::from_secs(10);
/// How long the capture loop waits for frames at most (trace events come by channel).
const POLL: Duration = Duration::from_millis(10);
/// How long the first namespaces are waited for before the check says it is watching.
const FIRST_LIST: Duration = Duration::from_secs(10);

/// Run the check until `control.stop`. Returns the notes of the way out (what could not be
/// removed or stopped).
pub fn run(
    opts: &WatchOptions,
    setup: AuditSetup,
    reload: Reload,
    out: Outputs,
    control: Control,
    log: &mut dyn Log,
) -> Result<Vec<String>, RunError> {
    let idle_timeout_s = crate::live::idle_timeout(&setup.selection.params)?;
    let mut tracing = trace(opts, &out.health, log)?;
    let (send_traced, receive_traced) = tracing.traced();
    let trace_rx = tracing.rx.take();
    let bh_flag_known = tracing.session.as_ref().is_some_and(|s| s.bh_flag);

    let done = Arc::new(AtomicBool::new(false));
    let (ns_tx, ns_rx) = channel();
    let ns_thread = {
        let (capture, done) = (opts.capture.clone(), done.clone());
        std::thread::Builder::new()
            .name("rstaudit-netns".into())
            .spawn(move || namespaces::follow(capture, done, ns_tx))
            .map_err(|source| RunError::Thread {
                what: "namespace",
                source,
            })?
    };
    let (audit_cmd, audit_cmds) = channel();
    let (audit_tx, audit_rx) = channel();
    let audit_thread = {
        let t = AuditThread {
            setup: Arc::new(setup),
            every: opts.audit_every,
            commands: audit_cmds,
            tx: audit_tx,
            metrics: out.metrics.clone(),
            health: out.health.clone(),
            workloads: out.workloads.clone(),
            stop: control.stop.clone(),
        };
        std::thread::Builder::new()
            .name("rstaudit-audit".into())
            .spawn(move || t.run())
            .map_err(|source| RunError::Thread {
                what: "audit",
                source,
            })?
    };
    let (rec_tx, rec_rx) = channel();
    let recorder = {
        let (metrics, events, workloads) = (
            out.metrics.clone(),
            out.events.clone(),
            out.workloads.clone(),
        );
        std::thread::Builder::new()
            .name("rstaudit-record".into())
            .spawn(move || recorder::record(rec_rx, metrics, events, workloads))
            .map_err(|source| RunError::Thread {
                what: "recorder",
                source,
            })?
    };
    let mut check = Check {
        opts,
        out,
        control,
        reload,
        ctx: CtxTemplate {
            receive_traced,
            idle_timeout_s,
            bh_flag_known,
            cause_mode: opts.trace.cause_source,
        },
        send_traced,
        reason_note: tracing.reason_note.clone(),
        watched: Vec::new(),
        unclaimed: HashMap::new(),
        router: Router::new(GRACE_MS),
        resolver: TaskResolver::default(),
        batch: Batch::default(),
        mono: Instant::now(),
        last_flush: Instant::now(),
        last_judge: Instant::now(),
        dirty: false,
        said: HashSet::new(),
        started: false,
        audit_cmd,
        rec_tx,
    };
    check.first_listing(&ns_rx, log);
    let mut trace_rx = trace_rx;
    check.watch(&mut trace_rx, &ns_rx, &audit_rx, &tracing, log);

    // The way out: what waits is handed out and recorded, the threads stop, the trace goes.
    let mut out_notes = Vec::new();
    check.hand_out_all(log);
    done.store(true, Ordering::SeqCst);
    let Check {
        rec_tx,
        audit_cmd,
        watched,
        ..
    } = check;
    drop(rec_tx);
    drop(audit_cmd);
    drop(watched);
    for (what, thread) in [("recorder", recorder), ("namespace", ns_thread)] {
        if thread.join().is_err() {
            out_notes.push(format!("the {what} thread panicked"));
        }
    }
    join_within(audit_thread, Duration::from_secs(5), &mut out_notes);
    drop(trace_rx);
    if let Some(s) = tracing.session.take()
        && let Err(e) = s.finish()
    {
        out_notes.push(format!("{e:#}"));
    }
    Ok(out_notes)
}

/// Start the trace (said to `log` and in the health of "tracing"). A trace asked for as binary
/// records that cannot be read so is [`RunError::BinaryTrace`], which the caller names.
fn trace(opts: &WatchOptions, health: &Health, log: &mut dyn Log) -> Result<Tracing, RunError> {
    let mut notes = Vec::new();
    let mut summary = TracingSummary::default();
    let tracing = start_tracing(&opts.trace, &mut notes, &mut summary)?;
    for n in &notes {
        log.note(n);
    }
    match &tracing.session {
        Some(_) => health.ok("tracing"),
        None => health.failing(
            "tracing",
            format!(
                "no kernel trace, resets are counted without their reasons: {}",
                tracing.reason_note
            ),
        ),
    }
    Ok(tracing)
}

/// Wait for a thread a while; one still busy (an audit of a huge host) ends with the process.
fn join_within(thread: JoinHandle<()>, wait: Duration, notes: &mut Vec<String>) {
    let until = Instant::now() + wait;
    while !thread.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if thread.is_finished() {
        if thread.join().is_err() {
            notes.push("the audit thread panicked".into());
        }
    } else {
        notes.push(
            "an audit was still running at the end; it was left to end with the process".into(),
        );
    }
}

/// What every namespace's stream is made with.
struct CtxTemplate {
    receive_traced: bool,
    idle_timeout_s: f64,
    bh_flag_known: bool,
    cause_mode: crate::live::CauseMode,
}

/// Hand out what waits in `w`'s stream (its namespace is gone, or the check ends).
fn finish(
    w: &mut Watched,
    batch: &mut Batch,
    resolver: &mut TaskResolver,
    lines: bool,
    max_lines: usize,
) {
    let mut unowned = false;
    let evidence = w.judging.evidence.current(Instant::now());
    w.stream.finish(
        Attribution {
            index: &w.index,
            findings: &w.judging.findings,
            resolver,
        },
        &mut WatchSink {
            ns: w.id,
            netns: &w.name,
            evidence,
            batch,
            lines,
            max_lines,
            findings: &w.judging.findings,
            unowned: &mut unowned,
        },
    );
}

struct Check<'a> {
    opts: &'a WatchOptions,
    out: Outputs,
    control: Control,
    reload: Reload,
    ctx: CtxTemplate,
    send_traced: bool,
    reason_note: String,
    watched: Vec<Watched>,
    /// Audits of namespaces not watched yet (found by the audit first), by inode.
    unclaimed: HashMap<u64, Box<Audited>>,
    router: Router,
    resolver: TaskResolver,
    batch: Batch,
    mono: Instant,
    last_flush: Instant,
    last_judge: Instant,
    /// The findings changed: judge them at once.
    dirty: bool,
    /// Lines said already (each once).
    said: HashSet<String>,
    /// The first listing of the namespaces is over.
    started: bool,
    audit_cmd: Sender<AuditCmd>,
    rec_tx: Sender<Flush>,
}

impl Check<'_> {
    /// The first listing of the namespaces, before the check says it is watching.
    fn first_listing(&mut self, ns_rx: &Receiver<NsMsg>, log: &mut dyn Log) {
        let began = Instant::now();
        loop {
            match ns_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(msg) => self.namespace(msg, log),
                Err(_) if !self.watched.is_empty() || began.elapsed() > FIRST_LIST => break,
                Err(_) => {}
            }
        }
        self.started = true;
        log.watching(self.watched.len());
    }

    /// Until the stop token: the captures, the trace, what is finished, the namespaces that
    /// come and go, the audits, the housekeeping.
    fn watch(
        &mut self,
        trace_rx: &mut Option<TraceReceiver>,
        ns_rx: &Receiver<NsMsg>,
        audit_rx: &Receiver<AuditMsg>,
        tracing: &Tracing,
        log: &mut dyn Log,
    ) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !self.control.stop.is_stopped() {
            self.poll(&mut fds);
            let now_ms = self.now_ms();
            self.read_captures(&fds, now_ms, log);
            if let Some(rx) = trace_rx.as_mut() {
                for ev in rx.try_iter() {
                    if let Some(ev) = self.resolver.take_in(ev) {
                        self.router.event(
                            ev,
                            now_ms,
                            self.watched.iter_mut().map(|w| &mut w.stream),
                        );
                    }
                }
            }
            self.router.expire(now_ms);
            self.deliver(now_ms);
            for msg in ns_rx.try_iter() {
                self.namespace(msg, log);
            }
            for msg in audit_rx.try_iter() {
                self.audited(msg, log);
            }
            self.housekeeping(tracing, log);
        }
    }

    /// At the end: every namespace's waiting resets handed out, recorded and judged.
    fn hand_out_all(&mut self, log: &mut dyn Log) {
        for w in &mut self.watched {
            finish(
                w,
                &mut self.batch,
                &mut self.resolver,
                self.out.events.is_some(),
                self.opts.max_lines,
            );
        }
        self.flush(true);
        self.judge(log);
    }

    fn now_ms(&self) -> u64 {
        self.mono.elapsed().as_millis() as u64
    }

    /// Say `line` once.
    fn say(&mut self, log: &mut dyn Log, line: String) {
        if self.said.len() < 1024 && self.said.insert(line.clone()) {
            log.note(&line);
        }
    }

    /// Wait until a capture has frames, or [`POLL`].
    fn poll(&mut self, fds: &mut Vec<libc::pollfd>) {
        use std::os::fd::AsRawFd;
        fds.clear();
        fds.extend(self.watched.iter().map(|w| libc::pollfd {
            fd: w.capture.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        }));
        if self.watched.iter().any(|w| w.capture.ready()) {
            return;
        }
        if fds.is_empty() {
            std::thread::sleep(POLL);
            return;
        }
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                POLL.as_millis() as i32,
            )
        };
    }

    fn read_captures(&mut self, fds: &[libc::pollfd], now_ms: u64, log: &mut dyn Log) {
        let router = &mut self.router;
        let mut failed = Vec::new();
        for (i, w) in self.watched.iter_mut().enumerate() {
            let polled = fds.get(i).is_some_and(|p| p.revents != 0);
            if !polled && !w.capture.ready() {
                continue;
            }
            let lo = w.capture.loopback_ifindex;
            let stream = &mut w.stream;
            let read = w.capture.poll(Duration::ZERO, &mut |f| {
                let Ok(seg) = parse_rst(f.ip) else { return };
                router.frame(
                    CapturedReset {
                        ts_ms: f.ts.as_millis() as u64,
                        dir: f.dir(),
                        ifindex: f.ifindex,
                        loopback: Some(f.ifindex) == lo,
                        seg,
                    },
                    now_ms,
                    stream,
                );
            });
            if let Err(e) = read {
                failed.push(format!("reading the capture of namespace {}: {e}", w.name));
            }
        }
        for f in failed {
            self.say(log, f);
        }
    }

    /// Hand out what each namespace's stream has finished.
    fn deliver(&mut self, now_ms: u64) {
        let now = Instant::now();
        let lines = self.out.events.is_some();
        for w in &mut self.watched {
            if !w.stream.ready() {
                continue;
            }
            let mut unowned = false;
            let evidence = w.judging.evidence.current(now);
            w.stream.deliver(
                now_ms,
                Attribution {
                    index: &w.index,
                    findings: &w.judging.findings,
                    resolver: &mut self.resolver,
                },
                &mut WatchSink {
                    ns: w.id,
                    netns: &w.name,
                    evidence,
                    batch: &mut self.batch,
                    lines,
                    max_lines: self.opts.max_lines,
                    findings: &w.judging.findings,
                    unowned: &mut unowned,
                },
            );
            if unowned && w.may_refresh(now) {
                w.refreshing = true;
                w.refreshed_at = Some(now);
                let _ = self.audit_cmd.send(AuditCmd::Refresh {
                    inode: w.inode,
                    path: w.path.clone(),
                });
            }
        }
    }

    fn namespace(&mut self, msg: NsMsg, log: &mut dyn Log) {
        match msg {
            NsMsg::Up(opened) => self.up(*opened, log),
            NsMsg::Down(id) => {
                let Some(i) = self.watched.iter().position(|w| w.id == id) else {
                    return;
                };
                let mut w = self.watched.remove(i);
                finish(
                    &mut w,
                    &mut self.batch,
                    &mut self.resolver,
                    self.out.events.is_some(),
                    self.opts.max_lines,
                );
                self.send_findings(w.judging.cleared());
                self.dirty = true;
                log.note(&format!("namespace {} is gone: no longer watched", w.name));
            }
            NsMsg::Facts(id, facts) => {
                let notes = facts.notes.clone();
                if let Some(w) = self.watched.iter_mut().find(|w| w.id == id) {
                    w.stream.facts(facts);
                }
                for n in notes {
                    self.say(log, n);
                }
            }
            NsMsg::Sample(id, sample) => match sample {
                Ok(s) => {
                    if let Some(w) = self.watched.iter_mut().find(|w| w.id == id) {
                        w.judging.counters.add(s);
                    }
                }
                Err(e) => self.say(log, format!("counters: {e:#}")),
            },
            NsMsg::Note(n) => self.say(log, n),
        }
    }

    fn up(&mut self, o: Opened, log: &mut dyn Log) {
        for n in &o.facts.notes {
            self.say(log, format!("namespace {}: {n}", o.name));
        }
        let ctx = Ctx {
            started_at_ms: crate::clock::now_ms(),
            facts: o.facts,
            receive_traced: self.ctx.receive_traced,
            idle_timeout_s: Some(self.ctx.idle_timeout_s),
            bh_flag_known: self.ctx.bh_flag_known,
            cause_mode: self.ctx.cause_mode,
        };
        let mut judging = Judging::new(o.name.clone(), self.opts.window, Instant::now());
        match o.baseline {
            Ok(s) => judging.counters.add(s),
            Err(e) => self.say(log, format!("counters of namespace {}: {e:#}", o.name)),
        }
        let mut w = Watched {
            id: o.id,
            inode: o.inode,
            name: o.name,
            path: o.path,
            capture: o.capture,
            stream: Stream::new(ctx, GRACE_MS, self.send_traced, self.ctx.receive_traced),
            index: SocketIndex::default(),
            judging,
            refreshing: false,
            refreshed_at: None,
            refresh_took: Duration::ZERO,
            drops: 0,
        };
        match self.unclaimed.remove(&w.inode) {
            Some(a) => take_audit(&mut w, *a),
            // The first audit, which starts now, covers the namespaces of the first listing.
            None if self.started => {
                let _ = self.audit_cmd.send(AuditCmd::One {
                    inode: w.inode,
                    path: w.path.clone(),
                });
            }
            None => {}
        }
        log.note(&format!("watching namespace {}", w.name));
        self.watched.push(w);
        self.dirty = true;
    }

    fn audited(&mut self, msg: AuditMsg, log: &mut dyn Log) {
        match msg {
            AuditMsg::Audited(a) => {
                for n in &a.notes {
                    self.say(log, n.clone());
                }
                match self.watched.iter_mut().find(|w| w.inode == a.inode) {
                    Some(w) => take_audit(w, *a),
                    None => {
                        self.unclaimed.insert(a.inode, a);
                    }
                }
                self.dirty = true;
            }
            AuditMsg::Refreshed { inode, index, took } => {
                if let Some(w) = self.watched.iter_mut().find(|w| w.inode == inode) {
                    w.index.take(index);
                    w.refreshing = false;
                    w.refresh_took = took;
                }
            }
            AuditMsg::Failed(m) => self.say(log, m),
        }
    }

    /// The batch to the recorder when due (`all`: whatever is in it).
    fn flush(&mut self, all: bool) {
        let since = self.last_flush.elapsed();
        let due = all || since >= FLUSH_EVERY || (self.batch.new_pid && since >= FLUSH_NEW_PROCESS);
        if !due || self.batch.is_empty() {
            if since >= FLUSH_EVERY {
                self.last_flush = Instant::now();
            }
            return;
        }
        self.last_flush = Instant::now();
        let (counts, lines, lines_dropped) = self.batch.take();
        let _ = self.rec_tx.send(Flush {
            counts,
            lines,
            lines_dropped,
        });
    }

    /// Judge every namespace's findings and export them.
    fn judge(&mut self, _log: &mut dyn Log) {
        self.last_judge = Instant::now();
        self.dirty = false;
        let now = Instant::now();
        let mut rows = Vec::new();
        let mut events = Vec::new();
        for w in &mut self.watched {
            events.extend(w.judging.judge(now, &self.reason_note, &mut rows));
        }
        self.out.metrics.set_findings(&rows, now);
        self.send_findings(events);
    }

    fn send_findings(&self, events: Vec<crate::watch::events::FindingEvent>) {
        if let Some(sink) = &self.out.events {
            for e in events {
                sink.send(Event::Finding(e));
            }
        }
    }

    /// What is done now and then: the flush, the judging, the reload, the health.
    fn housekeeping(&mut self, tracing: &Tracing, log: &mut dyn Log) {
        self.flush(false);
        if self.dirty || self.last_judge.elapsed() >= JUDGE_EVERY {
            self.judge(log);
            self.drops(log);
        }
        if self.control.reload.swap(false, Ordering::SeqCst) {
            self.reload(log);
        }
        if let Some(s) = &tracing.session
            && let Some(why) = s.counts.stopped()
        {
            self.out.health.failing(
                "tracing",
                format!("the kernel trace stopped being read: {why}"),
            );
        }
    }

    /// Kernel drops of the captures, said when they grow.
    fn drops(&mut self, log: &mut dyn Log) {
        for w in &mut self.watched {
            if let Ok(st) = w.capture.stats()
                && st.drops > w.drops
            {
                log.note(&format!(
                    "namespace {}: the kernel dropped {} captured resets (ring full); the counts are a lower bound",
                    w.name,
                    st.drops - w.drops
                ));
                w.drops = st.drops;
            }
        }
    }

    fn reload(&mut self, log: &mut dyn Log) {
        if let Some(sink) = &self.out.events {
            sink.reopen();
        }
        match (self.reload)() {
            Ok(setup) => match crate::live::idle_timeout(&setup.selection.params) {
                Ok(idle) => {
                    self.ctx.idle_timeout_s = idle;
                    for w in &mut self.watched {
                        w.stream.context().idle_timeout_s = Some(idle);
                    }
                    let n = setup.rules.rules.len();
                    let _ = self.audit_cmd.send(AuditCmd::Setup(Arc::new(setup)));
                    log.note(&format!(
                        "reloaded: {n} rules; the audit runs again now; the event output was reopened"
                    ));
                }
                Err(e) => log.note(&format!(
                    "reload refused, the rules, profiles and configuration loaded before are kept: idle_timeout: {e}"
                )),
            },
            Err(e) => log.note(&format!(
                "reload refused, the rules, profiles and configuration loaded before are kept: {e}"
            )),
        }
    }
}

/// Take in an audit of `w`'s namespace: its findings replace the last ones, its socket table
/// becomes the latest.
fn take_audit(w: &mut Watched, a: Audited) {
    w.judging.findings = a.findings;
    w.index.take(a.index);
}
