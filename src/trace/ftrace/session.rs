//! The private instance: create it, enable the events, read them in a thread (the per-CPU
//! binary pages of `trace_pipe_raw`, or the text of `trace_pipe` where the binary layout
//! cannot be read), count what was lost, and remove it (also instances left by a process that
//! is gone).

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::*;

/// Counts kept by the reader thread.
#[derive(Debug, Default)]
pub struct ReaderCounts {
    pub lines: AtomicU64,
    pub events: AtomicU64,
    pub bad_lines: AtomicU64,
    /// Events dropped because the consumer did not keep up.
    pub dropped: AtomicU64,
    /// Binary records of the enabled events too short to decode.
    pub bad_records: AtomicU64,
    /// Why the reader stopped reading (all of the trace, or one CPU's pages) before the session
    /// ended: the first such error.
    stopped: std::sync::Mutex<Option<String>>,
}

impl ReaderCounts {
    /// Lines or records of the traced events that could not be decoded: each is an event lost.
    pub fn undecoded(&self) -> u64 {
        self.bad_lines.load(Ordering::Relaxed) + self.bad_records.load(Ordering::Relaxed)
    }

    /// Why reading stopped early, if it did.
    pub fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn stop_with(&self, why: String) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        stopped.get_or_insert(why);
    }
}

/// How the trace is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceReader {
    /// Binary when the kernel's page and event layouts can be read, else text.
    #[default]
    Auto,
    /// The per-CPU `trace_pipe_raw` pages, decoded with the events' format files.
    Binary,
    /// `trace_pipe`, the kernel's text.
    Text,
}

/// A running private ftrace instance with the reset events enabled, and its reader thread.
/// Dropping it stops the reader and removes the instance.
pub struct TraceSession {
    instance: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// What the kernel offers.
    pub support: ResetSupport,
    /// Reader counts.
    pub counts: Arc<ReaderCounts>,
    /// The kernel marks bottom-half-disabled sections in its trace lines (the header names the
    /// first flag column `irqs-off/BH-disabled`), so a `.` there means they were enabled.
    pub bh_flag: bool,
    /// How the trace is read: [`TraceReader::Binary`] or [`TraceReader::Text`].
    pub reader: TraceReader,
    /// Why the text was read although the binary pages were asked for (auto).
    pub reader_note: Option<String>,
    /// Task creation and renaming are traced too (`task:task_newtask`, `task:task_rename`).
    pub tasks: bool,
    /// The reset sites are probed (kprobes on the functions that send resets) instead of
    /// `tcp:tcp_send_reset`, with the kernel's stack after each.
    pub sites: bool,
    /// What of the sites' evidence is missing here (no stacks, stacks without names).
    pub site_notes: Vec<String>,
    /// The probes, deleted once the instance is gone.
    probes: Option<super::probes::SiteProbes>,
    removed: bool,
}

/// Options for a trace session.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Instance name; default `rstaudit-PID`.
    pub name: String,
    /// Per-CPU buffer of the instance, KiB.
    pub buffer_kb: u32,
    /// Capacity of the channel to the consumer, in batches (one batch per read of the trace;
    /// events of a batch that does not fit are counted as dropped).
    pub channel_capacity: usize,
    /// Binary pages or text.
    pub reader: TraceReader,
    /// Also trace task creation and renaming, so that a thread or a process that exits before
    /// it is looked up keeps its process and its name.
    pub tasks: bool,
    /// Probe the reset sites (see [`super::probes`]) instead of `tcp:tcp_send_reset`: every
    /// reset sent, with where it was sent, on kernels whose tracepoint misses resets or gives no
    /// reason. Fails with [`TraceError::Sites`] where they cannot be probed.
    pub sites: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        Self {
            name: format!(
                "{INSTANCE_PREFIX}{}{}",
                crate::host::process::pid_ns_tag(),
                std::process::id()
            ),
            buffer_kb: 4096,
            channel_capacity: 1 << 10,
            reader: TraceReader::Auto,
            tasks: false,
            sites: false,
        }
    }
}

