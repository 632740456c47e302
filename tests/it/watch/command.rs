//! `rstaudit watch` itself, as root, in network namespaces the tests make (loopback only):
//! namespaces followed as they come and go, resets counted by cause and process, verdicts over
//! the window, the signals (SIGTERM, SIGHUP, and a restart after SIGKILL), and bad input.

use std::time::{Duration, Instant};

use super::support::{Watch, free_port, sum, tracing_left_by, wait_for};
use crate::common::{Netns, refused, rstaudit, write_file};

/// The `finding` events of `path` for `rule` in namespace `netns`: (change, verdict).
fn finding_events(path: &std::path::Path, netns: &str, rule: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "finding" && e["netns"] == netns && e["rule"] == rule)
        .map(|e| {
            (
                e["change"].as_str().unwrap_or("").to_string(),
                e["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_namespace_made_while_it_runs_is_watched_within_5_s_its_resets_counted_and_let_go_when_gone() {
    let mut w = Watch::start(&["--audit-every", "1h"]);
    let made = Instant::now();
    let ns = Netns::new("wfollow");
    w.wait_line(
        &format!("watching namespace {}", ns.name),
        Duration::from_secs(10),
    );
    let took = made.elapsed();
    assert!(took < Duration::from_secs(5), "watched after {took:?}");
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();

    // Its own program name: other tests' helpers make resets in their namespaces meanwhile.
    let comm = "wfollowhelper";
    let helper = ns.helper_named(comm, &["refused:9", "refused:9", "unread-close"]);
    let pid = helper.pid.to_string();
    let by = |cause: &str| {
        sum(
            &w.metrics(),
            "rstaudit_resets_total",
            &[("netns", &ns.name), ("cause", cause), ("comm", comm)],
        )
    };
    wait_for("the resets in the metrics", Duration::from_secs(15), || {
        let got = (by("no-socket"), by("unread-close"));
        if got == (2.0, 1.0) {
            Ok(())
        } else {
            Err(format!("{got:?}\n{}", w.metrics()))
        }
    });
    // Only this namespace's resets: none counted in another one under the same loopback ends.
    let text = w.metrics();
    let elsewhere: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("rstaudit_resets_total{") && l.contains(&format!("comm=\"{comm}\""))
        })
        .filter(|l| !l.contains(&format!("netns=\"{}\"", ns.name)))
        .collect();
    assert!(elsewhere.is_empty(), "{elsewhere:#?}");
    assert!(!pid.is_empty());

    // The namespace goes: its process exits and its name is deleted.
    let name = ns.name.clone();
    drop(helper);
    drop(ns);
    let gone = Instant::now();
    w.wait_line(
        &format!("namespace {name} is gone"),
        Duration::from_secs(10),
    );
    assert!(gone.elapsed() < Duration::from_secs(5));
    // Nothing of it is held: the kernel can free it.
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", w.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|l| l == &format!("net:[{inode}]"))
        .collect();
    assert!(held.is_empty(), "{held:?}");
    let (status, err) = w.stop();
    assert!(status.success(), "{err}");
}

/// The transitions over time (pending, confirmed, not seen once the resets are old) are pinned
/// by the unit tests of src/watch/check/watched.rs; here real resets confirm a finding the real
/// audit makes, and a namespace watched for less than the window is pending.
#[test]
fn real_resets_confirm_the_finding_of_the_audit_and_a_young_namespace_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let mut w = Watch::start(&[
        "--audit-every",
        "10s",
        "--window",
        "3m",
        "--events",
        events.to_str().unwrap(),
    ]);
    let ns = Netns::new("wverdict");
    w.wait_line(
        &format!("watching namespace {}", ns.name),
        Duration::from_secs(10),
    );
    let verdict = |w: &Watch, netns: &str| -> Vec<String> {
        w.metrics()
            .lines()
            .filter(|l| l.starts_with("rstaudit_findings{"))
            .filter(|l| l.contains(&format!("netns=\"{netns}\"")))
            .filter(|l| l.contains("rule=\"resets-abort-on-close\"") && l.ends_with(" 1"))
            .filter_map(|l| {
                l.split("verdict=\"")
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_string)
            })
            .collect()
    };
    // Closing with unread data sends resets and moves TcpExt.TCPAbortOnClose: an audit finds
    // resets-abort-on-close, and the resets in the window confirm it (before the window is
    // over: confirmed wins over pending).
    let _helper = ns.helper(&["unread-close", "unread-close"]);
    // Audits list every process's descriptors: slow on a loaded machine in a debug build.
    wait_for("the finding, confirmed", Duration::from_secs(150), || {
        let v = verdict(&w, &ns.name);
        (v == ["confirmed"]).then_some(()).ok_or(format!("{v:?}"))
    });
    wait_for("its finding event", Duration::from_secs(10), || {
        let changes = finding_events(&events, &ns.name, "resets-abort-on-close");
        changes
            .last()
            .filter(|(_, v)| v == "confirmed")
            .map(|_| ())
            .ok_or(format!("{changes:?}"))
    });
    // The verdicts are those of packet-check: only this rule's mechanism confirms; the other
    // findings of the namespace (if any) are pending in its first window.
    let text = w.metrics();
    let others: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("rstaudit_findings{") && l.ends_with(" 1"))
        .filter(|l| l.contains(&format!("netns=\"{}\"", ns.name)))
        .filter(|l| !l.contains("rule=\"resets-abort-on-close\""))
        .filter(|l| !l.contains("verdict=\"pending\""))
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    let (status, err) = w.stop();
    assert!(status.success(), "{err}");
}

