//! `rstaudit packet-check --lab`: every scenario reproduces its resets with
//! values chosen to trigger it and loses them with the fix; the lab leaves
//! nothing behind, also when interrupted. Runs as root; the lab only creates
//! anonymous namespaces of its own and never changes the host's settings.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

fn lab(args: &[&str]) -> (Value, i32, Duration) {
    common::require_root();
    let started = Instant::now();
    let out = common::rstaudit()
        .args(["packet-check", "--lab", "--format", "json"])
        .args(args)
        .output()
        .expect("running rstaudit");
    let elapsed = started.elapsed();
    let code = out.status.code().unwrap_or(-1);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, code, elapsed)
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .find(|s| s["scenario"] == name)
        .unwrap_or_else(|| panic!("no scenario {name} in {report:#}"))
}

fn verdict(report: &Value, name: &str) -> String {
    let s = scenario(report, name);
    s["verdict"]
        .as_str()
        .unwrap_or_else(|| panic!("{s:#}"))
        .to_string()
}

fn app_lines(s: &Value, run: &str) -> String {
    s[run]["app"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Whether this kernel's tcp_send_reset tracepoint carries the reset reason (6.10+).
fn kernel_reports_reasons() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|root| {
            std::fs::read_to_string(format!("{root}/events/tcp/tcp_send_reset/format"))
                .is_ok_and(|f| f.contains("reason"))
        })
}

/// The host run's resets were seen by capture and, where the kernel says why, with `reason`.
fn assert_captured_with_reason(s: &Value, reason: &str) {
    assert!(
        s["host_run"]["captured_resets"].as_u64().unwrap_or(0) > 0,
        "no captured reset: {s:#}"
    );
    assert_eq!(s["fix_run"]["captured_resets"].as_u64(), Some(0), "{s:#}");
    if kernel_reports_reasons() {
        assert!(
            s["host_run"]["reasons"][reason].as_u64().unwrap_or(0) > 0,
            "no {reason} reason: {s:#}"
        );
    }
}

