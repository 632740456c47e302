//! Each rule says only what holds on a real kernel: one regression test per
//! claim that was wrong or overstated (rst-causes.md sections 1 to 4 and 7).
//! The `kernel_*` tests check the claim itself on the running kernel, in a
//! network namespace they create (as root; loopback only).

use crate::common;

use common::fixture::{Snap, host, sock};
use rstaudit::host::{Snapshot, TcpState};
use rstaudit::rules::{self, AuditOutcome, Finding, Selection};

fn audit(rule: &str, snap: &Snapshot) -> AuditOutcome {
    let sel = Selection {
        only: vec![rule.to_string()],
        ..Selection::default()
    };
    rules::run(&rules::load::builtin().unwrap(), &sel, snap).expect("audit runs")
}

fn findings(rule: &str, snap: Snap) -> Vec<Finding> {
    audit(rule, &snap.build()).findings
}

/// The peer's FIN counts as one byte of rx_queue in CLOSE_WAIT and LAST_ACK: a socket whose
/// only unread thing is the FIN closes with a FIN, not a reset (a redis `timeout 2` client).
#[test]
fn a_fin_only_close_wait_is_not_unread_data() {
    let fin_only = |state| {
        host().socket(
            sock(state, "10.0.0.5:6379", "10.0.0.9:1000")
                .owner(9, "redis-cli")
                .rx(1),
        )
    };
    for state in [TcpState::CloseWait, TcpState::LastAck] {
        let f = findings("unread-close", fin_only(state));
        assert!(f.is_empty(), "{state:?} with rx_queue 1: {f:#?}");
    }
    let data = host().socket(
        sock(TcpState::CloseWait, "10.0.0.5:6379", "10.0.0.9:1000")
            .owner(9, "app")
            .rx(2),
    );
    assert_eq!(findings("unread-close", data).len(), 1);
    // The suspects of resets-abort-on-close: the FIN-only socket is not one of them.
    let f = findings(
        "resets-abort-on-close",
        fin_only(TcpState::CloseWait).counter("TcpExt.TCPAbortOnClose", 3),
    );
    assert_eq!(f.len(), 1);
    assert!(f[0].process.is_none(), "{f:#?}");
    assert!(!f[0].message.contains("redis-cli"), "{}", f[0].message);
    // Unread data in ESTABLISHED (rx_queue 1 is a byte there) is.
    let f = findings(
        "resets-abort-on-close",
        host().counter("TcpExt.TCPAbortOnClose", 3).socket(
            sock(TcpState::Established, "10.0.0.5:80", "10.0.0.9:1001")
                .owner(55, "worker")
                .rx(1),
        ),
    );
    assert_eq!(f[0].process.as_ref().map(|p| p.pid), Some(55), "{f:#?}");
}

/// tcp_tw_recycle drops SYNs silently in tcp_conn_request (TcpExt.PAWSPassive): no reset is
/// sent, the clients' connect() times out.
#[test]
fn tw_recycle_says_syns_are_dropped_silently_and_counts_paws_passive() {
    let f = findings(
        "tw-recycle",
        host()
            .kernel("4.9.0")
            .sysctl("net.ipv4.tcp_tw_recycle", "1")
            .counter("TcpExt.PAWSPassive", 17),
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = &f[0];
    assert!(f.message.contains("PAWSPassive 17"), "{}", f.message);
    assert!(f.message.contains("silently"), "{}", f.message);
    assert!(f.message.contains("connect"), "{}", f.message);
    assert!(!f.message.contains("reset by"), "{}", f.message);
    assert!(!f.message.contains("or reset"), "{}", f.message);
    let names: Vec<&str> = f
        .evidence
        .counters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["TcpExt.PAWSPassive"], "{f:#?}");
    assert!(
        f.evidence.rst_reasons.is_empty(),
        "no reset is sent: {f:#?}"
    );
    let rule = rules::load::builtin().unwrap();
    let rule = rule.get("tw-recycle").unwrap();
    assert!(
        rule.explanation.contains("PAWSPassive"),
        "{}",
        rule.explanation
    );
    assert!(
        rule.explanation.contains("no reset"),
        "{}",
        rule.explanation
    );
    assert!(
        !rule.explanation.contains("or are reset"),
        "{}",
        rule.explanation
    );
}

/// tcp_max_syn_backlog is consulted only with tcp_syncookies=0 (tcp_conn_request); with
/// cookies on, a listener's own backlog bounds its SYN queue and overflow sends cookies.
#[test]
fn syn_backlog_small_needs_syncookies_off() {
    let small = |cookies: &str| {
        host()
            .sysctl("net.ipv4.tcp_syncookies", cookies)
            .sysctl("net.ipv4.tcp_max_syn_backlog", "128")
            .socket(common::fixture::listener("0.0.0.0:80", 0, 4096).owner(80, "nginx"))
    };
    for cookies in ["1", "2"] {
        let out = audit("syn-backlog-small", &small(cookies).build());
        assert!(out.findings.is_empty(), "syncookies={cookies}: {out:#?}");
    }
    let f = findings("syn-backlog-small", small("0"));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message.contains("tcp_syncookies is 0"),
        "{}",
        f[0].message
    );
    // The drops count in ListenDrops (kernel_consults_tcp_max_syn_backlog_only_with_syncookies_off).
    assert!(f[0].message.contains("ListenDrops"), "{}", f[0].message);
}