/// The consumer's end: events in the order the reader read them, handed over in batches (one
/// channel operation per read of the trace, not one per event). An emptied batch goes back to
/// the reader to be filled again: under a reset flood that is hundreds of batches a second,
/// which would otherwise be allocated by one thread and freed by the other.
pub struct TraceReceiver {
    rx: Receiver<Vec<TraceEvent>>,
    current: VecDeque<TraceEvent>,
    spare: Sender<Vec<TraceEvent>>,
}

impl TraceReceiver {
    /// Take the next batch in (`next` from the channel), handing the emptied one back.
    fn refill(&mut self, next: Vec<TraceEvent>) {
        let done = std::mem::replace(&mut self.current, VecDeque::from(next));
        // Empty, so this moves nothing; a reader that has ended just drops it.
        let _ = self.spare.send(Vec::from(done));
    }

    /// The events available now, without waiting.
    pub fn try_iter(&mut self) -> impl Iterator<Item = TraceEvent> + '_ {
        std::iter::from_fn(move || {
            loop {
                if let Some(e) = self.current.pop_front() {
                    return Some(e);
                }
                let next = self.rx.try_recv().ok()?;
                self.refill(next);
            }
        })
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<TraceEvent, RecvTimeoutError> {
        let until = std::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.current.pop_front() {
                return Ok(e);
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            let next = self.rx.recv_timeout(left)?;
            self.refill(next);
        }
    }
}

impl Iterator for TraceReceiver {
    type Item = TraceEvent;

    /// The next event, waiting for it; `None` once the session has ended.
    fn next(&mut self) -> Option<TraceEvent> {
        loop {
            if let Some(e) = self.current.pop_front() {
                return Some(e);
            }
            let next = self.rx.recv().ok()?;
            self.refill(next);
        }
    }
}

/// The reader's end of the channel: full batches out, emptied ones back.
struct Outbox {
    tx: SyncSender<Vec<TraceEvent>>,
    spare: Receiver<Vec<TraceEvent>>,
}

