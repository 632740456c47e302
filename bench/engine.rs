//! Benchmark of the rule engine alone: `rules::run` on a saved snapshot.
//!
//! Usage: `engine [FILE|-] [REPS]` (FILE from `rstaudit snapshot -o FILE`, JSON;
//! `-` or nothing: a synthetic snapshot of 100,000 sockets held by six processes,
//! with owners, socket options and tcp_info, as a root audit collects them,
//! written to a temporary file and read back like a saved one).
//!
//!   cargo run --release --example engine            # synthetic, 20 runs
//!   cargo run --release --example engine snap.json 50
//!
//! Loading the file is timed once and reported on its own line; then every
//! built-in rule is run REPS times (default 20) on the loaded snapshot and the
//! median, minimum and maximum wall time are printed, in milliseconds, as
//! `engine_ms median min max findings sockets`, followed by the part of it spent
//! loading the built-in rules (`rules_load_ms`, the same every run) and the part
//! evaluating them (`eval_ms`), and the CPU time of that evaluation
//! (`eval_cpu_ms`: on a shared machine wall time includes waiting for a core).
//! Run by bench/run.sh, release build.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use rstaudit::host::{
    CounterSample, Counters, Family, Kernel, KernelVersion, Linger, NetnsInfo, Owner, Snapshot,
    SockOptions, Socket, SocketsSource, TcpInfo, TcpState, Timer,
};
use rstaudit::rules::{self, Selection};

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().filter(|f| f != "-");
    let reps: usize = args
        .next()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
        .max(1);
    let path = match &file {
        Some(f) => std::path::PathBuf::from(f),
        None => {
            let path =
                std::env::temp_dir().join(format!("rstaudit-engine-{}.json", std::process::id()));
            let bytes = serde_json::to_vec(&synthetic(100_000)).expect("serializing a snapshot");
            std::fs::write(&path, bytes).unwrap_or_else(|e| {
                eprintln!("engine: {}: {e}", path.display());
                std::process::exit(2)
            });
            path
        }
    };
    let t = Instant::now();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("engine: {}: {e}", path.display());
        std::process::exit(2)
    });
    if file.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let snapshot: Snapshot = serde_json::from_slice(&bytes)
        .or_else(|_| serde_json::from_slice::<Vec<Snapshot>>(&bytes).map(|mut v| v.swap_remove(0)))
        .unwrap_or_else(|e| {
            eprintln!("engine: {}: not a snapshot: {e}", path.display());
            std::process::exit(2)
        });
    println!("load_ms {:.2}", t.elapsed().as_secs_f64() * 1000.0);
    let selection = Selection::default();
    let mut times = Vec::with_capacity(reps);
    let mut findings = 0;
    for _ in 0..reps {
        let t = Instant::now();
        // Loading the built-in rules is part of what an audit costs, as before.
        let set = rules::load::builtin().unwrap_or_else(|e| {
            eprintln!("engine: {e}");
            std::process::exit(2)
        });
        let outcome = rules::run(&set, &selection, &snapshot).unwrap_or_else(|e| {
            eprintln!("engine: {e:#}");
            std::process::exit(2)
        });
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        findings = outcome.findings.len();
        std::hint::black_box(outcome);
    }
    let (mut load, mut eval, mut cpu) = (
        Vec::with_capacity(reps),
        Vec::with_capacity(reps),
        Vec::with_capacity(reps),
    );
    for _ in 0..reps {
        let t = Instant::now();
        let set = rules::load::builtin().unwrap_or_else(|e| {
            eprintln!("engine: {e}");
            std::process::exit(2)
        });
        let plan = selection.plan(&set).unwrap_or_else(|e| {
            eprintln!("engine: {e:#}");
            std::process::exit(2)
        });
        load.push(t.elapsed().as_secs_f64() * 1000.0);
        let (t, c) = (Instant::now(), thread_cpu_ms());
        std::hint::black_box(rules::eval::evaluate(&plan.rules, &plan.params, &snapshot));
        cpu.push(thread_cpu_ms() - c);
        eval.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (run, load, eval) = (stats(times), stats(load), stats(eval));
    println!("engine_ms {run} {findings} {}", snapshot.sockets.len());
    println!("rules_load_ms {load}");
    println!("eval_ms {eval}");
    println!("eval_cpu_ms {}", stats(cpu));
}

