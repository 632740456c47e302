//! Collection: the live host (every namespace asked for), a copied /proc tree, or a saved
//! file, into snapshots. Facts that cannot be read become notes.

use super::*;

/// Where to read the host picture from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The running kernel (/proc, netlink, /proc/PID/fd).
    Live,
    /// A copied tree: ROOT/proc/sys/net, ROOT/proc/net, ROOT/proc/sys/kernel/osrelease.
    Root(std::path::PathBuf),
    /// A saved snapshot file (JSON or YAML; one snapshot or a list).
    File(std::path::PathBuf),
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub source: Source,
    /// `--netns NAME|PATH|all` (live only).
    pub netns: Option<String>,
    /// `--interval SECONDS`: sample counters twice.
    pub interval: Option<f64>,
    /// Map sockets to processes (/proc/*/fd).
    pub owners: bool,
    /// Read socket options through pidfd_getfd (implies owners).
    pub options: bool,
    /// How owners and options are read (`--owner-scan`).
    pub scan: held::OwnerScan,
}

/// Collect one snapshot per network namespace asked for (one, unless `--netns all`), each
/// with its socket table.
///
/// Facts that cannot be read become notes; an error means nothing useful could be
/// collected (unreadable or malformed input, a namespace that cannot be entered).
pub fn collect(opts: &CollectOptions) -> Result<Vec<Snapshot>, CollectError> {
    let collected = collect_into(opts, &mut |_: &Snapshot| Vec::new())?;
    Ok(collected
        .into_iter()
        .map(|(mut snapshot, sockets)| {
            snapshot.sockets = sockets;
            snapshot
        })
        .collect())
}

/// Collect as [`collect`] does, but give each namespace's sockets to a sink of its own,
/// made by `make`, instead of to the snapshot (whose `sockets` stays empty).
///
/// `make` is given the namespace's snapshot before its sockets: its kernel, namespace,
/// sysctls and counters are final then; its `sockets_source` and notes are not. On the live
/// host, when each socket can be given its owner and options as it is dumped (the kernel's
/// socket iterator, or no owners asked for) and no second counter sample is waited for, the
/// sockets reach the sink as they are dumped and the table is never held; otherwise the
/// table is read whole first (docs/snapshot.md, "Streaming").
pub fn collect_into<S: SocketSink + Send>(
    opts: &CollectOptions,
    make: &mut (dyn FnMut(&Snapshot) -> S + Send),
) -> Result<Vec<(Snapshot, S)>, CollectError> {
    match &opts.source {
        // The command line refuses these combinations before they get here.
        Source::File(path) => {
            if opts.interval.is_some() {
                return Err(SourceError::IntervalOfSaved.into());
            }
            Ok(load(path)?.into_iter().map(|s| feed(s, make)).collect())
        }
        Source::Root(dir) => {
            if opts.interval.is_some() || opts.netns.is_some() {
                return Err(SourceError::LiveOnlyInTree.into());
            }
            Ok(vec![feed(collect_root(dir, opts)?, make)])
        }
        Source::Live => collect_live(opts, make),
    }
}

/// Move a snapshot's table to a new sink.
fn feed<S: SocketSink>(
    mut snapshot: Snapshot,
    make: &mut (dyn FnMut(&Snapshot) -> S + Send),
) -> (Snapshot, S) {
    let sockets = std::mem::take(&mut snapshot.sockets);
    let mut sink = make(&snapshot);
    sink.table(sockets);
    (snapshot, sink)
}

/// An interval or a copied tree the collector refuses before reading anything. The message
/// says what is wrong with the value; the command layer adds the flag that gave it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("expected a number of seconds from 0.1 to 3600")]
    Interval(f64),
    #[error("not a directory")]
    RootNotADirectory(std::path::PathBuf),
    #[error(
        "holds neither proc/sys/net nor proc/net; give the directory that contains the copied proc/"
    )]
    RootWithoutProc(std::path::PathBuf),
    #[error(
        "a sampling interval needs the live host; a saved snapshot holds the samples it was taken with"
    )]
    IntervalOfSaved,
    #[error("a sampling interval or a namespace needs the live host, not a copied tree")]
    LiveOnlyInTree,
}

