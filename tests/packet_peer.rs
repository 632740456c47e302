//! `rstaudit packet-check` (live) against a scripted peer: each case makes one kind of reset
//! deterministically inside a namespace the test creates, in IPv4 and IPv6, and checks
//! rstaudit's reason against the kernel's own (an ftrace instance of the test's own) and its
//! owner against the test's own pids.

mod common;
mod peer;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use peer::{Family, Forked, KernelTrace, Tun, Watch, event, in_netns};

fn watch(ns: &common::Netns, seconds: &str) -> Watch {
    Watch::start(&[
        "--netns",
        &ns.name,
        "--duration",
        seconds,
        "--format",
        "json",
    ])
}

/// The snapshot thread refreshes once a second: wait until a refresh has seen what is there now.
fn let_a_snapshot_pass() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// rstaudit's reason and state are the kernel's own for this reset.
#[track_caller]
fn same_as_kernel(e: &serde_json::Value, trace: &KernelTrace, src: SocketAddr, dst: SocketAddr) {
    let k = trace.reset(src, dst);
    assert_eq!(e["reason"].as_str(), k.reason.as_deref(), "{e:#} vs {k:#?}");
    assert_eq!(e["state"].as_str(), k.state.as_deref(), "{e:#} vs {k:#?}");
}

