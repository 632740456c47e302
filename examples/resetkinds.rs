//! Test helper: two processes of distinct names make the four common kinds of TCP reset on
//! loopback, in IPv4 and then IPv6, so that a check can be asked who sent each and why.
//!
//!   resetkinds [--wait-line] [--families 4,6]
//!
//! The process forks: the parent names itself `rst-server` and listens on 127.0.0.1 and [::1]
//! (its listeners live for the whole run, as a server's do), the child names itself
//! `rst-client` (prctl PR_SET_NAME), and the parent prints `ready SERVER_PID CLIENT_PID`. With
//! `--wait-line` they wait for one line on standard input first. Then, for each family:
//!
//! 1. closed port: the client connects to a port with no listener (the kernel answers the SYN);
//! 2. unread close: the client sends 6 bytes, the server closes without reading them;
//! 3. linger zero: the server closes an accepted connection with SO_LINGER {1, 0};
//! 4. write after close: the server closes (a FIN), the client writes after that and meets the
//!    server's TIME_WAIT entry.
//!
//! The parent prints `done` when both have finished. Only loopback addresses are used.

#![allow(
    clippy::disallowed_methods,
    reason = "a program of its own, not the library: it writes its answers to standard output"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn set_name(name: &str) {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a libc::linger from a valid pointer.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

fn loopback(family: &str) -> IpAddr {
    match family {
        "6" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// A line of the control channel.
fn line(r: &mut BufReader<UnixStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).expect("control channel");
    l.trim().to_string()
}

fn say(w: &mut UnixStream, what: &str) {
    writeln!(w, "{what}").expect("control channel");
}

/// The server: accepts on the listener of the family the client names, and closes each
/// connection as told.
fn server(ctl: UnixStream, listeners: &[(String, TcpListener)]) {
    let mut w = ctl.try_clone().unwrap();
    let mut r = BufReader::new(ctl);
    loop {
        let cmd = line(&mut r);
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let accept = |family: &str| {
            let (_, l) = listeners
                .iter()
                .find(|(f, _)| f == family)
                .expect("a listener of that family");
            l.accept().unwrap().0
        };
        match words.as_slice() {
            ["unread", family] => {
                let s = accept(family);
                // Wait until the bytes are here (readable), then close without reading.
                let mut pfd = libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 5000) };
                drop(s);
                say(&mut w, "ok");
            }
            ["linger0", family] => {
                let s = accept(family);
                linger_zero(&s);
                drop(s);
                say(&mut w, "ok");
            }
            ["close", family] => {
                drop(accept(family));
                say(&mut w, "ok");
            }
            ["quit"] | [] => return,
            other => panic!("unknown command {other:?}"),
        }
    }
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The client: makes each kind of reset in turn, for each family (the server's port of each).
fn client(ctl: UnixStream, families: &[(String, u16)]) {
    let mut w = ctl.try_clone().unwrap();
    let mut r = BufReader::new(ctl);
    for (family, port) in families {
        let ip = loopback(family);
        // 1. A closed port: one just freed.
        let free = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
        let closed = free.local_addr().unwrap();
        drop(free);
        let err = TcpStream::connect(closed).expect_err("a closed port refuses");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        pause(100);
        let at = SocketAddr::new(ip, *port);
        // Each connection is made before the server is told to accept it: the server's reset
        // must not come before connect() returned (on a slow machine it can).
        // 2. Unread bytes at the server's close.
        let mut c = TcpStream::connect(at).unwrap();
        c.write_all(b"unread").unwrap();
        say(&mut w, &format!("unread {family}"));
        assert_eq!(line(&mut r), "ok");
        let mut buf = [0u8; 16];
        let _ = c.read(&mut buf);
        drop(c);
        pause(100);
        // 3. SO_LINGER {1, 0} at the server's close.
        let mut c = TcpStream::connect(at).unwrap();
        say(&mut w, &format!("linger0 {family}"));
        assert_eq!(line(&mut r), "ok");
        let _ = c.read(&mut buf);
        drop(c);
        pause(100);
        // 4. A write after the server closed: its TIME_WAIT entry answers.
        let mut c = TcpStream::connect(at).unwrap();
        say(&mut w, &format!("close {family}"));
        assert_eq!(line(&mut r), "ok");
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0, "the server's FIN");
        let _ = c.write_all(b"late");
        pause(50);
        let _ = c.write_all(b"later");
        drop(c);
        pause(100);
    }
    say(&mut w, "quit");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let wait = args.iter().any(|a| a == "--wait-line");
    let families: Vec<String> = args
        .iter()
        .position(|a| a == "--families")
        .and_then(|i| args.get(i + 1))
        .map_or("4,6", String::as_str)
        .split(',')
        .map(str::to_string)
        .collect();
    let listeners: Vec<(String, TcpListener)> = families
        .iter()
        .map(|f| {
            let l = TcpListener::bind(SocketAddr::new(loopback(f), 0)).expect("bind");
            (f.clone(), l)
        })
        .collect();
    let ports: Vec<(String, u16)> = listeners
        .iter()
        .map(|(f, l)| (f.clone(), l.local_addr().unwrap().port()))
        .collect();
    let (server_end, client_end) = UnixStream::pair().expect("socketpair");
    // SAFETY: the process has one thread here; the child only runs Rust code of its own.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        drop(server_end);
        drop(listeners);
        set_name("rst-client");
        let mut go = client_end.try_clone().unwrap();
        let mut b = [0u8; 1];
        // The parent says when to start.
        go.read_exact(&mut b).expect("start");
        client(client_end, &ports);
        std::process::exit(0);
    }
    drop(client_end);
    set_name("rst-server");
    println!("ready {} {child}", std::process::id());
    std::io::stdout().flush().unwrap();
    if wait {
        let mut l = String::new();
        std::io::stdin().read_line(&mut l).unwrap();
    }
    let mut start = server_end.try_clone().unwrap();
    start.write_all(b"g").unwrap();
    server(server_end, &listeners);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the client failed ({status})"
    );
    println!("done");
}