/// Why nothing useful could be collected. The variants the command layer names a flag on
/// are [`CollectError::Source`] (`--interval`, `--root`), [`CollectError::Netns`]
/// (`--netns`) and [`CollectError::Iterator`] (`--owner-scan bpf`).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Saved(#[from] SavedError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Enter(#[from] netns::EnterError),
    #[error(transparent)]
    Read(#[from] files::ParseError),
    /// The kernel's socket iterator was asked for and cannot be used.
    #[error("the kernel's socket iterator cannot be used here")]
    Iterator(#[source] bpf::Unavailable),
    #[error("the socket owner scan panicked")]
    OwnerScanPanicked,
}

fn check_interval(interval: Option<f64>) -> Result<Option<std::time::Duration>, SourceError> {
    match interval {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.1..=3600.0).contains(&s) => {
            Ok(Some(std::time::Duration::from_secs_f64(s)))
        }
        Some(s) => Err(SourceError::Interval(s)),
    }
}

fn collect_root(dir: &std::path::Path, opts: &CollectOptions) -> Result<Snapshot, CollectError> {
    use files::Place;
    if !dir.is_dir() {
        return Err(SourceError::RootNotADirectory(dir.to_path_buf()).into());
    }
    if !dir.join("proc/sys/net").exists() && !dir.join("proc/net").exists() {
        return Err(SourceError::RootWithoutProc(dir.to_path_buf()).into());
    }
    let place = Place::Root(dir);
    let mut notes = Vec::new();
    let taken_at_ms = crate::clock::now_ms();
    let osrelease = dir.join("proc/sys/kernel/osrelease");
    let read = files::open_in_tree(dir, &osrelease).and_then(|f| {
        let bytes = crate::input::read_small(f, 256)?.ok_or_else(|| {
            std::io::Error::other("longer than 256 bytes, more than any kernel release")
        })?;
        String::from_utf8(bytes)
            .ok()
            .filter(|t| !t.contains('\0'))
            .ok_or_else(|| std::io::Error::other("not text (not UTF-8, or a NUL byte)"))
    });
    let release = match read {
        Ok(text) => text.trim().to_string(),
        Err(e) => {
            notes.push(Note::new(
                "kernel",
                Some(osrelease.display().to_string()),
                format!("kernel release unknown: {e}"),
            ));
            String::new()
        }
    };
    // Optional: the distribution's patch level when the release hides it (Debian).
    let proc_version = files::open_in_tree(dir, &dir.join("proc/version"))
        .and_then(|f| crate::input::read_small(f, 1024))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let sysctls = sysctl::walk_net(place, &mut notes);
    let host = super::identity::read(place, &mut notes);
    let first = counters::read_sample(place, &mut notes)?;
    let mut sockets = Vec::new();
    let sockets_source = sockets::read(place, &mut notes, &mut sockets)?;
    if opts.owners || opts.options {
        notes.push(Note::new(
            "owners",
            None,
            "socket owners and options are not read from a copied tree",
        ));
    }
    Ok(Snapshot {
        schema: SCHEMA_VERSION,
        taken_at_ms,
        source: format!("root:{}", dir.display()),
        kernel: kernel::from_texts(&release, proc_version.as_deref()),
        netns: NetnsInfo {
            inode: None,
            name: format!("root:{}", dir.display()),
        },
        host: Some(host),
        sysctls,
        counters: Counters {
            first,
            second: None,
        },
        sockets_source,
        sockets,
        notes,
    })
}

/// One namespace to collect in.
struct Target {
    name: String,
    inode: Option<u64>,
    /// The namespace file; `None` = the caller's own namespace, entered by nobody.
    path: Option<std::path::PathBuf>,
    /// Found by `--netns all`: skip it quietly if it is gone by the time we get to it.
    optional: bool,
}

