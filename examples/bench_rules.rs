//! Benchmark of the rule engine: the whole built-in library against a saved
//! snapshot of 100,000 sockets (docs/performance.md).
//!
//!   cargo run --release --example bench_rules [SNAPSHOT.json]
//!
//! Without an argument it writes a synthetic snapshot (100,000 sockets held
//! by six processes, with owners, socket options and tcp_info, as a root
//! audit collects them) to a temporary file, reads it back, and times only
//! `rules::eval::evaluate` (loading the file is not part of the engine).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use rstaudit::host::{
    CounterSample, Counters, Family, Kernel, KernelVersion, Linger, NetnsInfo, Owner, Snapshot,
    SockOptions, Socket, SocketsSource, TcpInfo, TcpState, Timer,
};

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

/// CPU time of this thread, ms (the machine may be shared: wall time then includes waiting).
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn main() -> anyhow::Result<()> {
    let path = match std::env::args_os().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let path =
                std::env::temp_dir().join(format!("rstaudit-bench-{}.json", std::process::id()));
            std::fs::write(&path, serde_json::to_vec(&synthetic(100_000))?)?;
            path
        }
    };
    let snap: Snapshot = serde_json::from_slice(&std::fs::read(&path)?)?;
    let set = rstaudit::rules::load::builtin()?;
    let rules: Vec<_> = set.rules.iter().collect();
    let params = BTreeMap::new();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut findings = 0;
    for _ in 0..20 {
        let (t, c) = (Instant::now(), thread_cpu_ms());
        let out = rstaudit::rules::eval::evaluate(&rules, &params, &snap);
        cpu.push(thread_cpu_ms() - c);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        findings = out.findings.len();
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    println!(
        "{} sockets, {} rules, {findings} findings (20 runs): wall min {:.1} ms, median {:.1} ms; CPU min {:.1} ms, median {:.1} ms",
        snap.sockets.len(),
        rules.len(),
        times[0],
        times[times.len() / 2],
        cpu[0],
        cpu[cpu.len() / 2]
    );
    let t = Instant::now();
    let _ = rstaudit::rules::load::builtin()?;
    println!(
        "loading and checking the built-in rules: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    if std::env::args_os().nth(1).is_none() {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
