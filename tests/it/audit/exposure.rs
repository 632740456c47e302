//! Findings graded by what is at risk (latent, exposed, observed), and the
//! default `--fail-on` that fails only on exposed and observed findings.

use crate::common;

use common::fixture::{host, listener, peer};
use rstaudit::host::{Snapshot, TcpState};
use rstaudit::rules::{self, Exposure, Finding, Selection};

/// Kernel defaults of a stock host (6.x) for the keys the rules read.
const STOCK: &[(&str, &str)] = &[
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_abort_on_overflow", "0"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_intvl", "75"),
    ("net.ipv4.tcp_keepalive_probes", "9"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("net.ipv4.tcp_max_orphans", "65536"),
    ("net.ipv4.tcp_max_syn_backlog", "4096"),
    ("net.ipv4.tcp_max_tw_buckets", "65536"),
    ("net.ipv4.tcp_retries2", "15"),
    ("net.ipv4.tcp_rfc1337", "0"),
    ("net.ipv4.tcp_syn_retries", "6"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_tw_reuse", "2"),
];

fn stock() -> common::fixture::Snap {
    let mut s = host()
        .without("net.netfilter.nf_conntrack_count")
        .without("net.netfilter.nf_conntrack_max")
        .without("net.netfilter.nf_conntrack_tcp_be_liberal")
        .without("net.netfilter.nf_conntrack_tcp_timeout_established");
    for (k, v) in STOCK {
        s = s.sysctl(k, v);
    }
    s
}

fn audit(snap: &Snapshot) -> Vec<Finding> {
    rules::run(
        &rules::load::builtin().unwrap(),
        &Selection::default(),
        snap,
    )
    .unwrap()
    .findings
}

fn find<'a>(findings: &'a [Finding], rule: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} finding in {findings:#?}"))
}

/// A connection to a peer through the network, with SO_KEEPALIVE and TCP_KEEPIDLE `idle`.
fn keepalive_peer(pid: u32, comm: &str, idle: u32, port: usize) -> common::fixture::Sock {
    peer(TcpState::Established, "10.0.0.5:22", "192.0.2.7", port)
        .owner(pid, comm)
        .keepalive(true, idle)
}

#[test]
fn keepalive_default_with_no_socket_using_it_is_latent() {
    let snap = stock()
        .socket(listener("0.0.0.0:22", 0, 128).owner(700, "sshd"))
        .socket(
            peer(TcpState::Established, "10.0.0.5:22", "192.0.2.7", 50000)
                .owner(701, "sshd")
                .keepalive(false, 7200),
        )
        .build();
    let findings = audit(&snap);
    let f = find(&findings, "keepalive-above-idle-timeout");
    assert_eq!(f.exposure, Exposure::Latent, "{f:#?}");
    assert!(
        f.exposure_reason.contains("no socket with SO_KEEPALIVE"),
        "{}",
        f.exposure_reason
    );
    assert!(f.process.is_none());
}

#[test]
fn keepalive_default_is_exposed_by_the_sockets_that_take_it_named_by_process() {
    let snap = stock()
        .socket(keepalive_peer(701, "sshd", 7200, 50000))
        .socket(keepalive_peer(701, "sshd", 7200, 50001))
        .socket(keepalive_peer(900, "redis-server", 7200, 50002))
        // Its own TCP_KEEPIDLE: the sysctl does not apply to it.
        .socket(keepalive_peer(901, "pgbouncer", 60, 50003))
        // A loopback peer crosses no middlebox.
        .socket(
            peer(TcpState::Established, "127.0.0.1:6379", "127.0.0.1", 50004)
                .owner(902, "worker")
                .keepalive(true, 7200),
        )
        .socket(
            peer(
                TcpState::Established,
                "[::ffff:127.0.0.1]:6379",
                "::ffff:127.0.0.1",
                50005,
            )
            .owner(903, "worker6")
            .keepalive(true, 7200),
        )
        .build();
    let findings = audit(&snap);
    let f = find(&findings, "keepalive-above-idle-timeout");
    assert_eq!(f.exposure, Exposure::Exposed, "{f:#?}");
    assert_eq!(f.count, Some(3));
    assert_eq!(f.process.as_ref().map(|p| p.pid), Some(701));
    assert!(
        f.exposure_reason.contains("sshd (pid 701) 2")
            && f.exposure_reason.contains("redis-server (pid 900) 1")
            && !f.exposure_reason.contains("pgbouncer")
            && !f.exposure_reason.contains("worker"),
        // (worker6 talks to ::ffff:127.0.0.1, loopback too)
        "{}",
        f.exposure_reason
    );
}