/// CPU time of this thread, ms.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn synthetic(n: usize) -> Snapshot {
    let procs: Vec<(u32, Arc<str>)> = ["nginx", "java", "envoy", "postgres", "redis", "python3"]
        .iter()
        .enumerate()
        .map(|(i, c)| (800 + i as u32, Arc::from(*c)))
        .collect();
    let states = [
        TcpState::Established,
        TcpState::Established,
        TcpState::Established,
        TcpState::TimeWait,
        TcpState::CloseWait,
        TcpState::FinWait2,
        TcpState::Established,
        TcpState::SynRecv,
    ];
    let sockets = (0..n)
        .map(|i| {
            let state = if i % 5000 == 0 {
                TcpState::Listen
            } else {
                states[i % states.len()]
            };
            let owned = !matches!(state, TcpState::TimeWait | TcpState::SynRecv) && i % 11 != 0;
            let (pid, comm) = &procs[i % procs.len()];
            Socket {
                family: Family::Inet,
                state,
                local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                local_port: 443,
                remote_addr: IpAddr::V4(Ipv4Addr::new(10, 1, (i >> 16) as u8, (i >> 8) as u8)),
                remote_port: (i % 60000) as u16 + 1024,
                rx_queue: if i % 97 == 0 { 512 } else { 0 },
                tx_queue: 0,
                accept_queue: (state == TcpState::Listen).then_some(3),
                backlog: (state == TcpState::Listen).then_some(4096),
                timer: if i % 13 == 0 {
                    Timer::Retransmit
                } else {
                    Timer::Keepalive
                },
                timer_expires_ms: Some(1000),
                retransmits: (i % 7) as u8,
                inode: if owned { 100_000 + i as u64 } else { 0 },
                uid: 0,
                tcp_info: (state != TcpState::TimeWait).then(|| TcpInfo {
                    last_data_recv_ms: (i as u32 % 900) * 1000,
                    last_data_sent_ms: (i as u32 % 700) * 1000,
                    last_ack_recv_ms: 100,
                    rtt_us: 300,
                    total_retrans: (i % 3) as u32,
                    probes: 0,
                }),
                owner: owned.then(|| Owner {
                    pid: *pid,
                    comm: comm.clone(),
                    fd: (i % 60000) as u32 + 3,
                }),
                options: owned.then_some(SockOptions {
                    linger: Some(Linger {
                        on: i % 4 == 0,
                        seconds: 0,
                    }),
                    keepalive: Some(i % 3 == 0),
                    keepidle: Some(7200),
                    keepintvl: Some(75),
                    keepcnt: Some(9),
                    user_timeout: Some(if i % 17 == 0 { 5000 } else { 0 }),
                    linger2: Some(if i % 19 == 0 { -1 } else { 0 }),
                }),
            }
        })
        .collect();
    let counters: BTreeMap<String, u64> = rstaudit::rules::known::COUNTERS
        .iter()
        .map(|c| (c.to_string(), 1000))
        .collect();
    Snapshot {
        schema: rstaudit::host::SCHEMA_VERSION,
        taken_at_ms: 1_700_000_000_000,
        source: "synthetic".into(),
        kernel: Kernel {
            release: "6.12.0".into(),
            version: Some(KernelVersion {
                major: 6,
                minor: 12,
                patch: 0,
            }),
        },
        netns: NetnsInfo {
            inode: None,
            name: "host".into(),
        },
        host: None,
        sysctls: [
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_abort_on_overflow", "1"),
            ("net.ipv4.tcp_keepalive_time", "7200"),
            ("net.ipv4.tcp_keepalive_intvl", "75"),
            ("net.ipv4.tcp_keepalive_probes", "9"),
            ("net.ipv4.tcp_fin_timeout", "60"),
            ("net.ipv4.tcp_max_syn_backlog", "4096"),
            ("net.ipv4.tcp_max_tw_buckets", "262144"),
            ("net.ipv4.tcp_max_orphans", "65536"),
            ("net.ipv4.tcp_syncookies", "1"),
            ("net.ipv4.tcp_rfc1337", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        counters: Counters {
            first: Some(CounterSample {
                at_ms: 1_700_000_000_000,
                values: counters,
            }),
            second: None,
        },
        sockets_source: SocketsSource::SockDiag,
        sockets,
        notes: Vec::new(),
    }
}

/// "median min max" of a set of timings, in milliseconds.
fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.2} {:.2} {:.2}", v[v.len() / 2], v[0], v[v.len() - 1])
}