impl Outbox {
    /// Hand a batch to the consumer (and start the next in an emptied one); false when the
    /// consumer is gone.
    fn send(&self, batch: &mut Vec<TraceEvent>, counts: &ReaderCounts) -> bool {
        if batch.is_empty() {
            return true;
        }
        let n = batch.len() as u64;
        let next = self.spare.try_recv().unwrap_or_default();
        match self.tx.try_send(std::mem::replace(batch, next)) {
            Ok(()) => true,
            Err(TrySendError::Full(mut lost)) => {
                counts.dropped.fetch_add(n, Ordering::Relaxed);
                // Keep the allocation: the batch just made is empty and can go.
                lost.clear();
                *batch = lost;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The task events, where this kernel has them.
const TASK_EVENTS: [&str; 2] = ["task_newtask", "task_rename"];

/// Write a tracefs control file. Never creates a file: tracefs has them all.
pub(super) fn write_file(path: &Path, value: &str) -> Result<(), TraceError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    std::io::Write::write_all(&mut f, value.as_bytes()).map_err(io_at(path))
}

impl TraceSession {
    /// Create the instance, enable the reset events this kernel has, start reading.
    ///
    /// Fails when neither event exists (see [`Tracefs::reset_support`] for the reason).
    pub fn start(
        tracefs: &Tracefs,
        opts: &TraceOptions,
    ) -> Result<(Self, TraceReceiver), TraceError> {
        let support = tracefs.reset_support();
        if !opts.sites && !support.send_reset && !support.receive_reset {
            return Err(TraceError::Unavailable(support.notes.join("; ")));
        }
        // Defined before the instance, deleted after it (Drop of the session, in that order).
        let probes = match opts.sites {
            false => None,
            true => {
                let offsets = super::probes::Offsets::running().map_err(TraceError::Sites)?;
                let group = super::probes::group_of(std::process::id());
                Some(
                    super::probes::SiteProbes::define(tracefs, &group, &offsets)
                        .map_err(TraceError::Sites)?,
                )
            }
        };
        let instance = tracefs.root.join("instances").join(&opts.name);
        match fs::create_dir(&instance) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&instance)(e)),
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(opts.channel_capacity);
        let (spare_tx, spare) = std::sync::mpsc::channel();
        let out = Outbox { tx, spare };
        let mut session = Self {
            instance: instance.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            support,
            counts: Arc::new(ReaderCounts::default()),
            bh_flag: false,
            reader: TraceReader::Text,
            reader_note: None,
            tasks: false,
            sites: probes.is_some(),
            site_notes: Vec::new(),
            probes,
            removed: false,
        };
        // From here on, dropping `session` removes the instance.
        let _ = write_file(
            &instance.join("buffer_size_kb"),
            &opts.buffer_kb.to_string(),
        );
        // Read while the instance's buffer is still empty: only the header.
        session.bh_flag =
            read_format(&instance.join("trace")).is_ok_and(|header| header.contains("BH-disabled"));
        for (event, wanted) in [
            (
                "tcp_send_reset",
                session.support.send_reset && !session.sites,
            ),
            ("tcp_receive_reset", session.support.receive_reset),
        ] {
            if wanted {
                write_file(&instance.join("events/tcp").join(event).join("enable"), "1")?;
            }
        }
        if let Some(probes) = &session.probes {
            let events = instance.join("events");
            let mut stacks = true;
            for site in SiteFn::ALL {
                let dir = probes.event_dir(&events, site);
                write_file(&dir.join("enable"), "1")?;
                stacks &= write_file(&dir.join("trigger"), site.stack_trigger()).is_ok();
            }
            if !stacks {
                session.site_notes.push(
                    "the kernel refused the stacktrace trigger on the reset sites: their callers \
                     are not known"
                        .into(),
                );
            }
        }
        if opts.tasks {
            session.tasks = TASK_EVENTS.iter().all(|e| {
                write_file(&instance.join("events/task").join(e).join("enable"), "1").is_ok()
            });
        }
        let raw = match opts.reader {
            TraceReader::Text => None,
            TraceReader::Auto | TraceReader::Binary => {
                match open_raw(tracefs, &instance, &session) {
                    Ok((decoder, cpus, note)) => {
                        session.site_notes.extend(note);
                        Some((decoder, cpus))
                    }
                    Err(why) if opts.reader == TraceReader::Binary => {
                        return Err(TraceError::Unavailable(format!(
                            "the binary trace cannot be read: {why}"
                        )));
                    }
                    Err(why) => {
                        session.reader_note = Some(why.to_string());
                        None
                    }
                }
            }
        };
        write_file(&instance.join("tracing_on"), "1")?;
        let stop = session.stop.clone();
        let counts = session.counts.clone();
        let spawn = |name: &str, path: PathBuf, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|err| TraceError::Io { path, err })
        };
        session.thread = Some(match raw {
            Some((decoder, cpus)) => {
                session.reader = TraceReader::Binary;
                spawn(
                    "rstaudit-trace",
                    instance.join("per_cpu"),
                    Box::new(move || read_raw(cpus, decoder, out, stop, counts)),
                )?
            }
            None => {
                let pipe_path = instance.join("trace_pipe");
                let pipe = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&pipe_path)
                    .map_err(io_at(&pipe_path))?;
                spawn(
                    "rstaudit-trace",
                    pipe_path,
                    Box::new(move || read_pipe(pipe, out, stop, counts)),
                )?
            }
        });
        Ok((
            session,
            TraceReceiver {
                rx,
                current: VecDeque::new(),
                spare: spare_tx,
            },
        ))
    }

    /// Events the kernel overwrote in the instance's ring buffer before they were read
    /// (`overrun` summed over `per_cpu/cpu*/stats`).
    pub fn overruns(&self) -> u64 {
        let Ok(cpus) = fs::read_dir(self.instance.join("per_cpu")) else {
            return 0;
        };
        cpus.flatten()
            .filter_map(|cpu| fs::read_to_string(cpu.path().join("stats")).ok())
            .map(|text| parse_overrun(&text))
            .sum()
    }

    /// The instance directory.
    pub fn instance(&self) -> &Path {
        &self.instance
    }

    /// Stop reading and remove the instance now (also done on drop). Reports what failed.
    pub fn finish(mut self) -> Result<(), TraceError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), TraceError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
        let instance = remove_instance(&self.instance);
        // The kernel keeps a probe an instance enables: the instance goes first.
        let probes = self.probes.take().map_or(Ok(()), |p| p.remove());
        instance?;
        probes.map_err(TraceError::Sites)
    }
}

