//! Test helper: a real process holding real TCP sockets with chosen options.
//!
//! Used by the integration tests (run inside a network namespace the test
//! creates). Each argument is one spec; sockets are made in order, then the
//! helper prints `ready PID` and holds them until its standard input closes
//! or it is killed. Only loopback addresses are used (and, for keepalive-default, an address the test gave
//! the namespace).
//!
//! Specs (PORT on 127.0.0.1):
//!   listen:PORT:BACKLOG              a listener that never accepts
//!   connect:PORT                     a plain connection, held open
//!   linger0:PORT                     a connection with SO_LINGER {1, 0}
//!   keepalive:PORT:IDLE:INTVL:CNT    SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT
//!   keepalive-default:ADDR           a connected pair on ADDR (an address of the namespace,
//!                                    e.g. on a dummy interface: not loopback), the client with
//!                                    SO_KEEPALIVE and the keepalive sysctls' defaults
//!   user-timeout:PORT:MS             TCP_USER_TIMEOUT
//!   linger2:PORT:SECS                TCP_LINGER2
//!   sleep:MS                         pause (lets handshakes finish)
//!
//! Reset scenarios (each makes the kernel send resets, then moves on):
//!   refused:PORT                     connect to a port with no listener (NO_SOCKET)
//!   refused6:PORT                    the same on [::1]
//!   unread-close                     close an accepted socket with unread data (TCP_ABORT_ON_CLOSE)
//!   linger0-close:HOLD_MS            hold a connection with SO_LINGER {1, 0} HOLD_MS, then close it (TCP_STATE)
//!   overflow:PORT:CLIENTS            listen(1) with TCP_DEFER_ACCEPT on PORT, never accept; CLIENTS
//!                                    clients connect and send data (INVALID_SYN with
//!                                    tcp_abort_on_overflow=1); the listener is held
//!   write-after-close                the peer closes, then we write twice (TCP_TIMEWAIT_SOCKET)
//!   stray-ack:PORT                   a bare ACK from 127.0.0.1:1 (no socket there) to PORT (no
//!                                    listener), sent on a raw socket: the kernel answers with a
//!                                    reset (NO_SOCKET) that no local socket takes
//!
//! Descriptor churn (for scans that race with the process):
//!   fd-churn:PORT_A:PORT_B:MS:HOLD  for MS milliseconds, keep replacing descriptor 200 (dup2),
//!                                    every HOLD ms, with a new listener: on PORT_A with SO_LINGER {1, 0}, then
//!                                    on PORT_B with SO_KEEPALIVE and TCP_KEEPIDLE 77, and so on;
//!                                    the same descriptor number names a different socket each
//!                                    time, and each old socket is closed by the replacement;
//!                                    stops early when its standard input ends or gives a
//!                                    line; then prints `churned ROUNDS`
//!
//! Real servers and middleboxes (ADDR is an IPv4 address of the namespace; a test's own):
//!   listen-on:ADDR:PORT:BACKLOG      a listener on ADDR that never accepts
//!   request:ADDR:PORT:WORD           connect and send `WORD\r\n`; the reply is never read
//!   flood:ADDR:PORT:BYTES            connect and write BYTES bytes of one long line without
//!                                    its end; prints `flood: OUTCOME` (sent, or the error)
//!   post:ADDR:PORT:BYTES[:MS]        connect and send an HTTP POST announcing a body of BYTES
//!                                    bytes, all at once, or 20 KB every 20 ms for MS ms;
//!                                    prints `post: OUTCOME` (the status line, or the error)
//!   pool:ADDR:PORT:N                 N connections, no keepalive, held
//!   write-all                        write to every connection held; prints `write-all: N of
//!                                    M failed (ERRORS)`
//!
//! Sequencing:
//!   announce                         print `ready PID` now (the test gets the pid early)
//!   wait-line                        wait for one line on standard input

#![allow(
    clippy::disallowed_methods,
    reason = "a program of its own, not the library: it writes its answers to standard output"
)]

#[path = "common/raw_ack.rs"]
mod raw_ack;

use raw_ack::RawAcks;
use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

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
        panic!(
            "setsockopt({level}, {name}): {}",
            std::io::Error::last_os_error()
        );
    }
}

fn int(v: i32) -> [u8; 4] {
    v.to_ne_bytes()
}

fn listen(port: u16, backlog: i32) -> TcpListener {
    try_listen(port, backlog).unwrap_or_else(|e| panic!("listen on 127.0.0.1:{port}: {e}"))
}

fn try_listen(port: u16, backlog: i32) -> std::io::Result<TcpListener> {
    try_listen_on([127, 0, 0, 1].into(), port, backlog)
}

fn try_listen_on(ip: std::net::Ipv4Addr, port: u16, backlog: i32) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // std's TcpListener::bind uses a fixed backlog; build the socket by hand to choose it.
    // SAFETY: plain socket syscalls on a descriptor we own (closed by OwnedFd on error).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        setopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &int(1));
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc != 0 || libc::listen(fd, backlog) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(TcpListener::from(owned))
    }
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"))
}

