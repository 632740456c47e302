//! A scripted TCP peer for the live packet-check tests, and the kernel's own answer.
//!
//! - [`in_netns`] runs a closure in a thread that entered a test's namespace (sockets it makes
//!   belong to the test process, so the test knows their owner's pid).
//! - [`Tun`] is a tun device inside that namespace: the test writes exact IP segments into it
//!   as a remote peer would send them, and reads back what the kernel answers, checking each
//!   segment (IPv4 and IPv6; headers built and parsed with etherparse).
//! - [`Forked`] is a process of the test's own (fork from a thread inside the namespace, raw
//!   system calls only) that holds a listener, so that "another process" has a known pid.
//! - [`KernelTrace`] is an ftrace instance of the test's own with `tcp:tcp_send_reset`: what
//!   the kernel itself says about each reset, to compare with rstaudit's answer.

pub mod old_kernel;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use rstaudit::trace::ftrace::{self, SendReset, TraceEvent};

/// Run `f` in a thread that entered network namespace `ns` (a name under /run/netns).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            f()
        })
        .join()
        .expect("thread in the namespace panicked")
    })
}

fn enter(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}")).expect("opening the namespace");
    // SAFETY: a valid namespace descriptor; only this thread changes namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// IPv4 or IPv6 for one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// This namespace's address on the tun device.
    pub fn local(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            Self::V6 => IpAddr::V6("fd77::1".parse().unwrap()),
        }
    }

    /// The scripted peer's address, behind the tun device.
    pub fn peer(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)),
            Self::V6 => IpAddr::V6("fd77::2".parse().unwrap()),
        }
    }

    /// The loopback address.
    pub fn loopback(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Self::V6 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        }
    }

    pub fn any(self) -> IpAddr {
        match self {
            Self::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Self::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// One TCP segment read back from the tun device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub rst: bool,
}

/// A tun device `rsttun0` in a namespace, with 10.77.0.1/24 and fd77::1/64 on it.
pub struct Tun {
    fd: OwnedFd,
}

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

impl Tun {
    pub const NAME: &'static str = "rsttun0";

    pub fn new(ns: &str) -> Self {
        let fd = in_netns(ns, || {
            // SAFETY: plain open of a device node.
            let raw = unsafe {
                libc::open(
                    c"/dev/net/tun".as_ptr(),
                    libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            };
            assert!(
                raw >= 0,
                "/dev/net/tun: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: `raw` is a new descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let mut req = IfReq {
                name: [0; 16],
                flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
                _pad: [0; 22],
            };
            req.name[..Self::NAME.len()].copy_from_slice(Self::NAME.as_bytes());
            // SAFETY: TUNSETIFF reads and writes one ifreq.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req) };
            assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
            fd
        });
        for args in [
            vec!["addr", "add", "10.77.0.1/24", "dev", Self::NAME],
            vec![
                "-6",
                "addr",
                "add",
                "fd77::1/64",
                "dev",
                Self::NAME,
                "nodad",
            ],
            vec!["link", "set", Self::NAME, "up"],
        ] {
            super::common::run(
                std::process::Command::new("ip")
                    .args(["-n", ns])
                    .args(&args),
            );
        }
        Self { fd }
    }

    /// Write one segment from the peer (`from`) to `to`.
    pub fn send(&self, from: SocketAddr, to: SocketAddr, seq: u32, ack: Option<u32>, syn: bool) {
        let ip = match (from.ip(), to.ip()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => PacketBuilder::ipv4(a.octets(), b.octets(), 64),
            (IpAddr::V6(a), IpAddr::V6(b)) => PacketBuilder::ipv6(a.octets(), b.octets(), 64),
            _ => panic!("mixed families {from} {to}"),
        };
        let mut tcp = ip.tcp(from.port(), to.port(), seq, 65_000);
        if syn {
            tcp = tcp.syn();
        }
        if let Some(a) = ack {
            tcp = tcp.ack(a);
        }
        let mut buf = Vec::new();
        tcp.write(&mut buf, &[]).expect("building the segment");
        let mut f = File::from(self.fd.try_clone().expect("dup"));
        f.write_all(&buf).expect("writing into the tun device");
    }

    /// The next reset to `to` within `timeout` (SYN-ACK retransmissions and other traffic
    /// are skipped).
    pub fn recv_rst_to(&self, to: SocketAddr, timeout: Duration) -> Option<Segment> {
        let until = Instant::now() + timeout;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.recv_to(to, left) {
                Some(s) if s.rst => return Some(s),
                Some(_) => continue,
                None => return None,
            }
        }
        None
    }

    /// The next TCP segment to `to` within `timeout` (other traffic, such as IPv6 router
    /// solicitations, is skipped).
    pub fn recv_to(&self, to: SocketAddr, timeout: Duration) -> Option<Segment> {
        let until = Instant::now() + timeout;
        let mut f = File::from(self.fd.try_clone().expect("dup"));
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 50) };
            let n = match f.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("reading the tun device: {e}"),
            };
            if let Some(seg) = parse(&buf[..n])
                && seg.dst == to
            {
                return Some(seg);
            }
        }
        None
    }

    /// A full handshake from `from` to `to`: SYN, the kernel's SYN-ACK, and (when `complete`)
    /// the final ACK. Returns the peer's next sequence number and the next it acknowledges.
    pub fn handshake(&self, from: SocketAddr, to: SocketAddr, complete: bool) -> (u32, u32) {
        let isn = 1_000_000 + u32::from(from.port());
        self.send(from, to, isn, None, true);
        let synack = self
            .recv_to(from, Duration::from_secs(3))
            .unwrap_or_else(|| panic!("no SYN-ACK from {to} to {from}"));
        assert!(synack.syn && synack.ack_flag && !synack.rst, "{synack:?}");
        assert_eq!(synack.ack, isn + 1, "{synack:?}");
        let (seq, ack) = (isn + 1, synack.seq.wrapping_add(1));
        if complete {
            self.send(from, to, seq, Some(ack), false);
        }
        (seq, ack)
    }
}

