//! What the collectors say about the kernel and the namespace they run in: the name of
//! a namespace entered with `ip netns exec`, no kernel log lines from reading deprecated
//! sysctls, and the real patch level of a kernel whose release hides it (Debian).

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{Netns, require_root};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "exit {:?}; stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn under_ip_netns_exec_the_namespace_is_named_not_called_host() {
    require_root();
    let ns = Netns::new("named");
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino();
    let bin = env!("CARGO_BIN_EXE_rstaudit");

    let snap = json(
        &ns.command(bin)
            .args(["snapshot", "--format", "json"])
            .output()
            .unwrap(),
    );
    let snap = if snap.is_array() { &snap[0] } else { &snap };
    assert_eq!(snap["netns"]["name"], ns.name.as_str(), "{}", snap["netns"]);
    assert_eq!(snap["netns"]["inode"], inode);

    let out = ns
        .command(bin)
        .args(["audit", "--format", "json"])
        .output()
        .unwrap();
    let report = json(&out);
    assert_eq!(report["namespaces"][0]["netns"], ns.name.as_str());
    let table = ns.command(bin).arg("audit").output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("network namespace {} ", ns.name)),
        "{text}"
    );

    // `--netns all` from inside names the caller's own namespace the same way, once.
    let all = json(
        &ns.command(bin)
            .args(["snapshot", "--format", "json", "--netns", "all"])
            .output()
            .unwrap(),
    );
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["netns"]["inode"] == inode)
        .map(|s| s["netns"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [ns.name.as_str()]);

    // In the initial namespace (that of PID 1) it is still "host".
    // PID 1 may refuse inspection even to root; kthreadd (PID 2) runs in the initial one too.
    let initial = std::fs::metadata("/proc/1/ns/net")
        .or_else(|_| std::fs::metadata("/proc/2/ns/net"))
        .unwrap()
        .ino();
    let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    assert_eq!(own, initial, "the tests run in the initial namespace");
    let snap = json(
        &common::rstaudit()
            .args(["snapshot", "--format", "json"])
            .output()
            .unwrap(),
    );
    let snap = if snap.is_array() { &snap[0] } else { &snap };
    assert_eq!(snap["netns"]["name"], "host");
}

#[test]
fn an_unnamed_namespace_is_named_by_its_inode() {
    require_root();
    // `unshare --net` makes a namespace no /run/netns entry names.
    let out = Command::new("unshare")
        .args(["--net", "--", env!("CARGO_BIN_EXE_rstaudit")])
        .args(["snapshot", "--format", "json"])
        .output()
        .expect("unshare (util-linux)");
    let snap = json(&out);
    let snap = if snap.is_array() { &snap[0] } else { &snap };
    let inode = snap["netns"]["inode"].as_u64().unwrap();
    assert_eq!(snap["netns"]["name"], format!("net:[{inode}]").as_str());
}

/// Kernel log lines that mention `word`.
fn kernel_log_lines(word: &str) -> Vec<String> {
    let out = Command::new("dmesg").output().expect("dmesg");
    assert!(
        out.status.success(),
        "dmesg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(word))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_audit_reads_no_deprecated_sysctl_and_adds_no_kernel_log_line() {
    require_root();
    // The snapshot has the _ms twins and never the deprecated keys, whose reading the kernel
    // logs ("process `rstaudit' is using deprecated sysctl (syscall) net.ipv6.neigh...").
    let snap = json(
        &common::rstaudit()
            .args(["snapshot", "--format", "json"])
            .output()
            .unwrap(),
    );
    let snap = if snap.is_array() { &snap[0] } else { &snap };
    let keys: Vec<&String> = snap["sysctls"].as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .any(|k| k.as_str() == "net.ipv6.neigh.default.base_reachable_time_ms"),
        "the _ms twin is read"
    );
    let deprecated: Vec<&&String> = keys
        .iter()
        .filter(|k| k.ends_with(".base_reachable_time") || k.ends_with(".retrans_time"))
        .collect();
    assert!(deprecated.is_empty(), "{deprecated:?}");

    // And the kernel log gains no line about the process. The kernel warns once per
    // process name in a row, so the binary runs under a name of its own (a symlink).
    let dir = tempfile::tempdir().unwrap();
    let comm = format!("rsk{}", std::process::id() % 1_000_000);
    let link = dir.path().join(&comm);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rstaudit"), &link).unwrap();
    let before = kernel_log_lines(&comm);
    let ns = Netns::new("kmsg");
    for args in [
        &["audit"][..],
        &["snapshot", "-o", "/dev/null"],
        &["audit", "--netns", &ns.name],
    ] {
        let out = Command::new(&link).args(args).output().unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{args:?}");
    }
    let after = kernel_log_lines(&comm);
    assert_eq!(before, after, "new kernel log lines from {comm}");
}

