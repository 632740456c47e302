//! The parts of `rstaudit watch` that stand on their own, against real tools: the metrics
//! pass `promtool check metrics`, the endpoint answers real HTTP requests on 127.0.0.1 and
//! keeps answering while clients hang, a real Prometheus server scrapes it (OpenMetrics,
//! as it asks) and returns the series in queries, and a process in a real rootful podman container is
//! labelled with its container id, runtime and name from podman's API.
//!
//! A missing tool (promtool, podman, runc) or missing root fails the test; none is skipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rstaudit::host::workload::{Runtime, RuntimeApi, WorkloadConfig, Workloads};
use rstaudit::rules::{Exposure, Severity};
use rstaudit::stop::Stop;
use rstaudit::watch::health::Health;
use rstaudit::watch::http::{Endpoint, Served, bind};
use rstaudit::watch::metrics::{
    Direction, FindingRow, Format, Limits, Metrics, MetricsOptions, Reset, Verdict,
};

fn metrics(limits: Limits) -> Arc<Metrics> {
    Arc::new(Metrics::new(MetricsOptions {
        limits,
        events: Arc::default(),
    }))
}

/// A registry with every family filled, label values that need escaping included.
fn filled() -> Arc<Metrics> {
    let m = metrics(Limits {
        values_per_label: 3,
        ..Limits::default()
    });
    let now = Instant::now();
    for (container, comm) in [
        ("web", "nginx"),
        ("db", "post\"gres"),
        ("a\\b", "new\nline"),
        ("late", "über"),
    ] {
        let reset = Reset {
            direction: Some(Direction::Received),
            cause: "no-socket",
            reason: "NO_SOCKET",
            netns: "host",
            container,
            unit: "",
            comm,
        };
        m.record_reset(&reset, 2, now);
    }
    m.record_reset(
        &Reset {
            cause: "linger-zero",
            netns: "ns1",
            unit: "nginx.service",
            comm: "nginx",
            ..Reset::default()
        },
        1,
        now,
    );
    m.set_findings(
        &[FindingRow {
            netns: "host".into(),
            rule: "linger-zero".into(),
            severity: Severity::High,
            exposure: Exposure::Observed,
            verdict: Verdict::Confirmed,
            count: 1,
        }],
        now,
    );
    m.audit_succeeded(Duration::from_millis(830), 1_800_000_000.5);
    m
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test (Debian package `prometheus`, see test.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn metrics_pass_promtool_without_a_remark() {
    let text = filled().encode(Format::Prometheus);
    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\non:\n{text}"
    );
    for family in [
        "rstaudit_resets_total",
        "rstaudit_findings",
        "rstaudit_audit_duration_seconds",
        "rstaudit_audit_last_success_timestamp_seconds",
        "rstaudit_events_dropped_total",
        "rstaudit_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_virtual_memory_bytes",
        "rstaudit_label_values",
        "rstaudit_label_overflow_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{text}"
        );
    }
    assert!(text.contains(r#"comm="new\nline""#), "{text}");
    assert!(
        text.contains(r#"container="other""#),
        "the fourth container: {text}"
    );
    // promtool does find faults: the check above can fail.
    let (ok, said) = promtool_check("# TYPE x counter\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n");
    assert!(!ok, "promtool accepted a duplicate series: {said}");
}

/// One HTTP request on a fresh connection; the status, the headers (lowercase names) and the body.
fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

#[test]
fn the_endpoint_serves_metrics_health_and_404_and_stops_on_the_token() {
    let health = Health::new();
    let stop = Stop::new();
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let metrics = filled();
    let endpoint = Endpoint::start(
        listener,
        Served {
            metrics: metrics.clone(),
            health: health.clone(),
        },
        stop.clone(),
    )
    .unwrap();
    let addr = endpoint.local_addr();
    assert_ne!(addr.port(), 0);

    let (status, headers, body) = get(addr, "/metrics", None);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(
        body.contains("rstaudit_resets_total{direction=\"received\""),
        "{body}"
    );
    assert_eq!(header(&headers, "content-length"), body.len().to_string());
    let (ok, said) = promtool_check(&body);
    assert!(ok && said.trim().is_empty(), "{said}");

    // What Prometheus 2.42 asks for.
    let (status, headers, body) = get(
        addr,
        "/metrics",
        Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ),
    );
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type").starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert!(body.ends_with("# EOF\n"), "{body}");

    // The caller updates the state through its handles; the next scrape shows it.
    metrics.record_reset(
        &Reset {
            cause: "unread-close",
            netns: "host",
            comm: "nginx",
            ..Reset::default()
        },
        5,
        Instant::now(),
    );
    let (_, _, body) = get(addr, "/metrics?x=1", None);
    assert!(
        body.contains(
            r#"cause="unread-close",reason="",netns="host",container="",unit="",comm="nginx"} 5"#
        ),
        "{body}"
    );

    assert_eq!(get(addr, "/healthz", None).0, 200);
    health.failing(
        "audit",
        "the last audit failed: /proc/net/tcp: permission denied",
    );
    let (status, _, body) = get(addr, "/healthz", None);
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "audit: the last audit failed: /proc/net/tcp: permission denied\n"
    );
    health.ok("audit");
    assert_eq!(get(addr, "/healthz", None).0, 200);
    assert_eq!(get(addr, "/", None).0, 404);
    assert_eq!(get(addr, "/metricsx", None).0, 404);

    stop.stop();
    let started = Instant::now();
    endpoint.join();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after the stop"
    );
}