/// Run `work` in the target's namespace. The namespace file is opened only for the
/// duration of the work, so a run does not keep other namespaces alive. `Ok(None)`: an
/// optional namespace that is gone (its process exited, or the pid now names another one).
fn in_target<T: Send>(
    target: &Target,
    work: impl FnOnce() -> T + Send,
) -> Result<Option<T>, netns::EnterError> {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = &target.path else {
        return Ok(Some(work()));
    };
    // Opened without blocking, and checked to be a network namespace: a path can have been
    // replaced by anything (a FIFO included) since it was listed or resolved.
    let file = match netns::open(path) {
        Ok(file) => file,
        Err(_) if target.optional => return Ok(None),
        Err(error) => {
            return Err(netns::EnterError::Open {
                path: path.clone(),
                error,
            });
        }
    };
    let kind = netns::check_net_ns(&file);
    if target.optional && (file.metadata().map(|m| m.ino()).ok() != target.inode || kind.is_err()) {
        return Ok(None);
    }
    kind.map_err(|why| netns::EnterError::NotNetns {
        name: target.name.clone(),
        path: path.clone(),
        why,
    })?;
    Ok(Some(netns::run_in_file(&file, &target.name, work)?))
}

/// The note for a namespace found by `--netns all` that was gone before it could be read.
pub const GONE_NETNS: &str =
    "went away while rstaudit ran (its last process exited, or its name was deleted): not read";

fn targets(spec: Option<&str>, notes: &mut Vec<Note>) -> Result<Vec<Target>, netns::NetnsError> {
    match spec {
        None => Ok(vec![Target {
            name: netns::own_name(netns::current_inode().ok()),
            inode: netns::current_inode().ok(),
            path: None,
            optional: false,
        }]),
        Some("all") => {
            let own = netns::current_inode().ok();
            Ok(netns::list_all(notes)
                .into_iter()
                .map(|ns| Target {
                    path: (Some(ns.inode) != own).then_some(ns.path),
                    name: ns.name,
                    inode: Some(ns.inode),
                    optional: true,
                })
                .collect())
        }
        Some(spec) => {
            let ns = netns::resolve(spec)?;
            Ok(vec![Target {
                name: ns.name,
                inode: Some(ns.inode),
                path: Some(ns.path),
                optional: false,
            }])
        }
    }
}

/// How the sockets of the live tables reach their sinks.
enum Flow<'scope> {
    /// Decided at the first namespace, once the kernel's iterator has run or failed.
    Waiting(held::Scan<'scope>),
    /// One at a time as they are dumped, given their owner and options on the way by the
    /// kernel iterator's records (`None`: no owners asked for). Sockets the iterator's run
    /// did not see wait in `missed` for its second run.
    Stream(Option<held::Joiner>),
    /// Whole tables first: the /proc pass, the owners-only scan or a second counter sample
    /// need them; `held` fills them once every namespace is read.
    Table(Option<held::Scan<'scope>>),
}

impl Flow<'_> {
    fn decide(&mut self) -> Result<(), CollectError> {
        *self = match std::mem::replace(self, Flow::Table(None)) {
            Flow::Waiting(scan) => match scan.ready().map_err(CollectError::Iterator)? {
                held::Ready::Join(joiner) => Flow::Stream(Some(joiner)),
                held::Ready::Table(scan) => Flow::Table(Some(scan)),
            },
            decided => decided,
        };
        Ok(())
    }
}

/// How many sockets of the first namespace may wait for the kernel iterator's first run
/// (about 200 bytes each, 50 MB at most): the dump starts at once and runs beside the
/// iterator, and its sockets wait until the iterator's records can be joined to them. Once
/// this many wait, the dump waits too. At 679,000 sockets the iterator's run takes about
/// 0.5 s and the dump 0.74 s (bench/audit_parts.rs): the first 256k sockets are dumped while
/// the iterator runs, and a smaller host's whole table.
const WAITING_FOR_OWNERS: usize = 256 * 1024;

/// A namespace's sockets on their way to its sink: each is given its owner, or waits in
/// `missed` (with the namespace's index `ns`) for the iterator's second run. While the flow
/// is not decided (the iterator's first run goes on beside the dump), they wait in
/// `waiting`; a flow decided for whole tables (the /proc pass) puts them in `table`. The
/// sink is made (from `header`, the snapshot without its sockets) once the flow streams.
struct Joined<'a, 'scope, S> {
    flow: &'a mut Flow<'scope>,
    make: &'a mut (dyn FnMut(&Snapshot) -> S + Send),
    header: Snapshot,
    sink: Option<S>,
    table: &'a mut Vec<Socket>,
    missed: &'a mut Vec<(usize, Socket)>,
    ns: usize,
    waiting: Vec<Socket>,
    /// Why the flow could not be decided: the sockets after it are dropped, and the
    /// collection fails with it once the dump is over.
    failed: Option<CollectError>,
    /// Whether each socket of a batch was joined (scratch space, kept between batches).
    joined: Vec<bool>,
}

