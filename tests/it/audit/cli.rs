//! `rstaudit audit` on a saved snapshot: formats, exit codes, selection, output file.

use crate::common;

use common::fixture::{host, listener};

/// tcp_abort_on_overflow=1 (high) with a listener that depends on it (exposed), and
/// tcp_rfc1337=0 (info).
fn saved(dir: &std::path::Path) -> std::path::PathBuf {
    let snap = host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .sysctl("net.ipv4.tcp_rfc1337", "0")
        .socket(listener("0.0.0.0:443", 0, 511).owner(812, "nginx"))
        .build();
    let path = dir.join("host.json");
    std::fs::write(&path, serde_json::to_vec(&snap).unwrap()).unwrap();
    path
}

fn audit(args: &[&str]) -> std::process::Output {
    common::rstaudit().arg("audit").args(args).output().unwrap()
}

#[test]
fn exit_codes_follow_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let snap = saved(dir.path());
    let s = snap.to_str().unwrap();
    assert_eq!(audit(&["--snapshot", s]).status.code(), Some(1));
    assert_eq!(
        audit(&["--snapshot", s, "--fail-on", "critical"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        audit(&["--snapshot", s, "--fail-on", "never"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        audit(&["--snapshot", s, "--skip", "abort-on-overflow"])
            .status
            .code(),
        Some(0)
    );
    // rfc1337-off is info and latent (no TIME_WAIT socket): `info` counts exposed and
    // observed findings only, `latent:info` every finding.
    let skip_abort = |fail_on: &str| {
        audit(&[
            "--snapshot",
            s,
            "--skip",
            "abort-on-overflow",
            "--fail-on",
            fail_on,
        ])
        .status
        .code()
    };
    assert_eq!(skip_abort("info"), Some(0));
    assert_eq!(skip_abort("latent:info"), Some(1));
    let bad = audit(&["--snapshot", s, "--only", "no-such-rule"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-rule"));
    assert_eq!(
        audit(&["--snapshot", s, "--set", "nope=1"]).status.code(),
        Some(2)
    );
    assert_eq!(
        audit(&["--snapshot", "/nonexistent/snap.json"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn every_format_renders_and_o_writes_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let snap = saved(dir.path());
    let s = snap.to_str().unwrap();
    for format in ["table", "json", "yaml", "junit", "prometheus", "html"] {
        let out = audit(&["--snapshot", s, "--format", format, "--fail-on", "never"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{format}");
    }
    let file = dir.path().join("r.prom");
    let out = audit(&[
        "--snapshot",
        s,
        "--format",
        "prometheus",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("rule=\"abort-on-overflow\""), "{text}");
    // Piped output carries no colour codes.
    let out = audit(&["--snapshot", s]);
    assert!(!out.stdout.contains(&0x1b));
}

/// `-o FILE` in a directory everyone may write to (/tmp): a link someone else left there
/// under that name is not written through, whatever fs.protected_symlinks says.
#[test]
fn o_does_not_write_through_a_link_someone_else_left_in_a_shared_directory() {
    common::require_root();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let snap = saved(dir.path());
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, "keep").unwrap();
    let link = shared.join("report.json");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let out = audit(&[
        "--snapshot",
        snap.to_str().unwrap(),
        "--format",
        "json",
        "-o",
        link.to_str().unwrap(),
    ]);
    // With --format json the error is JSON on standard output (docs/audit-json.md).
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("is a symbolic link of uid 65534"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    // Our own file in the same directory is written (atomically, no temp file left).
    let mine = shared.join("mine.json");
    let out = audit(&[
        "--snapshot",
        snap.to_str().unwrap(),
        "--format",
        "json",
        "--fail-on",
        "never",
        "-o",
        mine.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(&mine).unwrap()).unwrap();
    let left: Vec<_> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn a_broken_rules_dir_stops_the_audit_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let snap = saved(dir.path());
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("x.yaml"), "id: x\nseverity: nope\n").unwrap();
    let out = audit(&[
        "--snapshot",
        snap.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("x.yaml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn snapshot_into_a_closed_pipe_ends_quietly_in_every_format() {
    // A snapshot far larger than a pipe's buffer, read 10 bytes at a time by a reader that
    // then goes away (as `rstaudit snapshot | head` does): exit 0, nothing on stderr.
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let big = host()
        .sockets(5000, |i| {
            common::fixture::sock(
                rstaudit::host::TcpState::Established,
                "10.0.0.5:443",
                &format!("10.1.{}.{}:{}", i / 250, i % 250, 1024 + i),
            )
        })
        .build();
    let path = dir.path().join("big.json");
    std::fs::write(&path, serde_json::to_vec(&big).unwrap()).unwrap();
    for format in ["json", "yaml"] {
        let mut child = common::rstaudit()
            .args(["snapshot", "--format", format, "--snapshot"])
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{format}");
        assert!(
            out.stderr.is_empty(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Written whole to a file, the same snapshot reads back.
    let copy = dir.path().join("copy.yaml");
    let out = common::rstaudit()
        .args(["snapshot", "--format", "yaml", "--snapshot"])
        .arg(&path)
        .arg("-o")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success());
    let back: rstaudit::host::Snapshot =
        serde_yaml::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    assert_eq!(back.sockets.len(), 5000);
}

/// Regression (issue 27): the `source` of an audit of `--snapshot FILE` said `live`. It says
/// the file, and where the file got its facts.
#[test]
fn the_source_of_a_saved_snapshot_is_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let snap = saved(dir.path());
    let out = audit(&["--snapshot", snap.to_str().unwrap(), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let source = v["namespaces"][0]["source"].as_str().unwrap();
    assert_eq!(
        source,
        format!("file:{} (fixture)", snap.display()),
        "{v:#}"
    );
    let out = audit(&["--snapshot", snap.to_str().unwrap()]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains(&format!("file:{}", snap.display())), "{t}");
}

/// The audit JSON names the host (schema 4): hostname and machine id, read from the live
/// host or from a copied tree; a tree without them says so in a note.
#[test]
fn the_audit_names_its_host() {
    let dir = tempfile::tempdir().unwrap();
    common::copied_proc_tree(dir.path(), &["netstat", "snmp"], "6.12.0");
    common::write_file(dir.path(), "proc/sys/kernel/hostname", "db-7\n");
    let run = |dir: &std::path::Path| -> serde_json::Value {
        let out = audit(&[
            "--root",
            dir.to_str().unwrap(),
            "--format",
            "json",
            "--fail-on",
            "never",
        ]);
        common::exits(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = run(dir.path());
    assert_eq!(v["schema"], 4);
    assert_eq!(v["host"], serde_json::json!({"hostname": "db-7"}), "{v:#}");
    assert!(
        v["namespaces"][0]["notes"]
            .to_string()
            .contains("no machine id"),
        "{v:#}"
    );
    common::write_file(
        dir.path(),
        "etc/machine-id",
        "0123456789ABCDEF0123456789abcdef\n",
    );
    let v = run(dir.path());
    assert_eq!(
        v["host"]["machine_id"], "0123456789abcdef0123456789abcdef",
        "{v:#}"
    );
    // The live host: the kernel's hostname.
    let out = audit(&[
        "--format",
        "json",
        "--fail-on",
        "never",
        "--only",
        "rfc1337-off",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(v["host"]["hostname"], hostname.trim(), "{v:#}");
}
