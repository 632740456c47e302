//! Benchmark of the kernel's socket iterator alone (src/host/bpf/): loads the program, runs
//! it once with the probe-socket check, then REPS more times, and prints the records of the
//! first run and the median and minimum wall time of the others, in milliseconds, as
//! `iter_ms median min records`. Root; every TCP socket of every process is read, so run it
//! next to bench/loadgen.rs (as bench/run.sh sets it up) to time N sockets.
//!
//!   cargo run --release --example iter [REPS]      # default 15

use std::time::Instant;

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse().expect("REPS: a number"))
        .unwrap_or(15)
        .max(1);
    let (reader, first) = match rstaudit::host::bpf::read() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iter: the socket iterator cannot be used here: {e}");
            std::process::exit(2);
        }
    };
    let records = first.iter().count();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let sockets = reader.read().expect("a second run of the iterator");
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            std::hint::black_box(sockets);
            elapsed
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("iter_ms {:.1} {:.1} {records}", ms[reps / 2], ms[0]);
}