impl<S: SocketSink> Joined<'_, '_, S> {
    /// Decide the flow (waiting for the iterator if need be) and give it the sockets that
    /// waited.
    fn decide(&mut self) {
        if !matches!(self.flow, Flow::Waiting(_)) || self.failed.is_some() {
            return;
        }
        match self.flow.decide() {
            Ok(()) => {
                let mut waiting = std::mem::take(&mut self.waiting).into_iter();
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    batch.extend(waiting.by_ref().take(BATCH));
                    if batch.is_empty() {
                        break;
                    }
                    self.deliver(&mut batch);
                }
            }
            Err(e) => {
                self.waiting = Vec::new();
                self.failed = Some(e);
            }
        }
    }

    /// Give `batch` (emptied) to the decided flow.
    fn deliver(&mut self, batch: &mut Vec<Socket>) {
        match &mut *self.flow {
            Flow::Stream(joiner) => {
                let sink = self.sink.get_or_insert_with(|| (self.make)(&self.header));
                let Some(joiner) = joiner else {
                    return sink.sockets(batch);
                };
                joiner.join_all(batch, &mut self.joined);
                for (socket, seen) in batch.drain(..).zip(&self.joined) {
                    if *seen {
                        sink.socket(socket);
                    } else {
                        self.missed.push((self.ns, socket));
                    }
                }
            }
            Flow::Table(_) => self.table.append(batch),
            // Not decided: the caller decides first, or failed to.
            Flow::Waiting(_) => batch.clear(),
        }
    }

    /// The dump is over: the sockets still waiting go to the flow, decided now. The sink,
    /// where the flow streams (made now if no socket came).
    fn end(mut self) -> Result<Option<S>, CollectError> {
        self.decide();
        if let Some(e) = self.failed {
            return Err(e);
        }
        if matches!(self.flow, Flow::Stream(_)) && self.sink.is_none() {
            self.sink = Some((self.make)(&self.header));
        }
        Ok(self.sink)
    }
}

impl<S: SocketSink> SocketSink for Joined<'_, '_, S> {
    fn socket(&mut self, socket: Socket) {
        self.sockets(&mut vec![socket]);
    }
    fn sockets(&mut self, batch: &mut Vec<Socket>) {
        if self.failed.is_some() {
            return batch.clear();
        }
        if let Flow::Waiting(scan) = &self.flow {
            if !scan.is_ready() && self.waiting.len() + batch.len() <= WAITING_FOR_OWNERS {
                if self.waiting.capacity() == 0 {
                    // Pages are taken as they are filled: what waits, not the bound.
                    self.waiting.reserve_exact(WAITING_FOR_OWNERS);
                }
                return self.waiting.append(batch);
            }
            self.decide();
        }
        self.deliver(batch);
    }
    fn restart(&mut self) {
        self.waiting.clear();
        self.table.clear();
        if let Some(sink) = &mut self.sink {
            sink.restart();
        }
        let ns = self.ns;
        self.missed.retain(|(n, _)| *n != ns);
    }
}

/// Sockets on their way to another thread, in batches.
enum Batch {
    Sockets(Vec<Socket>),
    Restart,
}

/// How many sockets a batch holds (about 100 KB), and how many batches may wait: the
/// sockets in flight stay a few thousand whatever the size of the table.
const BATCH: usize = 512;
const BATCHES_WAITING: usize = 4;

/// The reading end of [`piped`]: sockets are sent on in batches.
struct Batches {
    to: std::sync::mpsc::SyncSender<Batch>,
    /// Emptied batches, sent back to be filled again.
    back: std::sync::mpsc::Receiver<Vec<Socket>>,
    batch: Vec<Socket>,
}

impl Batches {
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self
            .back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        // A send fails only when the other thread is gone; it panicked, and its join says so.
        let _ = self
            .to
            .send(Batch::Sockets(std::mem::replace(&mut self.batch, next)));
    }
}

impl SocketSink for Batches {
    fn socket(&mut self, socket: Socket) {
        self.batch.push(socket);
        if self.batch.len() == BATCH {
            self.flush();
        }
    }
    fn restart(&mut self) {
        self.batch.clear();
        let _ = self.to.send(Batch::Restart);
    }
}