/// idiag_retrans counts probes too: with the keepalive timer (2) or the zero-window probe
/// timer (4) pending they are probes (an idle peer, a slow reader), not lost segments.
#[test]
fn retransmitting_sockets_counts_only_the_retransmit_timer() {
    use rstaudit::host::Timer;
    let with_timer = |timer: Timer| {
        let mut s = sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:4000")
            .owner(7, "app")
            .retransmits(5);
        s.0.timer = timer;
        host().socket(s)
    };
    for timer in [Timer::Keepalive, Timer::ZeroWindowProbe] {
        let f = findings("retransmitting-sockets", with_timer(timer));
        assert!(f.is_empty(), "{timer:?}: {f:#?}");
    }
    let f = findings("retransmitting-sockets", with_timer(Timer::Retransmit));
    assert_eq!(f.len(), 1, "{f:#?}");
}

/// Accepted sockets inherit a listener's SO_LINGER {1, 0} (haproxy `option nolinger`): the
/// listener is reported with its process although no accepted socket exists yet.
#[test]
fn a_listener_with_linger_zero_is_reported_with_its_process() {
    let snap = host().socket(
        common::fixture::listener("0.0.0.0:8080", 0, 128)
            .owner(77, "haproxy")
            .linger0(),
    );
    let f = findings("listener-linger-zero", snap);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].process.as_ref().map(|p| p.pid), Some(77), "{f:#?}");
    assert!(
        f[0].message
            .starts_with("haproxy (pid 77): 1 listener with SO_LINGER {1, 0}"),
        "{}",
        f[0].message
    );
    assert!(f[0].message.contains("0.0.0.0:8080"), "{}", f[0].message);
    assert!(f[0].message.contains("inherits"), "{}", f[0].message);
}

/// Half-open connections after a peer restarts (seed cause 14): idle ESTABLISHED sockets
/// without keepalive; keepalive finds the dead peer sooner, it does not prevent the reset.
#[test]
fn half_open_names_idle_connections_without_keepalive_and_says_what_keepalive_does() {
    let idle = |ms: u32, keepalive: bool| {
        host().socket(
            sock(TcpState::Established, "10.0.0.5:40000", "10.0.0.9:5432")
                .owner(31, "worker")
                .idle_ms(ms)
                .keepalive(keepalive, 60),
        )
    };
    let f = findings("half-open", idle(700_000, false));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].process.as_ref().map(|p| p.pid), Some(31));
    assert_eq!(f[0].rule, "half-open");
    assert_eq!(f[0].cause, "half-open");
    assert!(findings("half-open", idle(700_000, true)).is_empty());
    assert!(findings("half-open", idle(10_000, false)).is_empty());
    let advice = f[0].fix.advice.as_deref().unwrap_or_default();
    assert!(advice.contains("does not prevent the reset"), "{advice}");
    assert!(advice.contains("reconnect"), "{advice}");
    let set = rules::load::builtin().unwrap();
    let rule = set.get("half-open").unwrap();
    assert!(
        rule.explanation.contains("detects the dead peer sooner"),
        "{}",
        rule.explanation
    );
    assert!(
        rule.explanation.contains("does not prevent the reset"),
        "{}",
        rule.explanation
    );
}

/// A tiny listen() backlog (nginx `backlog=2`) is a finding by itself, not only while its
/// queue is full: below a floor always, and below the connection rate the counters show over
/// the --interval window.
#[test]
fn a_tiny_backlog_is_judged_by_itself_and_against_the_connection_rate() {
    use common::fixture::listener;
    let nginx = |backlog| listener("127.0.0.1:8081", 0, backlog).owner(80, "nginx");
    let f = findings("listener-backlog-small", host().socket(nginx(2)));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].process.as_ref().map(|p| p.pid), Some(80));
    assert!(
        f[0].notes
            .iter()
            .any(|n| n.contains("rates of counters were not judged")),
        "{f:#?}"
    );
    assert!(findings("listener-backlog-small", host().socket(nginx(64))).is_empty());
    // 1,000 new connections in 10 s: 100 per second; a backlog of 64 cannot hold one second.
    let busy = |backlog| {
        host()
            .counter2("Tcp.PassiveOpens", 5000, 6000)
            .socket(nginx(backlog))
    };
    let f = findings("listener-backlog-small", busy(64));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].message.contains("1,000 (in 10 s)"), "{}", f[0].message);
    assert!(findings("listener-backlog-small", busy(128)).is_empty());
}

/// abort-on-overflow names the processes whose listeners are at risk.
#[test]
fn abort_on_overflow_names_the_listeners_at_risk() {
    use common::fixture::listener;
    let snap = host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .socket(listener("127.0.0.1:8081", 0, 2).owner(80, "nginx"))
        .socket(listener("0.0.0.0:22", 0, 128).owner(1, "sshd"));
    let f = findings("abort-on-overflow", snap);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].process.as_ref().map(|p| p.pid), Some(80), "{f:#?}");
    assert!(
        f[0].message.contains("likely: nginx (pid 80)"),
        "{}",
        f[0].message
    );
    assert!(!f[0].message.contains("sshd"), "{}", f[0].message);
}