fn host_sysctl(key: &str) -> Option<f64> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[test]
fn all_scenarios_give_their_verdicts_in_under_30_seconds() {
    let (report, code, elapsed) = lab(&["--all", "--with", "net.ipv4.tcp_abort_on_overflow=1"]);
    assert_eq!(code, 0, "{report:#}");
    for name in [
        "closed-port",
        "unread-close",
        "linger-zero",
        "accept-overflow",
        "write-after-close",
    ] {
        assert_eq!(verdict(&report, name), "confirmed", "{name}: {report:#}");
    }
    // idle-middlebox with this machine's own keepalive settings (7200 s by default)
    // against the default 300 s idle timeout.
    let keepalive = host_sysctl("net.ipv4.tcp_keepalive_time").expect("tcp_keepalive_time");
    let expected = if keepalive >= 300.0 {
        "confirmed"
    } else {
        "not-reproduced"
    };
    assert_eq!(verdict(&report, "idle-middlebox"), expected, "{report:#}");
    let mb = scenario(&report, "idle-middlebox");
    assert!(mb["scale"]["factor"].as_f64().unwrap() > 1.0, "{mb:#}");
    if keepalive >= 300.0 {
        assert!(app_lines(mb, "host_run").contains("ECONNRESET"), "{mb:#}");
        assert!(
            app_lines(mb, "fix_run").contains("client read: 5 bytes"),
            "{mb:#}"
        );
    }
    // The same with the first keepalive probe lost: the retry (time + intvl) must also come
    // before the middlebox forgets the flow.
    let intvl = host_sysctl("net.ipv4.tcp_keepalive_intvl").expect("tcp_keepalive_intvl");
    let expected = if keepalive + intvl >= 300.0 {
        "confirmed"
    } else {
        "not-reproduced"
    };
    assert_eq!(
        verdict(&report, "lost-keepalive-probe"),
        expected,
        "{report:#}"
    );
    let overflow = scenario(&report, "accept-overflow");
    assert!(
        overflow["host_run"]["counters"]["TcpExt.EmbryonicRsts"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{overflow:#}"
    );
    assert_eq!(
        overflow["fix_run"]["settings"][0]["value"], "0",
        "{overflow:#}"
    );
    assert_captured_with_reason(scenario(&report, "closed-port"), "NO_SOCKET");
    assert_captured_with_reason(scenario(&report, "unread-close"), "TCP_ABORT_ON_CLOSE");
    assert_captured_with_reason(scenario(&report, "linger-zero"), "TCP_STATE");
    assert_captured_with_reason(overflow, "INVALID_SYN");
    assert_captured_with_reason(
        scenario(&report, "write-after-close"),
        "TCP_TIMEWAIT_SOCKET",
    );
    let unread = scenario(&report, "unread-close");
    assert!(
        unread["host_run"]["counters"]["TcpExt.TCPAbortOnClose"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{unread:#}"
    );
    if host_sysctl("net.ipv4.tcp_tw_recycle").is_none() {
        assert_eq!(
            verdict(&report, "tw-recycle"),
            "not-reproducible-on-this-kernel"
        );
    }
    assert!(
        elapsed < Duration::from_secs(30),
        "--all took {elapsed:?}: {report:#}"
    );
}

#[test]
fn accept_overflow_is_not_reproduced_with_abort_on_overflow_off() {
    let (report, code, _) = lab(&[
        "--rule",
        "accept-overflow",
        "--with",
        "net.ipv4.tcp_abort_on_overflow=0",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        verdict(&report, "accept-overflow"),
        "not-reproduced",
        "{report:#}"
    );
    assert_eq!(report["scenarios"].as_array().unwrap().len(), 1);
}

#[test]
fn keepalive_timeout_is_confirmed_with_an_aggressive_keepalive() {
    // Gives up after 20 + 20 x 2 = 60 s, inside a 120 s outage; the fix (75 x 9) rides it out.
    let (report, code, _) = lab(&[
        "--rule",
        "keepalive-timeout",
        "--with",
        "net.ipv4.tcp_keepalive_time=20",
        "--with",
        "net.ipv4.tcp_keepalive_intvl=20",
        "--with",
        "net.ipv4.tcp_keepalive_probes=2",
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        verdict(&report, "keepalive-timeout"),
        "confirmed",
        "{report:#}"
    );
    let s = scenario(&report, "keepalive-timeout");
    assert!(app_lines(s, "host_run").contains("ETIMEDOUT"), "{s:#}");
    assert_captured_with_reason(s, "TCP_KEEPALIVE_TIMEOUT");
    assert!(
        s["host_run"]["counters"]["client TcpExt.TCPAbortOnTimeout"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{s:#}"
    );
    assert!(
        app_lines(s, "fix_run").contains("client read: 5 bytes"),
        "{s:#}"
    );
}

#[test]
fn a_lost_first_probe_confirms_the_keepalive_retry_rule() {
    // keepalive 250 s fires before the 300 s idle timeout, but its retry (250 + 75) comes after
    // it: harmless while no probe is lost (idle-middlebox), a reset when the first one is.
    let (report, code, _) = lab(&[
        "--rule",
        "keepalive-retry-above-idle-timeout",
        "--rule",
        "idle-middlebox",
        "--with",
        "net.ipv4.tcp_keepalive_time=250",
        "--with",
        "net.ipv4.tcp_keepalive_intvl=75",
    ]);
    assert_eq!(code, 0, "{report:#}");
    let s = scenario(&report, "lost-keepalive-probe");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    assert_eq!(s["rules"][0], "keepalive-retry-above-idle-timeout", "{s:#}");
    // The joint keepalive fix (docs/remediation.md): intvl at most a tenth of the idle
    // timeout, time 250 kept since 250 + 30 < 300.
    assert!(
        s["fix"]
            .as_str()
            .unwrap()
            .starts_with("net.ipv4.tcp_keepalive_intvl=30"),
        "{s:#}"
    );
    let host = app_lines(s, "host_run");
    assert!(
        host.contains("lost 1 keepalive probe") && host.contains("ECONNRESET"),
        "{s:#}"
    );
    let fix = app_lines(s, "fix_run");
    assert!(
        fix.contains("lost 1 keepalive probe") && fix.contains("client read: 5 bytes"),
        "{s:#}"
    );
    assert_eq!(
        verdict(&report, "idle-middlebox"),
        "not-reproduced",
        "no probe lost, no reset: {report:#}"
    );
}

#[test]
fn idle_middlebox_is_not_reproduced_when_keepalive_fires_first() {
    let (report, code, _) = lab(&[
        "--rule",
        "idle-middlebox",
        "--with",
        "net.ipv4.tcp_keepalive_time=120",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        verdict(&report, "idle-middlebox"),
        "not-reproduced",
        "{report:#}"
    );
}

#[test]
fn write_after_close_reason_follows_fin_timeout() {
    let (report, _, _) = lab(&[
        "--rule",
        "write-after-close",
        "--with",
        "net.ipv4.tcp_fin_timeout=120",
    ]);
    assert_eq!(
        verdict(&report, "write-after-close"),
        "confirmed",
        "{report:#}"
    );
    let s = scenario(&report, "write-after-close");
    assert_captured_with_reason(s, "TCP_ABORT_ON_DATA");
    assert!(
        s["expected_reason"]
            .as_str()
            .unwrap()
            .starts_with("TCP_ABORT_ON_DATA"),
        "{s:#}"
    );
    assert!(
        s["host_run"]["counters"]["TcpExt.TCPAbortOnData"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{s:#}"
    );
}

#[test]
fn without_rule_the_lab_runs_todays_findings_with_their_fixes() {
    // "What if this host had tcp_abort_on_overflow=1?": the audit of this host with that value
    // finds abort-on-overflow, and the lab confirms it with the rule's own fix.
    let (report, code, _) = lab(&["--with", "net.ipv4.tcp_abort_on_overflow=1"]);
    assert_eq!(code, 0, "{report:#}");
    let s = scenario(&report, "accept-overflow");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    assert!(
        s["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "abort-on-overflow"),
        "{s:#}"
    );
    assert_eq!(s["fix"], "net.ipv4.tcp_abort_on_overflow=0", "{s:#}");
    if host_sysctl("net.ipv4.tcp_keepalive_time").expect("keepalive") >= 300.0 {
        let mb = scenario(&report, "idle-middlebox");
        assert_eq!(mb["verdict"], "confirmed", "{mb:#}");
        assert!(
            mb["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "keepalive-above-idle-timeout"),
            "{mb:#}"
        );
    }
}

#[test]
fn a_rule_id_runs_its_scenario() {
    let (report, code, _) = lab(&[
        "--rule",
        "abort-on-overflow",
        "--with",
        "net.ipv4.tcp_abort_on_overflow=1",
    ]);
    assert_eq!(code, 0, "{report:#}");
    let s = scenario(&report, "accept-overflow");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    assert_eq!(s["rules"][0], "abort-on-overflow");
}

#[test]
fn without_tracefs_the_lab_confirms_from_capture_and_counters_and_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let (report, code, _) = lab(&[
        "--rule",
        "linger-zero",
        "--tracefs",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report:#}");
    let s = scenario(&report, "linger-zero");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("no reset reasons") && notes.contains("tcp_send_reset is missing"),
        "{notes}"
    );
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// A rule directory overriding fin-timeout-long with the sysctl fix it once had
/// (tcp_fin_timeout=60), which the lab shows does not stop the reset.
fn rules_with_a_useless_fix() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fin-timeout-long.yaml"),
        "id: fin-timeout-long\ntitle: tcp_fin_timeout above 60 s\nseverity: low\ncause: \"13\"\n\
         subject: host\nwhen:\n  sysctl: net.ipv4.tcp_fin_timeout\n  gt: 60\n\
         message: long fin_timeout\nevidence:\n  rst_reasons: [TCP_ABORT_ON_DATA]\n\
         fix:\n  sysctls:\n    net.ipv4.tcp_fin_timeout: 60\nlab: write-after-close\n\
         explanation: a fix that does not help\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_fix_that_leaves_the_resets_is_reported_loudly_and_exits_1() {
    // tcp_fin_timeout=60 leaves the late write reset; only the reason changes
    // (TCP_ABORT_ON_DATA -> TCP_TIMEWAIT_SOCKET).
    let rules = rules_with_a_useless_fix();
    let args = [
        "--rules",
        rules.path().to_str().unwrap(),
        "--rule",
        "fin-timeout-long",
        "--with",
        "net.ipv4.tcp_fin_timeout=120",
    ];
    let (report, code, _) = lab(&args);
    let s = scenario(&report, "write-after-close");
    assert_eq!(s["verdict"], "reproduced-but-fix-did-not-help", "{s:#}");
    assert_eq!(s["fix"], "net.ipv4.tcp_fin_timeout=60", "{s:#}");
    assert_eq!(code, 1, "{report:#}");
    let table = common::rstaudit()
        .args(["packet-check", "--lab"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(
            "WARNING: the recommended fix did not remove the resets in: write-after-close"
        ),
        "{text}"
    );
}

#[test]
fn the_library_fin_timeout_rule_is_fixed_by_a_graceful_close() {
    // The built-in rule's advice (close gracefully) removes the reset that
    // tcp_fin_timeout=60 does not.
    let (report, code, _) = lab(&[
        "--rule",
        "fin-timeout-long",
        "--with",
        "net.ipv4.tcp_fin_timeout=120",
    ]);
    let s = scenario(&report, "write-after-close");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    assert!(
        s["fix"].as_str().unwrap().starts_with("application:"),
        "{s:#}"
    );
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn bad_lab_arguments_exit_2_with_a_clear_message() {
    common::require_root();
    for (args, needle) in [
        (
            vec!["--rule", "no-such-scenario"],
            "no such lab scenario or rule",
        ),
        (
            vec![
                "--rule",
                "closed-port",
                "--with",
                "net.ipv4.tcp_fin_timeout=30",
            ],
            "no selected scenario uses this key",
        ),
        (
            vec!["--all", "--with", "net.ipv4.tcp_fin_timeout=abc"],
            "not an integer",
        ),
        (vec!["--all", "--with", "kernel.panic=1"], "outside net.*"),
        (vec!["--all", "--format", "prometheus"], "table or json"),
    ] {
        let out = common::rstaudit()
            .args(["packet-check", "--lab"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Network namespaces held by `pid` (its threads and its descriptors): `net:[INODE]` -> a path
/// that opens it.
fn netns_of(pid: u32) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    for dir in [format!("/proc/{pid}/task"), format!("/proc/{pid}/fd")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = if dir.ends_with("task") {
                e.path().join("ns/net")
            } else {
                e.path()
            };
            if let Ok(link) = std::fs::read_link(&path) {
                let s = link.to_string_lossy().to_string();
                if s.starts_with("net:[") && link != host {
                    out.entry(s).or_insert(path);
                }
            }
        }
    }
    out
}

/// Every network namespace any process holds (threads, descriptors) or that is mounted.
fn all_held_netns() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Ok(pid) = name.parse::<u32>() {
            out.extend(netns_of(pid));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(root) = fields.get(3).filter(|r| r.starts_with("net:[")) {
            out.push((root.to_string(), PathBuf::from(fields[4])));
        }
    }
    out
}

/// The namespace's cookie (SO_NETNS_COOKIE, 5.14+): unlike its inode number, never reused.
fn netns_cookie(path: &std::path::Path) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
                let mut cookie: u64 = 0;
                let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
                // SAFETY: cookie and len are live and sized for the option.
                let rc = unsafe {
                    libc::getsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(&sock),
                        libc::SOL_SOCKET,
                        libc::SO_NETNS_COOKIE,
                        (&mut cookie as *mut u64).cast(),
                        &mut len,
                    )
                };
                (rc == 0).then_some(cookie)
            })
            .join()
            .ok()
            .flatten()
    })
}

fn host_links() -> String {
    common::run(std::process::Command::new("ip").args(["-o", "link", "show"]))
}

fn host_nft_tables() -> String {
    common::run(std::process::Command::new("nft").args(["list", "tables"]))
}

fn tracefs_instances() -> Vec<String> {
    [
        "/sys/kernel/tracing/instances",
        "/sys/kernel/debug/tracing/instances",
    ]
    .iter()
    .filter_map(|d| std::fs::read_dir(d).ok())
    .flat_map(|r| r.flatten())
    .map(|e| e.file_name().to_string_lossy().to_string())
    .collect()
}

#[test]
fn sigint_in_the_middle_of_idle_middlebox_leaves_nothing_behind() {
    common::require_root();
    let run_netns_before: BTreeSet<String> = std::fs::read_dir("/run/netns")
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut child = common::rstaudit()
        .args(["packet-check", "--lab", "--rule", "idle-middlebox"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The namespaces exist once the client idles (about 0.5 s in; the idle lasts 4.5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    // Inode numbers are reused by namespaces created later (other tests run meanwhile):
    // identify the lab's namespaces by their cookies, which are never reused.
    let mut held = BTreeMap::new();
    let mut cookies = BTreeSet::new();
    while Instant::now() < deadline {
        held = netns_of(pid);
        cookies = held.values().filter_map(|p| netns_cookie(p)).collect();
        if cookies.len() >= 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        cookies.len() >= 6,
        "expected two runs of client, middlebox and server namespaces, saw {held:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the lab ended before the interrupt"
    );
    let started_wait = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "an interrupted lab does not report success"
    );
    assert!(
        started_wait.elapsed() < Duration::from_secs(4),
        "the lab took {:?} to stop after SIGINT",
        started_wait.elapsed()
    );
    // The kernel frees the namespaces once the process is gone.
    let still: Vec<(String, PathBuf)> = all_held_netns()
        .into_iter()
        .filter(|(inode, path)| {
            held.contains_key(inode) && netns_cookie(path).is_some_and(|c| cookies.contains(&c))
        })
        .collect();
    assert!(still.is_empty(), "lab namespaces still held: {still:?}");
    let run_netns_after: BTreeSet<String> = std::fs::read_dir("/run/netns")
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<&String> = run_netns_after
        .difference(&run_netns_before)
        .filter(|n| !n.starts_with("rsta-"))
        .collect();
    assert!(new.is_empty(), "new entries in /run/netns: {new:?}");
    let links = host_links();
    for name in ["mb0", "mb1", "cl0", "sv0"] {
        assert!(
            !links.contains(&format!(": {name}")) && !links.contains(&format!(": {name}@")),
            "lab link {name} in the host namespace: {links}"
        );
    }
    let tables = host_nft_tables();
    assert!(
        !tables.contains("rstaudit"),
        "nftables table left in the host: {tables}"
    );
    let instances = tracefs_instances();
    assert!(
        !instances.iter().any(|i| i == &format!("rstaudit-{pid}")),
        "ftrace instance of pid {pid} left: {instances:?}"
    );
}

#[test]
fn tw_recycle_is_judged_by_the_kernel_not_by_a_with_value() {
    let (report, code, _) = lab(&[
        "--rule",
        "tw-recycle",
        "--with",
        "net.ipv4.tcp_tw_recycle=1",
    ]);
    assert_eq!(code, 0, "{report:#}");
    let s = scenario(&report, "tw-recycle");
    assert_eq!(s["verdict"], "not-reproducible-on-this-kernel", "{s:#}");
    let absent = host_sysctl("net.ipv4.tcp_tw_recycle").is_none();
    assert_eq!(
        s["summary"].as_str().unwrap().contains("does not exist"),
        absent,
        "{s:#}"
    );
}

/// The socket options a rule's `match` (or `suspects`) reads.
fn options_read(rule: &rstaudit::rules::rule::Rule) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for cond in [&rule.matches, &rule.suspects].into_iter().flatten() {
        cond.visit(&mut |e| {
            if let rstaudit::rules::rule::Expr::Opt(o) = e {
                out.insert(o.as_str().to_string());
            }
        });
    }
    out
}

/// Each rule's lab scenario sets what the rule reads: the socket options its `match` looks at
/// are set by the scenario's application. Rules whose option is modelled another way are
/// listed with the reason.
#[test]
fn every_rule_s_scenario_sets_the_options_the_rule_reads() {
    use rstaudit::lab::scenarios;
    let set = rstaudit::rules::load::builtin().unwrap();
    // TCP_KEEPIDLE overrides tcp_keepalive_time per socket: idle-middlebox sets the sysctl.
    let modelled_by_sysctl = [("keepidle-above-idle-timeout", "keepidle")];
    let mut checked = 0;
    for rule in &set.rules {
        let Some(lab) = rule.lab.as_deref() else {
            continue;
        };
        let scenario = scenarios::find(lab).unwrap_or_else(|| panic!("{}: {lab}", rule.id));
        let sets: BTreeSet<String> = scenario
            .options
            .iter()
            .map(|o| o.as_str().to_string())
            .collect();
        for option in options_read(rule) {
            if modelled_by_sysctl.contains(&(rule.id.as_str(), option.as_str())) {
                continue;
            }
            assert!(
                sets.contains(&option),
                "{} reads option {option} but its scenario {lab} sets only {sets:?}",
                rule.id
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} options checked");
    // The three rules whose scenario used to set something else.
    for (rule, lab, option) in [
        ("idle-without-keepalive", "idle-no-keepalive", "keepalive"),
        ("linger2-negative", "linger2-abort", "linger2"),
        ("resets-abort-on-linger", "linger2-abort", "linger2"),
        ("user-timeout-short", "user-timeout", "user_timeout"),
    ] {
        let r = set.get(rule).unwrap();
        assert_eq!(r.lab.as_deref(), Some(lab), "{rule}");
        assert!(options_read(r).contains(option), "{rule} reads {option}");
        assert!(
            scenarios::find(lab)
                .unwrap()
                .options
                .iter()
                .any(|o| o.as_str() == option),
            "{lab} sets {option}"
        );
    }
}

#[test]
fn idle_without_keepalive_runs_without_so_keepalive_whatever_the_sysctls() {
    // The host's tcp_keepalive_* do not apply to sockets without SO_KEEPALIVE: the scenario
    // copies none of them (a --with for them is refused) and is confirmed whatever they are.
    let (report, code, _) = lab(&["--rule", "idle-without-keepalive"]);
    let s = scenario(&report, "idle-no-keepalive");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    assert_eq!(s["host_run"]["settings"], serde_json::json!([]), "{s:#}");
    let out = common::rstaudit()
        .args(["packet-check", "--lab", "--rule", "idle-without-keepalive"])
        .args(["--with", "net.ipv4.tcp_keepalive_time=30"])
        .output()
        .unwrap();
    common::refused(&out, &["no selected scenario uses this key"]);
    let host = app_lines(s, "host_run");
    assert!(host.contains("without SO_KEEPALIVE"), "{s:#}");
    assert!(host.contains("ECONNRESET"), "{s:#}");
    assert!(
        app_lines(s, "fix_run").contains("client read: 5 bytes"),
        "{s:#}"
    );
}

#[test]
fn linger2_rules_run_a_close_in_fin_wait2_with_tcp_linger2() {
    for rule in ["linger2-negative", "resets-abort-on-linger"] {
        let (report, code, _) = lab(&["--rule", rule]);
        assert_eq!(code, 0, "{report:#}");
        let s = scenario(&report, "linger2-abort");
        assert_eq!(s["verdict"], "confirmed", "{s:#}");
        assert!(
            s["host_run"]["counters"]["TcpExt.TCPAbortOnLinger"]
                .as_u64()
                .unwrap_or(0)
                > 0,
            "{s:#}"
        );
        assert_captured_with_reason(s, "TCP_ABORT_ON_LINGER");
    }
}

#[test]
fn user_timeout_short_runs_a_stall_longer_than_tcp_user_timeout() {
    let (report, code, _) = lab(&["--rule", "user-timeout-short"]);
    assert_eq!(code, 0, "{report:#}");
    let s = scenario(&report, "user-timeout");
    assert_eq!(s["verdict"], "confirmed", "{s:#}");
    assert!(
        s["host_run"]["counters"]["client TcpExt.TCPAbortOnTimeout"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{s:#}"
    );
    assert!(app_lines(s, "host_run").contains("ETIMEDOUT"), "{s:#}");
    assert_captured_with_reason(s, "NO_SOCKET");
}
