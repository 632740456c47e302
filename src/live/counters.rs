//! The counter thread of the live check: the reset-related MIB counters of the watched
//! namespace, sampled every second (the thread has entered the namespace).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::host::CounterSample;
use crate::host::counters::{SampleError, read_reset_sample};

/// Sample the counters now, then every `period` until `stop`, then once more; send each sample.
pub fn sample_loop(
    period: Duration,
    stop: Arc<AtomicBool>,
    tx: Sender<Result<CounterSample, SampleError>>,
) {
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        if tx.send(read_reset_sample()).is_err() {
            return;
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        n += 1;
        let next = start + period * n;
        while Instant::now() < next {
            if stop.load(Ordering::SeqCst) {
                let _ = tx.send(read_reset_sample());
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(next - Instant::now()));
        }
    }
}
