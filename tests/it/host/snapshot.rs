//! `rstaudit snapshot`: live namespaces with a real helper process, unprivileged runs,
//! copied trees and saved files.

use crate::common;

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Netns, require_root, rstaudit};
use rstaudit::host::{Linger, Snapshot, SocketsSource, TcpState};

#[track_caller]
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

#[track_caller]
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

/// `rstaudit snapshot ARGS`.
fn snapshot(args: &[impl AsRef<OsStr>]) -> Output {
    rstaudit().arg("snapshot").args(args).output().unwrap()
}

/// `rstaudit snapshot --snapshot FILE`: read back a saved snapshot.
fn snapshot_of_file(file: &Path) -> Output {
    snapshot(&[OsStr::new("--snapshot"), file.as_os_str()])
}

/// `rstaudit snapshot --root DIR`: read a copied tree.
fn snapshot_of_root(dir: &Path) -> Output {
    snapshot(&[OsStr::new("--root"), dir.as_os_str()])
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
    let out = snapshot(&["--netns", &ns.name, "--format", "json"]);
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
    let out = snapshot(&["--netns", &path]);
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
    let out = snapshot(&["--netns", "all"]);
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
    let again = snapshot(&["--format", "yaml", "--snapshot", saved.to_str().unwrap()]);
    let again: Vec<Snapshot> = serde_yaml::from_str(&run_ok(&again)).expect("a list");
    assert_eq!(again, snaps);
    let mut inodes: Vec<_> = snaps.iter().map(|s| s.netns.inode).collect();
    inodes.sort();
    inodes.dedup();
    assert_eq!(inodes.len(), snaps.len(), "namespaces listed twice");
}

#[test]
fn interval_takes_two_samples() {
    let out = snapshot(&["--interval", "0.3"]);
    let snap: Snapshot = serde_json::from_str(&run_ok(&out)).unwrap();
    let (a, b) = (
        snap.counters.first.as_ref().unwrap(),
        snap.counters.second.as_ref().unwrap(),
    );
    assert!(b.at_ms >= a.at_ms + 300, "{} -> {}", a.at_ms, b.at_ms);
    assert!(snap.counter_delta("Tcp.InSegs").is_some());
    let out = snapshot(&["--interval=0"]);
    assert!(stderr_of_failure(&out).contains("--interval"));
}

#[test]
fn saved_snapshots_round_trip_through_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("host.yaml");
    run_ok(&snapshot(&[
        "--format",
        "yaml",
        "-o",
        yaml.to_str().unwrap(),
    ]));
    let from_yaml: Snapshot = serde_json::from_str(&run_ok(&snapshot_of_file(&yaml))).unwrap();
    let direct: Snapshot = serde_yaml::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    assert_eq!(from_yaml, direct);
}

#[test]
fn a_file_that_is_not_a_snapshot_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::write_file(dir.path(), "notes.txt", "just some words\n");
    let stderr = stderr_of_failure(&snapshot_of_file(&text));
    assert!(stderr.contains(&text.display().to_string()), "{stderr}");

    let json = common::write_file(
        dir.path(),
        "other.json",
        "{\n  \"schema\": 1,\n  \"hosts\": []\n}\n",
    );
    let stderr = stderr_of_failure(&snapshot_of_file(&json));
    assert!(
        stderr.contains(&format!("{}:3:", json.display())),
        "{stderr}"
    );
    assert!(stderr.contains("hosts"), "{stderr}");

    let yaml = common::write_file(dir.path(), "other.yaml", "schema: 1\nkernel: [1, 2]\n");
    let stderr = stderr_of_failure(&snapshot_of_file(&yaml));
    assert!(
        stderr.contains(&format!("{}:2:", yaml.display())),
        "{stderr}"
    );

    let newer = common::write_file(dir.path(), "newer.json", "{\"schema\": 7}");
    assert!(stderr_of_failure(&snapshot_of_file(&newer)).contains("schema 7"));
}

/// A copied tree from the captured kernel text under src/host/testdata.
fn copied_tree(dir: &Path) {
    common::copied_proc_tree(dir, &["netstat", "snmp", "snmp6", "tcp"], "6.18.44-fc-v445");
}

#[test]
fn a_copied_tree_is_read_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    // Links pointing out of the tree are refused, not followed.
    std::os::unix::fs::symlink("/proc/net/tcp6", dir.path().join("proc/net/tcp6")).unwrap();
    std::os::unix::fs::symlink("/proc/sys/net/core", dir.path().join("proc/sys/net/core")).unwrap();
    let out = snapshot_of_root(dir.path());
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
    let out = snapshot_of_root(dir.path());
    let stderr = stderr_of_failure(&out);
    assert!(
        stderr.contains(&format!("{}:4:", netstat.display())),
        "{stderr}"
    );

    // Cut short: names without values.
    std::fs::write(&netstat, text.lines().next().unwrap()).unwrap();
    let out = snapshot_of_root(dir.path());
    let stderr = stderr_of_failure(&out);
    assert!(
        stderr.contains(&format!("{}:1:", netstat.display())),
        "{stderr}"
    );
}