#[test]
fn keepalive_exposure_that_cannot_be_told_is_latent_and_says_why() {
    // Owned sockets whose options were not read (not root).
    let mut snap = stock()
        .socket(peer(TcpState::Established, "10.0.0.5:22", "192.0.2.7", 50000).owner(701, "sshd"))
        .note("options", None, "EPERM: run as root")
        .build();
    snap.sockets[0].options = None;
    let findings = audit(&snap);
    let f = find(&findings, "keepalive-above-idle-timeout");
    assert_eq!(f.exposure, Exposure::Latent);
    assert!(
        f.exposure_reason.contains("could not tell")
            && f.exposure_reason.contains("the notes say why"),
        "{}",
        f.exposure_reason
    );
}

#[test]
fn a_setting_every_listener_depends_on_is_exposed_naming_the_listener() {
    let with = stock()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .socket(listener("0.0.0.0:443", 0, 511).owner(812, "nginx"))
        .build();
    let f = find(&audit(&with), "abort-on-overflow").clone();
    assert_eq!(f.exposure, Exposure::Exposed, "{f:#?}");
    assert!(f.exposure_reason.contains("nginx (pid 812) 1"), "{f:#?}");
    let without = stock()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .build();
    let f = find(&audit(&without), "abort-on-overflow").clone();
    assert_eq!(f.exposure, Exposure::Latent, "{f:#?}");
    assert_eq!(f.exposure_reason, "no listener now");
}

#[test]
fn somaxconn_is_exposed_only_by_listeners_it_clamps() {
    let clamped = stock()
        .sysctl("net.core.somaxconn", "128")
        .socket(listener("0.0.0.0:443", 0, 128).owner(812, "nginx"))
        .socket(listener("0.0.0.0:22", 0, 16).owner(700, "sshd"))
        .build();
    let f = find(&audit(&clamped), "somaxconn-low").clone();
    assert_eq!(f.exposure, Exposure::Exposed, "{f:#?}");
    assert!(
        f.exposure_reason.contains("nginx") && !f.exposure_reason.contains("sshd"),
        "{}",
        f.exposure_reason
    );
    let small = stock()
        .sysctl("net.core.somaxconn", "128")
        .socket(listener("0.0.0.0:22", 0, 16).owner(700, "sshd"))
        .build();
    assert_eq!(
        find(&audit(&small), "somaxconn-low").exposure,
        Exposure::Latent
    );
}

#[test]
fn a_counter_rising_in_the_window_is_observed_and_since_boot_is_latent() {
    let window = stock().counter2("TcpExt.TCPAbortOnClose", 100, 130).build();
    let f = find(&audit(&window), "resets-abort-on-close").clone();
    assert_eq!(f.exposure, Exposure::Observed, "{f:#?}");
    assert!(
        f.exposure_reason
            .contains("TcpExt.TCPAbortOnClose rose by 30 in 10 s"),
        "{}",
        f.exposure_reason
    );
    let boot = stock().counter("TcpExt.TCPAbortOnClose", 100).build();
    let f = find(&audit(&boot), "resets-abort-on-close").clone();
    assert_eq!(f.exposure, Exposure::Latent, "{f:#?}");
    assert!(f.exposure_reason.contains("--interval"), "{f:#?}");
}

#[test]
fn socket_findings_are_exposed() {
    let snap = stock().sockets(3, common::fixture::nginx_linger0).build();
    let f = find(&audit(&snap), "linger-zero").clone();
    assert_eq!(f.exposure, Exposure::Exposed);
    assert!(f.exposure_reason.contains("nginx (pid 812)"), "{f:#?}");
}

#[test]
fn conntrack_settings_are_exposed_by_tracked_flows() {
    let snap = host()
        .sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", "150")
        .sysctl("net.netfilter.nf_conntrack_count", "1500")
        .build();
    let f = find(&audit(&snap), "conntrack-timeout-below-keepalive").clone();
    assert_eq!(f.exposure, Exposure::Exposed, "{f:#?}");
    assert!(f.exposure_reason.contains("1,500 flows"), "{f:#?}");
}

// ------------------------------------------------------------ the command