fn linger_zero(fd: i32) {
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

/// A connected pair on 127.0.0.1 through an ephemeral listener: (client, accepted).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
    let (a, _) = l.accept().expect("accept");
    (c, a)
}

fn pause(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

fn main() {
    let mut listeners = Vec::new();
    let mut streams = Vec::new();
    for spec in std::env::args().skip(1) {
        let parts: Vec<&str> = spec.split(':').collect();
        let num = |i: usize| -> i64 {
            parts
                .get(i)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("spec {spec:?}: field {i} must be a number"))
        };
        let addr = |i: usize| -> std::net::Ipv4Addr {
            parts
                .get(i)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("spec {spec:?}: field {i} must be an IPv4 address"))
        };
        match parts[0] {
            "listen" => listeners.push(listen(num(1) as u16, num(2) as i32)),
            "connect" => streams.push(connect(num(1) as u16)),
            "linger0" => {
                let s = connect(num(1) as u16);
                linger_zero(s.as_raw_fd());
                streams.push(s);
            }
            "keepalive" => {
                let s = connect(num(1) as u16);
                let fd = s.as_raw_fd();
                setopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, &int(1));
                setopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPIDLE,
                    &int(num(2) as i32),
                );
                setopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPINTVL,
                    &int(num(3) as i32),
                );
                setopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_KEEPCNT,
                    &int(num(4) as i32),
                );
                streams.push(s);
            }
            "keepalive-default" => {
                let l = TcpListener::bind((parts[1], 0))
                    .unwrap_or_else(|e| panic!("bind {}:0: {e}", parts[1]));
                let c = TcpStream::connect(l.local_addr().unwrap()).expect("connect");
                setopt(c.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, &int(1));
                let (a, _) = l.accept().expect("accept");
                streams.push(c);
                streams.push(a);
            }
            "user-timeout" => {
                let s = connect(num(1) as u16);
                setopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_USER_TIMEOUT,
                    &int(num(2) as i32),
                );
                streams.push(s);
            }
            "linger2" => {
                let s = connect(num(1) as u16);
                setopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_LINGER2,
                    &int(num(2) as i32),
                );
                streams.push(s);
            }
            "refused" | "refused6" => {
                let host = if parts[0] == "refused6" {
                    "::1"
                } else {
                    "127.0.0.1"
                };
                let err = TcpStream::connect((host, num(1) as u16))
                    .expect_err("connect to a closed port must fail");
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
            }
            "stray-ack" => stray_ack(num(1) as u16),
            "unread-close" => {
                let (mut c, a) = pair();
                c.write_all(b"unread").unwrap();
                pause(50);
                drop(a);
                pause(50);
            }
            "linger0-close" => {
                let (c, a) = pair();
                linger_zero(c.as_raw_fd());
                pause(num(1) as u64);
                drop(c);
                pause(50);
                drop(a);
            }
            "overflow" => {
                let port = num(1) as u16;
                let l = listen(port, 1);
                setopt(
                    l.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_DEFER_ACCEPT,
                    &int(5),
                );
                // Every handshake first (TCP_DEFER_ACCEPT keeps them out of the accept queue),
                // then the data: the later ACKs with data meet a full queue.
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let mut clients = Vec::new();
                for _ in 0..num(2) {
                    if let Ok(c) =
                        TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
                    {
                        clients.push(c);
                    }
                }
                for c in &mut clients {
                    let _ = c.write_all(b"hello");
                    pause(20);
                }
                pause(100);
                streams.extend(clients);
                listeners.push(l);
            }
            "write-after-close" => {
                let (mut c, a) = pair();
                drop(a);
                pause(50);
                let _ = c.write_all(b"late");
                pause(50);
                let _ = c.write_all(b"later");
                pause(20);
            }
            "fd-churn" => {
                const FD: i32 = 200;
                let (a, b) = (num(1) as u16, num(2) as u16);
                let until =
                    std::time::Instant::now() + std::time::Duration::from_millis(num(3) as u64);
                // A scan holding a duplicate of the old listener (pidfd_getfd) keeps its port
                // bound a moment longer: wait for it rather than fail.
                let listen_again = |port: u16| loop {
                    match try_listen(port, 8) {
                        Ok(l) => break l,
                        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => pause(1),
                        Err(e) => panic!("listen on 127.0.0.1:{port}: {e}"),
                    }
                };
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let stopper = stop.clone();
                std::thread::spawn(move || {
                    let _ = std::io::stdin().lock().read_line(&mut String::new());
                    stopper.store(true, std::sync::atomic::Ordering::SeqCst);
                });
                let mut round = 0u64;
                while std::time::Instant::now() < until
                    && !stop.load(std::sync::atomic::Ordering::SeqCst)
                {
                    let l = if round.is_multiple_of(2) {
                        let l = listen_again(a);
                        linger_zero(l.as_raw_fd());
                        l
                    } else {
                        let l = listen_again(b);
                        setopt(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_KEEPALIVE, &int(1));
                        setopt(
                            l.as_raw_fd(),
                            libc::IPPROTO_TCP,
                            libc::TCP_KEEPIDLE,
                            &int(77),
                        );
                        l
                    };
                    // SAFETY: dup2 onto a descriptor number nothing else in this process uses;
                    // it closes the socket that was there (the previous round's listener).
                    let rc = unsafe { libc::dup2(l.as_raw_fd(), FD) };
                    assert!(rc == FD, "dup2: {}", std::io::Error::last_os_error());
                    drop(l);
                    round += 1;
                    pause(num(4) as u64);
                }
                // SAFETY: FD was made by dup2 above and is owned by nothing else.
                unsafe { libc::close(FD) };
                let mut out = std::io::stdout().lock();
                writeln!(out, "churned {round}").unwrap();
                out.flush().unwrap();
            }
            "listen-on" => listeners.push(
                try_listen_on(addr(1), num(2) as u16, num(3) as i32)
                    .unwrap_or_else(|e| panic!("listen on {}: {e}", addr(1))),
            ),
            "request" => {
                let mut s = TcpStream::connect((addr(1), num(2) as u16)).expect("connect");
                s.write_all(format!("{}\r\n", parts[3]).as_bytes())
                    .expect("write");
                streams.push(s);
            }
            "flood" => {
                let mut s = TcpStream::connect((addr(1), num(2) as u16)).expect("connect");
                let outcome = match s.write_all(&vec![b'x'; num(3) as usize]) {
                    Ok(()) => "sent".to_string(),
                    Err(e) => format!("{:?}", e.kind()),
                };
                let mut out = std::io::stdout().lock();
                writeln!(out, "flood: {outcome}").unwrap();
                out.flush().unwrap();
                streams.push(s);
            }
            "post" => {
                let mut s = TcpStream::connect((addr(1), num(2) as u16)).expect("connect");
                let n = num(3) as usize;
                let head =
                    format!("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {n}\r\n\r\n");
                let trickle = parts.get(4).map(|_| num(4) as u64);
                let body = |s: &mut TcpStream| -> std::io::Result<()> {
                    match trickle {
                        None => s.write_all(&vec![b'x'; n]),
                        Some(ms) => {
                            let until =
                                std::time::Instant::now() + std::time::Duration::from_millis(ms);
                            while std::time::Instant::now() < until {
                                s.write_all(&[b'x'; 20_000])?;
                                pause(20);
                            }
                            Ok(())
                        }
                    }
                };
                let mut outcome = match s.write_all(head.as_bytes()).and_then(|()| body(&mut s)) {
                    Ok(()) => String::new(),
                    Err(e) => format!("write: {:?}; ", e.kind()),
                };
                let mut reply = [0u8; 64];
                match std::io::Read::read(&mut s, &mut reply) {
                    Ok(k) => {
                        outcome += String::from_utf8_lossy(&reply[..k])
                            .lines()
                            .next()
                            .unwrap_or("")
                    }
                    Err(e) => outcome += &format!("read: {:?}", e.kind()),
                }
                let mut out = std::io::stdout().lock();
                writeln!(out, "post: {outcome}").unwrap();
                out.flush().unwrap();
                streams.push(s);
            }
            "pool" => {
                for _ in 0..num(3) {
                    streams.push(TcpStream::connect((addr(1), num(2) as u16)).expect("connect"));
                }
            }
            "write-all" => {
                let errors: Vec<String> = streams
                    .iter_mut()
                    .filter_map(|s| {
                        let first = s.write_all(b"ping\n");
                        pause(100);
                        // A reset is told by the next write.
                        first.and_then(|()| s.write_all(b"ping\n")).err()
                    })
                    .map(|e| format!("{:?}", e.kind()))
                    .collect();
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "write-all: {} of {} failed ({})",
                    errors.len(),
                    streams.len(),
                    errors.join(", ")
                )
                .unwrap();
                out.flush().unwrap();
            }
            "announce" => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "ready {}", std::process::id()).unwrap();
                out.flush().unwrap();
            }
            "wait-line" => {
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_millis(num(1) as u64)),
            other => panic!("unknown spec {other:?}"),
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", std::process::id()).unwrap();
    out.flush().unwrap();
    drop(out);
    // Hold everything until the test closes our stdin (or kills us).
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        if line.is_err() {
            break;
        }
    }
    drop(streams);
    drop(listeners);
}

/// One bare ACK from 127.0.0.1:1 to 127.0.0.1:`port`, on a raw socket (root).
fn stray_ack(port: u16) {
    let lo = [127, 0, 0, 1];
    let sent = RawAcks::to(lo).send(&raw_ack::ack(lo, 1, lo, port, 1));
    assert!(sent, "sendto: {}", std::io::Error::last_os_error());
}
