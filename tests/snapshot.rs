//! `rstaudit snapshot`: live namespaces with a real helper process, unprivileged runs,
//! copied trees and saved files.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;

use common::{Netns, require_root, rstaudit};
use rstaudit::host::{Linger, Snapshot, SocketsSource, TcpState};

fn run_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

fn stderr_of_failure(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn namespace_snapshot_reports_the_helpers_sockets_and_options() {
    let ns = Netns::new("snap");
    let helper = ns.helper(&[
        "listen:8001:7",
        "connect:8001",
        "connect:8001",
        "listen:8002:16",
        "linger0:8002",
        "keepalive:8002:33:11:4",
        "user-timeout:8002:5000",
        "linger2:8002:-1",
        "sleep:100",
    ]);
    let out = rstaudit()
        .args(["snapshot", "--netns", &ns.name, "--format", "json"])
        .output()
        .unwrap();
    let snap: Snapshot = serde_json::from_str(&run_ok(&out)).expect("a snapshot");
    assert_eq!(snap.netns.name, ns.name);
    assert!(snap.netns.inode.is_some());
    assert_eq!(snap.sockets_source, SocketsSource::SockDiag);
    assert!(snap.sysctls.contains_key("net.ipv4.tcp_fin_timeout"));
    assert!(snap.counter("Tcp.ActiveOpens").unwrap_or(0) >= 6);
    assert!(
        !snap
            .notes
            .iter()
            .any(|n| n.area == "owners" || n.area == "options"),
        "{:?}",
        snap.notes
    );

    let listener = snap
        .sockets
        .iter()
        .find(|s| s.state == TcpState::Listen && s.local_port == 8001)
        .expect("listener on 8001");
    assert_eq!(listener.backlog, Some(7));
    assert_eq!(listener.accept_queue, Some(2));
    let owner = listener.owner.as_ref().expect("listener owner");
    assert_eq!(owner.pid, helper.pid);
    assert_eq!(&*owner.comm, "sockhelper");

    // The helper's client sockets (the un-accepted server ends have no owner).
    let clients: Vec<_> = snap
        .sockets
        .iter()
        .filter(|s| s.state == TcpState::Established && s.owner.is_some())
        .collect();
    assert_eq!(clients.len(), 6, "{clients:#?}");
    for c in &clients {
        assert_eq!(c.owner.as_ref().unwrap().pid, helper.pid);
        assert!(c.tcp_info.is_some(), "{c:?}");
    }
    let on = |port: u16| clients.iter().filter(move |s| s.remote_port == port);
    let with = |pred: &dyn Fn(&rstaudit::host::SockOptions) -> bool| {
        on(8002)
            .filter(|s| pred(s.options.as_ref().expect("options read")))
            .count()
    };
    assert_eq!(
        with(&|o| o.linger
            == Some(Linger {
                on: true,
                seconds: 0
            })),
        1
    );
    assert_eq!(
        with(&|o| o.keepalive == Some(true)
            && o.keepidle == Some(33)
            && o.keepintvl == Some(11)
            && o.keepcnt == Some(4)),
        1
    );
    assert_eq!(with(&|o| o.user_timeout == Some(5000)), 1);
    assert_eq!(with(&|o| o.linger2 == Some(-1)), 1);
    // The plain connections carry no option.
    for c in on(8001) {
        let o = c.options.as_ref().expect("options read");
        assert_eq!(o.linger.map(|l| l.on), Some(false));
        assert_eq!(o.keepalive, Some(false));
        assert_eq!(o.user_timeout, Some(0));
        assert_ne!(o.linger2, Some(-1));
    }
    assert_eq!(on(8001).count(), 2);
}

#[test]
fn a_namespace_is_found_by_process_path() {
    let ns = Netns::new("path");
    let helper = ns.helper(&["listen:8003:3"]);
    let path = format!("/proc/{}/ns/net", helper.pid);
    let out = rstaudit()
        .args(["snapshot", "--netns", &path])
        .output()
        .unwrap();
    let snap: Snapshot = serde_json::from_str(&run_ok(&out)).unwrap();
    assert_eq!(snap.netns.name, path);
    let listener = snap
        .sockets
        .iter()
        .find(|s| s.local_port == 8003)
        .expect("the helper's listener");
    assert_eq!(listener.backlog, Some(3));
    assert_eq!(listener.owner.as_ref().map(|o| o.pid), Some(helper.pid));
    // Only the namespace's own sockets: the host's are not there.
    assert!(snap.sockets.iter().all(|s| s.local_addr.is_loopback()));
}

#[test]
fn unprivileged_snapshot_exits_0_and_says_what_it_could_not_read() {
    require_root();
    let out = rstaudit()
        .uid(65534)
        .gid(65534)
        .args(["snapshot", "--format", "json"])
        .output()
        .unwrap();
    let snap: Snapshot = serde_json::from_str(&run_ok(&out)).expect("a snapshot");
    assert!(snap.sysctls.contains_key("net.core.somaxconn"));
    assert!(snap.counters.first.is_some());
    assert_eq!(snap.sockets_source, SocketsSource::SockDiag);
    assert!(
        snap.notes
            .iter()
            .any(|n| n.area == "owners" && n.message.contains("permission denied")),
        "{:?}",
        snap.notes
    );
}

#[test]
fn unprivileged_snapshot_of_a_namespace_exits_2() {
    let ns = Netns::new("unpriv");
    let out = rstaudit()
        .uid(65534)
        .gid(65534)
        .args(["snapshot", "--netns", &ns.name])
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(stderr.contains("CAP_SYS_ADMIN"), "{stderr}");
    assert!(stderr.contains(&ns.name), "{stderr}");
}

#[test]
fn all_namespaces_are_listed_with_names() {
    let ns = Netns::new("all");
    let out = rstaudit()
        .args(["snapshot", "--netns", "all"])
        .output()
        .unwrap();
    let snaps: Vec<Snapshot> = serde_json::from_str(&run_ok(&out)).expect("a list");
    assert_eq!(snaps[0].netns.name, "host");
    let ours = snaps
        .iter()
        .find(|s| s.netns.name == ns.name)
        .expect("our namespace");
    assert!(ours.netns.inode.is_some());
    // Saved and read back, the list stays a list (also in YAML).
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("all.json");
    std::fs::write(&saved, &out.stdout).unwrap();
    let again = rstaudit()
        .args(["snapshot", "--format", "yaml", "--snapshot"])
        .arg(&saved)
        .output()
        .unwrap();
    let again: Vec<Snapshot> = serde_yaml::from_str(&run_ok(&again)).expect("a list");
    assert_eq!(again, snaps);
    let mut inodes: Vec<_> = snaps.iter().map(|s| s.netns.inode).collect();
    inodes.sort();
    inodes.dedup();
    assert_eq!(inodes.len(), snaps.len(), "namespaces listed twice");
}

#[test]
fn interval_takes_two_samples() {
    let out = rstaudit()
        .args(["snapshot", "--interval", "0.3"])
        .output()
        .unwrap();
    let snap: Snapshot = serde_json::from_str(&run_ok(&out)).unwrap();
    let (a, b) = (
        snap.counters.first.as_ref().unwrap(),
        snap.counters.second.as_ref().unwrap(),
    );
    assert!(b.at_ms >= a.at_ms + 300, "{} -> {}", a.at_ms, b.at_ms);
    assert!(snap.counter_delta("Tcp.InSegs").is_some());
    let out = rstaudit()
        .args(["snapshot", "--interval=0"])
        .output()
        .unwrap();
    assert!(stderr_of_failure(&out).contains("--interval"));
}

#[test]
fn saved_snapshots_round_trip_through_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("host.yaml");
    run_ok(
        &rstaudit()
            .args(["snapshot", "--format", "yaml", "-o"])
            .arg(&yaml)
            .output()
            .unwrap(),
    );
    let from_yaml: Snapshot = serde_json::from_str(&run_ok(
        &rstaudit()
            .arg("snapshot")
            .arg("--snapshot")
            .arg(&yaml)
            .output()
            .unwrap(),
    ))
    .unwrap();
    let direct: Snapshot = serde_yaml::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    assert_eq!(from_yaml, direct);
}