/// A full conntrack table makes new flows fail; conntrack early-drops only unassured entries,
/// so established flows are not evicted.
#[test]
fn conntrack_table_full_says_new_flows_fail_not_that_established_ones_are_evicted() {
    let f = findings(
        "conntrack-table-full",
        host().sysctl("net.netfilter.nf_conntrack_count", "262000"),
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].message.contains("new flows"), "{}", f[0].message);
    let set = rules::load::builtin().unwrap();
    let text = &set.get("conntrack-table-full").unwrap().explanation;
    assert!(!text.contains("were evicted"), "{text}");
    assert!(text.contains("unassured"), "{text}");
    assert!(text.contains("never evicted"), "{text}");
}

/// The flows a NAT or firewall tracks belong to other hosts: the established timeout is
/// compared with the clients' keepalive (a parameter, Linux's 7200 s by default), not only
/// this host's; a host at the nat-gateway profile's value is clean.
#[test]
fn conntrack_timeout_is_compared_with_the_clients_keepalive() {
    let rule = "conntrack-timeout-below-keepalive";
    let timeout = |v: &str| {
        host()
            .sysctl("net.ipv4.tcp_keepalive_time", "200")
            .sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", v)
    };
    // This host's keepalive is 200 s, but the clients behind it keep Linux's 7200 s.
    let f = findings(rule, timeout("7200"));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].message.contains("7200"), "{}", f[0].message);
    assert!(f[0].message.contains("other hosts"), "{}", f[0].message);
    // The nat-gateway profile's floor clears it.
    let profile: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/nat-gateway.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let floor =
        profile["sysctls"]["net.netfilter.nf_conntrack_tcp_timeout_established"]["at_least"]
            .as_u64()
            .expect("nat-gateway sets a floor for the established timeout");
    let f = findings(rule, timeout(&floor.to_string()));
    assert!(f.is_empty(), "at the nat-gateway value {floor}: {f:#?}");
    // The clients' keepalive is a parameter.
    let sel = Selection {
        only: vec![rule.to_string()],
        params: vec![("peer_keepalive_time".into(), "600".into())],
        ..Selection::default()
    };
    let out = rules::run(
        &rules::load::builtin().unwrap(),
        &sel,
        &timeout("7200").build(),
    )
    .unwrap();
    assert!(out.findings.is_empty(), "{out:#?}");
    // This host's own keepalive still counts when it is the longer one.
    let own = timeout("7300").sysctl("net.ipv4.tcp_keepalive_time", "7300");
    assert_eq!(findings(rule, own).len(), 1);
}

/// The kernel: a listener with backlog 1024 in a namespace with tcp_max_syn_backlog 8, and
/// 100 clients whose handshakes never complete (their ACKs are dropped). With SYN cookies on
/// all 100 wait in the SYN queue (the sysctl is not consulted); with cookies off the queue
/// stops near three quarters of 8 and the rest count in TcpExt.ListenDrops.
#[test]
fn kernel_consults_tcp_max_syn_backlog_only_with_syncookies_off() {
    use std::os::fd::AsRawFd;
    let half_open = |cookies: &str| -> (usize, u64) {
        let ns = common::Netns::with_sysctls(
            "synq",
            &[
                ("net.ipv4.tcp_syncookies", cookies),
                ("net.ipv4.tcp_max_syn_backlog", "8"),
            ],
        );
        common::run(ns.command("nft").arg(
            "add table inet synq; add chain inet synq out { type filter hook output priority 0; policy accept; }; \
             add rule inet synq out tcp dport 7100 tcp flags & syn == 0 drop",
        ));
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let listener = std::net::TcpListener::bind("127.0.0.1:7100").unwrap();
                // SAFETY: listen(2) on a socket this thread owns.
                assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1024) }, 0);
                let addr = nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 7100);
                let clients: Vec<_> = (0..100)
                    .map(|_| {
                        let fd = nix::sys::socket::socket(
                            nix::sys::socket::AddressFamily::Inet,
                            nix::sys::socket::SockType::Stream,
                            nix::sys::socket::SockFlag::SOCK_NONBLOCK,
                            None,
                        )
                        .unwrap();
                        let _ = nix::sys::socket::connect(fd.as_raw_fd(), &addr);
                        fd
                    })
                    .collect();
                std::thread::sleep(std::time::Duration::from_millis(300));
                let tcp = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
                let syn_recv = tcp
                    .lines()
                    .skip(1)
                    .filter(|l| l.split_whitespace().nth(3) == Some("03"))
                    .count();
                let netstat = std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap();
                let lines: Vec<&str> = netstat.lines().collect();
                let names: Vec<&str> = lines[0].split(' ').collect();
                let values: Vec<&str> = lines[1].split(' ').collect();
                let drops = names
                    .iter()
                    .position(|n| *n == "ListenDrops")
                    .map(|i| values[i].parse().unwrap())
                    .unwrap();
                drop(clients);
                (syn_recv, drops)
            })
            .join()
            .unwrap()
        })
    };
    let (queued, drops) = half_open("1");
    assert_eq!((queued, drops), (100, 0), "syncookies=1");
    let (queued, drops) = half_open("0");
    assert!(queued <= 8, "syncookies=0: {queued} in SYN_RECV");
    assert!(drops >= 90, "syncookies=0: ListenDrops {drops}");
}