fn saved(dir: &std::path::Path, snap: &Snapshot) -> std::path::PathBuf {
    let path = dir.join("host.json");
    std::fs::write(&path, serde_json::to_vec(snap).unwrap()).unwrap();
    path
}

fn run(args: &[&str]) -> std::process::Output {
    common::rstaudit().args(args).output().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn stock_snapshot_exits_0_at_the_default_threshold_and_lists_its_latent_findings() {
    let dir = tempfile::tempdir().unwrap();
    let snap = stock()
        .socket(listener("0.0.0.0:22", 0, 128).owner(700, "sshd"))
        .build();
    let path = saved(dir.path(), &snap);
    let p = path.to_str().unwrap();

    let out = run(&["audit", "--snapshot", p, "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = json(&out);
    assert_eq!(report["schema"], 4);
    assert_eq!(report["fail_on"], "exposed:medium");
    let findings = report["namespaces"][0]["findings"].as_array().unwrap();
    let ka = findings
        .iter()
        .find(|f| f["rule"] == "keepalive-above-idle-timeout")
        .expect("the latent keepalive finding is listed");
    assert_eq!(ka["severity"], "medium");
    assert_eq!(ka["exposure"], "latent");
    assert_eq!(report["summary"]["by_exposure"]["latent"], findings.len());

    let table = run(&["audit", "--snapshot", p]);
    assert_eq!(table.status.code(), Some(0));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("keepalive-above-idle-timeout"), "{text}");
    assert!(text.contains("latent"), "{text}");
    assert!(
        text.contains(
            "no exposed or observed findings at or above medium (--fail-on exposed:medium): exit 0"
        ),
        "{text}"
    );

    // Stricter thresholds still fail on latent findings.
    for strict in ["latent:medium", "latent:info"] {
        assert_eq!(
            run(&["audit", "--snapshot", p, "--fail-on", strict])
                .status
                .code(),
            Some(1),
            "--fail-on {strict}"
        );
    }
    assert_eq!(
        run(&["audit", "--snapshot", p, "--fail-on", "medium"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn fail_on_takes_an_exposure_and_refuses_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let snap = stock()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .socket(listener("0.0.0.0:443", 0, 511).owner(812, "nginx"))
        .build();
    let path = saved(dir.path(), &snap);
    let p = path.to_str().unwrap();
    // abort-on-overflow: high, exposed.
    let code = |t: &str| {
        run(&["audit", "--snapshot", p, "--fail-on", t])
            .status
            .code()
    };
    assert_eq!(code("high"), Some(1));
    assert_eq!(code("exposed:high"), Some(1));
    assert_eq!(code("critical"), Some(0));
    assert_eq!(code("observed:info"), Some(0));
    assert_eq!(code("never"), Some(0));
    for bad in ["exposd:high", "latent:", "loud", "high:latent"] {
        let out = run(&["audit", "--snapshot", p, "--fail-on", bad]);
        assert_eq!(out.status.code(), Some(2), "--fail-on {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("EXPOSURE:SEVERITY"), "{err}");
    }
}

/// A copied /proc tree of a stock host: the stock sysctls, counters captured from a 6.18
/// kernel, and a socket table with sshd's listener and one session to a remote peer.
fn stock_tree(dir: &std::path::Path) {
    common::copied_proc_tree(dir, &["netstat", "snmp"], "6.18.0-stock");
    for (k, v) in STOCK {
        let path = dir.join("proc/sys").join(k.replace('.', "/"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{v}\n")).unwrap();
    }
    let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    std::fs::write(
        dir.join("proc/net/tcp"),
        format!(
            "{header}   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 23880 1 0000000000000000 100 0 0 10 0\n   1: 0500000A:0016 070200C0:C350 01 00000000:00000000 02:00000A8C 00000000     0        0 23881 1 0000000000000000 20 4 30 10 -1\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("proc/net/tcp6"), header).unwrap();
}

#[test]
fn stock_root_tree_exits_0_and_lists_its_latent_findings() {
    let dir = tempfile::tempdir().unwrap();
    stock_tree(dir.path());
    let root = dir.path().to_str().unwrap();
    let out = run(&["audit", "--root", root, "--format", "json"]);
    let report = json(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    let findings = report["namespaces"][0]["findings"].as_array().unwrap();
    let ka = findings
        .iter()
        .find(|f| f["rule"] == "keepalive-above-idle-timeout")
        .expect("listed");
    assert_eq!(ka["exposure"], "latent");
    assert!(
        findings.iter().all(|f| f["exposure"] == "latent"
            || f["severity"] == "low"
            || f["severity"] == "info"),
        "{}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert_eq!(
        run(&["audit", "--root", root, "--fail-on", "latent:medium"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn fresh_namespace_exits_0_and_lists_its_latent_findings() {
    common::require_root();
    let ns = common::Netns::new("exposure");
    // A listener that never accepts, on loopback: nothing it holds depends on keepalive.
    let _helper = ns.helper(&["listen:5000:16", "connect:5000", "sleep:100"]);
    let out = run(&["audit", "--netns", &ns.name, "--format", "json"]);
    let report = json(&out);
    let pretty = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(out.status.code(), Some(0), "{pretty}");
    let findings = report["namespaces"][0]["findings"].as_array().unwrap();
    let ka = findings
        .iter()
        .find(|f| f["rule"] == "keepalive-above-idle-timeout")
        .unwrap_or_else(|| panic!("a new namespace has tcp_keepalive_time 7200: {pretty}"));
    assert_eq!(ka["exposure"], "latent", "{pretty}");
    assert_eq!(
        run(&["audit", "--netns", &ns.name, "--fail-on", "latent:medium"])
            .status
            .code(),
        Some(1)
    );

    // The same namespace with a setting its listener depends on: exposed, named, exit 1.
    ns.sysctl("net.ipv4.tcp_abort_on_overflow", "1");
    let out = run(&["audit", "--netns", &ns.name, "--format", "json"]);
    let report = json(&out);
    let pretty = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(out.status.code(), Some(1), "{pretty}");
    let f = report["namespaces"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "abort-on-overflow")
        .unwrap_or_else(|| panic!("{pretty}"))
        .clone();
    assert_eq!(f["exposure"], "exposed", "{pretty}");
    assert!(
        f["exposure_reason"]
            .as_str()
            .unwrap()
            .contains(&format!("sockhelper (pid {}) 1", _helper.pid)),
        "{pretty}"
    );
}

/// On the kernel: a socket with SO_KEEPALIVE and no TCP_KEEPIDLE of its own reads back the
/// namespace's tcp_keepalive_time (and follows it when it changes), so the audit counts it as
/// taking the default: keepalive-above-idle-timeout is exposed and names the process.
#[test]
fn keepalive_socket_taking_the_default_exposes_the_finding_on_the_kernel() {
    common::require_root();
    let ns = common::Netns::new("exposure-ka");
    let ip = |args: &[&str]| {
        common::run(
            std::process::Command::new("ip")
                .args(["-n", &ns.name])
                .args(args),
        )
    };
    // An address outside 127/8 (on lo: the peer is not a loopback address).
    ip(&["addr", "add", "10.201.0.1/32", "dev", "lo"]);
    let helper = ns.helper(&["keepalive-default:10.201.0.1", "sleep:100"]);

    let snapshot = |ns: &common::Netns| -> serde_json::Value {
        let out = run(&["snapshot", "--netns", &ns.name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out)
    };
    let keepidle = |snap: &serde_json::Value| -> Vec<u64> {
        snap["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["options"]["keepalive"] == true)
            .map(|s| s["options"]["keepidle"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_keepalive_time"), "7200");
    assert_eq!(keepidle(&snapshot(&ns)), [7200]);
    ns.sysctl("net.ipv4.tcp_keepalive_time", "1234");
    assert_eq!(keepidle(&snapshot(&ns)), [1234], "follows the sysctl");
    ns.sysctl("net.ipv4.tcp_keepalive_time", "7200");

    let out = run(&["audit", "--netns", &ns.name, "--format", "json"]);
    let report = json(&out);
    let pretty = serde_json::to_string_pretty(&report).unwrap();
    assert_eq!(out.status.code(), Some(1), "{pretty}");
    let f = report["namespaces"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "keepalive-above-idle-timeout")
        .unwrap_or_else(|| panic!("{pretty}"))
        .clone();
    assert_eq!(f["exposure"], "exposed", "{pretty}");
    assert_eq!(f["process"]["pid"], helper.pid, "{pretty}");
    assert!(
        f["exposure_reason"]
            .as_str()
            .unwrap()
            .contains(&format!("sockhelper (pid {}) 1", helper.pid)),
        "{pretty}"
    );
}