impl Drop for TraceSession {
    /// On the way out of an error: the instance is removed as on [`TraceSession::finish`], but
    /// a failure can only be left (the library prints nothing); an instance left behind is
    /// removed by the next start ([`clean_stale`]), whose notes name it.
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The `overrun:` line of a per-CPU `stats` file (0 when absent).
pub fn parse_overrun(stats: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix("overrun:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Disable events in an instance and remove it. The kernel refuses (EBUSY) while a
/// `trace_pipe` of it is open, so readers must be closed first.
pub fn remove_instance(instance: &Path) -> Result<(), TraceError> {
    for file in ["tracing_on", "events/enable"] {
        // Only existing control files: never create files in the directory being removed.
        if let Ok(mut f) = fs::OpenOptions::new().write(true).open(instance.join(file)) {
            let _ = std::io::Write::write_all(&mut f, b"0");
        }
    }
    let mut last = None;
    for _ in 0..50 {
        match fs::remove_dir(instance) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Err(TraceError::Remove {
        path: instance.to_path_buf(),
        err: last.expect("at least one attempt"),
    })
}

/// Remove `rstaudit-PID` instances whose process no longer exists (left by a crash or
/// SIGKILL), among those of this process's PID namespace
/// ([`crate::host::process::pid_ns_tag`]). Returns the names removed.
pub fn clean_stale(tracefs: &Tracefs) -> Result<Vec<String>, TraceError> {
    clean_stale_with(
        tracefs,
        &crate::host::process::pid_ns_tag(),
        crate::host::process::exists,
    )
}

/// [`clean_stale`] for the names of PID namespace `tag`, with an injectable liveness check.
pub fn clean_stale_with(
    tracefs: &Tracefs,
    tag: &str,
    alive: impl Fn(u32) -> bool,
) -> Result<Vec<String>, TraceError> {
    let dir = tracefs.root.join("instances");
    let mut removed = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(err) => return Err(TraceError::Io { path: dir, err }),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(INSTANCE_PREFIX)
            .and_then(|rest| crate::host::process::pid_in_name(rest, tag))
        else {
            continue;
        };
        if pid != std::process::id() && !alive(pid) {
            remove_instance(&entry.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}

fn read_pipe(mut pipe: fs::File, out: Outbox, stop: Arc<AtomicBool>, counts: Arc<ReaderCounts>) {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    let mut batch = Vec::new();
    let mut parser = TextParser::default();
    let mut join = StackJoin::default();
    let mut draining_after_stop = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            // One last non-blocking drain, then leave.
            draining_after_stop += 1;
            if draining_after_stop > 2 {
                parser.finish(&mut |r| {
                    if let Ok(ev) = r {
                        join.push(ev, &mut batch)
                    }
                });
                join.finish(&mut batch);
                out.send(&mut batch, &counts);
                break;
            }
        }
        let mut pfd = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 50) };
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    let mut start = 0;
                    while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
                        let line = String::from_utf8_lossy(&pending[start..start + nl]);
                        counts.lines.fetch_add(1, Ordering::Relaxed);
                        parser.line(&line, &mut |r| match r {
                            Ok(ev) => {
                                counts.events.fetch_add(1, Ordering::Relaxed);
                                join.push(ev, &mut batch);
                            }
                            Err(_) => {
                                counts.bad_lines.fetch_add(1, Ordering::Relaxed);
                            }
                        });
                        start += nl + 1;
                    }
                    if !out.send(&mut batch, &counts) {
                        return;
                    }
                    pending.drain(..start);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    counts.stop_with(format!("reading trace_pipe: {e}"));
                    return;
                }
            }
        }
        join.tick(&mut batch);
        if !out.send(&mut batch, &counts) {
            return;
        }
    }
}

