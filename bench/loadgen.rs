//! Benchmark load generator: many real TCP sockets held by several processes.
//!
//! Run by bench/run.sh inside a network namespace it created (loopback
//! addresses 127.0.0.x only; never run it on a host's own namespace). The
//! parent starts `--procs` workers (re-executing itself); worker `i` listens
//! on 127.0.0.(10+i), ports 20000.., and opens its share of connections to
//! worker `i+1`, which accepts them. So every connection is counted twice,
//! as in `ss`: the client end and the accepted end. Clients vary their
//! options so the scan has something to read:
//!
//! | client `j % 16` | option                                             |
//! |-----------------|----------------------------------------------------|
//! | 0, 8            | SO_LINGER {1, 0}                                   |
//! | 1, 9            | SO_KEEPALIVE + TCP_KEEPIDLE 60/KEEPINTVL 10/CNT 5  |
//! | 2               | TCP_USER_TIMEOUT 30000                             |
//! | 3               | TCP_LINGER2 -1                                     |
//! | others          | defaults                                           |
//!
//! Usage: `loadgen --sockets N [--procs 6] [--listeners 4]`. When every
//! socket is open the parent prints `ready SOCKETS PID` and holds everything
//! until it is killed; workers die with it (PR_SET_PDEATHSIG). Without
//! `--procs`, 6 workers, or as many more as it takes for each to hold its
//! share under the hard RLIMIT_NOFILE (which a process without
//! CAP_SYS_RESOURCE cannot raise).

#![allow(
    clippy::disallowed_methods,
    reason = "a program of its own, not the library: it writes its answers to standard output"
)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Command, Stdio};

const BASE_PORT: u16 = 20000;

fn die(msg: String) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2)
}

fn setopt(fd: i32, level: i32, name: i32, value: &[u8]) {
    // SAFETY: value points to `value.len()` readable bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        die(format!(
            "setsockopt({level}, {name}): {}",
            std::io::Error::last_os_error()
        ));
    }
}

fn int(v: i32) -> [u8; 4] {
    v.to_ne_bytes()
}

/// Descriptors a worker needs beside its connections' two ends.
const SPARE_FDS: usize = 256;

/// How many workers `sockets` take when `--procs` is not given: 6, or more when a worker
/// holding its share would need more descriptors than the hard RLIMIT_NOFILE allows.
fn procs_for(sockets: usize, listeners: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    let hard = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_max).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    let needs = |procs: usize| {
        let conns = sockets.saturating_sub(procs * listeners) / (2 * procs);
        2 * conns + listeners + SPARE_FDS
    };
    (6..=200).find(|&p| needs(p) <= hard).unwrap_or(200)
}

/// Raise RLIMIT_NOFILE (soft and hard) to at least `want` descriptors.
fn raise_nofile(want: u64) {
    let lim = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: setrlimit reads a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        die(format!(
            "setrlimit(RLIMIT_NOFILE, {want}): {} (run as root, or raise fs.nr_open)",
            std::io::Error::last_os_error()
        ));
    }
}

fn worker_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

fn listen(addr: SocketAddrV4, backlog: i32) -> TcpListener {
    // SAFETY: plain socket syscalls on a descriptor we own.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            die(format!("socket: {}", std::io::Error::last_os_error()));
        }
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &int(1));
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(addr.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 {
            die(format!("bind {addr}: {}", std::io::Error::last_os_error()));
        }
        if libc::listen(fd, backlog) != 0 {
            die(format!(
                "listen {addr}: {}",
                std::io::Error::last_os_error()
            ));
        }
        TcpListener::from_raw_fd(fd)
    }
}

fn set_client_options(s: &TcpStream, j: usize) {
    let fd = s.as_raw_fd();
    match j % 16 {
        0 | 8 => {
            let l = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: libc::linger is plain old data; viewing it as bytes is sound.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    (&l as *const libc::linger).cast::<u8>(),
                    std::mem::size_of::<libc::linger>(),
                )
            };
            setopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, bytes);
        }
        1 | 9 => {
            setopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, &int(1));
            setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, &int(60));
            setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, &int(10));
            setopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, &int(5));
        }
        2 => setopt(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, &int(30000)),
        3 => setopt(fd, libc::IPPROTO_TCP, libc::TCP_LINGER2, &int(-1)),
        _ => {}
    }
}

/// How many of `conns` connections (spread round-robin) land on listener `k` of `listeners`.
fn share(conns: usize, listeners: usize, k: usize) -> usize {
    conns / listeners + usize::from(k < conns % listeners)
}

