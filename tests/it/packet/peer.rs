//! `rstaudit packet-check` (live) against a scripted peer: each case makes one kind of reset
//! deterministically inside a namespace the test creates, in IPv4 and IPv6, and checks
//! rstaudit's reason against the kernel's own (an ftrace instance of the test's own) and its
//! owner against the test's own pids.

use crate::{common, peer};

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use peer::{Family, Forked, KernelTrace, Tun, Watch, event, in_netns};
use rstaudit::host::test_support::set_int;

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
    assert_eq!(e["reason"].as_str(), k.reason, "{e:#} vs {k:#?}");
    assert_eq!(e["state"].as_str(), k.state, "{e:#} vs {k:#?}");
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

/// INVALID_SYN of a full accept queue (tcp_abort_on_overflow=1, set after the window began)
/// while the socket table holds the connection's SYN-RECV entry without an owner: the
/// listener's process is the owner, and the cause follows the sysctl's value of the moment.
#[test]
fn an_accept_queue_overflow_reset_belongs_to_the_listener_holding_the_syn_recv_entry() {
    common::require_root();
    let ns = common::Netns::new("synrecv");
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
    // Set during the window: the classification follows the sysctl as it is now.
    ns.sysctl("net.ipv4.tcp_abort_on_overflow", "1");
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

fn notes(report: &serde_json::Value) -> Vec<&str> {
    report["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}

/// A kernel before 6.10 (tcp_send_reset without a reason, printing the socket's fields, and no
/// event for a closed port): resets keep their addresses, state and owner from the events,
/// the notes say the kernel does not report reasons, and missing events are not called lost.
#[test]
fn before_6_10_resets_keep_their_owner_and_missing_events_are_not_called_lost() {
    common::require_root();
    let ns = common::Netns::new("old61");
    let mut old = peer::old_kernel::OldKernel::new();
    let root = old.root.path().to_str().unwrap().to_string();
    let w = Watch::start_with(
        &[
            "--netns",
            &ns.name,
            "--duration",
            "4",
            "--format",
            "json",
            "--tracefs",
            &root,
        ],
        |cmd| old.prepare(cmd),
    );
    old.relay();
    std::thread::sleep(Duration::from_millis(300));
    // For each family: a close with unread data (an active reset, which 6.1 traces) and a
    // connect to a closed port (NO_SOCKET, which 6.1 does not trace).
    let closes: Vec<(SocketAddr, SocketAddr)> = in_netns(&ns.name, || {
        Family::BOTH
            .iter()
            .map(|f| {
                let l = TcpListener::bind((f.loopback(), 0)).unwrap();
                let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (s, _) = l.accept().unwrap();
                c.write_all(b"unread").unwrap();
                std::thread::sleep(Duration::from_millis(50));
                let pair = (s.local_addr().unwrap(), s.peer_addr().unwrap());
                drop(s);
                let refused = TcpStream::connect((f.loopback(), 9)).unwrap_err();
                assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
                pair
            })
            .collect()
    });
    let report = w.finish();
    let me = u64::from(std::process::id());
    assert_eq!(report["tracing"]["reasons"], false, "{report:#}");
    // This tree has no binary layout (no events/header_page, no per_cpu/): the text is read,
    // and the note says so and why.
    assert_eq!(report["tracing"]["reader"], "text", "{report:#}");
    assert!(
        notes(&report).iter().any(|n| n.starts_with(
            "kernel trace read as text (trace_pipe), which costs more CPU per reset: "
        ) && n.contains("header_page is missing")),
        "{:?}",
        notes(&report)
    );
    for (src, dst) in closes {
        let e = event(&report, src, dst);
        let kernel = old.real_reset(src, dst);
        assert_eq!(kernel.reason, Some("TCP_ABORT_ON_CLOSE"));
        assert_eq!(e.get("reason"), None, "{e:#}");
        assert_eq!(e["cause"], "sent-reason-unknown", "{e:#}");
        assert_eq!(e["state"].as_str(), kernel.state, "{e:#}");
        assert_eq!(e["owner"]["pid"], me, "{e:#}");
        assert_eq!(e["owner"]["source"], "task", "{e:#}");
    }
    let refused: Vec<&serde_json::Value> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["src"].as_str().unwrap().ends_with(":9"))
        .collect();
    assert_eq!(refused.len(), 2, "{report:#}");
    let notes = notes(&report);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("this kernel does not report reasons (before 6.10)")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("2 resets sent here have no trace event")
                && n.contains("before 6.10")
                && n.contains("none were lost")),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|n| n.contains("were lost (")),
        "no loss is claimed: {notes:?}"
    );
}