#[test]
fn stuck_clients_hold_a_slot_until_their_deadline_and_never_the_others() {
    let stop = Stop::new();
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let timeout = Duration::from_millis(700);
    let endpoint = Endpoint::start_with(
        listener,
        Served {
            metrics: filled(),
            health: Health::new(),
        },
        stop.clone(),
        timeout,
    )
    .unwrap();
    let addr = endpoint.local_addr();
    // One client that says nothing, one that sends half a head a byte at a time: a scrape
    // beside them is answered at once.
    let silent = TcpStream::connect(addr).unwrap();
    let mut dribbling = TcpStream::connect(addr).unwrap();
    dribbling.write_all(b"GET /met").unwrap();
    let started = Instant::now();
    assert_eq!(get(addr, "/metrics", None).0, 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    for _ in 0..3 {
        std::thread::sleep(timeout / 4);
        let _ = dribbling.write_all(b"r");
    }
    // Both are cut off at the deadline, dribbling or not.
    for mut s in [silent, dribbling] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let begun = Instant::now();
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "a stuck client got an answer");
        assert!(begun.elapsed() < Duration::from_secs(2));
    }
    // Every slot taken by a silent client: the next is told so, at once; when they time out
    // the slots are free again.
    let hogs: Vec<TcpStream> = (0..Endpoint::MAX_CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, body) = get(addr, "/metrics", None);
    assert_eq!((status, body.as_str()), (503, "busy: too many clients\n"));
    std::thread::sleep(timeout + Duration::from_millis(300));
    assert_eq!(get(addr, "/metrics", None).0, 200);
    drop(hogs);
    stop.stop();
    endpoint.join();
}

/// A Prometheus server the test started, stopped however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(prometheus: SocketAddr, promql: &str) -> serde_json::Value {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, _, body) = get(prometheus, &format!("/api/v1/query?query={encoded}"), None);
    assert_eq!(status, 200, "{promql}: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"].clone()
}