struct Args {
    sockets: usize,
    /// `None`: not given, chosen by [`procs_for`].
    procs: Option<usize>,
    listeners: usize,
    worker: Option<usize>,
    conns: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        sockets: 0,
        procs: None,
        listeners: 4,
        worker: None,
        conns: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> usize {
            let v = it
                .next()
                .unwrap_or_else(|| die(format!("{flag} needs a value")));
            v.parse()
                .unwrap_or_else(|_| die(format!("{flag} {v}: not a number")))
        };
        match flag.as_str() {
            "--sockets" => a.sockets = value(),
            "--procs" => a.procs = Some(value()),
            "--listeners" => a.listeners = value(),
            "--worker" => a.worker = Some(value()),
            "--conns" => a.conns = value(),
            other => die(format!(
                "unknown argument {other:?}; usage: loadgen --sockets N [--procs P] [--listeners K]"
            )),
        }
    }
    if a.procs.is_some_and(|p| p == 0 || p > 200) || a.listeners == 0 {
        die("--procs must be 1..=200 and --listeners at least 1".into());
    }
    a
}

/// A worker: listen, say `listening`, wait for `go`, connect, accept, say `ready`, hold.
fn worker(i: usize, a: &Args) {
    // SAFETY: prctl with an integer argument; dies with the parent.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    raise_nofile((2 * a.conns + a.listeners + SPARE_FDS) as u64);
    let listeners: Vec<TcpListener> = (0..a.listeners)
        .map(|k| {
            listen(
                SocketAddrV4::new(worker_addr(i), BASE_PORT + k as u16),
                4096,
            )
        })
        .collect();
    // Worker i-1 connects to us with the same number of connections, round-robin.
    let acceptors: Vec<_> = listeners
        .iter()
        .enumerate()
        .map(|(k, l)| {
            let l = l.try_clone().unwrap_or_else(|e| die(format!("dup: {e}")));
            let n = share(a.conns, a.listeners, k);
            std::thread::spawn(move || {
                let mut held = Vec::with_capacity(n);
                while held.len() < n {
                    match l.accept() {
                        Ok((s, _)) => held.push(s),
                        Err(e) => die(format!("accept: {e}")),
                    }
                }
                held
            })
        })
        .collect();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    println!("listening");
    std::io::stdout().flush().ok();
    match lines.next() {
        Some(Ok(l)) if l == "go" => {}
        _ => std::process::exit(0),
    }
    let procs = a
        .procs
        .unwrap_or_else(|| die("a worker is started with --procs".into()));
    let peer = worker_addr((i + 1) % procs);
    let mut clients = Vec::with_capacity(a.conns);
    for j in 0..a.conns {
        let to = SocketAddrV4::new(peer, BASE_PORT + (j % a.listeners) as u16);
        let s = TcpStream::connect(to).unwrap_or_else(|e| {
            die(format!(
                "worker {i}: connect {to} (#{j}): {e}; widen net.ipv4.ip_local_port_range in the namespace"
            ))
        });
        set_client_options(&s, j);
        clients.push(s);
    }
    let accepted: Vec<Vec<TcpStream>> = acceptors
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| die("acceptor panicked".into())))
        .collect();
    println!(
        "ready {}",
        clients.len() + accepted.iter().map(Vec::len).sum::<usize>()
    );
    std::io::stdout().flush().ok();
    for l in lines {
        if l.is_err() {
            break;
        }
    }
    drop((clients, accepted, listeners));
}

fn main() {
    let a = parse_args();
    if let Some(i) = a.worker {
        worker(i, &a);
        return;
    }
    let procs = a.procs.unwrap_or_else(|| procs_for(a.sockets, a.listeners));
    if a.sockets < 2 * procs * (a.listeners + 1) {
        die(format!(
            "--sockets {} is too small for {} processes with {} listeners each",
            a.sockets, procs, a.listeners
        ));
    }
    let conns = (a.sockets - procs * a.listeners) / (2 * procs);
    let exe = std::env::current_exe().unwrap_or_else(|e| die(format!("current_exe: {e}")));
    let mut children = Vec::new();
    for i in 0..procs {
        let child = Command::new(&exe)
            .args(["--worker", &i.to_string(), "--procs", &procs.to_string()])
            .args(["--listeners", &a.listeners.to_string()])
            .args(["--conns", &conns.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| die(format!("spawn worker {i}: {e}")));
        children.push(child);
    }
    let mut outs: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().expect("piped stdout")))
        .collect();
    let mut expect = |what: &str| -> Vec<String> {
        outs.iter_mut()
            .enumerate()
            .map(|(i, o)| {
                let mut line = String::new();
                o.read_line(&mut line).ok();
                if !line.starts_with(what) {
                    die(format!("worker {i} did not say {what:?} (said {line:?})"));
                }
                line.trim().to_string()
            })
            .collect()
    };
    expect("listening");
    for c in &mut children {
        let stdin = c.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "go").unwrap_or_else(|e| die(format!("worker stdin: {e}")));
        stdin.flush().ok();
    }
    let total: usize = expect("ready")
        .iter()
        .map(|l| l[6..].parse::<usize>().unwrap_or(0))
        .sum::<usize>()
        + procs * a.listeners;
    println!("ready {total} {}", std::process::id());
    std::io::stdout().flush().ok();
    // Hold until killed; the workers die with us (PR_SET_PDEATHSIG).
    let _children = children;
    loop {
        std::thread::park();
    }
}