#[test]
fn sigterm_ends_it_with_exit_0_and_removes_the_instance() {
    let w = Watch::start(&["--audit-every", "1h"]);
    let pid = w.pid();
    let (instance, _) = tracing_left_by(pid);
    assert!(instance, "the instance exists while it runs");
    let (status, err) = w.stop();
    assert!(status.success(), "{status}: {err}");
    assert_eq!(tracing_left_by(pid), (false, vec![]), "{err}");
    assert!(err.contains("stopped"), "{err}");
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn after_sigkill_the_next_start_removes_what_the_dead_one_left_and_says_so() {
    let dead = Watch::start(&["--audit-every", "1h"]);
    let pid = dead.pid();
    dead.signal("-KILL");
    drop(dead);
    assert!(tracing_left_by(pid).0, "SIGKILL leaves the instance");
    let next = Watch::start(&["--audit-every", "1h"]);
    let err = next.stderr();
    assert!(
        err.contains(&format!(
            "removed ftrace instances left by processes that no longer exist: rstaudit-{pid}"
        )),
        "{err}"
    );
    assert_eq!(tracing_left_by(pid), (false, vec![]));
    let (status, err) = next.stop();
    assert!(status.success(), "{err}");

    // The reset sites' probes (kernels that name no reason): this kernel may have no kprobe
    // events, so they are left in a tracefs laid out by the test, and deleted the way the
    // kernel takes it (`-:GROUP/EVENT` written to kprobe_events).
    let tree = tempfile::tempdir().unwrap();
    let gone = dead_pid();
    let events = write_file(
        tree.path(),
        "kprobe_events",
        &format!(
            "p:rstaudit_{gone}/tcp_v4_send_reset tcp_v4_send_reset sk=%di\np:rstaudit_{gone}/tcp_send_active_reset tcp_send_active_reset sk=%di\np:other/tcp_v4_send_reset tcp_v4_send_reset\n"
        ),
    );
    let next = Watch::start(&[
        "--audit-every",
        "1h",
        "--tracefs",
        tree.path().to_str().unwrap(),
    ]);
    let err = next.stderr();
    assert!(
        err.contains(&format!(
            "removed kprobe events left by processes that no longer exist: rstaudit_{gone}"
        )),
        "{err}"
    );
    let written = std::fs::read_to_string(&events).unwrap();
    for deleted in [
        format!("-:rstaudit_{gone}/tcp_v4_send_reset"),
        format!("-:rstaudit_{gone}/tcp_send_active_reset"),
    ] {
        assert!(written.contains(&deleted), "{written}");
    }
    assert!(!written.contains("-:other/"), "{written}");
    // Without the kernel's trace it still runs, and /healthz says what is missing.
    let (code, _, body) = super::support::get(next.addr, "/healthz", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("tracing: no kernel trace"), "{body}");
    let (status, err) = next.stop();
    assert!(status.success(), "{err}");
}

/// A rule of the test's own that fires on every host (tcp_syncookies is always 0, 1 or 2).
fn rule(id: &str) -> String {
    format!(
        "id: {id}\ntitle: A test rule\nseverity: low\ncause: \"2\"\nsubject: host\nwhen:\n  sysctl: net.ipv4.tcp_syncookies\n  ge: 0\nmessage: always\nfix:\n  advice: nothing to do\nexplanation: A rule of the watch test.\n"
    )
}

#[test]
fn sighup_reloads_the_rules_keeps_them_when_a_file_is_bad_and_reopens_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    write_file(&rules, "first.yaml", &rule("watch-test-first"));
    let events = dir.path().join("events.jsonl");
    let mut w = Watch::start(&[
        "--rules",
        rules.to_str().unwrap(),
        "--audit-every",
        "1h",
        "--events",
        events.to_str().unwrap(),
    ]);
    let host_rule = |w: &Watch, id: &str| {
        sum(
            &w.metrics(),
            "rstaudit_findings",
            &[("netns", "host"), ("rule", id)],
        )
    };
    // An audit lists every process's descriptors: slow on a loaded machine in a debug build.
    wait_for("the first rule's finding", Duration::from_secs(120), || {
        (host_rule(&w, "watch-test-first") == 1.0)
            .then_some(())
            .ok_or_else(|| w.metrics())
    });
    // A second rule, then SIGHUP: both are audited.
    write_file(&rules, "second.yaml", &rule("watch-test-second"));
    w.signal("-HUP");
    w.wait_line("reloaded:", Duration::from_secs(10));
    wait_for(
        "the second rule's finding",
        Duration::from_secs(120),
        || {
            (host_rule(&w, "watch-test-second") == 1.0)
                .then_some(())
                .ok_or_else(|| w.metrics())
        },
    );
    // A broken file: the reload is refused, says where, and the rules loaded before stay.
    write_file(&rules, "broken.yaml", "id: [unclosed\n");
    w.signal("-HUP");
    w.wait_line("reload refused", Duration::from_secs(10));
    // The problem follows on its own line: an unclosed `[` is a syntax error where the
    // sequence should have ended.
    let place = w.wait_line("broken.yaml:", Duration::from_secs(10));
    assert!(
        place.contains("broken.yaml:2:1") && place.ends_with("[syntax]"),
        "{place}\n{}",
        w.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(host_rule(&w, "watch-test-first"), 1.0);
    assert_eq!(host_rule(&w, "watch-test-second"), 1.0);

    // logrotate: rename the file, SIGHUP, and the next events go to a new file at the path.
    std::fs::remove_file(rules.join("broken.yaml")).unwrap();
    let rotated = dir.path().join("events.jsonl.1");
    wait_for(
        "events before the rotation",
        Duration::from_secs(10),
        || {
            let n = std::fs::read_to_string(&events)
                .unwrap_or_default()
                .lines()
                .count();
            (n > 0).then_some(()).ok_or(format!("{n} lines"))
        },
    );
    std::fs::rename(&events, &rotated).unwrap();
    let mark = w.mark();
    w.signal("-HUP");
    w.wait_line_since(mark, "reloaded:", Duration::from_secs(10));
    let ns = Netns::new("wrotate");
    w.wait_line(
        &format!("watching namespace {}", ns.name),
        Duration::from_secs(10),
    );
    let _helper = ns.helper(&["refused:9"]);
    wait_for(
        "a reset line in the new file",
        Duration::from_secs(15),
        || {
            let text = std::fs::read_to_string(&events).unwrap_or_default();
            text.lines()
                .any(|l| l.contains("\"type\":\"reset\"") && l.contains(&ns.name))
                .then_some(())
                .ok_or(text)
        },
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains(&ns.name), "{old}");
    let (status, err) = w.stop();
    assert!(status.success(), "{err}");
}

#[test]
fn bad_flags_and_config_keys_stop_it_before_anything_starts_and_say_why() {
    // A port taken.
    let taken = std::net::TcpListener::bind(free_port()).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = rstaudit()
        .args(["watch", "--listen", &addr])
        .output()
        .unwrap();
    refused(&out, &["--listen", &format!("listening on {addr}")]);
    // Durations.
    let out = rstaudit()
        .args(["watch", "--audit-every", "0s"])
        .output()
        .unwrap();
    refused(&out, &["--audit-every", "out of range"]);
    let out = rstaudit()
        .args(["watch", "--window", "soon"])
        .output()
        .unwrap();
    refused(&out, &["--window", "is not a duration"]);
    let out = rstaudit()
        .args(["watch", "--runtime-socket", "lxc=/run/lxc.sock"])
        .output()
        .unwrap();
    refused(&out, &["--runtime-socket", "\"lxc\" is not a runtime"]);
    // The config file's watch keys: every problem at once, where it is.
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "config.yaml",
        "watch:\n  listen: nowhere\n  audit_every: 0\n  window: 2 weeks\n  max_series: 0\n  runtime_sockets:\n    lxc: /run/lxc.sock\n",
    );
    let out = rstaudit()
        .args(["watch", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    refused(
        &out,
        &[
            "config.yaml:2:3: watch.listen \"nowhere\"",
            "config.yaml:3:3: watch.audit_every",
            "config.yaml:4:3: watch.window",
            "config.yaml:5:3: watch.max_series: 0 is out of range",
            "config.yaml:6:3: watch.runtime_sockets",
            "5 problems in the config file",
        ],
    );
    let config = write_file(
        dir.path(),
        "unknown.yaml",
        "watch:\n  listne: 127.0.0.1:1\n",
    );
    let out = rstaudit()
        .args(["watch", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    refused(&out, &["unknown.yaml:2:3", "listne"]);
}
