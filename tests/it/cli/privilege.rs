//! Running without root (uid/gid 65534, no capabilities): every command either reports what
//! it could read, or stops before doing anything with a message naming the capability.
//! docs/reliability.md has the capability table these tests pin.

use crate::common;

use std::os::unix::process::CommandExt;
use std::process::Output;

use common::{Netns, refused, require_root, rstaudit, text};

fn nobody(args: &[&str]) -> Output {
    require_root();
    rstaudit()
        .uid(65534)
        .gid(65534)
        .args(args)
        .output()
        .expect("running rstaudit")
}

#[test]
fn unprivileged_audit_reports_what_it_can_read() {
    let out = nobody(&["audit", "--format", "json", "--fail-on", "never"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let ns = &report["namespaces"][0];
    // The host rules ran on what anyone may read (sysctls, counters, the socket table) ...
    let judged = ns["passed"].as_array().unwrap().len() + ns["findings"].as_array().unwrap().len();
    assert!(judged >= 15, "only {judged} rules judged: {all}");
    // ... the socket-option rules are not checked, with the reason, never passed ...
    let not_checked = ns["not_checked"].as_array().unwrap();
    let linger = not_checked
        .iter()
        .find(|s| s["rule"] == "linger-zero")
        .unwrap_or_else(|| panic!("linger-zero is not under not_checked: {all}"));
    // ... the reason points to the note that says what was denied ...
    assert_eq!(
        linger["reason"], "socket options were not read (see the note `owners`)",
        "{linger}"
    );
    assert!(!ns["passed"].to_string().contains("linger-zero"), "{all}");
    // ... a finding whose suspects are told by socket options (present when this host has
    // counted such resets) does not claim that no process holds them: it could not look ...
    for f in ns["findings"].as_array().unwrap() {
        if f["rule"] == "resets-abort-on-data" {
            assert!(!f.to_string().contains("no process holds"), "{f}");
            assert!(f.to_string().contains("could not be looked for"), "{f}");
        }
    }
    // ... and the notes say what was not read.
    let notes = ns["notes"].to_string();
    assert!(
        notes.contains("permission denied"),
        "the owners note is missing: {all}"
    );
}

#[test]
fn unprivileged_verify_reads_and_reports_drift() {
    let out = nobody(&["verify", "--profile", "baseline"]);
    let all = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{all}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("net.core.somaxconn"),
        "{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn unprivileged_audit_of_a_copied_tree_reads_it_all() {
    let dir = tempfile::tempdir().unwrap();
    common::copied_proc_tree(dir.path(), &["netstat", "snmp", "tcp"], "6.18.44");
    // Readable by anyone, as a tree copied for later audit would be.
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let out = nobody(&[
        "audit",
        "--root",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
        "--fail-on",
        "never",
    ]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        report["namespaces"][0]["source"],
        format!("root:{}", dir.path().display())
    );
    assert!(
        !report["namespaces"][0]["notes"]
            .to_string()
            .contains("permission denied"),
        "{all}"
    );
}

#[test]
fn unprivileged_apply_changes_nothing_and_says_run_as_root() {
    let ns = Netns::new("privapply");
    ns.sysctl("net.ipv4.tcp_fin_timeout", "61");
    let state = tempfile::tempdir().unwrap();
    let out = nobody(&[
        "apply",
        "--profile",
        "baseline",
        "--netns",
        &ns.name,
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    refused(&out, &["CAP_SYS_ADMIN", &ns.name]);
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_fin_timeout"), "61");
    // In its own namespace: every key is refused up front, nothing written.
    let out = nobody(&[
        "apply",
        "--profile",
        "baseline",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    refused(&out, &["nothing was written", "run as root"]);
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn unprivileged_rollback_changes_nothing_and_says_run_as_root() {
    let ns = Netns::new("privrb");
    ns.sysctl("net.ipv4.tcp_fin_timeout", "61");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    let out = rstaudit()
        .args([
            "apply",
            "--profile",
            "baseline",
            "--netns",
            &ns.name,
            "--state-dir",
            state_arg,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let applied = ns.read_sysctl("net.ipv4.tcp_fin_timeout");
    assert_ne!(applied, "61");
    let file = std::fs::read_dir(&state)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for args in [
        vec!["rollback", "--state-dir", state_arg],
        vec!["rollback", file.to_str().unwrap()],
    ] {
        refused(&nobody(&args), &["run as root", "nothing was changed"]);
        assert_eq!(ns.read_sysctl("net.ipv4.tcp_fin_timeout"), applied);
    }
    // Root still can, afterwards.
    let out = rstaudit()
        .args(["rollback", "--state-dir", state_arg])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_fin_timeout"), "61");
}

#[test]
fn unprivileged_packet_check_names_the_missing_capabilities() {
    let out = nobody(&["packet-check", "--duration", "1"]);
    refused(&out, &["CAP_NET_RAW", "tracefs"]);
}

#[test]
fn unprivileged_lab_names_cap_sys_admin() {
    let out = nobody(&["packet-check", "--lab", "--rule", "linger-zero"]);
    // Up front: no scenario ran, so there is no report, only the message.
    refused(
        &out,
        &[
            "packet-check --lab cannot build its namespaces: missing CAP_SYS_ADMIN",
            "CAP_NET_ADMIN",
            "nothing was started",
        ],
    );
    assert!(out.stdout.is_empty(), "{}", text(&out));
}

/// Regression (issue 27): without root the audit repeated the same reason seven times. Each
/// missing privilege is said once, naming what is lost, and the rules it stops share that
/// one line.
#[test]
fn unprivileged_audit_says_each_missing_privilege_once() {
    let out = nobody(&["audit", "--fail-on", "never"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let table = String::from_utf8_lossy(&out.stdout);
    let said = table
        .matches("permission denied reading /proc/PID/fd")
        .count();
    assert_eq!(said, 1, "said {said} times:\n{table}");
    assert!(table.contains("no owner and no options"), "{table}");
    let stopped = table
        .lines()
        .find(|l| l.contains("see the note `owners`"))
        .unwrap_or_else(|| panic!("no rule points to the owners note:\n{table}"));
    assert!(
        stopped.contains("linger-zero") || table.contains("linger-zero,"),
        "{table}"
    );
    assert_eq!(table.matches("see the note `owners`").count(), 1, "{table}");
    // The JSON has one note per area: no area is repeated with the same message.
    let out = nobody(&["audit", "--format", "json", "--fail-on", "never"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let notes = v["namespaces"][0]["notes"].as_array().unwrap();
    let owners = notes.iter().filter(|n| n["area"] == "owners").count();
    assert_eq!(owners, 1, "{notes:#?}");
}

/// Root that lacks a capability (a container, a bounding set without it) is never told to
/// run as root: it is told what it lacks and that running as root does not give it.
#[test]
fn root_without_capabilities_is_not_told_to_run_as_root() {
    require_root();
    // A process of another user, whose descriptors capability-less root may not read.
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .uid(65534)
        .gid(65534)
        .spawn()
        .unwrap();
    let capless = |args: &[&str]| -> Output {
        std::process::Command::new("setpriv")
            .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
            .arg(env!("CARGO_BIN_EXE_rstaudit"))
            .args(args)
            .env("RSTAUDIT_CONFIG", "")
            .output()
            .expect("setpriv from util-linux")
    };
    let runs = [
        vec!["audit", "--fail-on", "never"],
        vec!["audit", "--format", "json", "--fail-on", "never"],
        vec!["packet-check", "--duration", "1"],
        vec!["packet-check", "--lab", "--rule", "linger-zero"],
    ];
    let mut seen = Vec::new();
    for args in &runs {
        let out = capless(args);
        let all = text(&out);
        assert!(
            !all.to_lowercase().contains("run as root"),
            "{args:?}:\n{all}"
        );
        assert!(!all.contains("Run it as root"), "{args:?}:\n{all}");
        seen.push(all);
    }
    let _ = other.kill();
    let _ = other.wait();
    // What is missing is named, with why root alone does not help.
    assert!(seen[0].contains("CAP_SYS_PTRACE"), "{}", seen[0]);
    assert!(
        seen[0].contains("runs as root and still lacks"),
        "{}",
        seen[0]
    );
    assert!(seen[2].contains("CAP_NET_RAW"), "{}", seen[2]);
    assert!(seen[3].contains("CAP_SYS_ADMIN"), "{}", seen[3]);
}
