//! The event writer: a bounded queue to a thread of its own, so a slow reader (a pipe, a
//! full disk, a stuck NFS mount) never blocks the producer. When the queue is full the event
//! is dropped and counted; the next line written after a loss is a `dropped` event saying how
//! many. [`EventSink::reopen`] makes the writer close its file and open the path again (after
//! logrotate renamed it): the caller's opener decides what "the path" is, standard output
//! included.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::schema::{DroppedEvent, EVENTS_SCHEMA, Event, Line};

/// Opens the output: called once at start, and again on each reopen.
pub type Opener = Box<dyn FnMut() -> io::Result<Box<dyn Write + Send>> + Send>;

/// How often the writer looks for a reopen request while no event comes.
const POLL: Duration = Duration::from_millis(100);
/// How long a writer whose file could not be opened waits before it tries again.
const RETRY_OPEN: Duration = Duration::from_secs(1);

/// The sink's counts, shared with the metrics (`rstaudit_events_*`).
#[derive(Debug, Default)]
pub struct EventCounters {
    pub written: AtomicU64,
    pub queue_full: AtomicU64,
    pub write_failed: AtomicU64,
}

enum Message {
    Event(Event),
    Stop,
}

/// The producer's end.
pub struct EventSink {
    queue: SyncSender<Message>,
    counters: Arc<EventCounters>,
    reopen: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
    writer: Option<JoinHandle<()>>,
}

/// An opener that appends to `path`, creating it (mode 0640) when absent.
pub fn append_to(path: impl Into<PathBuf>) -> Opener {
    let path = path.into();
    Box::new(move || {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Box::new(file) as Box<dyn Write + Send>)
    })
}