fn parse(packet: &[u8]) -> Option<Segment> {
    let h = PacketHeaders::from_ip_slice(packet).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match h.net? {
        NetHeaders::Ipv4(ip, _) => (ip.source.into(), ip.destination.into()),
        NetHeaders::Ipv6(ip, _) => (ip.source.into(), ip.destination.into()),
        NetHeaders::Arp(_) => return None,
    };
    let TransportHeader::Tcp(t) = h.transport? else {
        return None;
    };
    Some(Segment {
        src: SocketAddr::new(src, t.source_port),
        dst: SocketAddr::new(dst, t.destination_port),
        seq: t.sequence_number,
        ack: t.acknowledgment_number,
        syn: t.syn,
        ack_flag: t.ack,
        rst: t.rst,
    })
}

/// A process of the test's own, forked inside a namespace, holding a TCP listener until
/// dropped. Between fork and its end the child makes raw system calls only.
pub struct Forked {
    pub pid: u32,
}

impl Forked {
    /// Listen on `addr` with `backlog`, never accepting.
    pub fn listener(ns: &str, addr: SocketAddr, backlog: i32) -> Self {
        Self::spawn(ns, addr, backlog, false)
    }

    /// Listen on `addr`, accept one connection and close it at once (the server that closes
    /// first), keeping the listener.
    pub fn accept_and_close(ns: &str, addr: SocketAddr) -> Self {
        Self::spawn(ns, addr, 16, true)
    }

    fn spawn(ns: &str, addr: SocketAddr, backlog: i32, accept_one: bool) -> Self {
        let (storage, len) = sockaddr(addr);
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let pid = in_netns(ns, move || {
            let mut pipe = [0i32; 2];
            // SAFETY: a two-int array for pipe2.
            assert_eq!(
                unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) },
                0
            );
            // SAFETY: the child only makes async-signal-safe system calls and never returns.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                // SAFETY: raw system calls on values prepared before the fork.
                unsafe {
                    // The fork copied every descriptor of the test process, among them the
                    // sockets of tests running beside this one: holding them would keep their
                    // close() from closing anything. Keep only the pipe's write end.
                    let w = pipe[1] as libc::c_uint;
                    libc::syscall(libc::SYS_close_range, 3u32, w - 1, 0u32);
                    libc::syscall(libc::SYS_close_range, w + 1, u32::MAX, 0u32);
                    let one: libc::c_int = 1;
                    let fd = libc::socket(family, libc::SOCK_STREAM, 0);
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_REUSEADDR,
                        (&one as *const libc::c_int).cast(),
                        4,
                    );
                    if family == libc::AF_INET6 {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_IPV6,
                            libc::IPV6_V6ONLY,
                            (&one as *const libc::c_int).cast(),
                            4,
                        );
                    }
                    let ok = fd >= 0
                        && libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len)
                            == 0
                        && libc::listen(fd, backlog) == 0;
                    let byte: u8 = if ok { b'1' } else { b'0' };
                    libc::write(pipe[1], (&byte as *const u8).cast(), 1);
                    if ok && accept_one {
                        let conn = libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut());
                        libc::close(conn);
                    }
                    loop {
                        libc::pause();
                    }
                }
            }
            // SAFETY: closing our copy of the write end; reading one byte.
            let (n, byte) = unsafe {
                libc::close(pipe[1]);
                let mut byte = 0u8;
                let n = libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1);
                libc::close(pipe[0]);
                (n, byte)
            };
            let child = Forked { pid: pid as u32 };
            assert!(
                n == 1 && byte == b'1',
                "the forked listener on {addr} failed"
            );
            let pid = child.pid;
            std::mem::forget(child);
            pid
        });
        Self { pid }
    }
}