/// Run `read` (the socket dump) on this thread while `sink` takes its sockets on another:
/// joining sockets to their owners and judging them then overlaps the kernel's work of
/// dumping the next ones.
fn piped<S: SocketSink + Send, T>(mut sink: S, read: impl FnOnce(&mut Batches) -> T) -> (T, S) {
    let (to, from) = std::sync::mpsc::sync_channel(BATCHES_WAITING);
    let (give_back, back) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let taker = scope.spawn(move || {
            for batch in from {
                match batch {
                    Batch::Sockets(mut sockets) => {
                        sink.sockets(&mut sockets);
                        let _ = give_back.send(sockets);
                    }
                    Batch::Restart => sink.restart(),
                }
            }
            sink
        });
        let mut batches = Batches {
            to,
            back,
            batch: Vec::with_capacity(BATCH),
        };
        let out = read(&mut batches);
        batches.flush();
        drop(batches);
        let sink = taker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (out, sink)
    })
}

/// Sysctls, counters and sockets of the calling thread's namespace: the sockets go to a
/// sink made by `make` when `flow` streams them (`Some`), else into the snapshot.
fn collect_here<S: SocketSink + Send>(
    kernel: &Kernel,
    target: &Target,
    flow: &mut Flow<'_>,
    make: &mut (dyn FnMut(&Snapshot) -> S + Send),
    missed: &mut Vec<(usize, Socket)>,
    ns: usize,
) -> Result<(Snapshot, Option<S>), CollectError> {
    use files::Place;
    let mut notes = Vec::new();
    let taken_at_ms = crate::clock::now_ms();
    let first = counters::read_sample(Place::Live, &mut notes)?;
    let sysctls = sysctl::walk_net(Place::Live, &mut notes);
    let host = super::identity::read(Place::Live, &mut notes);
    let mut snapshot = Snapshot {
        schema: SCHEMA_VERSION,
        taken_at_ms,
        source: "live".to_string(),
        kernel: kernel.clone(),
        netns: NetnsInfo {
            inode: target.inode,
            name: target.name.clone(),
        },
        host: Some(host),
        sysctls,
        counters: Counters {
            first,
            second: None,
        },
        sockets_source: SocketsSource::None,
        sockets: Vec::new(),
        notes,
    };
    // The socket table last: owners are joined to it, and the sooner it is read after the
    // processes were, the fewer short-lived sockets close in between. The first namespace's
    // dump starts while the kernel's iterator still runs; its sockets wait for it.
    match flow {
        Flow::Waiting(_) | Flow::Stream(_) => {
            let mut table = Vec::new();
            let joined = Joined {
                flow,
                make,
                header: snapshot.clone(),
                sink: None,
                table: &mut table,
                missed,
                ns,
                waiting: Vec::new(),
                failed: None,
                joined: Vec::with_capacity(BATCH),
            };
            let (source, joined) = piped(joined, |batches| {
                sockets::read(Place::Live, &mut snapshot.notes, batches)
            });
            let sink = joined.end();
            snapshot.sockets_source = source?;
            match sink? {
                Some(sink) => Ok((snapshot, Some(sink))),
                None => {
                    snapshot.sockets = table;
                    Ok((snapshot, None))
                }
            }
        }
        Flow::Table(_) => {
            let mut table = Vec::new();
            snapshot.sockets_source = sockets::read(Place::Live, &mut snapshot.notes, &mut table)?;
            snapshot.sockets = table;
            Ok((snapshot, None))
        }
    }
}