/// The kernel: keepalive probes a peer does not answer are counted in the socket's retransmits
/// (idiag_retrans) with the keepalive timer pending. retransmitting-sockets must not call that
/// packet loss.
#[test]
fn kernel_counts_unanswered_keepalive_probes_as_retransmits_of_the_keepalive_timer() {
    use std::os::fd::AsFd;
    let ns = common::Netns::new("kaprobe");
    let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
    let (client, _server, _listener) = std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:7200").unwrap();
            let client = std::net::TcpStream::connect("127.0.0.1:7200").unwrap();
            let (server, _) = listener.accept().unwrap();
            (client, server, listener)
        })
        .join()
        .unwrap()
    });
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(&client.as_fd(), sockopt::KeepAlive, &true).unwrap();
    setsockopt(&client.as_fd(), sockopt::TcpKeepIdle, &1).unwrap();
    setsockopt(&client.as_fd(), sockopt::TcpKeepInterval, &1).unwrap();
    setsockopt(&client.as_fd(), sockopt::TcpKeepCount, &30).unwrap();
    // The peer no longer answers: the client's probes to port 7200 are dropped.
    common::run(ns.command("nft").arg(
        "add table inet ka; add chain inet ka in { type filter hook input priority 0; policy accept; }; \
         add rule inet ka in tcp dport 7200 drop",
    ));
    std::thread::sleep(std::time::Duration::from_millis(4500));
    let out = common::rstaudit()
        .args(["snapshot", "--netns", &ns.name, "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let snap: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    let probing = snap
        .sockets
        .iter()
        .find(|s| s.state == TcpState::Established && s.remote_port == 7200)
        .expect("the client socket");
    assert_eq!(
        probing.timer,
        rstaudit::host::Timer::Keepalive,
        "{probing:#?}"
    );
    assert!(probing.retransmits >= 3, "{probing:#?}");
    let out = audit("retransmitting-sockets", &snap);
    assert!(out.findings.is_empty(), "{out:#?}");
    drop(client);
}

/// The kernel, for half-open: the peer forgets the connection without telling (its reset is
/// lost). Without keepalive this side stays ESTABLISHED and its next request is reset; with
/// keepalive the dead connection is found while idle, and the application still gets the
/// reset: keepalive detects the dead peer sooner, it does not prevent the reset.
#[test]
fn kernel_half_open_is_reset_with_or_without_keepalive() {
    use nix::sys::socket::{setsockopt, sockopt};
    use std::io::{ErrorKind, Read, Write};
    use std::os::fd::AsFd;
    let run = |keepalive: bool| -> (bool, ErrorKind) {
        let ns = common::Netns::new("halfopen");
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
        let nft = |script: &str| common::run(ns.command("nft").arg(script));
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let listener = std::net::TcpListener::bind("127.0.0.1:7300").unwrap();
                let mut client = std::net::TcpStream::connect("127.0.0.1:7300").unwrap();
                let (server, _) = listener.accept().unwrap();
                drop(listener);
                if keepalive {
                    setsockopt(&client.as_fd(), sockopt::KeepAlive, &true).unwrap();
                    setsockopt(&client.as_fd(), sockopt::TcpKeepIdle, &1).unwrap();
                    setsockopt(&client.as_fd(), sockopt::TcpKeepInterval, &1).unwrap();
                }
                // The peer "restarts": its socket is gone, the reset it sent is lost.
                nft("add table inet ho; add chain inet ho out { type filter hook output priority 0; policy accept; }; \
                     add rule inet ho out tcp sport 7300 tcp flags & rst == rst drop");
                setsockopt(
                    &server.as_fd(),
                    sockopt::Linger,
                    &libc::linger { l_onoff: 1, l_linger: 0 },
                )
                .unwrap();
                drop(server);
                nft("delete table inet ho");
                std::thread::sleep(std::time::Duration::from_millis(3000));
                let port = format!(":{:04X} ", client.local_addr().unwrap().port());
                let tcp = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
                let established = tcp.lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && format!("{} ", f[1]).ends_with(&port) && f[3] == "01"
                });
                client.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
                let err = client
                    .write_all(b"request")
                    .and_then(|()| {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        client.read(&mut [0u8; 16]).map(|_| ())
                    })
                    .expect_err("the request on a half-open connection must fail");
                (established, err.kind())
            })
            .join()
            .unwrap()
        })
    };
    let (established, err) = run(false);
    assert!(
        established,
        "without keepalive the half-open socket stays ESTABLISHED"
    );
    assert_eq!(err, ErrorKind::ConnectionReset);
    let (established, err) = run(true);
    assert!(!established, "keepalive found the dead peer while idle");
    assert_eq!(
        err,
        ErrorKind::ConnectionReset,
        "keepalive does not prevent the reset"
    );
}

