//! Benchmark of the two /proc readings that host/ does by hand instead of through procfs,
//! each against the procfs way of doing the same, in alternating rounds:
//!
//! - `owners`: socket inode -> (pid, comm, fd) over every /proc/PID/fd, by
//!   `host::owners::scan` (one readlinkat per descriptor into a stack buffer) and by
//!   procfs's `Process::fd` (per descriptor an O_PATH open, readlinkat, fstatat and close,
//!   and a `FDInfo` built), on the same number of threads;
//! - `netns`: the network namespace of every process, by one stat of /proc/PID/ns/net (as
//!   `host::netns::list_all` does) and by procfs's `Process::namespaces` (every entry of
//!   /proc/PID/ns listed and stat'ed).
//!
//! Prints `NAME hand_ms procfs_ms ratio found` (medians over REPS rounds). Root; run it next
//! to bench/loadgen.rs (docs/performance.md, "procfs and the hand-written readers"):
//!
//!   cargo run --release --example proc_parsers [REPS]      # default 9

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use procfs::process::{FDTarget, Process};

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse().expect("REPS: a number"))
        .unwrap_or(9)
        .max(1);
    let pids: Vec<i32> = procfs::process::all_processes()
        .expect("listing /proc")
        .flatten()
        .map(|p| p.pid)
        .collect();
    compare(reps, "owners", hand_owners, || procfs_owners(&pids));
    compare(reps, "netns", || hand_netns(&pids), || procfs_netns(&pids));
}

/// Time `hand` and `procfs` in alternating rounds; both must find the same number of things.
fn compare(reps: usize, name: &str, hand: impl Fn() -> usize, procfs: impl Fn() -> usize) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut found_a, mut found_b) = (0, 0);
    for round in 0..=reps {
        let time = |f: &dyn Fn() -> usize| {
            let t = Instant::now();
            let n = std::hint::black_box(f());
            (t.elapsed().as_secs_f64() * 1000.0, n)
        };
        let ((ta, na), (tb, nb)) = if round % 2 == 0 {
            let x = time(&hand);
            (x, time(&procfs))
        } else {
            let y = time(&procfs);
            (time(&hand), y)
        };
        // Round 0 warms the caches and is not counted.
        if round > 0 {
            a.push(ta);
            b.push(tb);
        }
        (found_a, found_b) = (na, nb);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (median(&mut a), median(&mut b));
    println!("{name} {ma:.1} {mb:.1} {:.2} {found_a}/{found_b}", mb / ma);
}

fn hand_owners() -> usize {
    rstaudit::host::owners::scan(Path::new("/proc"))
        .by_inode
        .len()
}

/// The same map as `owners::scan`, through procfs, on as many threads.
fn procfs_owners(pids: &[i32]) -> usize {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut found: HashMap<u64, (i32, String, i32)> = HashMap::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&pid) = pids.get(k) else { break };
            let Ok(process) = Process::new(pid) else {
                continue;
            };
            let Ok(fds) = process.fd() else { continue };
            let mut comm: Option<String> = None;
            for fd in fds.flatten() {
                if let FDTarget::Socket(inode) = fd.target {
                    let comm = comm
                        .get_or_insert_with(|| {
                            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                                .map(|c| c.trim_end().to_string())
                                .unwrap_or_default()
                        })
                        .clone();
                    found.entry(inode).or_insert((pid, comm, fd.fd));
                }
            }
        }
        found
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let maps: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = HashMap::new();
    for map in maps {
        all.extend(map);
    }
    all.len()
}

fn hand_netns(pids: &[i32]) -> usize {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    for pid in pids {
        if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
            seen.insert(meta.ino());
        }
    }
    seen.len()
}

fn procfs_netns(pids: &[i32]) -> usize {
    let mut seen = std::collections::HashSet::new();
    for &pid in pids {
        let Ok(namespaces) = Process::new(pid).and_then(|p| p.namespaces()) else {
            continue;
        };
        if let Some(net) = namespaces.0.get(std::ffi::OsStr::new("net")) {
            seen.insert(net.identifier);
        }
    }
    seen.len()
}