/// Why the binary trace cannot be read here.
#[derive(Debug, thiserror::Error)]
pub enum RawUnavailable {
    #[error("{}{}", .path.display(), match .error {
        FormatError::Missing => " is missing".to_string(),
        FormatError::Unreadable(why) => format!(": {why}"),
    })]
    Format { path: PathBuf, error: FormatError },
    #[error("the layout of {0}")]
    Layout(RawLayoutError),
    #[error("{}: {err}", .path.display())]
    Io { path: PathBuf, err: io::Error },
    #[error("{} has no cpuN/trace_pipe_raw", .0.display())]
    NoCpus(PathBuf),
    #[error("the binary records are decoded as little-endian, and this machine is big-endian")]
    BigEndian,
}

/// The decoder and the per-CPU `trace_pipe_raw` files of the instance (and a note when the
/// sites' stacks cannot be named), or why the binary trace cannot be read here.
#[allow(clippy::type_complexity)]
fn open_raw(
    tracefs: &Tracefs,
    instance: &Path,
    session: &TraceSession,
) -> Result<(RawDecoder, Vec<(u32, fs::File)>, Option<String>), RawUnavailable> {
    if cfg!(target_endian = "big") {
        return Err(RawUnavailable::BigEndian);
    }
    let (support, tasks) = (&session.support, session.tasks);
    let events = tracefs.root.join("events");
    let read = |rel: &str| {
        let path = events.join(rel);
        read_format(&path).map_err(|error| RawUnavailable::Format { path, error })
    };
    let header_page = read("header_page")?;
    let send = (support.send_reset && !session.sites)
        .then(|| read("tcp/tcp_send_reset/format"))
        .transpose()?;
    let receive = support
        .receive_reset
        .then(|| read("tcp/tcp_receive_reset/format"))
        .transpose()?;
    let newtask = tasks
        .then(|| read("task/task_newtask/format"))
        .transpose()?;
    let rename = tasks.then(|| read("task/task_rename/format")).transpose()?;
    let mut site_formats = Vec::new();
    let mut kernel_stack = None;
    let mut symbols = None;
    let mut note = None;
    if let Some(probes) = &session.probes {
        for site in SiteFn::ALL {
            let dir = probes.event_dir(&events, site);
            let rel = dir.strip_prefix(&events).unwrap_or(&dir).join("format");
            site_formats.push((site, read(&rel.to_string_lossy())?));
        }
        kernel_stack = Some(read("ftrace/kernel_stack/format")?);
        match crate::host::kallsyms::Symbols::load(&frame_names()) {
            Ok(s) => symbols = Some(Arc::new(s)),
            Err(e) => {
                note = Some(format!(
                    "the callers of the reset sites are not known: {e} (the text trace names them: \
                     --trace-reader text)"
                ))
            }
        }
    }
    let sites: Vec<(SiteFn, &str)> = site_formats.iter().map(|(s, t)| (*s, t.as_str())).collect();
    let decoder = RawDecoder::new(&RawFormats {
        header_page: &header_page,
        send_reset: send.as_deref(),
        receive_reset: receive.as_deref(),
        task_newtask: newtask.as_deref(),
        task_rename: rename.as_deref(),
        sites: &sites,
        kernel_stack: kernel_stack.as_deref(),
        symbols,
    })
    .map_err(RawUnavailable::Layout)?;
    let per_cpu = instance.join("per_cpu");
    let mut cpus = Vec::new();
    let entries = fs::read_dir(&per_cpu).map_err(|err| RawUnavailable::Io {
        path: per_cpu.clone(),
        err,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(cpu) = name
            .to_str()
            .and_then(|n| n.strip_prefix("cpu"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path().join("trace_pipe_raw");
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|err| RawUnavailable::Io {
                path: path.clone(),
                err,
            })?;
        cpus.push((cpu, file));
    }
    if cpus.is_empty() {
        return Err(RawUnavailable::NoCpus(per_cpu));
    }
    cpus.sort_by_key(|(cpu, _)| *cpu);
    Ok((decoder, cpus, note))
}

/// Read every CPU's pages until stopped (then drain once more).
fn read_raw(
    mut cpus: Vec<(u32, fs::File)>,
    decoder: RawDecoder,
    out: Outbox,
    stop: Arc<AtomicBool>,
    counts: Arc<ReaderCounts>,
) {
    use std::os::fd::AsRawFd;
    // One read returns at most one page (a sub-buffer): a larger buffer is never filled more.
    let mut buf = vec![0u8; decoder.page_size().max(4096)];
    let mut pfds: Vec<libc::pollfd> = cpus
        .iter()
        .map(|(_, f)| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut draining_after_stop = 0;
    let mut batch = Vec::new();
    let mut decoded = Vec::new();
    let mut join = StackJoin::default();
    let mut busy = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            draining_after_stop += 1;
            if draining_after_stop > 2 {
                join.finish(&mut batch);
                out.send(&mut batch, &counts);
                break;
            }
        }
        // Only the timeout matters (the kernel wakes pollers of trace_pipe_raw by its
        // buffer_percent): while events come, every 2 ms, so that an event is usually here
        // before its frame and the frame never waits; when none came, every 50 ms.
        let wait = if busy { 2 } else { 50 };
        // SAFETY: valid pollfds for files this thread owns.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait) };
        let mut failed = Vec::new();
        for (i, (cpu, file)) in cpus.iter_mut().enumerate() {
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let bad = decoder.page(&buf[..n], *cpu, &mut |ev| decoded.push(ev));
                        counts
                            .events
                            .fetch_add(decoded.len() as u64, Ordering::Relaxed);
                        for ev in decoded.drain(..) {
                            join.push(ev, &mut batch);
                        }
                        if bad > 0 {
                            counts.bad_records.fetch_add(bad, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        counts.stop_with(format!("reading CPU {cpu}'s trace_pipe_raw: {e}"));
                        failed.push(i);
                        break;
                    }
                }
            }
        }
        // A CPU whose pages cannot be read is not polled again (poll would return at once).
        for i in failed.into_iter().rev() {
            cpus.remove(i);
            pfds.remove(i);
        }
        join.tick(&mut batch);
        busy = !batch.is_empty();
        if !out.send(&mut batch, &counts) || cpus.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> (Outbox, Receiver<Vec<TraceEvent>>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let (_spare_tx, spare) = std::sync::mpsc::channel();
        (Outbox { tx, spare }, rx)
    }

    #[test]
    fn the_text_reader_counts_what_it_cannot_decode_and_not_lost_lines() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let text = "\
CPU:1 [LOST 7 EVENTS]
  curl-42 [001] ..s1.  5.000001: tcp_send_reset: skbaddr=0 skaddr=0 src=10.0.0.1:80 dest=10.0.0.2:5555 state=TCP_CLOSE reason=NO_SOCKET
  curl-42 [001] ..s1.  5.000002: tcp_send_reset: skbaddr=0 sk
";
        nix::unistd::write(&write, text.as_bytes()).unwrap();
        drop(write);
        let (out, rx) = outbox();
        let counts = Arc::new(ReaderCounts::default());
        read_pipe(
            fs::File::from(read),
            out,
            Arc::new(AtomicBool::new(true)),
            counts.clone(),
        );
        let events: usize = rx.try_iter().map(|b| b.len()).sum();
        assert_eq!(events, 1);
        assert_eq!(counts.undecoded(), 1, "the cut line, not the LOST line");
        assert_eq!(counts.stopped(), None);
    }

    #[test]
    fn a_trace_that_cannot_be_read_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (out, _rx) = outbox();
        let counts = Arc::new(ReaderCounts::default());
        read_pipe(
            fs::File::open(dir.path()).unwrap(),
            out,
            Arc::new(AtomicBool::new(false)),
            counts.clone(),
        );
        let why = counts.stopped().expect("a directory cannot be read");
        assert!(why.starts_with("reading trace_pipe: "), "{why}");
    }
}