impl EventSink {
    /// Open the output (an error here is returned: the caller can say so at start) and
    /// start the writer with room for `capacity` events.
    pub fn start(
        mut open: Opener,
        capacity: usize,
        counters: Arc<EventCounters>,
    ) -> io::Result<EventSink> {
        let first = open()?;
        let (queue, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let writer = Writer {
            rx,
            open,
            out: Some(BufWriter::new(first)),
            counters: counters.clone(),
            reopen: reopen.clone(),
            error: error.clone(),
            reported: (0, 0),
            failed_open_at: None,
        };
        let writer = std::thread::Builder::new()
            .name("rstaudit-events".into())
            .spawn(move || writer.run())?;
        Ok(EventSink {
            queue,
            counters,
            reopen,
            error,
            writer: Some(writer),
        })
    }

    /// Queue an event; never waits. `false` when it was dropped (the queue was full, or
    /// the writer is gone), which is counted.
    pub fn send(&self, event: Event) -> bool {
        match self.queue.try_send(Message::Event(event)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.write_failed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Ask the writer to close its output and open it again, before its next event.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
    }

    pub fn counters(&self) -> Arc<EventCounters> {
        self.counters.clone()
    }

    /// The last problem writing or opening the output, while it lasts (`None` once a
    /// write succeeded again).
    pub fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Write what is queued, flush and stop the writer. Waits for the writer: a writer
    /// stuck on its output holds this call (dropping the sink instead does not wait).
    pub fn close(mut self) {
        let _ = self.queue.send(Message::Stop);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        // Without waiting: the writer ends once it has written what was queued.
        let _ = self.queue.try_send(Message::Stop);
    }
}

struct Writer {
    rx: Receiver<Message>,
    open: Opener,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    counters: Arc<EventCounters>,
    reopen: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
    /// The drop counts the last `dropped` line accounted for.
    reported: (u64, u64),
    failed_open_at: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = match self.rx.recv_timeout(POLL) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.reopen.swap(false, Ordering::SeqCst) {
                self.flush();
                self.out = None;
                self.failed_open_at = None;
                self.ensure_open();
            }
            let Some(mut message) = first else { continue };
            // Everything queued now, then one flush.
            loop {
                match message {
                    Message::Stop => {
                        self.flush();
                        return;
                    }
                    Message::Event(event) => self.write(&event),
                }
                message = match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.flush();
                        return;
                    }
                };
            }
            self.flush();
        }
        self.flush();
    }

    fn ensure_open(&mut self) {
        if self.out.is_some() {
            return;
        }
        if self
            .failed_open_at
            .is_some_and(|at| at.elapsed() < RETRY_OPEN)
        {
            return;
        }
        match (self.open)() {
            Ok(w) => {
                self.out = Some(BufWriter::new(w));
                self.failed_open_at = None;
            }
            Err(e) => {
                self.failed(format!("opening the event output: {e}"));
                self.failed_open_at = Some(Instant::now());
            }
        }
    }

    fn write(&mut self, event: &Event) {
        self.ensure_open();
        if self.out.is_none() {
            self.counters.write_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let dropped = (
            self.counters.queue_full.load(Ordering::Relaxed),
            self.counters.write_failed.load(Ordering::Relaxed),
        );
        if dropped != self.reported {
            let gap = Event::Dropped(DroppedEvent {
                time_ms: crate::clock::now_ms(),
                queue_full: dropped.0 - self.reported.0,
                write_failed: dropped.1 - self.reported.1,
            });
            if self.line(&gap).is_ok() {
                self.reported = dropped;
            }
        }
        match self.line(event) {
            Ok(()) => {
                self.counters.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.write_failed.fetch_add(1, Ordering::Relaxed);
                self.failed(format!("writing an event: {e}"));
                self.out = None;
            }
        }
    }

    fn line(&mut self, event: &Event) -> io::Result<()> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("no output"))?;
        serde_json::to_writer(
            &mut *out,
            &Line {
                schema: EVENTS_SCHEMA,
                event,
            },
        )
        .map_err(io::Error::from)?;
        out.write_all(b"\n")?;
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            self.failed(format!("writing events: {e}"));
            self.out = None;
        }
    }

    fn failed(&self, message: String) {
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::ResetEvent;
    use super::*;
    use std::sync::mpsc;

    fn reset(n: u64) -> Event {
        Event::Reset(ResetEvent {
            time_ms: n,
            direction: None,
            netns: "host".into(),
            cause: "no-socket".into(),
            reason: None,
            local: None,
            remote: None,
            pid: None,
            comm: None,
            workload: None,
            rule: None,
        })
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_renamed_file_is_left_and_the_path_opened_again_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = EventSink::start(append_to(&path), 16, Arc::default()).unwrap();
        assert!(sink.send(reset(1)));
        wait_for("the first line", || lines(&path).len() == 1);
        // logrotate: rename, then ask for the reopen (what SIGHUP will do).
        let rotated = dir.path().join("events.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        wait_for("the new file", || path.exists());
        assert!(sink.send(reset(2)));
        sink.close();
        let old = lines(&rotated);
        let new = lines(&path);
        assert_eq!((old.len(), new.len()), (1, 1));
        assert_eq!(old[0]["time_ms"], 1);
        assert_eq!(new[0]["time_ms"], 2);
        assert_eq!(new[0]["schema"], EVENTS_SCHEMA);
        assert_eq!(new[0]["type"], "reset");
    }

    /// A writer that says when it is written to, then waits until the test lets it go, as
    /// a pipe nobody reads does.
    struct Stuck {
        entered: mpsc::Sender<()>,
        gate: Arc<Mutex<mpsc::Receiver<()>>>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.gate.lock().unwrap().recv();
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_never_blocks_the_producer_and_the_loss_is_counted_and_written() {
        let (release, gate) = mpsc::channel::<()>();
        let (entered, writing) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let got = Arc::new(Mutex::new(Vec::new()));
        let stuck = Stuck {
            entered,
            gate,
            got: got.clone(),
        };
        let mut once = Some(stuck);
        let opener: Opener = Box::new(move || {
            let w = once
                .take()
                .ok_or_else(|| io::Error::other("opened twice"))?;
            Ok(Box::new(w) as Box<dyn Write + Send>)
        });
        let sink = EventSink::start(opener, 4, Arc::default()).unwrap();
        assert!(sink.send(reset(0)));
        writing
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer writes");
        // The writer is stuck in its write: the queue takes 4, the rest is dropped, at once.
        let started = Instant::now();
        let sent = (1..=1000).filter(|&n| sink.send(reset(n))).count() as u64;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let counters = sink.counters();
        assert_eq!(
            (sent, counters.queue_full.load(Ordering::Relaxed)),
            (4, 996)
        );
        drop(release);
        wait_for("the queue to drain", || {
            counters.written.load(Ordering::Relaxed) == 5
        });
        assert!(sink.send(reset(5000)));
        sink.close();
        let text = String::from_utf8(got.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "reset", "dropped", "reset", "reset", "reset", "reset", "reset"
            ]
        );
        assert_eq!(lines[1]["queue_full"], 996);
        assert_eq!(lines[2]["time_ms"], 1);
        assert_eq!(lines.last().unwrap()["time_ms"], 5000);
    }

    #[test]
    fn an_output_that_cannot_be_opened_again_is_an_error_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        assert!(
            EventSink::start(append_to(&path), 4, Arc::default()).is_err(),
            "no such directory"
        );
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let sink = EventSink::start(append_to(&path), 4, Arc::default()).unwrap();
        std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
        sink.reopen();
        std::thread::sleep(POLL * 3);
        assert!(sink.send(reset(1)));
        let counters = sink.counters();
        wait_for("the failed write", || {
            counters.write_failed.load(Ordering::Relaxed) == 1
        });
        let err = sink.error().expect("an error");
        assert!(err.contains("events.jsonl"), "{err}");
        sink.close();
    }
}