fn collect_live<S: SocketSink + Send>(
    opts: &CollectOptions,
    make: &mut (dyn FnMut(&Snapshot) -> S + Send),
) -> Result<Vec<(Snapshot, S)>, CollectError> {
    let interval = check_interval(opts.interval)?;
    let mut listing_notes = Vec::new();
    let targets = targets(opts.netns.as_deref(), &mut listing_notes)?;
    let kernel = kernel::running();
    let want_owners = opts.owners || opts.options;
    std::thread::scope(|scope| -> Result<Vec<(Snapshot, S)>, CollectError> {
        // Without options, the owner scan does not depend on the socket table: run it once,
        // on the other core, while the namespaces are read.
        let owner_scan = (want_owners && !opts.options)
            .then(|| scope.spawn(|| owners::scan(std::path::Path::new("/proc"))));
        // With options, owners and options are read by the kernel's iterator or in one pass
        // over /proc/*/fd that duplicates only the sockets of the tables; both start now, so
        // that they run while the first namespace's sysctls and counters are read.
        let held_scan = opts
            .options
            .then(|| held::Scan::start(scope, std::path::Path::new("/proc"), opts.scan));
        let mut flow = match held_scan {
            Some(scan) if interval.is_none() => Flow::Waiting(scan),
            None if interval.is_none() && owner_scan.is_none() => Flow::Stream(None),
            scan => Flow::Table(scan),
        };
        let mut snapshots = Vec::with_capacity(targets.len());
        let mut sinks = Vec::with_capacity(targets.len());
        let mut taken = Vec::with_capacity(targets.len());
        let mut missed = Vec::new();
        for target in &targets {
            let start = std::time::Instant::now();
            let ns = snapshots.len();
            let work = || collect_here(&kernel, target, &mut flow, make, &mut missed, ns);
            match in_target(target, work)? {
                Some(collected) => {
                    let (snapshot, sink) = collected?;
                    snapshots.push(snapshot);
                    sinks.push(sink);
                    taken.push((target, start));
                }
                // Found by `--netns all`, gone before its turn: said, not silently dropped.
                None => {
                    listing_notes.push(Note::new("netns", Some(target.name.clone()), GONE_NETNS))
                }
            }
        }
        let mut owner_notes = Vec::new();
        let mut option_notes: Option<Vec<Vec<Note>>> = None;
        match flow {
            Flow::Stream(Some(mut joiner)) if !missed.is_empty() => {
                owner_notes = joiner.again(missed.iter_mut().map(|(_, s)| s));
                for (ns, socket) in missed {
                    if let Some(Some(sink)) = sinks.get_mut(ns) {
                        sink.socket(socket);
                    }
                }
            }
            Flow::Stream(_) => {}
            // Before the second counter sample, as the owner scan above runs during it.
            Flow::Waiting(scan) | Flow::Table(Some(scan)) => {
                let mut tables: Vec<&mut [Socket]> =
                    snapshots.iter_mut().map(|s| &mut s.sockets[..]).collect();
                let notes = scan.finish(&mut tables).map_err(CollectError::Iterator)?;
                owner_notes = notes.owners;
                option_notes = Some(notes.options);
            }
            Flow::Table(None) => {}
        }
        if let Some(interval) = interval {
            for (snapshot, (target, start)) in snapshots.iter_mut().zip(&taken) {
                std::thread::sleep(
                    (*start + interval).saturating_duration_since(std::time::Instant::now()),
                );
                let mut notes = Vec::new();
                match in_target(target, || {
                    counters::read_sample(files::Place::Live, &mut notes)
                })? {
                    Some(second) => snapshot.counters.second = second?,
                    None => notes.push(Note::new(
                        "counters",
                        Some(target.name.clone()),
                        "no second sample: the namespace was gone before it could be taken",
                    )),
                }
                for note in notes {
                    if !snapshot.notes.contains(&note) {
                        snapshot.notes.push(note);
                    }
                }
            }
        }
        if let Some(first) = snapshots.first_mut() {
            first.notes.extend(listing_notes);
        }
        for (i, snapshot) in snapshots.iter_mut().enumerate() {
            snapshot.notes.extend(owner_notes.iter().cloned());
            if let Some(options) = option_notes.as_mut().and_then(|o| o.get_mut(i)) {
                snapshot.notes.append(options);
            }
        }
        if let Some(handle) = owner_scan {
            let map = handle.join().map_err(|_| CollectError::OwnerScanPanicked)?;
            for snapshot in &mut snapshots {
                for socket in &mut snapshot.sockets {
                    if socket.inode != 0 {
                        socket.owner = map.by_inode.get(&socket.inode).cloned();
                    }
                }
                snapshot.notes.extend(map.notes.iter().cloned());
            }
        }
        Ok(snapshots
            .into_iter()
            .zip(sinks)
            .map(|(snapshot, sink)| match sink {
                Some(sink) => (snapshot, sink),
                None => feed(snapshot, make),
            })
            .collect())
    })
}