#[test]
fn a_debian_release_is_checked_with_its_real_patch_level_and_shows_both() {
    let tree = tempfile::tempdir().unwrap();
    let proc = tree.path().join("proc");
    std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
    std::fs::create_dir_all(proc.join("sys/net/ipv4")).unwrap();
    std::fs::write(proc.join("sys/kernel/osrelease"), "6.1.0-57-cloud-amd64\n").unwrap();
    std::fs::write(
        proc.join("version"),
        "Linux version 6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian \
         12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP \
         PREEMPT_DYNAMIC Debian 6.1.192-1 (2025-10-20)\n",
    )
    .unwrap();
    std::fs::write(proc.join("sys/net/ipv4/tcp_abort_on_overflow"), "1\n").unwrap();

    // Two rules on the same setting, one for kernels from 6.1.100 on and one for before.
    let rules = tempfile::tempdir().unwrap();
    for (id, range) in [
        ("late-6-1", ">=6.1.100, <6.2"),
        ("early-6-1", ">=6.1, <6.1.100"),
    ] {
        std::fs::write(
            rules.path().join(format!("{id}.yaml")),
            format!(
                "id: {id}\ntitle: A rule for some 6.1 kernels\nseverity: high\ncause: 2b\n\
                 subject: host\napplies:\n  kernel: \"{range}\"\n  requires: [net.ipv4.tcp_abort_on_overflow]\n\
                 when:\n  sysctl: net.ipv4.tcp_abort_on_overflow\n  eq: 1\n\
                 message: abort on overflow is on\nfix:\n  advice: Turn it off.\n\
                 explanation: |\n  A test rule.\n"
            ),
        )
        .unwrap();
    }
    let root = tree.path().to_str().unwrap();
    let rules_dir = rules.path().to_str().unwrap();
    let out = common::rstaudit()
        .args(["audit", "--root", root, "--rules", rules_dir])
        .args(["--only", "late-6-1,early-6-1", "--format", "json"])
        .output()
        .unwrap();
    let report = json(&out);
    let ns = &report["namespaces"][0];
    assert_eq!(ns["kernel"], "6.1.0-57-cloud-amd64 (6.1.192)", "{ns}");
    let fired: Vec<&str> = ns["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(fired, ["late-6-1"], "{ns}");
    let skipped = ns["not_applicable"].to_string();
    assert!(
        skipped.contains("early-6-1")
            && skipped.contains("kernel 6.1.0-57-cloud-amd64 (6.1.192) is outside >=6.1, <6.1.100"),
        "{skipped}"
    );

    let out = common::rstaudit()
        .args(["snapshot", "--root", root, "--format", "json"])
        .output()
        .unwrap();
    let snap = json(&out);
    let snap = if snap.is_array() { &snap[0] } else { &snap };
    assert_eq!(snap["kernel"]["release"], "6.1.0-57-cloud-amd64");
    assert_eq!(
        snap["kernel"]["version"],
        serde_json::json!({"major": 6, "minor": 1, "patch": 192})
    );
}
