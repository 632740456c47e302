//! Benchmark of the rule engine alone: `rules::run` on a saved snapshot.
//!
//! Usage: `engine FILE [REPS]` (FILE from `rstaudit snapshot -o FILE`, JSON).
//! Loading the file is timed once and reported on its own line; then every
//! built-in rule is run REPS times (default 20) on the loaded snapshot and the
//! median, minimum and maximum wall time are printed, in milliseconds, as
//! `engine_ms median min max findings sockets`, followed by the part of it spent
//! loading the built-in rules (`rules_load_ms`, the same every run) and the part
//! evaluating them (`eval_ms`). Run by bench/run.sh, release build.

use std::time::Instant;

use rstaudit::host::Snapshot;
use rstaudit::rules::{self, Selection};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: engine FILE [REPS]");
        std::process::exit(2);
    };
    let reps: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
        .max(1);
    let t = Instant::now();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("engine: {path}: {e}");
        std::process::exit(2)
    });
    let snapshot: Snapshot = serde_json::from_slice(&bytes)
        .or_else(|_| serde_json::from_slice::<Vec<Snapshot>>(&bytes).map(|mut v| v.swap_remove(0)))
        .unwrap_or_else(|e| {
            eprintln!("engine: {path}: not a snapshot: {e}");
            std::process::exit(2)
        });
    println!("load_ms {:.2}", t.elapsed().as_secs_f64() * 1000.0);
    let selection = Selection::default();
    let mut times = Vec::with_capacity(reps);
    let mut findings = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let outcome = rules::run(&selection, &snapshot).unwrap_or_else(|e| {
            eprintln!("engine: {e:#}");
            std::process::exit(2)
        });
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        findings = outcome.findings.len();
        std::hint::black_box(outcome);
    }
    let (mut load, mut eval) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let t = Instant::now();
        let set = selection.load().unwrap_or_else(|e| {
            eprintln!("engine: {e}");
            std::process::exit(2)
        });
        let plan = selection.plan(&set).unwrap_or_else(|e| {
            eprintln!("engine: {e:#}");
            std::process::exit(2)
        });
        load.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        std::hint::black_box(rules::eval::evaluate(&plan.rules, &plan.params, &snapshot));
        eval.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (run, load, eval) = (stats(times), stats(load), stats(eval));
    println!("engine_ms {run} {findings} {}", snapshot.sockets.len());
    println!("rules_load_ms {load}");
    println!("eval_ms {eval}");
}

/// "median min max" of a set of timings, in milliseconds.
fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.2} {:.2} {:.2}", v[v.len() / 2], v[0], v[v.len() - 1])
}