/// Resets made all through the start of the window: every one captured has its kernel reason
/// (tracing is armed before the capture opens), and the resets captured are exactly the change
/// of Tcp.OutRsts (the baseline is read once the capture is open; earlier frames are left out).
#[test]
fn resets_made_while_the_check_starts_have_reasons_and_match_the_counters() {
    common::require_root();
    let ns = common::Netns::new("startup");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let name = ns.name.clone();
        let stop = &stop;
        s.spawn(move || {
            in_netns(&name, || {
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let f = Family::BOTH[i % 2];
                    let _ = TcpStream::connect((f.loopback(), 9)).unwrap_err();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        });
        // The flood runs before, while and after rstaudit arms tracing and opens its capture.
        std::thread::sleep(Duration::from_millis(300));
        let w = watch(&ns, "3");
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        w.finish()
    });
    let resets = report["resets"].as_u64().unwrap();
    assert!(resets >= 40, "{report:#}");
    assert_eq!(
        Some(resets),
        report["counters"]["delta"]["Tcp.OutRsts"].as_u64(),
        "captured resets = change of Tcp.OutRsts: {report:#}"
    );
    for e in report["events"].as_array().unwrap() {
        assert_eq!(e["reason"], "NO_SOCKET", "{e:#}");
    }
    assert_eq!(report["tracing"]["matching"]["sent_without_event"], 0);
    let notes = notes(&report);
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("no trace event") || n.contains("no kernel reason")),
        "{notes:?}"
    );
}

/// A server that closes first (redis `timeout N`) and a client that writes after that: the
/// TIME_WAIT-like socket answers with TCP_TIMEWAIT_SOCKET. Both sides are named: the server's
/// process (through its listener) as the owner, the writer as the peer.
#[test]
fn a_time_wait_answer_names_who_closed_and_who_wrote() {
    common::require_root();
    let ns = common::Netns::new("twans");
    let trace = KernelTrace::start();
    let servers: Vec<(Family, Forked)> = Family::BOTH
        .iter()
        .map(|f| {
            let addr = SocketAddr::new(f.loopback(), 7600);
            (*f, Forked::accept_and_close(&ns.name, addr))
        })
        .collect();
    let w = watch(&ns, "4");
    let_a_snapshot_pass();
    let cases: Vec<(SocketAddr, SocketAddr, u32)> = in_netns(&ns.name, || {
        servers
            .iter()
            .map(|(f, server)| {
                let mut c = TcpStream::connect((f.loopback(), 7600)).unwrap();
                let ends = (c.peer_addr().unwrap(), c.local_addr().unwrap());
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 8];
                let n = std::io::Read::read(&mut c, &mut buf).unwrap();
                assert_eq!(n, 0, "the server closes first");
                // Our ACK of its FIN moves the server's orphan on to a TIME_WAIT-like socket.
                std::thread::sleep(Duration::from_millis(300));
                let _ = c.write_all(b"late");
                std::thread::sleep(Duration::from_millis(50));
                (ends.0, ends.1, server.pid)
            })
            .collect()
    });
    let report = w.finish();
    let me = u64::from(std::process::id());
    for (server, client, pid) in cases {
        let e = event(&report, server, client);
        same_as_kernel(e, &trace, server, client);
        assert_eq!(e["reason"], "TCP_TIMEWAIT_SOCKET", "{e:#}");
        assert_eq!(e["cause"], "data-after-close", "{e:#}");
        assert_eq!(e["owner"]["pid"], u64::from(pid), "who closed: {e:#}");
        assert_eq!(e["peer"]["pid"], me, "who wrote: {e:#}");
        let basis = e["basis"].as_str().unwrap();
        assert!(
            basis.contains(&format!("(pid {pid}) closed first")) && basis.contains("wrote after"),
            "{e:#}"
        );
    }
    // The cause's summary names both sides too.
    let cause = report["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"] == "data-after-close")
        .expect("data-after-close in the causes");
    assert_eq!(cause["top_peer_processes"][0]["pid"], me, "{cause:#}");
}