/// With tcp_abort_on_overflow=0 an overflowing accept queue drops handshakes; the listener
/// rules must not read as if it reset them at 0.
#[test]
fn listener_messages_do_not_say_reset_with_abort_on_overflow_off() {
    use common::fixture::listener;
    for (rule, snap) in [
        (
            "listener-queue-full",
            host().socket(listener("0.0.0.0:80", 129, 128).owner(812, "nginx")),
        ),
        (
            "listener-backlog-small",
            host().socket(listener("0.0.0.0:80", 0, 2).owner(812, "nginx")),
        ),
    ] {
        let f = findings(rule, snap);
        assert_eq!(f.len(), 1, "{rule}: {f:#?}");
        assert!(
            !f[0].message.contains("reset with tcp_abort_on_overflow=0"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message
                .contains("when tcp_abort_on_overflow is 1, here 0"),
            "{}",
            f[0].message
        );
    }
}

/// tcp_retries2 is a time budget that tcp_rto_max_ms (6.15) shrinks: 15 retries with a
/// 1000 ms maximum give up after about 15 s. The rule judges the time, says it, and its fix
/// restores it at this host's tcp_rto_max_ms; without the keys (older kernels) the fixed
/// values are used and the finding says so.
#[test]
fn retries2_low_judges_the_time_the_retransmission_timeouts_leave() {
    let rto = |max: &str| {
        host()
            .kernel("6.18.0")
            .sysctl("net.ipv4.tcp_rto_min_us", "200000")
            .sysctl("net.ipv4.tcp_rto_max_ms", max)
    };
    let out = audit("retries2-low", &rto("120000").build());
    assert!(out.findings.is_empty(), "{out:#?}");
    assert_eq!(out.passed, ["retries2-low"]);
    let f = findings("retries2-low", rto("1000"));
    assert_eq!(
        f.len(),
        1,
        "tcp_retries2 15 with tcp_rto_max_ms 1000: {f:#?}"
    );
    let m = &f[0].message;
    for part in [
        "net.ipv4.tcp_retries2 is 15",
        "from 200 ms up to 1000 ms",
        "unanswered for 14.4 s",
        "14.6 s after the data was sent at the earliest",
        "(15.4 s when the timeout stays at its floor)",
    ] {
        assert!(m.contains(part), "{part:?} in {m}");
    }
    // 1.4 s of doublings, then 1 s per retry: 101 retries keep trying for 100 s.
    let fix = &f[0].fix.sysctls;
    assert_eq!(fix.len(), 1, "{fix:?}");
    assert_eq!(
        (fix[0].key.as_str(), fix[0].value.as_str()),
        ("net.ipv4.tcp_retries2", "101")
    );
    let fixed = rto("1000").sysctl("net.ipv4.tcp_retries2", "101");
    assert!(findings("retries2-low", fixed).is_empty());
    assert!(
        !f[0].notes.iter().any(|n| n.contains("does not exist")),
        "{f:#?}"
    );
    // A kernel before 6.11 has neither key: 200 ms and 120 s, as the kernel has them.
    let old = host().kernel("5.15.0").sysctl("net.ipv4.tcp_retries2", "5");
    let f = findings("retries2-low", old);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message
            .contains("from 200 ms up to 120000 ms (tcp_rto_min_us, tcp_rto_max_ms): once the retransmissions of an established connection have gone unanswered for 12.6 s"),
        "{}",
        f[0].message
    );
    assert!(f[0].message.contains("12.8 s after"), "{}", f[0].message);
    assert!(f[0].message.contains("(25.4 s when"), "{}", f[0].message);
    for key in ["net.ipv4.tcp_rto_max_ms", "net.ipv4.tcp_rto_min_us"] {
        assert!(
            f[0].notes
                .iter()
                .any(|n| n.starts_with(&format!("{key} does not exist on this kernel"))),
            "{key}: {f:#?}"
        );
    }
    assert_eq!(f[0].fix.sysctls[0].value, "15");
    // The keys the computed values read put established connections at risk.
    let f = findings(
        "retries2-low",
        rto("1000").socket(
            sock(TcpState::Established, "10.0.0.5:40000", "10.0.0.9:5432").owner(31, "worker"),
        ),
    );
    assert_eq!(f[0].exposure, rstaudit::rules::Exposure::Exposed, "{f:#?}");
}

