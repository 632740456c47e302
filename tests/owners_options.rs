//! Owners and socket options of a live namespace, read in one pass over /proc/*/fd, as an
//! unprivileged user: its own processes' sockets get their owner and options, the other
//! processes are named in the notes.

mod common;

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
