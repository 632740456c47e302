//! Owners and socket options of a live namespace: read in the kernel by the BPF socket
//! iterator and in one pass over /proc/*/fd, the two giving the same answer; the iterator's
//! fallback where it cannot be used (not root, a pid namespace of our own); and, as an
//! unprivileged user, its own processes' sockets get their owner and options while the other
//! processes are named in the notes.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{Netns, sockhelper_path};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

#[test]
fn unprivileged_snapshot_reads_the_options_of_its_own_processes() {
    let ns = Netns::new("own");
    let mut helper = ns
        .command("setpriv")
        .args(NOBODY)
        .arg(sockhelper_path())
        .args(["listen:5000:16", "keepalive:5000:33:7:4", "sleep:100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting sockhelper as nobody");
    let mut line = String::new();
    BufReader::new(helper.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("sockhelper said {line:?}"));
    let out = ns
        .command("setpriv")
        .args(NOBODY)
        .arg(env!("CARGO_BIN_EXE_rstaudit"))
        .arg("snapshot")
        .env("RSTAUDIT_CONFIG", "")
        .output()
        .unwrap();
    helper.kill().ok();
    helper.wait().ok();
    let all = common::text(&out);
    assert!(out.status.success(), "{all}");
    let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let sockets = snapshot["sockets"].as_array().unwrap();
    let ours: Vec<_> = sockets
        .iter()
        .filter(|s| s["owner"]["pid"] == pid)
        .collect();
    // The listener and the client end (the listener never accepts: the server end waits
    // in its queue, held by no process).
    assert_eq!(ours.len(), 2, "{all}");
    let notes = snapshot["notes"].to_string();
    // Root's processes (at least pid 1) may not be looked at: said, not hidden.
    assert!(
        notes.contains("permission denied reading /proc/PID/fd"),
        "{notes}"
    );
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".to_string());
    if yama == "0" {
        // A process of the same user may be duplicated from: every option is read.
        let client = ours
            .iter()
            .find(|s| s["options"]["keepalive"] == true)
            .unwrap_or_else(|| panic!("no socket with keepalive read: {all}"));
        assert_eq!(client["options"]["keepidle"], 33, "{client}");
        assert_eq!(client["options"]["keepintvl"], 7, "{client}");
        assert_eq!(client["options"]["keepcnt"], 4, "{client}");
        // A socket without keepalive still shows the values the kernel holds for it.
        for s in &ours {
            for key in [
                "linger",
                "keepalive",
                "keepidle",
                "keepintvl",
                "keepcnt",
                "linger2",
            ] {
                assert!(!s["options"][key].is_null(), "{key} missing: {s}");
            }
        }
        assert!(!notes.contains("duplicating sockets"), "{notes}");
    } else {
        // Yama allows only descendants: the owner is known, the options are not, and the
        // note names the helper.
        assert!(ours.iter().all(|s| s["options"].is_null()), "{all}");
        assert!(
            notes.contains("permission denied duplicating sockets")
                && notes.contains(&format!("{pid} (sockhelper)")),
            "{notes}"
        );
    }
}

/// `snapshot --owner-scan HOW` in `ns`, as JSON; `prefix` runs it under another command.
fn snapshot_with(ns: &Netns, prefix: &[&str], how: &str) -> (std::process::Output, String) {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = ns.command(first);
            c.args(rest).arg(env!("CARGO_BIN_EXE_rstaudit"));
            c
        }
        None => ns.command(env!("CARGO_BIN_EXE_rstaudit")),
    };
    let out = cmd
        .args(["snapshot", "--owner-scan", how])
        .env("RSTAUDIT_CONFIG", "")
        .output()
        .unwrap();
    let all = common::text(&out);
    (out, all)
}