/// What the kernel's clock says: a connection whose path drops everything is given up
/// (ETIMEDOUT, TcpExt.TCPAbortOnTimeout, no reset sent) at the time retries2-low computes,
/// never sooner than its "at the earliest" and within one timeout of its "at its floor"
/// (the loopback RTO is the floor plus a little; a tail loss probe may add one timeout).
/// The peer's next write then meets no socket and is reset.
#[test]
fn kernel_gives_up_when_the_retransmission_arithmetic_says() {
    use rstaudit::rules::retrans;
    use std::io::{Read, Write};
    // (tcp_retries2, tcp_rto_min_us, tcp_rto_max_ms, port): each far from an expiry that
    // lands on its budget, so the answer does not hang on the loopback's few microseconds.
    let configs: [(u32, u32, u32, u16); 3] = [
        (2, 500_000, 120_000, 7410),
        (5, 1_000_000, 1_000, 7411),
        (4, 300_000, 2_000, 7412),
    ];
    let netstat = |text: &str, name: &str| -> u64 {
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .find_map(|pair| {
                let names: Vec<&str> = pair[0].split(' ').collect();
                let values: Vec<&str> = pair.get(1)?.split(' ').collect();
                let i = names.iter().position(|n| *n == name)?;
                values.get(i)?.parse().ok()
            })
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .map(|&(retries, rto_min_us, rto_max_ms, port)| {
                s.spawn(move || {
                    let ns = common::Netns::with_sysctls(
                        "giveup",
                        &[
                            ("net.ipv4.tcp_retries2", &retries.to_string()),
                            ("net.ipv4.tcp_rto_min_us", &rto_min_us.to_string()),
                            ("net.ipv4.tcp_rto_max_ms", &rto_max_ms.to_string()),
                        ],
                    );
                    let out = common::rstaudit()
                        .args(["snapshot", "--netns", &ns.name, "--format", "json"])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}", common::text(&out));
                    let snap: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
                    let finding = audit("retries2-low", &snap).findings;
                    let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
                    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    let (mut server, _) = listener.accept().unwrap();
                    for _ in 0..10 {
                        client.write_all(b"x").unwrap();
                        server.read_exact(&mut [0u8; 1]).unwrap();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    common::run(ns.command("nft").arg(format!(
                        "add table inet cut; add chain inet cut in {{ type filter hook input priority 0; policy accept; }}; \
                         add rule inet cut in tcp dport {port} drop; add rule inet cut in tcp sport {port} drop"
                    )));
                    let counters = || {
                        std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap()
                            + &std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap()
                    };
                    let before = counters();
                    let t0 = std::time::Instant::now();
                    client.write_all(b"z").unwrap();
                    client
                        .set_read_timeout(Some(std::time::Duration::from_secs(40)))
                        .unwrap();
                    let err = client.read(&mut [0u8; 1]).expect_err("the kernel gives up");
                    let took = t0.elapsed().as_secs_f64();
                    let after = counters();
                    common::run(ns.command("nft").arg("delete table inet cut"));
                    server.write_all(b"late").unwrap();
                    server
                        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                        .unwrap();
                    let late = server.read(&mut [0u8; 1]);
                    (retries, rto_min_us, rto_max_ms, finding, err, took, before, after, late)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (retries, rto_min_us, rto_max_ms, finding, err, took, before, after, late) in results {
        let what = format!(
            "tcp_retries2 {retries}, tcp_rto_min_us {rto_min_us}, tcp_rto_max_ms {rto_max_ms}"
        );
        let rto_min = f64::from(rto_min_us) / 1000.0;
        let rto_max = f64::from(rto_max_ms);
        let first = rto_min.min(rto_max);
        let budget = retrans::model_timeout_ms(retries, retrans::TCP_RTO_MIN_MS, rto_max);
        let earliest = (first + budget) / 1000.0;
        let at_floor = retrans::give_up_ms(retries, rto_min, rto_max) / 1000.0;
        assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT), "{what}: {err}");
        assert!(
            took >= earliest && took >= at_floor - 0.05,
            "{what}: gave up after {took:.3} s, computed {at_floor} s (at the earliest {earliest} s)"
        );
        assert!(
            took <= at_floor * 1.05 + first / 1000.0 + 0.3,
            "{what}: gave up after {took:.3} s, computed {at_floor} s"
        );
        let moved = |name: &str| netstat(&after, name) - netstat(&before, name);
        assert_eq!(moved("TCPAbortOnTimeout"), 1, "{what}");
        assert_eq!(
            moved("OutRsts"),
            0,
            "{what}: no reset when the kernel gives up"
        );
        let late = late.expect_err("the peer's late write is reset");
        assert_eq!(late.kind(), std::io::ErrorKind::ConnectionReset, "{what}");
        // The rule says these times (all three configurations give up before 100 s).
        assert_eq!(finding.len(), 1, "{what}: {finding:#?}");
        let m = &finding[0].message;
        let s = |v: f64| rstaudit::rules::rule::fmt_num(v);
        for part in [
            format!("unanswered for {} s", s(budget / 1000.0)),
            format!("{} s after the data was sent at the earliest", s(earliest)),
            format!("({} s when the timeout stays at its floor)", s(at_floor)),
        ] {
            assert!(m.contains(&part), "{what}: {part:?} in {m}");
        }
    }
}

/// A private ftrace instance with `tcp:tcp_send_reset` on, removed on drop. Fails loudly
/// when tracefs is not mounted or the event is missing.
struct SendResets(std::path::PathBuf);

impl SendResets {
    fn start(tag: &str) -> Self {
        common::require_root();
        let root = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .map(std::path::Path::new)
            .find(|p| p.join("instances").is_dir())
            .expect("tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing");
        let dir = root
            .join("instances")
            .join(format!("rsta-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let me = Self(dir);
        std::fs::write(me.0.join("events/tcp/tcp_send_reset/enable"), "1")
            .expect("this kernel has no tcp:tcp_send_reset tracepoint");
        me
    }

    /// The events sent from `src` (ADDR:PORT).
    fn from(&self, src: &str) -> Vec<String> {
        std::fs::read_to_string(self.0.join("trace"))
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("src={src} ")))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for SendResets {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("events/tcp/tcp_send_reset/enable"), "0");
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The kernel, for paws-timewait and rfc1337-off (6.18): the server closes first and holds
/// TIME_WAIT; a client reuses the port pair with a timestamp clock unrelated to the old
/// connection's (tcp_timestamps 1 and 2 give a random and no offset: half the tries make the
/// second clock the older one). The TIME_WAIT entry counts the SYN in
/// TcpExt.PAWSTimewait and answers with an ACK, which the client resets from SYN_SENT
/// (TCP_INVALID_ACK_SEQUENCE). With tcp_rfc1337=0 that reset ends the entry and the retry
/// connects; with 1 the entry ignores every reset and connect() fails (ETIMEDOUT). No
/// counter marks the reset that ended TIME_WAIT: TcpExt.TWKilled does not move.
#[test]
fn kernel_paws_in_time_wait_resets_the_client_and_rfc1337_keeps_it_out() {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, setsockopt, socket, sockopt,
    };
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let trace = SendResets::start("pawstw");
    let counter = |text: &str, name: &str| -> u64 {
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .find_map(|pair| {
                let names: Vec<&str> = pair[0].split(' ').collect();
                let values: Vec<&str> = pair.get(1)?.split(' ').collect();
                let i = names.iter().position(|n| *n == name)?;
                values.get(i)?.parse().ok()
            })
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    };
    let run = |rfc1337: &str, port: u16| {
        let ns = common::Netns::with_sysctls(
            "pawstw",
            &[
                ("net.ipv4.tcp_rfc1337", rfc1337),
                ("net.ipv4.tcp_syn_retries", "1"),
            ],
        );
        let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let client = |cport: u16| -> (std::net::TcpStream, Result<(), nix::Error>) {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::empty(),
                None,
            )
            .unwrap();
            setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
            bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 2, cport)).unwrap();
            let r = connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port));
            (std::net::TcpStream::from(fd), r)
        };
        let netstat = || std::fs::read_to_string("/proc/thread-self/net/netstat").unwrap();
        // The random offset differs per port pair (and namespace): each try, on a port of its
        // own, makes the second clock the older one with a chance of one half.
        for try_no in 0..20u16 {
            let (first, second) = if try_no % 2 == 0 {
                ("1", "2")
            } else {
                ("2", "1")
            };
            let cport = 41000 + port % 1000 * 40 + try_no;
            ns.sysctl("net.ipv4.tcp_timestamps", first);
            let (mut c, r) = client(cport);
            r.unwrap();
            let (mut s, _) = listener.accept().unwrap();
            c.write_all(b"hi").unwrap();
            s.read_exact(&mut [0u8; 2]).unwrap();
            drop(s);
            assert_eq!(c.read(&mut [0u8; 1]).unwrap(), 0, "the server closed first");
            drop(c);
            std::thread::sleep(std::time::Duration::from_millis(200));
            ns.sysctl("net.ipv4.tcp_timestamps", second);
            let before = netstat();
            let t0 = std::time::Instant::now();
            let (c2, r) = client(cport);
            let took = t0.elapsed().as_secs_f64();
            let after = netstat();
            let moved = |n: &str| counter(&after, n) - counter(&before, n);
            if moved("PAWSTimewait") == 0 {
                // This order gave the second clock a newer timestamp: the entry took the SYN.
                r.expect("a SYN with a newer timestamp reopens the TIME_WAIT pair");
                drop(listener.accept().unwrap());
                drop(c2);
                continue;
            }
            let out = common::rstaudit()
                .args(["snapshot", "--netns", &ns.name, "--format", "json"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", common::text(&out));
            let snap: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
            return (
                cport,
                r,
                took,
                moved("PAWSTimewait"),
                moved("TWKilled"),
                snap,
            );
        }
        panic!("in 20 tries no SYN was rejected by PAWS in TIME_WAIT");
    };
    let (open, closed) = std::thread::scope(|s| {
        let open = s.spawn(|| run("0", 7520));
        let closed = s.spawn(|| run("1", 7521));
        (open.join().unwrap(), closed.join().unwrap())
    });
    let invalid_ack = |cport: u16| {
        trace
            .from(&format!("127.0.0.2:{cport}"))
            .into_iter()
            .filter(|l| l.contains("state=TCP_SYN_SENT reason=TCP_INVALID_ACK_SEQUENCE"))
            .count()
    };
    // tcp_rfc1337=0: one rejection, one reset, and the retry gets through at once.
    let (cport, r, took, paws, killed, snap) = open;
    r.expect("with tcp_rfc1337=0 the client's reset clears the entry");
    assert!(took < 0.5, "connected after {took:.3} s");
    assert_eq!(paws, 1);
    assert_eq!(
        invalid_ack(cport),
        1,
        "{:?}",
        trace.from(&format!("127.0.0.2:{cport}"))
    );
    assert_eq!(
        killed, 0,
        "TWKilled does not count an entry ended by a reset"
    );
    assert!(audit("paws-timewait", &snap).findings.is_empty());
    let out = audit("rfc1337-off", &snap);
    assert!(
        out.findings.is_empty(),
        "rfc1337=1 would keep these clients out: {out:#?}"
    );
    // tcp_rfc1337=1: every retry rejected and reset, then ETIMEDOUT.
    let (cport, r, took, paws, _, snap) = closed;
    assert_eq!(r, Err(nix::Error::ETIMEDOUT), "after {took:.3} s");
    assert!(paws >= 2, "PAWSTimewait {paws}");
    assert!(
        invalid_ack(cport) >= 2,
        "{:?}",
        trace.from(&format!("127.0.0.2:{cport}"))
    );
    let f = audit("paws-timewait", &snap).findings;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message.contains("connect() times out"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].evidence.rst_reasons, ["TCP_INVALID_ACK_SEQUENCE"]);
    assert_eq!(f[0].fix.sysctls[0].key, "net.ipv4.tcp_rfc1337");
    assert_eq!(f[0].fix.sysctls[0].value, "0");
}

