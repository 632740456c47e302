//! Real servers from Debian's packages (haproxy, redis-server, nginx-light), each in a
//! network namespace the test creates, configured the way operators get resets. The audit
//! (`--netns NAME`, JSON) must name the right rule and process and nothing false, and the
//! kernel's counters must show what the rule claims.
//!
//! The servers run in the foreground with their config, pid and log files in a temporary
//! directory, and are killed when the test ends (also when it fails). A missing server
//! binary fails the test with the package to install.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::server::{CLOSE_WAIT, LISTEN, Server, TcpRow, counter, counters, in_ns, tcp_table};
use common::{Helper, Netns, require_root};
use serde_json::Value;

const HAPROXY: (&str, &str) = ("/usr/sbin/haproxy", "haproxy");
const REDIS: (&str, &str) = ("/usr/bin/redis-server", "redis-server");

/// `rstaudit audit --netns NAME --format json ARGS`: the namespace's report.
fn audit(ns: &Netns, args: &[&str]) -> Value {
    let out = common::rstaudit()
        .args(["audit", "--netns", &ns.name, "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        common::text(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    report["namespaces"][0].clone()
}

/// (rule, process name, pid) of every finding.
type Fired = BTreeSet<(String, Option<(String, u64)>)>;

fn fired(report: &Value) -> Fired {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = &f["process"];
            (
                f["rule"].as_str().unwrap().to_string(),
                p["pid"]
                    .as_u64()
                    .map(|pid| (p["comm"].as_str().unwrap_or("?").to_string(), pid)),
            )
        })
        .collect()
}

/// What the server added to the findings of the empty namespace.
fn added(report: &Value, base: &Fired) -> Fired {
    fired(report).difference(base).cloned().collect()
}

fn named(rule: &str, comm: &str, pid: u32) -> (String, Option<(String, u64)>) {
    (rule.to_string(), Some((comm.to_string(), u64::from(pid))))
}

fn pretty(report: &Value) -> String {
    serde_json::to_string_pretty(&report["findings"]).unwrap()
}

const HAPROXY_CFG: &str = "global
    pidfile {dir}/haproxy.pid
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:8080
    OPTION
    default_backend be
backend be
    server refused 127.0.0.1:9
";

/// haproxy `option nolinger` sets SO_LINGER {1, 0} on its listener; every accepted socket
/// inherits it, so each connection haproxy closes is reset (TcpExt.TCPAbortOnData), while
/// the idle host shows only the listener.
#[test]
fn haproxy_option_nolinger_is_found_on_its_listener() {
    require_root();
    for nolinger in [true, false] {
        let ns = Netns::new("haproxy");
        let base = fired(&audit(&ns, &[]));
        let option = if nolinger { "option nolinger" } else { "" };
        let mut server = Server::start(
            &ns,
            HAPROXY,
            "haproxy.cfg",
            &HAPROXY_CFG.replace("OPTION", option),
            &["-db", "-f", "{config}"],
        );
        server.wait_listening(&ns, 8080);
        let report = audit(&ns, &[]);
        let expected: Fired = if nolinger {
            [named("listener-linger-zero", "haproxy", server.pid)].into()
        } else {
            Fired::new()
        };
        assert_eq!(added(&report, &base), expected, "{}", pretty(&report));

        // The kernel: one client; haproxy's backend refuses, haproxy closes the client.
        let before = counter(&ns, "TcpExt.TCPAbortOnData");
        in_ns(&ns, || {
            let mut c = TcpStream::connect("127.0.0.1:8080").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.read(&mut [0u8; 64]);
            std::thread::sleep(Duration::from_millis(100));
        });
        let resets = counter(&ns, "TcpExt.TCPAbortOnData") - before;
        assert_eq!(
            resets,
            u64::from(nolinger),
            "TCPAbortOnData after one connection, nolinger={nolinger}: {}",
            server.output()
        );
    }
}

const REDIS_CONF: &str = "bind 127.0.0.1
port 6390
daemonize no
save \"\"
appendonly no
dir {dir}
logfile {dir}/redis.log
pidfile {dir}/redis.pid
";

/// Wait until `n` sockets to `port` are in CLOSE_WAIT.
fn wait_close_wait(ns: &Netns, port: u16, n: usize) -> Vec<TcpRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows: Vec<TcpRow> = tcp_table(ns)
            .into_iter()
            .filter(|s| s.state == CLOSE_WAIT && s.remote_port == port)
            .collect();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} sockets in CLOSE_WAIT after 10 s",
            rows.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// redis `timeout 1` closes idle clients. A pool that never notices holds CLOSE_WAIT sockets
