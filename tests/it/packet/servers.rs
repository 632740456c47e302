//! Verdicts scoped to their finding, next to real servers from Debian's packages (memcached,
//! nginx, PostgreSQL) and two connection pools behind a middlebox that forgets idle flows. Each
//! reset rstaudit reports is compared with the kernel's own record (`tcp:tcp_send_reset` in a
//! trace instance of the test's own: its reason and the task that sent it), and each verdict
//! with who really sent or got the resets: a finding about a process is confirmed only by that
//! process's resets, a host finding names the processes whose resets confirmed it, every event
//! lists the findings it supports, and no verdict contradicts the counters it quotes.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::server::{Server, counter};
use crate::common::{self, Netns, require_root};
use crate::peer::{KernelTrace, Watch};

const MEMCACHED: (&str, &str) = ("/usr/bin/memcached", "memcached");
const NGINX: (&str, &str) = ("/usr/sbin/nginx", "nginx-light");

fn events(report: &Value) -> Vec<&Value> {
    report["events"]
        .as_array()
        .expect("events")
        .iter()
        .collect()
}

fn findings<'a>(report: &'a Value, rule: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

/// The events of resets sent from `port`.
fn from_port(report: &Value, port: u16) -> Vec<&Value> {
    events(report)
        .into_iter()
        .filter(|e| {
            e["src"]
                .as_str()
                .and_then(|s| s.parse::<SocketAddr>().ok())
                .is_some_and(|a| a.port() == port)
        })
        .collect()
}

/// The names of the threads of process `pid` (memcached's workers are `mc-worker`).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// memcached closes a client whose command line is longer than it reads (200 KB without its
/// end) with the rest unread: TCP_ABORT_ON_CLOSE from a memcached thread, TCPAbortOnClose
/// +1. Two other clients hold memcached's replies unread, so the audit suspects them for
/// `resets-abort-on-close` (a host finding). The live check: memcached's reset, unread-close,
/// linked to the finding; the finding one row, confirmed, naming memcached, its suspects
/// listed as such; the counter agrees.
#[test]
fn memcached_closing_a_long_line_confirms_the_host_finding_with_memcached_named() {
    require_root();
    let ns = Netns::new("memcached");
    let mut mc = Server::start(
        &ns,
        MEMCACHED,
        "unused.conf",
        "",
        &[
            "-u",
            "nobody",
            "-l",
            "127.0.0.1",
            "-p",
            "11311",
            "-t",
            "2",
            "-U",
            "0",
        ],
    );
    mc.wait_listening(&ns, 11311);
    let idle: Vec<_> = (0..2)
        .map(|_| ns.helper(&["request:127.0.0.1:11311:stats"]))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let kernel = KernelTrace::start();
    let before = counter(&ns, "TcpExt.TCPAbortOnClose");
    let watch = Watch::start(&["--netns", &ns.name, "--duration", "5", "--format", "json"]);
    let long_line = ns.helper(&["announce", "flood:127.0.0.1:11311:200000"]);
    let report = watch.finish();
    assert_eq!(
        counter(&ns, "TcpExt.TCPAbortOnClose") - before,
        1,
        "memcached: {}",
        mc.output()
    );
    // The kernel's record of the reset.
    let mine: Vec<_> = kernel
        .send_resets()
        .into_iter()
        .filter(|s| s.src.is_some_and(|a| a.port() == 11311))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0].reason, Some("TCP_ABORT_ON_CLOSE"));
    let threads = thread_names(mc.pid);
    assert!(
        threads.iter().any(|t| *t == mine[0].task.comm),
        "the kernel's sending task {} is one of memcached's threads {threads:?}",
        mine[0].task.comm
    );
    // rstaudit's event: the same reason, memcached's pid, the finding it supports.
    let sent = from_port(&report, 11311);
    assert_eq!(sent.len(), 1, "{report:#}");
    let e = sent[0];
    assert_eq!(e["reason"], "TCP_ABORT_ON_CLOSE", "{e:#}");
    assert_eq!(e["cause"], "unread-close", "{e:#}");
    assert_eq!(e["owner"]["pid"], mc.pid, "{e:#}");
    assert!(
        e["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "resets-abort-on-close"),
        "the event links to its finding: {e:#}"
    );
    // One row for the host finding, confirmed, naming memcached and not the clients.
    let rows = findings(&report, "resets-abort-on-close");
    assert_eq!(rows.len(), 1, "{:#}", report["findings"]);
    let f = rows[0];
    assert_eq!(f["verdict"], "confirmed", "{f:#}");
    assert!(f.get("process").is_none(), "{f:#}");
    assert_eq!(f["processes"][0]["pid"], mc.pid, "{f:#}");
    let suspects: Vec<u64> = f["suspected"]
        .as_array()
        .map(|s| s.iter().filter_map(|p| p["pid"].as_u64()).collect())
        .unwrap_or_default();
    // The audit names its likeliest suspect (a client holding memcached's reply unread) as the
    // finding's process; the live check keeps the host finding one row, with that suspect
    // listed as such, never as the one confirmed.
    let clients: Vec<u64> = idle.iter().map(|c| u64::from(c.pid)).collect();
    assert!(
        !suspects.is_empty() && suspects.iter().all(|p| clients.contains(p)),
        "the audit's suspects are the clients {clients:?} (the long line {}): {f:#}",
        long_line.pid
    );
    assert_eq!(f["counters"]["TcpExt.TCPAbortOnClose"], 1, "{f:#}");
    drop(long_line);
}