/// rfc1337-off recommends tcp_rfc1337=1 only where no TIME_WAIT entry rejected a SYN by PAWS
/// (kernel_paws_in_time_wait_resets_the_client_and_rfc1337_keeps_it_out); before 6.16 the
/// kernel has no such counter and the rule says it took 0. paws-timewait needs the counter.
#[test]
fn rfc1337_advice_stops_where_time_wait_entries_reject_syns() {
    let off = || host().sysctl("net.ipv4.tcp_rfc1337", "0");
    assert_eq!(findings("rfc1337-off", off()).len(), 1);
    assert!(findings("rfc1337-off", off().counter("TcpExt.PAWSTimewait", 2)).is_empty());
    let mut old = off().kernel("6.12.0").build();
    for sample in [&mut old.counters.first, &mut old.counters.second]
        .into_iter()
        .flatten()
    {
        sample.values.remove("TcpExt.PAWSTimewait");
    }
    let out = audit("rfc1337-off", &old);
    assert_eq!(out.findings.len(), 1, "{out:#?}");
    assert!(
        out.findings[0]
            .notes
            .iter()
            .any(|n| n == "TcpExt.PAWSTimewait does not exist on this kernel: taken as 0"),
        "{out:#?}"
    );
    let rule = rules::load::builtin().unwrap();
    assert!(
        rule.get("rfc1337-off")
            .unwrap()
            .evidence_counters
            .is_empty()
    );
    let out = audit("paws-timewait", &old);
    assert_eq!(out.not_applicable.len(), 1, "{out:#?}");
}