/// whose only unread thing is redis's FIN (Recv-Q 1): close-wait-pile names the pool's
/// process, and nothing says their close() would reset (it sends a FIN). A client that
/// writes late is reset by redis's closed socket.
#[test]
fn redis_timeout_leaves_fin_only_close_wait_that_close_with_a_fin() {
    require_root();
    let ns = Netns::new("redis-timeout");
    let base = fired(&audit(&ns, &[]));
    let mut server = Server::start(
        &ns,
        REDIS,
        "redis.conf",
        &format!("{REDIS_CONF}timeout 1\n"),
        &["{config}"],
    );
    server.wait_listening(&ns, 6390);
    let specs: Vec<&str> = std::iter::repeat_n("connect:6390", 12)
        .chain(["sleep:100"])
        .collect();
    let pool: Helper = ns.helper(&specs);
    let rows = wait_close_wait(&ns, 6390, 12);
    assert!(
        rows.iter().all(|r| r.rx_queue == 1),
        "the FIN counts as one byte of Recv-Q"
    );
    let report = audit(&ns, &[]);
    assert_eq!(
        added(&report, &base),
        [named("close-wait-pile", "sockhelper", pool.pid)].into(),
        "{}",
        pretty(&report)
    );

    // close() of a FIN-only CLOSE_WAIT socket sends a FIN: no reset, no TCPAbortOnClose.
    let before = counters(&ns);
    drop(pool);
    std::thread::sleep(Duration::from_millis(200));
    let after = counters(&ns);
    for c in ["TcpExt.TCPAbortOnClose", "Tcp.OutRsts"] {
        assert_eq!(before[c], after[c], "{c} moved when the pool closed");
    }

    // A client that writes after redis closed it is reset (by redis's TIME_WAIT-like socket).
    let mut late = in_ns(&ns, || TcpStream::connect("127.0.0.1:6390").unwrap());
    wait_close_wait(&ns, 6390, 1);
    let before = counter(&ns, "Tcp.OutRsts");
    late.write_all(b"PING\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let second = late.write_all(b"PING\r\n");
    assert!(second.is_err(), "the late writer was not reset");
    assert!(counter(&ns, "Tcp.OutRsts") > before, "no reset was sent");
}

/// redis `tcp-keepalive 0`: the connections redis accepts have no SO_KEEPALIVE, so an idle
/// pool is forgotten by any middlebox with a shorter idle timeout. idle-without-keepalive
/// names redis (and the pool, whose sockets have none either); with `tcp-keepalive 1`
/// (below the idle timeout) redis is not named.
#[test]
fn redis_without_tcp_keepalive_is_named_for_its_idle_pool() {
    require_root();
    let idle = ["--set", "idle_timeout=2"];
    for keepalive in [0, 1] {
        let ns = Netns::new("redis-keepalive");
        let base = fired(&audit(&ns, &idle));
        let mut server = Server::start(
            &ns,
            REDIS,
            "redis.conf",
            &format!("{REDIS_CONF}timeout 0\ntcp-keepalive {keepalive}\n"),
            &["{config}"],
        );
        server.wait_listening(&ns, 6390);
        let pool = ns.helper(&["connect:6390", "connect:6390", "connect:6390", "sleep:100"]);
        std::thread::sleep(Duration::from_millis(2500));
        let report = audit(&ns, &idle);
        let mut expected: Fired = [named("idle-without-keepalive", "sockhelper", pool.pid)].into();
        if keepalive == 0 {
            expected.insert(named("idle-without-keepalive", "redis-server", server.pid));
        }
        assert_eq!(
            added(&report, &base),
            expected,
            "tcp-keepalive {keepalive}: {}",
            pretty(&report)
        );
    }
}

const NGINX: (&str, &str) = ("/usr/sbin/nginx", "nginx-light");

const NGINX_CONF: &str = "daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    server {
        listen 127.0.0.1:8081 backlog=2;
        return 200 \"ok\\n\";
    }
}
";