/// A segment written into a tun device is processed in the writer's context with bottom halves
/// disabled: the listener's reset must be owned by the listener's process, not by the writer.
#[test]
fn a_tun_writer_is_not_the_owner_of_the_reset_a_listener_sends() {
    common::require_root();
    let ns = common::Netns::new("tunown");
    let tun = Tun::new(&ns.name);
    let trace = KernelTrace::start();
    let listeners: Vec<(Family, Forked)> = Family::BOTH
        .iter()
        .map(|f| {
            (
                *f,
                Forked::listener(&ns.name, SocketAddr::new(f.any(), 7300), 16),
            )
        })
        .collect();
    let w = watch(&ns, "4");
    let_a_snapshot_pass();
    let mut cases = Vec::new();
    for (fam, l) in &listeners {
        let local = SocketAddr::new(fam.local(), 7300);
        let peer = SocketAddr::new(fam.peer(), 41000);
        // A bare ACK to a listener: answered with a reset whose sequence is the ACK's number.
        tun.send(peer, local, 5000, Some(777_777), false);
        let rst = tun
            .recv_rst_to(peer, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no reset from {local}"));
        assert_eq!((rst.src, rst.seq), (local, 777_777), "{rst:?}");
        cases.push((local, peer, l.pid));
    }
    let report = w.finish();
    let me = u64::from(std::process::id());
    for (local, peer, pid) in cases {
        let e = event(&report, local, peer);
        same_as_kernel(e, &trace, local, peer);
        assert_eq!(e["direction"], "sent", "{e:#}");
        assert_eq!(e["interface"], Tun::NAME, "{e:#}");
        assert_ne!(
            e["owner"]["pid"], me,
            "the tun writer is not the sender: {e:#}"
        );
        assert_eq!(e["owner"]["pid"], u64::from(pid), "{e:#}");
        assert_eq!(e["owner"]["source"], "listener", "{e:#}");
    }
}

/// INVALID_SYN of a full accept queue (tcp_abort_on_overflow=1) while the socket table holds
/// the connection's SYN-RECV entry without an owner: the listener's process is the owner.
#[test]
fn an_accept_queue_overflow_reset_belongs_to_the_listener_holding_the_syn_recv_entry() {
    common::require_root();
    let ns = common::Netns::new("synrecv");
    ns.sysctl("net.ipv4.tcp_abort_on_overflow", "1");
    let tun = Tun::new(&ns.name);
    let trace = KernelTrace::start();
    let port = 7400;
    let listeners: Vec<(Family, Forked)> = Family::BOTH
        .iter()
        .map(|f| {
            (
                *f,
                Forked::listener(&ns.name, SocketAddr::new(f.any(), port), 1),
            )
        })
        .collect();
    let w = watch(&ns, "6");
    let mut pending = Vec::new();
    for (fam, l) in &listeners {
        let local = SocketAddr::new(fam.local(), port);
        let [a, b, c] = [42001, 42002, 42003].map(|p| SocketAddr::new(fam.peer(), p));
        // Backlog 1: two connections fill the accept queue; the third is held in SYN-RECV.
        let (sa, aa) = tun.handshake(a, local, false);
        let (sb, ab) = tun.handshake(b, local, false);
        tun.send(a, local, sa, Some(aa), false);
        let (sc, ac) = tun.handshake(c, local, false);
        tun.send(b, local, sb, Some(ab), false);
        pending.push((local, c, sc, ac, l.pid));
    }
    let_a_snapshot_pass();
    let mut cases = Vec::new();
    for (local, c, sc, ac, pid) in pending {
        tun.send(c, local, sc, Some(ac), false);
        let rst = tun
            .recv_rst_to(c, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no reset from {local} to {c}"));
        assert_eq!(rst.src, local);
        cases.push((local, c, pid));
    }
    let report = w.finish();
    for (local, c, pid) in cases {
        let e = event(&report, local, c);
        same_as_kernel(e, &trace, local, c);
        assert_eq!(e["reason"], "INVALID_SYN", "{e:#}");
        assert_eq!(e["cause"], "accept-queue-overflow", "{e:#}");
        assert_eq!(e["owner"]["pid"], u64::from(pid), "{e:#}");
        assert_eq!(e["owner"]["source"], "listener", "{e:#}");
    }
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// Three resets with the same kernel reason (TCP_STATE) told apart by the trace: SO_LINGER
/// {1, 0} set just before close() on a connection of a long-lived listener (the socket table
/// saw it without the option), a listener closed with a connection in its accept queue, and
/// `ss -K`.
#[test]
fn linger_zero_a_closed_listener_and_ss_k_are_told_apart() {
    common::require_root();
    let ns = common::Netns::new("tcpstate");
    let trace = KernelTrace::start();
    let me = u64::from(std::process::id());
    // Long-lived listeners with an accepted connection each, there before the window.
    let held: Vec<(Family, TcpListener, TcpStream, TcpStream)> = in_netns(&ns.name, || {
        Family::BOTH
            .iter()
            .map(|f| {
                let l = TcpListener::bind((f.loopback(), 7500)).unwrap();
                let c = TcpStream::connect((f.loopback(), 7500)).unwrap();
                let (s, _) = l.accept().unwrap();
                (*f, l, c, s)
            })
            .collect()
    });
    let w = watch(&ns, "5");
    let_a_snapshot_pass();
    let mut linger = Vec::new();
    for (_, _l, c, s) in &held {
        linger.push((s.local_addr().unwrap(), c.local_addr().unwrap()));
        set_linger_zero(s);
    }
    let mut clients = Vec::new();
    for (_, l, c, s) in held {
        drop(s);
        clients.push((l, c));
    }
    // Listeners that live a moment, closed with a connection still queued.
    let queued: Vec<(SocketAddr, SocketAddr, TcpStream)> = in_netns(&ns.name, || {
        Family::BOTH
            .iter()
            .map(|f| {
                let l = TcpListener::bind((f.loopback(), 7501)).unwrap();
                let c = TcpStream::connect((f.loopback(), 7501)).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                let addr = l.local_addr().unwrap();
                drop(l);
                (addr, c.local_addr().unwrap(), c)
            })
            .collect()
    });
    // `ss -K` on a client connection.
    let killed: Vec<(SocketAddr, SocketAddr, TcpListener, TcpStream, TcpStream)> =
        in_netns(&ns.name, || {
            Family::BOTH
                .iter()
                .map(|f| {
                    let l = TcpListener::bind((f.loopback(), 7502)).unwrap();
                    let c = TcpStream::connect((f.loopback(), 7502)).unwrap();
                    let (s, _) = l.accept().unwrap();
                    (c.local_addr().unwrap(), s.local_addr().unwrap(), l, c, s)
                })
                .collect()
        });
    common::run(ns.command("ss").args(["-K", "-t", "dport", "=", "7502"]));
    let report = w.finish();
    for (src, dst) in linger {
        let e = event(&report, src, dst);
        same_as_kernel(e, &trace, src, dst);
        assert_eq!(e["cause"], "linger-zero", "{e:#}");
        assert_eq!(e["owner"]["pid"], me, "{e:#}");
        assert_eq!(e["owner"]["source"], "task", "{e:#}");
    }
    for (src, dst, _) in &queued {
        let e = event(&report, *src, *dst);
        same_as_kernel(e, &trace, *src, *dst);
        assert_eq!(e["cause"], "abort", "{e:#}");
        assert!(
            e["basis"].as_str().unwrap().contains("listener closed"),
            "{e:#}"
        );
    }
    for (src, dst, ..) in &killed {
        let e = event(&report, *src, *dst);
        same_as_kernel(e, &trace, *src, *dst);
        assert_eq!(e["cause"], "abort", "{e:#}");
        assert!(e["basis"].as_str().unwrap().contains("ss -K"), "{e:#}");
    }
    drop(clients);
}