/// tcp_syn_retries is a time budget from the first SYN, which tcp_rto_max_ms (6.15) shrinks
/// and tcp_syn_linear_timeouts (6.7) stretches: the rule judges and says the time connect()
/// lasts, and its fix restores it at this host's tcp_rto_max_ms.
#[test]
fn syn_retries_low_judges_the_time_connect_lasts() {
    let syn = |retries: &str, rto_max: &str| {
        host()
            .kernel("6.18.0")
            .sysctl("net.ipv4.tcp_syn_retries", retries)
            .sysctl("net.ipv4.tcp_syn_linear_timeouts", "4")
            .sysctl("net.ipv4.tcp_rto_max_ms", rto_max)
    };
    assert!(findings("syn-retries-low", syn("3", "120000")).is_empty());
    let f = findings("syn-retries-low", syn("6", "1000"));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message.starts_with(
            "net.ipv4.tcp_syn_retries is 6 (tcp_syn_linear_timeouts 4, tcp_rto_max_ms 1000): an outgoing connect() whose SYNs go unanswered fails after 7 s"
        ),
        "{}",
        f[0].message
    );
    // 1 s, then 1 s per retry at a 1000 ms maximum: 9 retries last 10 s.
    assert_eq!(f[0].fix.sysctls[0].value, "9");
    assert!(findings("syn-retries-low", syn("9", "1000")).is_empty());
    // Before 6.7 and 6.15 neither key exists: the SYN timeouts double from the start.
    let old = host()
        .kernel("6.1.0")
        .sysctl("net.ipv4.tcp_syn_retries", "2");
    let f = findings("syn-retries-low", old);
    assert!(f[0].message.contains("fails after 7 s"), "{}", f[0].message);
    assert_eq!(
        f[0].notes
            .iter()
            .filter(|n| n.contains("does not exist on this kernel"))
            .count(),
        2,
        "{f:#?}"
    );
}

/// The kernel's clock for connect(): SYNs that go unanswered end in ETIMEDOUT at the time
/// syn-retries-low says.
#[test]
fn kernel_connect_gives_up_when_the_syn_arithmetic_says() {
    use rstaudit::rules::retrans;
    // (tcp_syn_retries, tcp_syn_linear_timeouts, tcp_rto_max_ms, port)
    let configs: [(u32, u32, u32, u16); 3] = [
        (2, 4, 120_000, 7430),
        (6, 4, 1_000, 7431),
        (3, 0, 2_000, 7432),
    ];
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .map(|&(retries, linear, rto_max_ms, port)| {
                s.spawn(move || {
                    let ns = common::Netns::with_sysctls(
                        "syngiveup",
                        &[
                            ("net.ipv4.tcp_syn_retries", &retries.to_string()),
                            ("net.ipv4.tcp_syn_linear_timeouts", &linear.to_string()),
                            ("net.ipv4.tcp_rto_max_ms", &rto_max_ms.to_string()),
                        ],
                    );
                    let out = common::rstaudit()
                        .args(["snapshot", "--netns", &ns.name, "--format", "json"])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "{}", common::text(&out));
                    let snap: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
                    let finding = audit("syn-retries-low", &snap).findings;
                    common::run(ns.command("nft").arg(format!(
                        "add table inet cut; add chain inet cut in {{ type filter hook input priority 0; policy accept; }}; \
                         add rule inet cut in tcp dport {port} drop"
                    )));
                    let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    let t0 = std::time::Instant::now();
                    let err = std::net::TcpStream::connect(("127.0.0.1", port))
                        .expect_err("nothing answers the SYNs");
                    (retries, linear, rto_max_ms, finding, err, t0.elapsed().as_secs_f64())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (retries, linear, rto_max_ms, finding, err, took) in results {
        let what =
            format!("tcp_syn_retries {retries}, linear {linear}, tcp_rto_max_ms {rto_max_ms}");
        let want = retrans::syn_give_up_ms(retries, linear, f64::from(rto_max_ms)) / 1000.0;
        assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT), "{what}: {err}");
        assert!(
            took >= want - 0.05 && took <= want + 0.5,
            "{what}: connect() failed after {took:.3} s, computed {want} s"
        );
        assert_eq!(finding.len(), 1, "{what}: {finding:#?}");
        let part = format!("fails after {} s", rstaudit::rules::rule::fmt_num(want));
        assert!(
            finding[0].message.contains(&part),
            "{what}: {part:?} in {}",
            finding[0].message
        );
    }
}