#[test]
fn a_file_that_is_not_a_snapshot_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some words\n").unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--snapshot")
        .arg(&text)
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(stderr.contains(&text.display().to_string()), "{stderr}");

    let json = dir.path().join("other.json");
    std::fs::write(&json, "{\n  \"schema\": 1,\n  \"hosts\": []\n}\n").unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--snapshot")
        .arg(&json)
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(
        stderr.contains(&format!("{}:3:", json.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hosts"), "{stderr}");

    let yaml = dir.path().join("other.yaml");
    std::fs::write(&yaml, "schema: 1\nkernel: [1, 2]\n").unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--snapshot")
        .arg(&yaml)
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(
        stderr.contains(&format!("{}:2:", yaml.display())),
        "{stderr}"
    );

    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, "{\"schema\": 7}").unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--snapshot")
        .arg(&newer)
        .output()
        .unwrap();
    assert!(stderr_of_failure(&out).contains("schema 7"));
}

/// A copied tree from the captured kernel text under src/host/testdata.
fn copied_tree(dir: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/host/testdata");
    let net = dir.join("proc/net");
    std::fs::create_dir_all(&net).unwrap();
    for (from, to) in [
        ("netstat-6.18.txt", "netstat"),
        ("snmp-6.18.txt", "snmp"),
        ("snmp6-6.18.txt", "snmp6"),
        ("tcp-6.18.txt", "tcp"),
    ] {
        std::fs::copy(data.join(from), net.join(to)).unwrap();
    }
    let ipv4 = dir.join("proc/sys/net/ipv4");
    std::fs::create_dir_all(&ipv4).unwrap();
    std::fs::write(ipv4.join("tcp_fin_timeout"), "60\n").unwrap();
    let kernel = dir.join("proc/sys/kernel");
    std::fs::create_dir_all(&kernel).unwrap();
    std::fs::write(kernel.join("osrelease"), "6.18.44-fc-v445\n").unwrap();
}

#[test]
fn a_copied_tree_is_read_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    // Links pointing out of the tree are refused, not followed.
    std::os::unix::fs::symlink("/proc/net/tcp6", dir.path().join("proc/net/tcp6")).unwrap();
    std::os::unix::fs::symlink("/proc/sys/net/core", dir.path().join("proc/sys/net/core")).unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--root")
        .arg(dir.path())
        .output()
        .unwrap();
    let snap: Snapshot = serde_json::from_str(&run_ok(&out)).unwrap();
    assert_eq!(snap.kernel.release, "6.18.44-fc-v445");
    assert_eq!(snap.sockets_source, SocketsSource::ProcNet);
    assert_eq!(snap.sockets.len(), 15);
    assert_eq!(snap.sysctls.len(), 1, "{:?}", snap.sysctls);
    assert_eq!(snap.counter("TcpExt.ListenOverflows"), Some(18));
    let links: Vec<_> = snap
        .notes
        .iter()
        .filter(|n| n.message.contains("symbolic link"))
        .collect();
    assert_eq!(links.len(), 2, "{:?}", snap.notes);
    assert!(
        snap.notes
            .iter()
            .any(|n| n.area == "sockets" && n.message.contains("backlog")),
        "{:?}",
        snap.notes
    );
}

#[test]
fn a_copied_tree_with_a_garbled_netstat_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    let netstat = dir.path().join("proc/net/netstat");
    let text = std::fs::read_to_string(&netstat).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replacen(" 0", " 0x1f", 1);
    std::fs::write(&netstat, lines.join("\n")).unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--root")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(
        stderr.contains(&format!("{}:4:", netstat.display())),
        "{stderr}"
    );

    // Cut short: names without values.
    std::fs::write(&netstat, text.lines().next().unwrap()).unwrap();
    let out = rstaudit()
        .arg("snapshot")
        .arg("--root")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&out);
    assert!(
        stderr.contains(&format!("{}:1:", netstat.display())),
        "{stderr}"
    );
}
