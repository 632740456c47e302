//! Counting the resets of a lab run: a capture in every lab namespace
//! (the packet check's AF_PACKET capture, resets only), the kernel's reason
//! for each (the packet check's private ftrace instance, where the kernel
//! has the tracepoints), and the namespaces' counters as extra evidence.
//!
//! Also the lab's interrupt flag: SIGINT/SIGTERM set it (so the ftrace
//! instance is removed on the way out) and every wait of a scenario checks it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::trace::capture::{Capture, CaptureOptions, PacketDir, parse_rst};
use crate::trace::ftrace::{SendReset, TraceEvent};

use super::LabError;
use super::netns::LabNs;
use super::report::RunReport;
use crate::host::counters::{RESET_COUNTERS, change};

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Use `flag` as the lab's interrupt flag (set by SIGINT/SIGTERM).
pub fn set_interrupt_flag(flag: Arc<AtomicBool>) {
    let _ = INTERRUPTED.set(flag);
}

/// Whether the lab was interrupted.
pub fn interrupted() -> bool {
    INTERRUPTED.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Sleep, but give up when the lab is interrupted.
pub fn nap(d: Duration) -> Result<(), LabError> {
    let end = Instant::now() + d;
    loop {
        if interrupted() {
            return Err(LabError::Interrupted);
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// `tcp_send_reset` events seen since the lab started, with when they arrived.
static EVENTS: Mutex<Vec<(Instant, SendReset)>> = Mutex::new(Vec::new());

/// Keep the trace session's events for attribution (runs until the session ends).
pub fn collect_events(rx: crate::trace::ftrace::TraceReceiver) {
    std::thread::spawn(move || {
        for event in rx {
            if let TraceEvent::SendReset(s) = event
                && let Ok(mut events) = EVENTS.lock()
            {
                events.push((Instant::now(), s));
            }
        }
    });
}

/// Whether reasons are being collected.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Record that a trace session runs (reasons will be attributed).
pub fn set_tracing(on: bool) {
    TRACING.store(on, Ordering::SeqCst);
}

/// Watches the namespaces of one run: counters, captures, reasons.
pub struct Meter<'a> {
    nss: Vec<&'a LabNs>,
    before: Vec<BTreeMap<String, u64>>,
    captures: Vec<Mutex<Capture>>,
    capture_note: Option<String>,
    addrs: Vec<SocketAddr>,
    started: Instant,
}

/// What a [`Meter`] read.
#[derive(Debug, Default)]
pub struct Measured {
    /// Resets sent in the lab, by capture when it works, else by counters.
    pub resets: u64,
    /// Resets by counters (Tcp.OutRsts summed, plus middlebox rejects added by the scenario).
    pub counted: u64,
    /// Resets captured (sent frames), when the capture works.
    pub captured: Option<u64>,
    pub segments: Vec<String>,
    pub reasons: BTreeMap<String, u64>,
    pub counters: BTreeMap<String, u64>,
    pub notes: Vec<String>,
}

impl Measured {
    /// Add resets a middlebox's nftables rule answered (counted, and seen by capture already).
    pub fn add_middlebox_rejects(&mut self, n: u64) {
        if n > 0 {
            self.counters
                .insert("middlebox reject with tcp reset".into(), n);
            self.reasons
                .insert("middlebox (nftables reject with tcp reset)".into(), n);
        }
        self.counted += n;
        if self.captured.is_none() {
            self.resets = self.counted;
        }
    }

    pub fn apply(self, run: &mut RunReport) {
        run.resets += self.resets;
        run.counted_resets += self.counted;
        run.captured_resets = match (run.captured_resets, self.captured) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        run.segments.extend(self.segments);
        for (k, v) in self.reasons {
            *run.reasons.entry(k).or_default() += v;
        }
        run.counters.extend(self.counters);
        run.notes.extend(self.notes);
    }
}

fn capture_options() -> CaptureOptions {
    CaptureOptions {
        block_size: 1 << 16,
        block_count: 4,
        ..CaptureOptions::default()
    }
}

impl<'a> Meter<'a> {
    /// Start watching `nss`; `addrs` are the run's server endpoints (to pick its reasons from
    /// the host-wide tracepoints: every reset of a run names its server as source or destination).
    pub fn start(nss: &[&'a LabNs], addrs: Vec<SocketAddr>) -> Result<Self, LabError> {
        let before = nss
            .iter()
            .map(|ns| ns.counters())
            .collect::<Result<_, _>>()?;
        let mut captures = Vec::new();
        let mut capture_note = None;
        for ns in nss {
            match ns.run(|| Ok(Capture::open(&capture_options())?)) {
                Ok(c) => captures.push(Mutex::new(c)),
                Err(e) => {
                    capture_note = Some(format!(
                        "no capture ({}); resets counted by the namespaces' counters",
                        e.summary()
                    ));
                    captures.clear();
                    break;
                }
            }
        }
        Ok(Self {
            nss: nss.to_vec(),
            before,
            captures,
            capture_note,
            addrs,
            started: Instant::now(),
        })
    }

    /// The resets and counters so far. Call it at the end of the observed window, before
    /// the scenario's sockets are torn down (teardown is not part of the scenario).
    pub fn read(&self) -> Result<Measured, LabError> {
        let labelled = self.nss.len() > 1;
        let mut m = Measured::default();
        for (ns, before) in self.nss.iter().zip(&self.before) {
            let after = ns.counters()?;
            for name in RESET_COUNTERS {
                let delta = change(before, &after, name).unwrap_or(0);
                if *name == "Tcp.OutRsts" {
                    m.counted += delta;
                }
                if delta > 0 {
                    let key = if labelled {
                        format!("{} {name}", ns.role)
                    } else {
                        name.to_string()
                    };
                    m.counters.insert(key, delta);
                }
            }
        }
        if self.captures.is_empty() {
            m.resets = m.counted;
            m.notes.extend(self.capture_note.clone());
        } else {
            let mut captured = 0;
            // The ring hands a block over when it is full or 50 ms old: wait for the last one.
            let end = Instant::now() + Duration::from_millis(150);
            for (ns, cap) in self.nss.iter().zip(&self.captures) {
                let mut cap = cap.lock().map_err(|_| LabError::Poisoned("capture"))?;
                loop {
                    let now = Instant::now();
                    let wait = end.saturating_duration_since(now);
                    cap.poll(wait.max(Duration::from_millis(1)), &mut |frame| {
                        if frame.dir() != PacketDir::Sent {
                            return;
                        }
                        if let Ok(rst) = parse_rst(frame.ip) {
                            captured += 1;
                            m.segments
                                .push(format!("{}: {} -> {}", ns.role, rst.src, rst.dst));
                        }
                    })?;
                    if Instant::now() >= end {
                        break;
                    }
                }
                match cap.stats() {
                    Ok(stats) if stats.drops > 0 => m.notes.push(format!(
                        "the {} capture dropped {} frame(s)",
                        ns.role, stats.drops
                    )),
                    Ok(_) => {}
                    Err(e) => m.notes.push(format!(
                        "the {} capture's drop count could not be read ({e}): frames may have been lost unseen",
                        ns.role
                    )),
                }
            }
            m.captured = Some(captured);
            m.resets = captured;
        }
        if TRACING.load(Ordering::SeqCst) {
            let events = EVENTS.lock().map_err(|_| LabError::Poisoned("trace"))?;
            for (at, ev) in events.iter() {
                if *at < self.started {
                    continue;
                }
                let ours = [ev.src, ev.dst]
                    .iter()
                    .flatten()
                    .any(|a| self.addrs.contains(a));
                if ours {
                    let reason = ev.reason.unwrap_or("NOT_REPORTED_BY_THIS_KERNEL");
                    *m.reasons.entry(reason.to_string()).or_default() += 1;
                }
            }
        }
        Ok(m)
    }
}