/// The sockets of `pid`, by local and remote port: (state, fd, options).
fn held_by(snapshot: &serde_json::Value, pid: u32) -> Vec<(String, serde_json::Value)> {
    let mut held: Vec<(String, serde_json::Value)> = snapshot["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["owner"]["pid"] == pid)
        .map(|s| {
            (
                format!("{} {}->{}", s["state"], s["local_port"], s["remote_port"]),
                serde_json::json!({ "owner": s["owner"], "options": s["options"] }),
            )
        })
        .collect();
    held.sort_by(|a, b| a.0.cmp(&b.0));
    held
}

/// The kernel's iterator and the /proc pass agree on every socket's owner and every option,
/// set or not, and the defaults come from the socket's own namespace (whose keepalive and
/// FIN_WAIT2 sysctls differ from the host's here).
#[test]
fn the_kernel_iterator_reads_what_getsockopt_reads() {
    common::require_root();
    let ns = Netns::with_sysctls(
        "bpfscan",
        &[
            ("net.ipv4.tcp_keepalive_time", "611"),
            ("net.ipv4.tcp_keepalive_intvl", "17"),
            ("net.ipv4.tcp_keepalive_probes", "6"),
            ("net.ipv4.tcp_fin_timeout", "41"),
        ],
    );
    let helper = ns.helper(&[
        "listen:5000:16",
        "linger0:5000",
        "keepalive:5000:33:7:4",
        "user-timeout:5000:2500",
        "linger2:5000:-1",
        "linger2:5000:20",
        "connect:5000",
        "sleep:100",
    ]);
    let (bpf, bpf_all) = snapshot_with(&ns, &[], "bpf");
    assert!(bpf.status.success(), "{bpf_all}");
    let (proc, proc_all) = snapshot_with(&ns, &[], "proc");
    assert!(proc.status.success(), "{proc_all}");
    let bpf: serde_json::Value = serde_json::from_slice(&bpf.stdout).expect("JSON");
    let proc: serde_json::Value = serde_json::from_slice(&proc.stdout).expect("JSON");
    let (by_kernel, by_proc) = (held_by(&bpf, helper.pid), held_by(&proc, helper.pid));
    // The listener and six client ends (the listener never accepts).
    assert_eq!(by_kernel.len(), 7, "{bpf_all}");
    assert_eq!(by_kernel, by_proc);
    let options = |what: &str| {
        by_kernel
            .iter()
            .map(|(_, v)| &v["options"])
            .find(|o| {
                o[what] != serde_json::Value::Null
                    && match what {
                        "linger" => o["linger"]["on"] == true,
                        "keepalive" => o["keepalive"] == true,
                        "user_timeout" => o["user_timeout"] != 0,
                        _ => true,
                    }
            })
            .cloned()
            .unwrap_or_else(|| panic!("no socket with {what}: {bpf_all}"))
    };
    assert_eq!(
        options("linger")["linger"],
        serde_json::json!({"on": true, "seconds": 0})
    );
    let keepalive = options("keepalive");
    assert_eq!(
        (
            &keepalive["keepidle"],
            &keepalive["keepintvl"],
            &keepalive["keepcnt"]
        ),
        (&33.into(), &7.into(), &4.into())
    );
    assert_eq!(options("user_timeout")["user_timeout"], 2500);
    let linger2: Vec<i64> = by_kernel
        .iter()
        .filter_map(|(_, v)| v["options"]["linger2"].as_i64())
        .collect();
    assert!(
        linger2.contains(&-1) && linger2.contains(&20),
        "{linger2:?}"
    );
    // A socket that set nothing shows its namespace's values.
    assert!(
        by_kernel
            .iter()
            .any(|(_, v)| v["options"]["keepidle"] == 611
                && v["options"]["keepintvl"] == 17
                && v["options"]["keepcnt"] == 6
                && v["options"]["linger2"] == 41),
        "{bpf_all}"
    );
    // Nothing was missing, so nothing is said about how it was read.
    let notes = bpf["notes"].to_string();
    assert!(!notes.contains("\"scan\""), "{notes}");
    drop(helper);
}

/// Where the iterator cannot be used, `auto` reads /proc and says why, and `bpf` refuses with
/// the reason: in a pid namespace of its own (the iterator would name processes by pids
/// outside it), and as a user without CAP_BPF and CAP_PERFMON.
#[test]
fn without_the_kernel_iterator_the_scan_falls_back_and_says_why() {
    common::require_root();
    let ns = Netns::new("bpfback");
    let helper = ns.helper(&["listen:5000:16", "keepalive:5000:33:7:4", "sleep:100"]);
    for (prefix, why) in [
        (
            &["unshare", "--pid", "--fork", "--mount-proc"][..],
            "pid namespace of its own",
        ),
        (
            &["setpriv", NOBODY[0], NOBODY[1], NOBODY[2]][..],
            "needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; run as root for them",
        ),
    ] {
        let (auto, all) = snapshot_with(&ns, prefix, "auto");
        assert!(auto.status.success(), "{all}");
        let snapshot: serde_json::Value = serde_json::from_slice(&auto.stdout).expect("JSON");
        let notes = snapshot["notes"].as_array().unwrap();
        let scan: Vec<_> = notes.iter().filter(|n| n["area"] == "scan").collect();
        assert_eq!(scan.len(), 1, "{all}");
        let message = scan[0]["message"].as_str().unwrap();
        assert!(
            message.contains("read from /proc/*/fd") && message.contains(why),
            "{message}"
        );
        let (forced, all) = snapshot_with(&ns, prefix, "bpf");
        common::refused(&forced, &["--owner-scan bpf", why]);
        assert!(forced.stdout.is_empty(), "{all}");
    }
    drop(helper);
}

/// The audit judges each socket as the table is dumped, joined on the way to what the kernel's
/// iterator read, and never holds the table. It must say exactly what it says of the same
/// table read whole: saved by `snapshot` and audited from the file, or read with the /proc
/// pass (which needs the whole table). Sockets with SO_LINGER 0, a negative TCP_LINGER2 and
/// a short TCP_USER_TIMEOUT make socket findings that name the helper.
#[test]
fn the_audit_of_sockets_as_they_are_read_is_the_audit_of_the_table() {
    common::require_root();
    let ns = Netns::new("stream");
    let helper = ns.helper(&[
        "listen:5000:16",
        "linger0:5000",
        "linger0:5000",
        "keepalive:5000:33:7:4",
        "user-timeout:5000:2500",
        "linger2:5000:-1",
        "connect:5000",
        "sleep:100",
    ]);
    let audit = |args: &[&str]| {
        let out = ns
            .command(env!("CARGO_BIN_EXE_rstaudit"))
            .args(["audit", "--format", "json", "--fail-on", "never"])
            .args(args)
            .env("RSTAUDIT_CONFIG", "")
            .output()
            .unwrap();
        let all = common::text(&out);
        assert!(out.status.success(), "{all}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let ns = &report["namespaces"][0];
        (
            serde_json::json!({
                "findings": ns["findings"],
                "not_applicable": ns["not_applicable"],
                "not_checked": ns["not_checked"],
                "passed": ns["passed"],
            }),
            all,
        )
    };
    let (streamed, streamed_all) = audit(&["--owner-scan", "bpf"]);
    let (snap, snap_all) = snapshot_with(&ns, &[], "bpf");
    assert!(snap.status.success(), "{snap_all}");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("snapshot.json");
    std::fs::write(&saved, &snap.stdout).unwrap();
    let (from_file, from_file_all) = audit(&["--snapshot", saved.to_str().unwrap()]);
    let (by_proc, by_proc_all) = audit(&["--owner-scan", "proc"]);
    assert_eq!(streamed, from_file, "{streamed_all}\n{from_file_all}");
    assert_eq!(streamed, by_proc, "{streamed_all}\n{by_proc_all}");
    // The owners were joined on the way: the socket findings name the helper.
    let findings = streamed["findings"].as_array().unwrap();
    for rule in ["linger-zero", "linger2-negative"] {
        let f = findings
            .iter()
            .find(|f| f["rule"] == rule)
            .unwrap_or_else(|| panic!("no {rule} finding: {streamed_all}"));
        assert_eq!(f["process"]["pid"], helper.pid, "{f}");
    }
    let linger0 = findings
        .iter()
        .find(|f| f["rule"] == "linger-zero")
        .unwrap();
    assert_eq!(linger0["count"], 2, "{linger0}");
}
