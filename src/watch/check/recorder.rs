//! The recorder: a thread that takes the check's batches, labels each process with its unit,
//! container and pod (which may read /proc or ask a container runtime's API, so never on the
//! thread that reads the capture), counts each kind of reset once per batch in the metrics,
//! and writes the batch's event lines.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use super::batch::{Counted, Kind, Line};
use crate::host::workload::{Workload, Workloads};
use crate::watch::events::{self, Event, EventSink};
use crate::watch::metrics::{Metrics, Reset};

/// One batch.
pub struct Flush {
    pub counts: HashMap<Kind, Counted>,
    pub lines: Vec<Line>,
    pub lines_dropped: u64,
}

/// How long labels read for a process are trusted without looking at it again.
const FRESH: Duration = Duration::from_secs(1);

/// Record batches until the check is gone.
pub fn record(
    rx: Receiver<Flush>,
    metrics: Arc<Metrics>,
    events: Option<Arc<EventSink>>,
    workloads: Arc<Mutex<Workloads>>,
) {
    for flush in rx {
        let now = Instant::now();
        let mut labels: HashMap<u32, Option<Arc<Workload>>> = HashMap::default();
        {
            let mut w = workloads.lock().unwrap_or_else(PoisonError::into_inner);
            let pids = flush
                .counts
                .keys()
                .filter_map(|k| k.pid)
                .chain(flush.lines.iter().filter_map(|l| l.pid));
            for pid in pids {
                labels
                    .entry(pid)
                    .or_insert_with(|| w.recent(pid, FRESH).ok());
            }
        }
        let of = |pid: Option<u32>| pid.and_then(|p| labels.get(&p).cloned().flatten());
        for (kind, c) in &flush.counts {
            let workload = of(kind.pid);
            let mut reset = Reset {
                direction: kind.direction,
                cause: kind.cause.id(),
                reason: c.reason.unwrap_or(""),
                netns: &c.netns,
                container: "",
                unit: "",
                comm: c.comm.as_deref().unwrap_or(""),
            };
            if let Some(w) = &workload {
                reset = reset.owned_by(w);
            }
            metrics.record_reset(&reset, c.count, now);
        }
        let Some(sink) = &events else { continue };
        if flush.lines_dropped > 0 {
            sink.counters()
                .queue_full
                .fetch_add(flush.lines_dropped, std::sync::atomic::Ordering::Relaxed);
        }
        for l in flush.lines {
            let workload = of(l.pid).filter(|w| w.is_labelled());
            sink.send(Event::Reset(events::ResetEvent {
                time_ms: l.time_ms,
                direction: l.direction,
                netns: l.netns.to_string(),
                cause: l.cause.id().to_string(),
                reason: l.reason.map(str::to_string),
                local: Some(l.local.to_string()),
                remote: Some(l.remote.to_string()),
                pid: l.pid,
                comm: l.comm.as_deref().map(str::to_string),
                workload,
                rule: l.rule,
            }));
        }
    }
}
