//! The parts of `rstaudit watch` that stand on their own, against real tools: the metrics
//! pass `promtool check metrics`, the endpoint answers real HTTP requests on 127.0.0.1 and
//! keeps answering while clients hang, a real Prometheus server scrapes it (OpenMetrics,
//! as it asks) and returns the series in queries, and a process in a real rootful podman container is
//! labelled with its container id, runtime and name from podman's API.
//!
//! A missing tool (promtool, podman, runc) or missing root fails the test; none is skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::support::{Podman, PodmanApi, Prometheus, get, run};
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
    let prometheus = Prometheus::start(&[endpoint.local_addr()]);
    let result = prometheus.query("rstaudit_resets_total{comm=\"nginx\"}");
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
    let info = prometheus.query("rstaudit_build_info");
    assert_eq!(
        info[0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{info}"
    );
    let findings = prometheus.query("rstaudit_findings{verdict=\"confirmed\"}");
    assert_eq!(findings[0]["metric"]["rule"], "linger-zero", "{findings}");
    stop.stop();
    endpoint.join();
}

#[test]
fn a_process_in_a_podman_container_is_labelled_with_its_id_runtime_and_name() {
    let api = PodmanApi::start("labels");
    let mut podman = Podman::new("labels");
    let (name, pid) = podman.run("sleeper", &["/bin/busybox", "sleep", "600"]);
    let id = run(Command::new("podman").args(["inspect", "-f", "{{.Id}}", &name]));
    assert_eq!(id.len(), 64, "{id}");
    let socket = api.socket.clone();

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
        Some(name.as_str()),
        "{:?}",
        workloads.notes()
    );
    assert!(workloads.notes().is_empty(), "{:?}", workloads.notes());
    assert_eq!(w.unit, None);
    let reset = Reset::default().owned_by(&w);
    assert_eq!(reset.container, name);

    // The container exits: its process keeps the labels it had.
    run(Command::new("podman").args(["rm", "-f", "-t", "0", &name]));
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