const NGINX_413_CONF: &str = "daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    client_max_body_size 1k;
    lingering_time 1s;
    lingering_timeout 1s;
    server {
        listen 127.0.0.1:8083;
        location / { return 200 \"ok\\n\"; }
    }
}
";

/// The worker processes of nginx master `pid`.
fn workers(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// nginx answers a body over client_max_body_size with 413, reads (and drops) what follows for
/// lingering_time, and closes with the rest of the body unread: TCP_ABORT_ON_CLOSE from the
/// worker (the client still sending). The worker is named, and
/// `resets-abort-on-close` is confirmed by the worker's reset, not by the client's.
#[test]
fn nginx_413_with_the_body_unread_is_the_workers_reset() {
    require_root();
    let ns = Netns::new("nginx413");
    let mut server = Server::start(
        &ns,
        NGINX,
        "nginx.conf",
        NGINX_413_CONF,
        &["-p", "{dir}", "-e", "{dir}/error.log", "-c", "{config}"],
    );
    server.wait_listening(&ns, 8083);
    let worker = {
        let mut w = Vec::new();
        for _ in 0..50 {
            w = workers(server.pid);
            if !w.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(w.len(), 1, "one nginx worker: {}", server.output());
        w[0]
    };
    let kernel = KernelTrace::start();
    let watch = Watch::start(&["--netns", &ns.name, "--duration", "5", "--format", "json"]);
    let mut client = ns.helper(&["announce", "post:127.0.0.1:8083:10000000:3000"]);
    let report = watch.finish();
    let said = {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(client.child.stdout.as_mut().unwrap()).read_line(&mut line);
        line
    };
    let mine: Vec<_> = kernel
        .send_resets()
        .into_iter()
        .filter(|s| s.src.is_some_and(|a| a.port() == 8083))
        .collect();
    assert!(
        !mine.is_empty(),
        "nginx sent no reset (the client said {said:?}): {}\nthe kernel traced {:#?}\nrstaudit: {report:#}",
        server.output(),
        kernel.send_resets()
    );
    assert!(
        mine.iter().all(|s| s.reason == Some("TCP_ABORT_ON_CLOSE")),
        "{mine:#?}"
    );
    let sent = from_port(&report, 8083);
    assert_eq!(sent.len(), mine.len(), "{report:#}");
    for e in &sent {
        assert_eq!(e["cause"], "unread-close", "{e:#}");
        assert_eq!(
            e["owner"]["pid"], worker,
            "the worker, not the client: {e:#}"
        );
        assert_eq!(e["owner"]["comm"], "nginx", "{e:#}");
    }
    let rows = findings(&report, "resets-abort-on-close");
    assert_eq!(rows.len(), 1, "{:#}", report["findings"]);
    assert_eq!(rows[0]["verdict"], "confirmed", "{:#}", rows[0]);
    let named: Vec<u64> = rows[0]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    assert_eq!(named, [u64::from(worker)], "{:#}", rows[0]);
    assert!(!named.contains(&u64::from(client.pid)));
}

/// Three namespaces (client, middlebox, server) joined by veth pairs; the middlebox forwards
/// and forgets a flow idle for 3 s (conntrack, loose pickup off), answering the next segment
/// of a forgotten flow with a reset (nftables `ct state invalid reject with tcp reset`).
struct Middlebox {
    client: Netns,
    middlebox: Netns,
    server: Netns,
}

fn ip(ns: &Netns, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(["-n", &ns.name])
        .args(args)
        .output()
        .expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", common::text(&out));
}

impl Middlebox {
    fn new() -> Self {
        let mb = Self {
            client: Netns::new("pool-c"),
            middlebox: Netns::new("pool-m"),
            server: Netns::new("pool-s"),
        };
        for (a, b, a_if, b_if, a_addr, b_addr) in [
            (
                &mb.client,
                &mb.middlebox,
                "c0",
                "m0",
                "10.77.11.1/24",
                "10.77.11.2/24",
            ),
            (
                &mb.middlebox,
                &mb.server,
                "m1",
                "s0",
                "10.77.12.1/24",
                "10.77.12.2/24",
            ),
        ] {
            ip(
                a,
                &[
                    "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
                ],
            );
            ip(a, &["addr", "add", a_addr, "dev", a_if]);
            ip(b, &["addr", "add", b_addr, "dev", b_if]);
            ip(a, &["link", "set", a_if, "up"]);
            ip(b, &["link", "set", b_if, "up"]);
        }
        ip(
            &mb.client,
            &["route", "add", "10.77.12.0/24", "via", "10.77.11.2"],
        );
        ip(
            &mb.server,
            &["route", "add", "10.77.11.0/24", "via", "10.77.12.1"],
        );
        let nft = mb
            .middlebox
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft");
        {
            use std::io::Write;
            let mut nft = nft;
            nft.stdin
                .take()
                .unwrap()
                .write_all(
                    b"table inet forget {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tmeta l4proto tcp ct state invalid reject with tcp reset\n\t}\n}\n",
                )
                .unwrap();
            assert!(nft.wait().unwrap().success(), "nft");
        }
        mb.middlebox.sysctl("net.ipv4.ip_forward", "1");
        mb.middlebox
            .sysctl("net.netfilter.nf_conntrack_tcp_loose", "0");
        mb.middlebox
            .sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", "3");
        mb
    }
}

/// Two pools without keepalive hold connections through a middlebox that forgets idle flows;
/// pool A writes after 5 s idle and gets the middlebox's resets, pool B stays idle and gets
/// none. `idle-without-keepalive` of pool A is confirmed by its resets; pool B's is not seen.
#[test]
fn only_the_pool_that_got_the_middleboxs_resets_is_confirmed() {
    require_root();
    let mb = Middlebox::new();
    let _server = mb.server.helper(&["listen-on:10.77.12.2:7400:16"]);
    let kernel = KernelTrace::start();
    let quiet = mb.client.helper(&["pool:10.77.12.2:7400:3"]);
    let busy = mb.client.helper(&[
        "announce",
        "pool:10.77.12.2:7400:3",
        "wait-line",
        "write-all",
    ]);
    let watch = Watch::start(&[
        "--netns",
        &mb.client.name,
        "--duration",
        "10",
        "--set",
        "idle_timeout=3",
        "--format",
        "json",
    ]);
    std::thread::sleep(Duration::from_secs(5));
    {
        use std::io::Write;
        let mut stdin = busy.child.stdin.as_ref().unwrap();
        writeln!(stdin, "go").unwrap();
    }
    let report = watch.finish();
    // The kernel: neither end's TCP sent these resets (the middlebox's netfilter did).
    assert!(
        kernel
            .send_resets()
            .iter()
            .all(|s| s.src.is_none_or(|a| a.port() != 7400)),
        "the server's TCP sent no reset"
    );
    let received: Vec<&Value> = events(&report)
        .into_iter()
        .filter(|e| e["direction"] == "received")
        .collect();
    assert!(received.len() >= 3, "{report:#}");
    for e in &received {
        assert_eq!(e["cause"], "middlebox-forgot-idle-flow", "{e:#}");
        assert_eq!(e["owner"]["pid"], busy.pid, "{e:#}");
    }
    let rows = findings(&report, "idle-without-keepalive");
    let of = |pid: u32| {
        rows.iter()
            .find(|f| f["process"]["pid"] == pid)
            .unwrap_or_else(|| panic!("no idle-without-keepalive for pid {pid}: {rows:#?}"))
    };
    assert_eq!(of(busy.pid)["verdict"], "confirmed", "{:#}", of(busy.pid));
    assert_eq!(of(quiet.pid)["verdict"], "not_seen", "{:#}", of(quiet.pid));
}

/// The PostgreSQL server program of Debian's package.
fn postgres_bin() -> std::path::PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .unwrap_or_else(|_| panic!("PostgreSQL is missing: install the Debian package postgresql"))
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("postgres").is_file())
        .expect("a PostgreSQL version under /usr/lib/postgresql")
}