/// nginx `listen ... backlog=2`: the backlog is reported by itself with nginx named, also
/// while the queue is empty, and abort-on-overflow names nginx as the listener at risk. The
/// kernel: with nginx stopped, a burst of six clients overflows the queue.
#[test]
fn nginx_tiny_backlog_is_found_while_its_queue_is_empty() {
    require_root();
    let ns = Netns::with_sysctls("nginx", &[("net.ipv4.tcp_abort_on_overflow", "1")]);
    let base = fired(&audit(&ns, &[]));
    let mut server = Server::start(
        &ns,
        NGINX,
        "nginx.conf",
        NGINX_CONF,
        &["-p", "{dir}", "-e", "{dir}/error.log", "-c", "{config}"],
    );
    server.wait_listening(&ns, 8081);
    let report = audit(&ns, &[]);
    assert_eq!(
        added(&report, &base),
        [
            named("abort-on-overflow", "nginx", server.pid),
            named("listener-backlog-small", "nginx", server.pid),
        ]
        .into(),
        "{}",
        pretty(&report)
    );
    let listen = tcp_table(&ns);
    assert!(
        listen
            .iter()
            .any(|s| s.local_port == 8081 && s.state == LISTEN && s.rx_queue == 0),
        "the accept queue is empty while audited"
    );

    // The kernel: stop nginx, six clients at once; the queue of 2 (+1) overflows.
    let before = counter(&ns, "TcpExt.ListenOverflows");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    in_ns(&ns, || {
        let addr = "127.0.0.1:8081".parse().unwrap();
        let clients: Vec<_> = (0..6)
            .map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)))
            .collect();
        drop(clients);
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    assert!(
        counter(&ns, "TcpExt.ListenOverflows") > before,
        "six clients did not overflow a backlog of 2: {}",
        server.output()
    );
}

const NGINX_WORKERS_CONF: &str = "daemon off;
master_process on;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    keepalive_timeout 60;
    server {
        listen 127.0.0.1:8082;
        return 200 \"ok\\n\";
    }
}
";

/// The processes whose parent is `pid`.
fn children(pid: u32) -> BTreeSet<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// nginx with a master and two workers: every process holds the listening socket, but only
/// the worker that accepted a connection holds that connection. A reset a client sends to a
/// kept-alive connection names, as the process it was sent to, the worker that holds it (from
/// the socket table), never the master.
#[test]
fn a_reset_to_an_nginx_connection_names_the_worker_that_holds_it() {
    require_root();
    let ns = Netns::new("ngxw");
    let mut server = Server::start(
        &ns,
        NGINX,
        "nginx.conf",
        NGINX_WORKERS_CONF,
        &["-p", "{dir}", "-e", "{dir}/error.log", "-c", "{config}"],
    );
    server.wait_listening(&ns, 8082);
    let deadline = Instant::now() + Duration::from_secs(10);
    while children(server.pid).len() < 2 {
        assert!(Instant::now() < deadline, "no workers: {}", server.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let workers = children(server.pid);
    let mut cmd = common::rstaudit();
    cmd.args([
        "packet-check",
        "--netns",
        &ns.name,
        "--duration",
        "7",
        "--format",
        "json",
    ])
    .stdout(Stdio::piped());
    let (child, err) = common::start_watching(&mut cmd);
    let conn = in_ns(&ns, || {
        let mut c = TcpStream::connect("127.0.0.1:8082").unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        c
    });
    let client = conn.local_addr().unwrap();
    // Let a refresh of the socket table see the kept-alive connection and its worker (a
    // refresh reads every process's descriptors: seconds on a loaded machine).
    std::thread::sleep(Duration::from_millis(3500));
    nix::sys::socket::setsockopt(
        &conn,
        nix::sys::socket::sockopt::Linger,
        &libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .unwrap();
    drop(conn);
    let out = common::finish_watching(child, err);
    let report: Value = serde_json::from_str(&out).unwrap();
    let events = report["events"].as_array().unwrap();
    let e = events
        .iter()
        .find(|e| e["src"] == client.to_string())
        .unwrap_or_else(|| panic!("no reset from {client}: {}", pretty(&report)));
    assert_eq!(e["owner"]["pid"], u64::from(std::process::id()), "{e:#}");
    let peer = e["peer"]["pid"].as_u64();
    assert!(
        peer.is_some_and(|p| workers.contains(&p)),
        "the reset was sent to {peer:?}, not to a worker of {:?} (master {}): {e:#}",
        workers,
        server.pid
    );
    assert_eq!(e["peer"]["comm"], "nginx", "{e:#}");
    assert_eq!(e["peer"]["source"], "peer-socket", "{e:#}");
}