/// Prometheus 2.42 asks for OpenMetrics first: a real server scrapes the endpoint, and its
/// query API returns the series recorded, so the OpenMetrics text parses where it matters.
#[test]
fn a_real_prometheus_scrapes_the_endpoint() {
    let stop = Stop::new();
    let endpoint = Endpoint::start(
        bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        Served {
            metrics: filled(),
            health: Health::new(),
        },
        stop.clone(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: rstaudit\n    static_configs:\n      - targets: ['{}']\n",
            endpoint.local_addr()
        ),
    )
    .unwrap();
    // A free port for Prometheus's own web listener.
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _server = Server(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect(
                "prometheus is needed for this test (Debian package `prometheus`, see test.sh)",
            ),
    );
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let up = TcpStream::connect(web)
            .ok()
            .map(|_| query(web, "up{job=\"rstaudit\"}"));
        if up.as_ref().is_some_and(|r| r[0]["value"][1] == "1") {
            break;
        }
        assert!(
            Instant::now() < until,
            "Prometheus never scraped the endpoint: up = {up:?}\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let result = query(web, "rstaudit_resets_total{comm=\"nginx\"}");
    let mut seen: Vec<(String, String, String)> = result
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let m = &r["metric"];
            let label = |k: &str| m[k].as_str().unwrap_or("").to_string();
            (
                label("container"),
                label("netns"),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (String::new(), "ns1".into(), "1".into()),
            ("web".into(), "host".into(), "2".into())
        ]
    );
    let info = query(web, "rstaudit_build_info");
    assert_eq!(
        info[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{info}"
    );
    let findings = query(web, "rstaudit_findings{verdict=\"confirmed\"}");
    assert_eq!(findings[0]["metric"]["rule"], "linger-zero", "{findings}");
    stop.stop();
    endpoint.join();
}

/// Everything the podman test made, removed however it ends.
struct Podman {
    name: String,
    image: String,
    service: Option<Child>,
    socket: PathBuf,
    _rootfs: tempfile::TempDir,
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .output();
        if let Some(mut s) = self.service.take() {
            let _ = s.kill();
            let _ = s.wait();
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (podman and runc are installed by test.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs a rootful podman container: run it as root"
    );
}

/// The API socket: podman's own where its socket unit runs, else a service the test starts.
fn podman_api(tag: &str) -> (PathBuf, Option<Child>) {
    let system = Path::new(rstaudit::host::workload::names::PODMAN_SOCKET);
    if std::os::unix::net::UnixStream::connect(system).is_ok() {
        return (system.to_path_buf(), None);
    }
    let socket = std::env::temp_dir().join(format!("rstaudit-watch-{tag}.sock"));
    let _ = std::fs::remove_file(&socket);
    let service = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", socket.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podman system service (podman is installed by test.sh)");
    let until = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            Instant::now() < until,
            "podman's API never listened on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (socket, Some(service))
}

#[test]
fn a_process_in_a_podman_container_is_labelled_with_its_id_runtime_and_name() {
    require_root();
    let tag = format!("{}", std::process::id());
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::create_dir(rootfs.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.path().join("bin/busybox"))
        .expect("/bin/busybox (Debian's busybox-static, installed by test.sh)");
    let (socket, service) = podman_api(&tag);
    let made = Podman {
        name: format!("rstaudit-watch-{tag}"),
        image: format!("localhost/rstaudit-watch:{tag}"),
        service,
        socket: socket.clone(),
        _rootfs: rootfs,
    };
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(made._rootfs.path())
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let archive = tar.stdout.take().unwrap();
    run(Command::new("podman")
        .args(["import", "-", &made.image])
        .stdin(archive));
    assert!(tar.wait().unwrap().success());
    let id = run(Command::new("podman").args([
        "--runtime",
        "runc",
        "run",
        "-d",
        "--name",
        &made.name,
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        &made.image,
        "/bin/busybox",
        "sleep",
        "600",
    ]));
    let pid: u32 =
        run(Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", &made.name]))
            .parse()
            .unwrap();
    assert_eq!(id.len(), 64, "{id}");

    let mut workloads = Workloads::new(WorkloadConfig {
        apis: vec![RuntimeApi::new(Runtime::Podman, &socket)],
        ..WorkloadConfig::default()
    });
    let w = workloads.lookup(pid).unwrap();
    let c = w
        .container
        .as_ref()
        .unwrap_or_else(|| panic!("no container in {w:?}"));
    assert_eq!(
        (c.runtime, c.id.as_str()),
        (Runtime::Podman, id.as_str()),
        "{w:?}"
    );
    assert_eq!(
        c.name.as_deref(),
        Some(made.name.as_str()),
        "{:?}",
        workloads.notes()
    );
    assert!(workloads.notes().is_empty(), "{:?}", workloads.notes());
    assert_eq!(w.unit, None);
    let reset = Reset::default().owned_by(&w);
    assert_eq!(reset.container, made.name);

    // The container exits: its process keeps the labels it had.
    run(Command::new("podman").args(["rm", "-f", "-t", "0", &made.name]));
    let until = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < until,
            "process {pid} outlived its container"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(workloads.lookup(pid).unwrap(), w);
}
