//! `rstaudit packet-check` (live) on real resets, in namespaces the tests create.

use crate::common;

use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Start packet-check and wait until it says it is watching.
fn start(args: &[&str]) -> (Child, BufReader<std::process::ChildStderr>) {
    common::start_watching(
        common::rstaudit()
            .arg("packet-check")
            .args(args)
            .stdout(Stdio::piped()),
    )
}

/// Wait for the end and parse the JSON report.
fn finish(child: Child, err: BufReader<std::process::ChildStderr>) -> Value {
    let out = common::finish_watching(child, err);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

fn instance_exists(pid: u32) -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .any(|root| {
            Path::new(root)
                .join(format!("instances/rstaudit-{pid}"))
                .exists()
        })
}

fn events_with<'a>(report: &'a Value, reason: &str) -> Vec<&'a Value> {
    report["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[test]
fn live_check_attributes_each_reset_to_its_reason_process_and_cause() {
    common::require_root();
    let ns = common::Netns::new("live");
    ns.sysctl("net.ipv4.tcp_abort_on_overflow", "1");
    let other = common::Netns::new("liveoth");
    // The helper holds a socket with SO_LINGER 0 from the start (so the audit finds it), then
    // makes each kind of reset when told to.
    let mut helper = ns.helper(&[
        "announce",
        "listen:7200:8",
        "linger0:7200",
        "wait-line",
        "refused:9",
        "unread-close",
        "linger0-close:300",
        "overflow:7100:4",
        "write-after-close",
        "stray-ack:9",
    ]);
    let (child, err) = start(&["--netns", &ns.name, "--duration", "6", "--format", "json"]);
    let rstaudit_pid = child.id();
    // Same loopback addresses, other namespace: must not appear.
    let foreign = other.helper(&["refused:9", "refused:9"]);
    {
        use std::io::Write;
        let stdin = helper.child.stdin.as_mut().expect("helper stdin");
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }
    let report = finish(child, err);
    drop(foreign);

    let pid = u64::from(helper.pid);
    for (reason, cause) in [
        ("NO_SOCKET", "no-socket"),
        ("TCP_ABORT_ON_CLOSE", "unread-close"),
        ("TCP_STATE", "linger-zero"),
        ("INVALID_SYN", "accept-queue-overflow"),
        ("TCP_TIMEWAIT_SOCKET", "data-after-close"),
    ] {
        let found = events_with(&report, reason);
        assert!(!found.is_empty(), "no {reason} reset in {report:#}");
        for e in &found {
            assert_eq!(e["cause"], cause, "{e:#}");
            assert_eq!(e["owner"]["pid"], pid, "{e:#}");
            assert_eq!(e["direction"], "sent");
        }
    }
    // On loopback every reset has a receiver here: the refused connect's own socket takes its
    // reset (tcp_receive_reset), the stray ACK's reset goes to a port where nothing listens.
    let no_socket = events_with(&report, "NO_SOCKET");
    assert_eq!(
        no_socket.len(),
        2,
        "this namespace's refused connect and stray ACK only: {report:#}"
    );
    assert_eq!(
        no_socket
            .iter()
            .filter(|e| e["dst"] == "127.0.0.1:1")
            .count(),
        1,
        "the stray ACK's reset: {report:#}"
    );
    for e in &no_socket {
        let to_stray = e["dst"] == "127.0.0.1:1";
        assert_eq!(e["taken_by_socket"], !to_stray, "{e:#}");
    }
    for reason in ["TCP_ABORT_ON_CLOSE", "TCP_STATE", "TCP_TIMEWAIT_SOCKET"] {
        for e in events_with(&report, reason) {
            assert_eq!(e["taken_by_socket"], true, "a live peer took it: {e:#}");
        }
    }
    assert!(
        report["tracing"]["matching"]["unmatched_events"]
            .as_u64()
            .unwrap()
            >= 2
    );
    let by_cause = report["causes"].as_array().unwrap();
    assert!(
        by_cause
            .iter()
            .any(|c| c["cause"] == "linger-zero" && c["top_processes"][0]["pid"] == pid)
    );
    assert!(report["counters"]["delta"]["Tcp.OutRsts"].as_u64().unwrap() >= 6);
    assert!(report["timeline"].as_array().unwrap().len() >= 6);
    assert_eq!(report["capture"]["drops"], 0);
    assert!(
        !instance_exists(rstaudit_pid),
        "ftrace instance left behind"
    );
    drop(helper);
}

#[test]
fn sigint_ends_the_window_and_removes_the_ftrace_instance() {
    common::require_root();
    let ns = common::Netns::new("sigint");
    let (child, err) = start(&["--netns", &ns.name, "--duration", "60", "--format", "json"]);
    let pid = child.id();
    assert!(
        instance_exists(pid),
        "instance rstaudit-{pid} while running"
    );
    let helper = ns.helper(&["refused:9"]);
    std::thread::sleep(Duration::from_millis(500));
    let began = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let report = finish(child, err);
    assert!(began.elapsed() < Duration::from_secs(5), "slow to stop");
    assert_eq!(report["interrupted"], true);
    assert_eq!(events_with(&report, "NO_SOCKET").len(), 1);
    assert!(
        !instance_exists(pid),
        "instance rstaudit-{pid} left after SIGINT"
    );
    drop(helper);
}

#[test]
fn stale_instances_of_dead_processes_are_removed_at_start() {
    common::require_root();
    // A pid that surely is not running: a child that has exited and been reaped.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let tracefs = rstaudit::trace::ftrace::Tracefs::find_or_mount().unwrap();
    let stale = tracefs.root.join(format!("instances/rstaudit-{dead}"));
    std::fs::create_dir(&stale).unwrap();
    let ns = common::Netns::new("stale");
    let out = common::rstaudit()
        .args([
            "packet-check",
            "--netns",
            &ns.name,
            "--duration",
            "1",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exists = stale.exists();
    if exists {
        let _ = std::fs::remove_dir(&stale);
    }
    assert!(!exists, "stale instance {} not removed", stale.display());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(&format!("rstaudit-{dead}")))
    );
}

#[test]
fn without_root_names_the_missing_capabilities() {
    common::require_root();
    let out = common::rstaudit()
        .args(["packet-check", "--duration", "1"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    assert!(err.contains("tracefs"), "{err}");
    assert!(out.stdout.is_empty());
}

/// A directory laid out like tracefs whose tcp_send_reset has no reason field (kernels 4.15
/// to 6.9), and no tcp_receive_reset.
fn old_kernel_tracefs() -> tempfile::TempDir {
    let fake = tempfile::tempdir().unwrap();
    let ev = fake.path().join("events/tcp/tcp_send_reset");
    std::fs::create_dir_all(&ev).unwrap();
    std::fs::create_dir_all(fake.path().join("instances")).unwrap();
    std::fs::write(
        ev.join("format"),
        "name: tcp_send_reset\nID: 1470\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\
         \tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
         \tfield:int state;\toffset:24;\tsize:4;\tsigned:1;\n\n\
         print fmt: \"skbaddr=%p skaddr=%p state=%s\", REC->skbaddr, REC->skaddr, __print_symbolic(REC->state, { TCP_ESTABLISHED, \"TCP_ESTABLISHED\" })\n",
    )
    .unwrap();
    fake
}

/// Run the live check in a namespace through the binary with `extra` arguments while a helper
/// makes `refused` connections to a closed port; the JSON report.
fn watch_refused(prefix: &str, refused: usize, extra: &[&str]) -> Value {
    watch_refused_with(prefix, &vec!["refused:9"; refused], extra)
}

/// The same with the helper's specs given (`refused:PORT`, `refused6:PORT`, ...).
fn watch_refused_with(prefix: &str, specs: &[&str], extra: &[&str]) -> Value {
    let ns = common::Netns::new(prefix);
    let mut args = vec!["--netns", &ns.name, "--duration", "2", "--format", "json"];
    args.extend_from_slice(extra);
    let (child, err) = start(&args);
    let helper = ns.helper(specs);
    let report = finish(child, err);
    drop(helper);
    report
}

fn notes(report: &Value) -> Vec<&str> {
    report["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}

#[test]
fn a_kernel_without_reasons_still_counts_resets_and_says_so() {
    common::require_root();
    let fake = old_kernel_tracefs();
    let dir = fake.path().to_str().unwrap();
    let report = watch_refused("noreason", 1, &["--tracefs", dir]);
    assert_eq!(report["tracing"]["reasons"], false, "{report:#}");
    assert_eq!(report["resets"], 1, "{report:#}");
    assert_eq!(report["sent"], 1);
    let e = &report["events"][0];
    assert_eq!(e.get("reason"), None, "{e:#}");
    // A closed port's answer is told by the packet (a reset answering a SYN) and the socket
    // table (no listener on the port), and said to be derived.
    assert_eq!(e["cause"], "no-socket", "{e:#}");
    assert_eq!(e["cause_source"], "derived", "{e:#}");
    assert_eq!(e["derived_reason"], "NO_SOCKET", "{e:#}");
    assert!(
        e["basis"].as_str().unwrap().starts_with("derived: ")
            && e["basis"].as_str().unwrap().contains("closed port"),
        "{e:#}"
    );
    let notes = notes(&report);
    assert!(
        notes.iter().any(|n| n.contains("has no reason field")),
        "{notes:?}"
    );
    // The reset sites are asked for (no reasons here) and cannot be probed: said once.
    let sites: Vec<_> = notes
        .iter()
        .filter(|n| n.contains("the reset sites cannot be probed here"))
        .collect();
    assert_eq!(sites.len(), 1, "{notes:?}");
    assert!(sites[0].contains("kprobe_events is missing"), "{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("tcp_receive_reset is missing")),
        "{notes:?}"
    );
    let left: Vec<_> = std::fs::read_dir(fake.path().join("instances"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "nothing left in the tracefs: {left:?}");
    // What the verdicts say without reasons.
    for f in report["findings"].as_array().unwrap() {
        assert_ne!(f["verdict"], "confirmed", "{f:#}");
    }
}

#[test]
fn without_tracefs_resets_are_still_counted_and_the_tree_is_left_alone() {
    common::require_root();
    let empty = tempfile::tempdir().unwrap();
    let report = watch_refused(
        "notracefs",
        2,
        &["--tracefs", empty.path().to_str().unwrap()],
    );
    assert_eq!(report["tracing"]["reasons"], false, "{report:#}");
    assert_eq!(report["tracing"]["events"], 0);
    assert_eq!(report["resets"], 2, "{report:#}");
    // Without any trace, the packet and the socket table still tell a closed port.
    assert_eq!(report["events"][0]["cause"], "no-socket", "{report:#}");
    assert_eq!(report["events"][0]["cause_source"], "derived");
    assert_eq!(report["counters"]["delta"]["Tcp.OutRsts"], 2, "{report:#}");
    let notes = notes(&report);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("tcp_send_reset is missing") && n.contains("not a tracefs")),
        "{notes:?}"
    );
    assert_eq!(
        std::fs::read_dir(empty.path()).unwrap().count(),
        0,
        "nothing created in a directory that is not a tracefs"
    );
}

#[test]
fn a_tracefs_that_is_not_a_directory_is_refused_before_anything_starts() {
    common::require_root();
    for bad in ["/nonexistent/tracing", "/dev/null"] {
        let out = common::rstaudit()
            .args(["packet-check", "--duration", "1", "--tracefs", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("--tracefs {bad}: not a directory")),
            "{err}"
        );
        assert!(!err.contains("watching"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_duration_out_of_range_is_refused_before_anything_starts() {
    common::require_root();
    for bad in ["0", "-1", "nan", "inf", "1e20", "604801"] {
        let out = common::rstaudit()
            .args(["packet-check", &format!("--duration={bad}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("give a number of seconds above 0 and at most 604800 (a week)"),
            "{bad}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("watching"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn past_max_events_resets_are_counted_not_listed_and_the_events_file_has_them_all() {
    common::require_root();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let report = watch_refused(
        "maxev",
        5,
        &["--max-events", "2", "--events-file", file.to_str().unwrap()],
    );
    assert_eq!(report["resets"], 5, "{report:#}");
    assert_eq!(report["events"].as_array().unwrap().len(), 2);
    assert_eq!(report["events_omitted"], 3);
    let causes = report["causes"].as_array().unwrap();
    assert_eq!(causes[0]["cause"], "no-socket", "{causes:#?}");
    assert_eq!(causes[0]["count"], 5);
    let per_second: u64 = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["resets"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 5);
    let notes = notes(&report);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("lists the first 2 of 5 resets") && n.contains("events.jsonl")),
        "{notes:?}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for l in &lines {
        assert_eq!(l["reason"], "NO_SOCKET", "{l:#}");
        assert_eq!(l["cause"], "no-socket");
    }
    // The same event in both (`rules` may differ: the file lists the findings known when the
    // event was written).
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("rules");
        v
    };
    assert_eq!(strip(&lines[0]), strip(&report["events"][0]));
}

#[test]
fn ipv6_resets_are_caught_and_the_port_filter_keeps_only_its_port() {
    common::require_root();
    let report = watch_refused_with(
        "v6port",
        &["refused6:9", "refused:9", "refused6:10", "refused:10"],
        &["--port", "9"],
    );
    assert_eq!(report["resets"], 2, "{report:#}");
    let events = report["events"].as_array().unwrap();
    let mut sources: Vec<&str> = events.iter().map(|e| e["src"].as_str().unwrap()).collect();
    sources.sort();
    assert_eq!(sources, ["127.0.0.1:9", "[::1]:9"], "{report:#}");
    for e in events {
        assert_eq!(e["reason"], "NO_SOCKET", "{e:#}");
        assert_eq!(e["cause"], "no-socket", "{e:#}");
        assert!(e["owner"]["pid"].is_u64(), "{e:#}");
    }
    assert_eq!(report["port"], 9);
}
