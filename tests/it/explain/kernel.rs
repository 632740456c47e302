//! What `rstaudit explain` says about errno values and resets, checked on the kernel in
//! network namespaces the tests create (root; loopback only; nftables rules live and die
//! with the namespace).

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The summary `rstaudit explain CAUSE` gives for a cause.
fn summary(cause: &str) -> String {
    let out = common::rstaudit()
        .args(["explain", "--text-only", "--format", "json", cause])
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{t}"));
    assert_eq!(v["causes"][0]["cause"], cause, "{t}");
    v["causes"][0]["summary"].as_str().unwrap().to_string()
}

/// What the answers say about errno values, checked on the kernel in a namespace of the
/// test's own: a write after the peer's close() succeeds and the next fails with EPIPE (the
/// FIN came first); a reset without a FIN (close with unread data) fails the next call with
/// ECONNRESET and the one after with EPIPE; a closed port refuses with ECONNREFUSED.
#[test]
fn errno_claims_hold_on_the_kernel() {
    let ns = common::Netns::new("explain");
    let path = format!("/run/netns/{}", ns.name);
    let seen = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let pause = || std::thread::sleep(Duration::from_millis(100));
        let errno = |r: std::io::Result<usize>| match r {
            Ok(_) => 0,
            Err(e) => e.raw_os_error().unwrap(),
        };
        let l = TcpListener::bind("127.0.0.1:7101").unwrap();
        // The peer closes normally (FIN).
        let mut c = TcpStream::connect("127.0.0.1:7101").unwrap();
        drop(l.accept().unwrap());
        pause();
        let fin_first = errno(c.write(b"x"));
        pause();
        let fin_second = errno(c.write(b"x"));
        let fin_read = c.read(&mut [0; 8]).unwrap();
        // The peer closes with unread data (RST without FIN).
        let mut c = TcpStream::connect("127.0.0.1:7101").unwrap();
        let (a, _) = l.accept().unwrap();
        c.write_all(b"req1req2").unwrap();
        pause();
        drop(a);
        pause();
        let rst_first = errno(c.write(b"x"));
        let rst_second = errno(c.write(b"x"));
        let refused = TcpStream::connect("127.0.0.1:7102")
            .unwrap_err()
            .raw_os_error()
            .unwrap();
        (
            fin_first, fin_second, fin_read, rst_first, rst_second, refused,
        )
    })
    .join()
    .unwrap();
    assert_eq!(
        seen,
        (
            0,
            libc::EPIPE,
            0,
            libc::ECONNRESET,
            libc::EPIPE,
            libc::ECONNREFUSED
        )
    );
    // And the answers say so.
    let s13 = summary("write-after-close");
    assert!(
        s13.contains("the first write succeeds")
            && s13.contains("FIN came before the reset the next write fails with EPIPE"),
        "{s13}"
    );
    let s3 = summary("unread-close");
    assert!(
        s3.contains("next read or write fails with ECONNRESET")
            && s3.contains("later writes fail with EPIPE"),
        "{s3}"
    );
    assert!(summary("port-not-open").contains("ECONNREFUSED"));
}