/// PostgreSQL's idle_session_timeout ends an idle session with a FIN from the backend; the
/// client's next query meets the closed socket: a reset from the server's port, the backend
/// (postgres) named as the side that closed first and psql as the one that wrote after that,
/// with the kernel's own reason.
#[test]
fn postgresql_idle_session_timeout_names_the_backend_and_the_late_client() {
    require_root();
    let bin = postgres_bin();
    let data = tempfile::tempdir().unwrap();
    let pgdata = data.path().join("pg");
    std::fs::create_dir(&pgdata).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(data.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let as_postgres = |cmd: &mut std::process::Command| {
        cmd.args([
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--init-groups",
        ]);
    };
    let mut init = std::process::Command::new("setpriv");
    as_postgres(&mut init);
    let out = init
        .arg(bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&pgdata)
        .output()
        .expect("initdb");
    assert!(out.status.success(), "initdb: {}", common::text(&out));
    let ns = Netns::new("postgres");
    let mut cmd = ns.command("setpriv");
    as_postgres(&mut cmd);
    let log = std::fs::File::create(data.path().join("postgres.log")).unwrap();
    let mut pg = cmd
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&pgdata)
        .args(["-k"])
        .arg(data.path())
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            "5433",
            "-c",
            "idle_session_timeout=1000",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("postgres");
    let ready = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        crate::common::server::tcp_table(&ns)
            .iter()
            .any(|s| s.state == crate::common::server::LISTEN && s.local_port == 5433)
    });
    let pg_log = || std::fs::read_to_string(data.path().join("postgres.log")).unwrap_or_default();
    assert!(ready, "postgres did not listen: {}", pg_log());
    let kernel = KernelTrace::start();
    let watch = Watch::start(&["--netns", &ns.name, "--duration", "8", "--format", "json"]);
    let mut psql = ns
        .command("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5433",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql (Debian package postgresql-client)");
    let psql_pid = psql.id();
    {
        use std::io::Write;
        let mut stdin = psql.stdin.take().unwrap();
        writeln!(stdin, "select 1;").unwrap();
        // Idle past idle_session_timeout (1 s): the backend ends the session.
        std::thread::sleep(Duration::from_millis(2500));
        let _ = writeln!(stdin, "select 2;");
    }
    let _ = psql.wait();
    let report = watch.finish();
    let _ = pg.kill();
    let _ = pg.wait();
    let mine: Vec<_> = kernel
        .send_resets()
        .into_iter()
        .filter(|s| s.src.is_some_and(|a| a.port() == 5433))
        .collect();
    assert!(
        !mine.is_empty(),
        "no reset from the server's port: {}",
        pg_log()
    );
    let sent = from_port(&report, 5433);
    assert_eq!(sent.len(), mine.len(), "{report:#}");
    for (e, k) in sent.iter().zip(&mine) {
        assert_eq!(e["reason"].as_str(), k.reason, "{e:#}");
        assert_eq!(e["cause"], "data-after-close", "{e:#}");
        assert_eq!(
            e["owner"]["comm"], "postgres",
            "the backend closed first: {e:#}"
        );
        assert_eq!(e["peer"]["pid"], psql_pid, "psql wrote after that: {e:#}");
    }
}
