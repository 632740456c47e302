//! Running without root (uid/gid 65534, no capabilities): every command either reports what
//! it could read, or stops before doing anything with a message naming the capability.
//! docs/reliability.md has the capability table these tests pin.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Output;

use common::{Netns, require_root, rstaudit, text};

fn nobody(args: &[&str]) -> Output {
    require_root();
    rstaudit()
        .uid(65534)
        .gid(65534)
        .args(args)
        .output()
        .expect("running rstaudit")
}

fn refused(out: &Output, needles: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?}: {all}");
    }
}

#[test]
fn unprivileged_audit_reports_what_it_can_read() {
    let out = nobody(&["audit", "--format", "json", "--fail-on", "never"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let s = report.to_string();
    assert!(
        s.contains("permission denied"),
        "the owners note is missing: {all}"
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