/// Closed with TCP_LINGER2 -1: the orphan in FIN_WAIT1 is destroyed when the peer ACKs its
/// FIN, and the kernel says TCP_ABORT_ON_DATA although no data came (pinned here against the
/// kernel's own trace). The socket table showed TCP_LINGER2 -1: the cause is linger2-negative.
#[test]
fn a_close_with_linger2_negative_is_not_called_data_after_close() {
    common::require_root();
    let ns = common::Netns::new("linger2");
    let trace = KernelTrace::start();
    let held: Vec<(TcpListener, TcpStream, TcpStream)> = in_netns(&ns.name, || {
        Family::BOTH
            .iter()
            .map(|f| {
                let l = TcpListener::bind((f.loopback(), 7700)).unwrap();
                let c = TcpStream::connect((f.loopback(), 7700)).unwrap();
                let (s, _) = l.accept().unwrap();
                set_int(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_LINGER2, -1);
                (l, c, s)
            })
            .collect()
    });
    let w = watch(&ns, "4");
    let_a_snapshot_pass();
    let mut cases = Vec::new();
    let mut keep = Vec::new();
    for (l, c, s) in held {
        cases.push((s.local_addr().unwrap(), s.peer_addr().unwrap()));
        drop(s);
        keep.push((l, c));
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = w.finish();
    for (src, dst) in cases {
        let e = event(&report, src, dst);
        same_as_kernel(e, &trace, src, dst);
        assert_eq!(
            e["reason"], "TCP_ABORT_ON_DATA",
            "the kernel's reason: {e:#}"
        );
        assert_eq!(e["cause"], "linger2-negative", "{e:#}");
    }
    drop(keep);
}

/// An interface and an address that come up during the window (a network plugin adding a
/// pod's address after the watch began, a VPN tunnel): their resets keep the kernel's reason,
/// and the interface is shown by its name.
#[test]
fn an_address_that_comes_up_during_the_window_keeps_its_reasons_and_interface_name() {
    common::require_root();
    let ns = common::Netns::new("lateaddr");
    let trace = KernelTrace::start();
    let w = watch(&ns, "4");
    std::thread::sleep(Duration::from_millis(300));
    let tun = Tun::new(&ns.name);
    std::thread::sleep(Duration::from_millis(300));
    let mut cases = Vec::new();
    for fam in Family::BOTH {
        let local = SocketAddr::new(fam.local(), 9);
        let peer = SocketAddr::new(fam.peer(), 43000);
        tun.send(peer, local, 9000, None, true);
        let rst = tun
            .recv_rst_to(peer, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no reset from the closed port {local}"));
        assert_eq!(rst.ack, 9001, "{rst:?}");
        cases.push((local, peer));
    }
    let report = w.finish();
    for (local, peer) in cases {
        let e = event(&report, local, peer);
        same_as_kernel(e, &trace, local, peer);
        assert_eq!(e["reason"], "NO_SOCKET", "{e:#}");
        assert_eq!(e["cause"], "no-socket", "{e:#}");
        assert_eq!(e["interface"], Tun::NAME, "{e:#}");
    }
}

/// A short-lived client (curl, a cron job, a health check) that closes with unread data and
/// exits at once, gone from /proc before rstaudit looks it up: the reset keeps its pid and the
/// name the kernel's trace gave it.
#[test]
fn a_process_that_exits_right_after_its_reset_keeps_its_pid_and_name() {
    common::require_root();
    let ns = common::Netns::new("exited");
    let trace = KernelTrace::start();
    let listeners: Vec<(Family, TcpListener)> = in_netns(&ns.name, || {
        Family::BOTH
            .iter()
            .map(|f| (*f, TcpListener::bind((f.loopback(), 7800)).unwrap()))
            .collect()
    });
    let w = watch(&ns, "3");
    let mut cases = Vec::new();
    for (_, l) in &listeners {
        let addr = l.local_addr().unwrap();
        let server = std::sync::Mutex::new(None);
        let pid = peer::close_unread_and_exit(&ns.name, addr, || {
            let (mut s, client) = l.accept().unwrap();
            s.write_all(b"unread").unwrap();
            *server.lock().unwrap() = Some((client, s));
        });
        let (client, s) = server.into_inner().unwrap().unwrap();
        cases.push((client, addr, pid, s));
    }
    let report = w.finish();
    for (client, server, pid, _s) in cases {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        let e = event(&report, client, server);
        let k = trace.reset(client, server);
        same_as_kernel(e, &trace, client, server);
        assert_eq!(e["reason"], "TCP_ABORT_ON_CLOSE", "{e:#}");
        assert_eq!(e["owner"]["pid"], u64::from(pid), "{e:#}");
        assert_eq!(e["owner"]["comm"].as_str(), Some(&*k.task.comm), "{e:#}");
        assert_eq!(e["owner"]["source"], "task", "{e:#}");
    }
}

fn verdict<'a>(report: &'a serde_json::Value, rule: &str) -> Vec<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

/// Verdicts say no more than the resets show: a closed-port reset (a port scan) does not
/// confirm `retries2-low`; `resets-abort-on-close`, confirmed by the test's own closes, names
/// the process; each finding is one row.
#[test]
fn verdicts_are_confirmed_by_their_own_mechanism_and_name_the_process() {
    common::require_root();
    let ns = common::Netns::with_sysctls("verdicts", &[("net.ipv4.tcp_retries2", "3")]);
    let w = watch(&ns, "4");
    in_netns(&ns.name, || {
        for f in Family::BOTH {
            let l = TcpListener::bind((f.loopback(), 0)).unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            c.write_all(b"unread").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(s);
            let _ = TcpStream::connect((f.loopback(), 9)).unwrap_err();
        }
    });
    let report = w.finish();
    let me = u64::from(std::process::id());
    let retries = verdict(&report, "retries2-low");
    assert_eq!(retries.len(), 1, "{report:#}");
    assert_eq!(retries[0]["verdict"], "cannot_check", "{:#}", retries[0]);
    assert!(
        retries[0]["detail"].as_str().unwrap().contains("port scan"),
        "{:#}",
        retries[0]
    );
    let close = verdict(&report, "resets-abort-on-close");
    assert_eq!(close.len(), 1, "one row: {report:#}");
    assert_eq!(close[0]["verdict"], "confirmed", "{:#}", close[0]);
    assert_eq!(close[0]["processes"][0]["pid"], me, "{:#}", close[0]);
    assert!(
        close[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("(pid {me}) 2")),
        "{:#}",
        close[0]
    );
}

/// A thread that resets a connection and is gone before rstaudit looks it up is credited to
/// its process: the kernel's own task events say whose thread it was. rstaudit is stopped
/// (SIGSTOP) from before the thread starts until after it has exited, so nothing of the thread
/// is left in /proc when the reset is attributed; both ways of reading the trace.
#[test]
fn a_thread_gone_before_it_is_looked_up_is_credited_to_its_process() {
    common::require_root();
    let me = std::process::id();
    let my_name = std::fs::read_to_string("/proc/self/comm").unwrap();
    for reader in ["binary", "text"] {
        let ns = common::Netns::new("thrd");
        let w = Watch::start(&[
            "--netns",
            &ns.name,
            "--duration",
            "3",
            "--format",
            "json",
            "--trace-reader",
            reader,
        ]);
        let rstaudit = nix::unistd::Pid::from_raw(w.pid() as i32);
        nix::sys::signal::kill(rstaudit, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let (pair, tid) = in_netns(&ns.name, || {
            let l = TcpListener::bind((Family::V4.loopback(), 0)).unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            c.write_all(b"unread").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            let pair = (s.local_addr().unwrap(), s.peer_addr().unwrap());
            drop(s);
            (pair, nix::unistd::gettid().as_raw())
        });
        assert_ne!(tid as u32, me);
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !std::path::Path::new(&format!("/proc/{tid}")).exists()
        });
        assert!(gone, "thread {tid} is still in /proc");
        nix::sys::signal::kill(rstaudit, nix::sys::signal::Signal::SIGCONT).unwrap();
        let report = w.finish();
        assert_eq!(
            report["tracing"]["reader"], reader,
            "{:#}",
            report["tracing"]
        );
        let e = event(&report, pair.0, pair.1);
        assert_eq!(e["reason"], "TCP_ABORT_ON_CLOSE", "{e:#}");
        assert_eq!(e["owner"]["pid"], u64::from(me), "{reader}: {e:#}");
        assert_eq!(e["owner"]["comm"], my_name.trim(), "{reader}: {e:#}");
        assert_eq!(e["owner"]["source"], "task", "{e:#}");
    }
}

/// `--trace-reader binary` is not silently replaced by the text where the binary layout cannot
/// be read: the command stops with the reason, exit code 2, and leaves nothing behind.
#[test]
fn the_binary_reader_asked_for_by_name_is_not_replaced_by_the_text() {
    common::require_root();
    let ns = common::Netns::new("rawonly");
    let old = peer::old_kernel::OldKernel::new();
    let root = old.root.path().to_str().unwrap().to_string();
    let mut cmd = common::rstaudit();
    cmd.args([
        "packet-check",
        "--netns",
        &ns.name,
        "--duration",
        "1",
        "--trace-reader",
        "binary",
        "--tracefs",
        &root,
    ]);
    old.prepare(&mut cmd);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--trace-reader binary: the kernel trace cannot be read as binary records")
            && err.contains("header_page is missing"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let left: Vec<_> = std::fs::read_dir(old.root.path().join("instances"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir() && !e.path().is_symlink())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