/// The seed's "second write" (causes 5 and 14): the peer, or a middlebox, forgot the
/// connection and told nobody. The first write after that succeeds (the data leaves and
/// the reset comes back later); the second fails with ECONNRESET. Reproduced by dropping
/// the reset of a SO_LINGER 0 close with nftables, so the client never hears of it.
#[test]
fn the_second_write_after_the_peer_forgot_fails_with_econnreset() {
    let ns = common::Netns::new("explain-2nd");
    let nft = |args: &[&str]| common::run(ns.command("nft").args(args));
    let path = format!("/run/netns/{}", ns.name);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = TcpListener::bind("127.0.0.1:7103").unwrap();
        let mut c = TcpStream::connect("127.0.0.1:7103").unwrap();
        let (a, _) = l.accept().unwrap();
        // Wait until resets are dropped, then abort the server side silently.
        rx.recv().unwrap();
        nix::sys::socket::setsockopt(
            &a,
            nix::sys::socket::sockopt::Linger,
            &libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        )
        .unwrap();
        drop(a);
        drop(l);
        done_tx.send(()).unwrap();
        rx.recv().unwrap();
        let errno = |r: std::io::Result<usize>| match r {
            Ok(_) => 0,
            Err(e) => e.raw_os_error().unwrap(),
        };
        let first = errno(c.write(b"after the pause"));
        std::thread::sleep(Duration::from_millis(200));
        let second = errno(c.write(b"again"));
        (first, second)
    });
    nft(&["add", "table", "inet", "rsta"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "rsta",
        "out",
        "{ type filter hook output priority 0; policy accept; }",
    ]);
    nft(&[
        "add", "rule", "inet", "rsta", "out", "tcp", "flags", "&", "rst", "==", "rst", "drop",
    ]);
    tx.send(()).unwrap();
    done_rx.recv().unwrap();
    nft(&["delete", "table", "inet", "rsta"]);
    tx.send(()).unwrap();
    assert_eq!(client.join().unwrap(), (0, libc::ECONNRESET));
    let s5 = summary("middlebox-idle");
    assert!(
        s5.contains(
            "the first write after the pause seems to succeed and only the second one fails"
        ),
        "{s5}"
    );
    let s14 = summary("half-open");
    assert!(s14.contains("fails with ECONNRESET"), "{s14}");
}

/// `Tcp.OutRsts` of the calling thread's network namespace.
fn out_rsts() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let tcp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let names: Vec<&str> = tcp[0].split_whitespace().collect();
    let values: Vec<&str> = tcp[1].split_whitespace().collect();
    let at = names.iter().position(|n| *n == "OutRsts").unwrap();
    values[at].parse().unwrap()
}

/// Cause 9 on the kernel: an application whose connect timeout fires before the handshake
/// completes closes a SYN_SENT socket; the SYN-ACK that arrives later finds no socket and
/// is answered with a reset. The first SYN-ACK is held back by nftables in the test's
/// namespace, so the server's retransmission (after about 1 s) is the late one.
#[test]
fn a_syn_ack_after_the_connect_timeout_is_answered_with_a_reset() {
    let ns = common::Netns::new("explain-syn");
    let nft = |args: &[&str]| common::run(ns.command("nft").args(args));
    nft(&["add", "table", "inet", "rsta"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "rsta",
        "out",
        "{ type filter hook output priority 0; policy accept; }",
    ]);
    nft(&[
        "add",
        "rule",
        "inet",
        "rsta",
        "out",
        "tcp",
        "flags",
        "&",
        "(syn|ack)",
        "==",
        "syn|ack",
        "drop",
    ]);
    let path = format!("/run/netns/{}", ns.name);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (back_tx, back_rx) = std::sync::mpsc::channel::<()>();
    let seen = std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = TcpListener::bind("127.0.0.1:7104").unwrap();
        let before = out_rsts();
        let addr = "127.0.0.1:7104".parse().unwrap();
        let gave_up = TcpStream::connect_timeout(&addr, Duration::from_millis(300))
            .unwrap_err()
            .kind();
        tx.send(()).unwrap();
        back_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        l.set_nonblocking(true).unwrap();
        let accepted = l.accept().is_ok();
        (gave_up, out_rsts() - before, accepted)
    });
    rx.recv().unwrap();
    nft(&["delete", "table", "inet", "rsta"]);
    back_tx.send(()).unwrap();
    let (gave_up, resets, accepted) = seen.join().unwrap();
    assert_eq!(gave_up, std::io::ErrorKind::TimedOut);
    assert!(resets >= 1, "no reset after the late SYN-ACK");
    assert!(
        !accepted,
        "the server queued a connection the client gave up"
    );
    let s9 = summary("connect-timeout");
    assert!(
        s9.contains(
            "a SYN-ACK that arrives after that finds no socket and is answered with a reset"
        ),
        "{s9}"
    );
}