/// A network namespace kept alive only by a bind mount outside /run/netns (as container
/// runtimes keep theirs), unmounted on drop; the directory holding the mount point goes after.
struct MountedNetns {
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl MountedNetns {
    fn new() -> Self {
        common::require_root();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("held ns");
        std::fs::write(&file, "").unwrap();
        let out = std::process::Command::new("unshare")
            .arg(format!("--net={}", file.display()))
            .arg("true")
            .output()
            .expect("unshare (util-linux)");
        assert!(out.status.success(), "{}", common::text(&out));
        Self { file, _dir: dir }
    }
}

impl Drop for MountedNetns {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.file, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_namespace_held_only_by_a_bind_mount_is_found_by_all() {
    let held = MountedNetns::new();
    let name = held.file.display().to_string();
    let out = snapshot(&["--netns", "all"]);
    let snaps: Vec<Snapshot> = serde_json::from_str(&run_ok(&out)).expect("a list");
    let found = snaps
        .iter()
        .find(|s| s.netns.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = snaps.iter().map(|s| &s.netns.name).collect();
            panic!("{name:?} not among {names:?}")
        });
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&held.file).unwrap());
    assert_eq!(found.netns.inode, Some(inode));
    // Its own (empty) socket table, not the host's.
    assert!(found.sockets.is_empty(), "{:?}", found.sockets.first());
}

/// Run with a deadline, killing the process if it hangs (a FIFO given as a namespace used
/// to block the open forever).
fn output_within(cmd: &mut std::process::Command, limit: std::time::Duration) -> Output {
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// `--netns PATH` naming something other than a network namespace: a FIFO, an ordinary file,
/// a namespace of another kind. Exit 2 at once, saying so, for `snapshot` and `audit`.
#[test]
fn a_netns_path_that_is_not_a_network_namespace_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let plain = common::write_file(dir.path(), "hostname", "host\n");
    let mut cases = vec![
        (fifo.clone(), "a FIFO, device or socket, not a namespace"),
        (plain, "an ordinary file, not a namespace"),
        (
            PathBuf::from("/proc/self/ns/mnt"),
            "a namespace of another kind",
        ),
    ];
    if Path::new("/etc/hostname").is_file() {
        cases.push((
            PathBuf::from("/etc/hostname"),
            "an ordinary file, not a namespace",
        ));
    }
    for (path, what) in cases {
        for command in ["snapshot", "audit"] {
            let out = output_within(
                rstaudit().args([command, "--netns"]).arg(&path),
                std::time::Duration::from_secs(5),
            );
            let stderr = stderr_of_failure(&out);
            let expected = format!(
                "--netns {}: not a network namespace file ({what}",
                path.display()
            );
            assert!(stderr.contains(&expected), "{command}: {stderr}");
        }
    }
}

/// Process names and sysctl values are not the tool's to choose: a saved snapshot whose
/// strings are full of brackets and quotes (a process named `[[[[`, 15 bytes like the kernel
/// allows, on 100 sockets) loads back in JSON and in YAML; the nesting guard counts only
/// real brackets.
#[test]
fn brackets_and_quotes_in_saved_strings_do_not_make_a_snapshot_unreadable() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem-host.json");
    let mut snap: Snapshot =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let names = [
        "[[[[[[[[[[[[[[[",
        "{{{{'{{{{\"{{{{",
        "it's [[[\"[[[",
        "\\[[[[\\\\[[[[",
    ];
    let socket = snap.sockets[0].clone();
    snap.sockets = (0..100u32)
        .map(|i| {
            let mut s = socket.clone();
            s.local_port = 1000 + i as u16;
            s.owner.as_mut().unwrap().comm = names[i as usize % names.len()].into();
            s
        })
        .collect();
    snap.sysctls.insert(
        "net.ipv4.tcp_congestion_control".to_string(),
        "[".repeat(100),
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("s.json", serde_json::to_string_pretty(&snap).unwrap()),
        ("s.yaml", serde_yaml::to_string(&snap).unwrap()),
    ] {
        let path = common::write_file(dir.path(), name, &body);
        let back: Snapshot = serde_json::from_str(&run_ok(&snapshot_of_file(&path))).unwrap();
        assert_eq!(back, snap, "{name}");
    }
}

/// One snapshot is written as its sockets are read (the table is never held): the text must
/// be exactly what serde writes for the snapshot it holds, in both formats, with owners and
/// options joined on the way.
#[test]
fn a_snapshot_written_as_its_sockets_are_read_is_what_serde_writes() {
    require_root();
    let ns = Netns::new("snapstream");
    let helper = ns.helper(&["listen:8003:7", "linger0:8003", "connect:8003", "sleep:100"]);
    for format in ["json", "yaml"] {
        let out = ns
            .command(env!("CARGO_BIN_EXE_rstaudit"))
            .args(["snapshot", "--owner-scan", "bpf", "--format", format])
            .env("RSTAUDIT_CONFIG", "")
            .output()
            .unwrap();
        let text = run_ok(&out);
        let (snap, again): (Snapshot, String) = if format == "json" {
            let snap: Snapshot = serde_json::from_str(&text).expect("JSON");
            let again = serde_json::to_string_pretty(&snap).unwrap() + "\n";
            (snap, again)
        } else {
            let snap: Snapshot = serde_yaml::from_str(&text).expect("YAML");
            let again = serde_yaml::to_string(&snap).unwrap();
            (snap, again)
        };
        assert_eq!(text, again, "{format}");
        assert_eq!(snap.sockets_source, SocketsSource::SockDiag);
        let held: Vec<_> = snap
            .sockets
            .iter()
            .filter(|s| s.owner.as_ref().map(|o| o.pid) == Some(helper.pid))
            .collect();
        assert_eq!(held.len(), 3, "{format}: {text}");
        assert!(held.iter().all(|s| s.options.is_some()), "{format}: {text}");
    }
}