/// A process of the test's own that connects to `addr`, waits until data arrives, closes the
/// connection without reading it (an active reset, TCP_ABORT_ON_CLOSE) and exits at once.
/// Returns its pid once it has exited and been reaped (it is gone from /proc).
pub fn close_unread_and_exit(ns: &str, addr: SocketAddr, serve: impl FnOnce() + Send) -> u32 {
    let (storage, len) = sockaddr(addr);
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    in_netns(ns, move || {
        // SAFETY: the child makes raw system calls only and ends with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: raw system calls on values prepared before the fork.
            unsafe {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                let fd = libc::socket(family, libc::SOCK_STREAM, 0);
                if fd < 0
                    || libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len)
                        != 0
                {
                    libc::_exit(1);
                }
                let mut b = 0u8;
                libc::recv(fd, (&mut b as *mut u8).cast(), 1, libc::MSG_PEEK);
                libc::close(fd);
                libc::_exit(0);
            }
        }
        serve();
        let mut status = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the short-lived client failed: {status}"
        );
        pid as u32
    })
}

impl Drop for Forked {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
        }
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

static N: AtomicU32 = AtomicU32::new(0);

/// An ftrace instance of the test's own with `tcp:tcp_send_reset` enabled; removed on drop.
pub struct KernelTrace {
    dir: PathBuf,
}

impl KernelTrace {
    pub fn start() -> Self {
        let tracefs = ftrace::Tracefs::find_or_mount().expect("tracefs");
        let dir = tracefs.root.join(format!(
            "instances/rsta-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&dir).expect("creating the test's ftrace instance");
        let t = Self { dir };
        std::fs::write(t.dir.join("buffer_size_kb"), "1024").unwrap();
        std::fs::write(t.dir.join("events/tcp/tcp_send_reset/enable"), "1").unwrap();
        t
    }

    /// Every tcp_send_reset the kernel recorded so far.
    pub fn send_resets(&self) -> Vec<SendReset> {
        let text = std::fs::read(self.dir.join("trace")).unwrap();
        let (events, errors) = ftrace::parse_all(&text[..]);
        assert!(errors.is_empty(), "{errors:?}");
        events
            .into_iter()
            .filter_map(|e| match e {
                TraceEvent::SendReset(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The kernel's tcp_send_reset for a reset from `src` to `dst` (a listener's event may
    /// print a wildcard address); fails when there is none.
    pub fn reset(&self, src: SocketAddr, dst: SocketAddr) -> SendReset {
        find_reset(&self.send_resets(), src, dst)
    }
}

/// The event of `all` for a reset from `src` to `dst`; fails when there is none.
pub fn find_reset(all: &[SendReset], src: SocketAddr, dst: SocketAddr) -> SendReset {
    let canon = |a: SocketAddr| rstaudit::live::correlate::canon(a);
    all.iter()
        .find(|s| s.src.map(canon) == Some(canon(src)) && s.dst.map(canon) == Some(canon(dst)))
        .or_else(|| {
            all.iter().find(|s| {
                s.src.map(canon).is_some_and(|a| {
                    a.port() == src.port() && (a.ip() == src.ip() || a.ip().is_unspecified())
                })
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("the kernel traced no reset {src} -> {dst}: {all:#?}"))
}

impl Drop for KernelTrace {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("tracing_on"), "0");
        let _ = std::fs::write(self.dir.join("events/enable"), "0");
        // The kernel refuses (EBUSY) while a reader of the instance is still closing.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "could not remove the test's ftrace instance {}",
            self.dir.display()
        );
    }
}

/// A running `rstaudit packet-check` that has announced its window.
pub struct Watch {
    child: std::process::Child,
    err: std::io::BufReader<std::process::ChildStderr>,
}

impl Watch {
    /// Start packet-check with `args` and wait until it says it is watching.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, |_| {})
    }

    /// The same, with `prep` applied to the command first.
    pub fn start_with(args: &[&str], prep: impl FnOnce(&mut std::process::Command)) -> Self {
        let mut cmd = super::common::rstaudit();
        cmd.arg("packet-check").args(args);
        prep(&mut cmd);
        let (child, err) = super::common::start_watching(cmd.stdout(std::process::Stdio::piped()));
        Self { child, err }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the end; the JSON report.
    pub fn finish(self) -> serde_json::Value {
        let out = super::common::finish_watching(self.child, self.err);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
    }
}

/// The report's event for the reset from `src` to `dst`.
pub fn event(report: &serde_json::Value, src: SocketAddr, dst: SocketAddr) -> &serde_json::Value {
    let canon = |a: SocketAddr| rstaudit::live::correlate::canon(a).to_string();
    report["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["src"] == canon(src) && e["dst"] == canon(dst))
        .unwrap_or_else(|| panic!("no reset {src} -> {dst} in {report:#}"))
}
