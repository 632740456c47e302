//! The bad-input table of docs/reliability.md, row by row, on the real binary: hostile and
//! malformed files, hostile sysctl keys, hostile --root trees, and processes or namespaces
//! that vanish mid-scan. Each test checks the message, the exit code, and that nothing changed.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{LAUGHS, Netns, deep_flow, rstaudit, text};

/// Exit 2 with `needle` in the error, no panic.
#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    common::refused(out, &[needle]);
}

/// Run with a deadline: a hostile file must be refused quickly, not parsed for minutes.
fn run_quickly(args: &[&std::ffi::OsStr]) -> Output {
    run_within(args, Duration::from_secs(20))
}

/// Run with a tight deadline, for what the docs say is refused at once.
fn run_at_once(args: &[&std::ffi::OsStr]) -> Output {
    run_within(args, Duration::from_secs(5))
}

fn run_within(args: &[&std::ffi::OsStr], limit: Duration) -> Output {
    let started = Instant::now();
    let out = rstaudit().args(args).output().expect("running rstaudit");
    assert!(
        started.elapsed() < limit,
        "took {:?} (limit {limit:?}): {}",
        started.elapsed(),
        text(&out)
    );
    out
}

fn profile_show(path: &Path) -> Output {
    run_quickly(&["profiles".as_ref(), "show".as_ref(), path.as_os_str()])
}

#[test]
fn profile_nested_100000_deep_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write_file(
        dir.path(),
        "deep.yaml",
        &format!("description: x\nsysctls: {}\n", deep_flow(100_000)),
    );
    let out = run_at_once(&["profiles".as_ref(), "show".as_ref(), p.as_os_str()]);
    fails_with(
        &out,
        "line 2 column 74: [ ] or { } nested more than 64 levels deep",
    );
}

/// A quote inside a plain scalar (`don't`) is text, not the start of a quoted string: the
/// brackets after it are real and the nesting guard sees them, in every kind of file.
#[test]
fn an_apostrophe_does_not_hide_deep_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("description: don't\nx: {}", "[".repeat(100_000));
    let profile = common::write_file(dir.path(), "p.yaml", &body);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    common::write_file(&rules, "r.yaml", &body);
    let snap = common::write_file(dir.path(), "s.yaml", &format!("schema: 1\n{body}"));
    for args in [
        ["profiles".as_ref(), "show".as_ref(), profile.as_os_str()],
        ["rules".as_ref(), "lint".as_ref(), rules.as_os_str()],
        ["audit".as_ref(), "--snapshot".as_ref(), snap.as_os_str()],
    ] {
        let out = run_at_once(&args);
        fails_with(&out, "nested more than 64 levels deep");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = if args[0] == "audit" { 3 } else { 2 };
        assert!(
            stderr.contains(&format!("line {line} column 68")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn profile_billion_laughs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write_file(
        dir.path(),
        "laughs.yaml",
        &format!("description: x\nparams:\n{LAUGHS}"),
    );
    let out = run_at_once(&["profiles".as_ref(), "show".as_ref(), p.as_os_str()]);
    fails_with(&out, "repetition limit exceeded");
}

#[test]
fn profile_with_a_very_long_string_is_refused_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write_file(
        dir.path(),
        "long.yaml",
        &format!("description: {}\n", "x".repeat(4 << 20)),
    );
    fails_with(&profile_show(&p), "larger than 1048576 bytes");
    // A long string below the limit is only a long description.
    let p = common::write_file(
        dir.path(),
        "long-ok.yaml",
        &format!("description: {}\n", "x".repeat(512 << 10)),
    );
    let out = profile_show(&p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Some other file given where a profile, rule or snapshot belongs (one long line of text):
/// the message says what was expected and quotes only the start of the file.
#[test]
fn a_file_of_another_kind_is_named_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("secret-start {}", "secret ".repeat(2000));
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    common::write_file(&rules, "r.yaml", &body);
    let profile = common::write_file(dir.path(), "p.yaml", &body);
    let snap = common::write_file(
        dir.path(),
        "s.yaml",
        &format!("schema: 1\nkernel: \"{body}\"\n"),
    );
    for (out, expected) in [
        (profile_show(&profile), "expected a profile (a mapping with"),
        (
            run_quickly(&["rules".as_ref(), "lint".as_ref(), rules.as_os_str()]),
            "expected a rule (a mapping with",
        ),
        (
            run_quickly(&["audit".as_ref(), "--snapshot".as_ref(), snap.as_os_str()]),
            "invalid type: string \"secret-start secret",
        ),
    ] {
        fails_with(&out, expected);
        let all = text(&out);
        assert!(all.contains("...\""), "{all}");
        assert!(all.len() < 600, "{} bytes: {all}", all.len());
    }
}

#[test]
fn profile_from_a_device_or_fifo_is_refused_without_hanging() {
    fails_with(&profile_show(Path::new("/dev/zero")), "not a regular file");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    fails_with(&profile_show(&fifo), "not a regular file");
}

#[test]
fn profile_unknown_keys_and_wrong_types_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write_file(
        dir.path(),
        "bad.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n    value: 30\n    colour: red\n",
    );
    let out = profile_show(&p);
    fails_with(&out, "unknown field `colour`");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml:"));
    let p = common::write_file(
        dir.path(),
        "types.yaml",
        "description: x\nsysctls: [1, 2]\n",
    );
    fails_with(&profile_show(&p), "invalid type: sequence");
    let p = common::write_file(
        dir.path(),
        "types2.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n    at_most: many\n",
    );
    fails_with(&profile_show(&p), "invalid type");
}

#[test]
fn profile_out_of_range_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write_file(
        dir.path(),
        "range.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 5\n  net.ipv4.tcp_keepalive_time:\n    value: \"99999999999999999999\"\n",
    );
    let out = profile_show(&p);
    fails_with(&out, "net.ipv4.tcp_syncookies");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("net.ipv4.tcp_keepalive_time"),
        "every problem at once: {}",
        text(&out)
    );
    // Beyond any integer type: a YAML type error, with the position.
    let p = common::write_file(
        dir.path(),
        "huge.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n    value: 99999999999999999999\n",
    );
    fails_with(&profile_show(&p), "huge.yaml:4:12");
}

#[test]
fn profile_hostile_sysctl_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (key, needle) in [
        ("net.ipv4/../../../etc/passwd", "not valid"),
        ("net..ipv4.tcp_fin_timeout", "empty component"),
        ("/proc/sys/kernel/panic", "not a path"),
        ("kernel.panic", "outside net.*"),
        ("net.ipv4.tcp\\0fin", "not valid"),
        ("net.ipv4.\"tcp\\0fin\"", "NUL"),
    ] {
        let body = format!("description: x\nsysctls:\n  {key:?}:\n    value: 1\n");
        let body = if key.contains('"') {
            "description: x\nsysctls:\n  \"net.ipv4.tcp\\0fin\":\n    value: 1\n".to_string()
        } else {
            body
        };
        let p = common::write_file(dir.path(), "keys.yaml", &body);
        let out = profile_show(&p);
        fails_with(&out, needle);
    }
}

#[test]
fn apply_with_a_hostile_profile_changes_nothing() {
    let ns = Netns::new("badapply");
    ns.sysctl("net.ipv4.tcp_fin_timeout", "61");
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = common::write_file(
        dir.path(),
        "evil.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n    value: 30\n  net.ipv4/../../../kernel/panic:\n    value: 1\n",
    );
    let out = rstaudit()
        .args(["apply", "--netns", &ns.name, "--state-dir"])
        .arg(state.path())
        .arg("--profile")
        .arg(&p)
        .output()
        .unwrap();
    fails_with(&out, "not valid");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_fin_timeout"), "61");
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

/// `--set` with a name no rule has, or without `=`, on a snapshot that audits fine without
/// it: refused (exit 2) with a message naming the problem, not audited.
#[test]
fn set_with_hostile_keys_is_refused() {
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem-host.json");
    let audit = |extra: &[&str]| {
        rstaudit()
            .args(["audit", "--fail-on", "never", "--snapshot"])
            .arg(&snapshot)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = audit(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = audit(&["--set", "idle_timeout=350"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for (bad, message) in [
        (
            "../x=1",
            "no rule has a parameter named \"../x\" (known parameters: idle_timeout,",
        ),
        (
            "net.ipv4.tcp_fin_timeout",
            "--set \"net.ipv4.tcp_fin_timeout\": expected NAME=VALUE, e.g. --set idle_timeout=350",
        ),
        (
            "=1",
            "--set \"=1\": expected NAME=VALUE, e.g. --set idle_timeout=350",
        ),
    ] {
        let out = audit(&["--set", bad]);
        fails_with(&out, message);
        assert!(out.stdout.is_empty(), "no report: {}", text(&out));
    }
}

#[test]
fn rule_files_hostile_yaml_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(
        dir.path(),
        "deep.yaml",
        &format!("id: deep\nwhen: {}\n", deep_flow(100_000)),
    );
    let out = run_quickly(&["rules".as_ref(), "lint".as_ref(), dir.path().as_os_str()]);
    fails_with(&out, "nested more than 64 levels deep");

    let dir = tempfile::tempdir().unwrap();
    common::write_file(
        dir.path(),
        "laughs.yaml",
        &format!("id: x\nrefs:\n{LAUGHS}"),
    );
    common::write_file(dir.path(), "unknown.yaml", "id: y\ncolour: red\n");
    common::write_file(dir.path(), "types.yaml", "id: [1, 2]\n");
    common::write_file(
        dir.path(),
        "long.yaml",
        &format!("id: z\nexplain: {}\n", "x".repeat(2 << 20)),
    );
    nix::unistd::mkfifo(&dir.path().join("fifo.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = run_quickly(&["rules".as_ref(), "lint".as_ref(), dir.path().as_os_str()]);
    fails_with(&out, "fifo.yaml");
    fails_with(&out, "long.yaml");
    std::fs::remove_file(dir.path().join("fifo.yaml")).unwrap();
    std::fs::remove_file(dir.path().join("long.yaml")).unwrap();
    let out = run_quickly(&["rules".as_ref(), "lint".as_ref(), dir.path().as_os_str()]);
    fails_with(&out, "laughs.yaml");
    fails_with(&out, "unknown.yaml");
    fails_with(&out, "types.yaml");
}

#[test]
fn snapshot_files_hostile_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = |p: &Path| run_quickly(&["audit".as_ref(), "--snapshot".as_ref(), p.as_os_str()]);
    fails_with(&audit(Path::new("/dev/zero")), "not a regular file");
    let p = common::write_file(dir.path(), "deep.json", &deep_flow(100_000));
    fails_with(&audit(&p), "nested more than 64 levels deep");
    let p = common::write_file(
        dir.path(),
        "deep.yaml",
        &format!("schema: 1\nsysctls: {}", deep_flow(100_000)),
    );
    fails_with(&audit(&p), "nested more than 64 levels deep");
    let p = common::write_file(
        dir.path(),
        "laughs.yaml",
        &format!("schema: 1\nsysctls:\n{LAUGHS}"),
    );
    fails_with(&audit(&p), "laughs.yaml");
    let p = common::write_file(dir.path(), "schema.json", "{\"schema\": 99}");
    fails_with(&audit(&p), "schema 99 is not supported");
    let p = common::write_file(dir.path(), "binary.json", "\u{0}\u{1}{");
    fails_with(&audit(&p), "binary.json");
    let p = common::write_file(dir.path(), "empty.json", "");
    fails_with(&audit(&p), "empty.json");
}

/// A copied tree from the captured kernel text under src/host/testdata.
fn copied_tree(dir: &Path) {
    common::copied_proc_tree(dir, &["netstat", "snmp", "tcp"], "6.18.44");
}

fn snapshot_root(dir: &Path) -> Output {
    run_quickly(&["snapshot".as_ref(), "--root".as_ref(), dir.as_os_str()])
}

#[test]
fn root_tree_with_fifos_is_read_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    let tcp = dir.path().join("proc/net/tcp");
    std::fs::remove_file(&tcp).unwrap();
    nix::unistd::mkfifo(&tcp, nix::sys::stat::Mode::S_IRWXU).unwrap();
    nix::unistd::mkfifo(
        &dir.path().join("proc/sys/net/ipv4/tcp_rmem"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    let out = snapshot_root(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap: rstaudit::host::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    let fifo_notes = snap
        .notes
        .iter()
        .filter(|n| n.message.contains("not a regular file"))
        .count();
    assert_eq!(fifo_notes, 2, "{:?}", snap.notes);
    assert_eq!(snap.sysctl("net.ipv4.tcp_fin_timeout"), Some("60"));
}

#[test]
fn root_tree_with_links_out_and_devices_reads_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    let sys = dir.path().join("proc/sys/net");
    std::os::unix::fs::symlink("/proc/sys/net/core", sys.join("core")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", sys.join("ipv4/tcp_rmem")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.path().join("proc/net/stat")).unwrap();
    std::fs::remove_file(dir.path().join("proc/net/snmp")).unwrap();
    std::os::unix::fs::symlink("/proc/net/snmp", dir.path().join("proc/net/snmp")).unwrap();
    let out = snapshot_root(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap: rstaudit::host::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap.sysctls.len(), 1, "{:?}", snap.sysctls);
    assert!(
        snap.counter("Tcp.ActiveOpens").is_none(),
        "snmp read through a link"
    );
    let links = snap
        .notes
        .iter()
        .filter(|n| n.message.contains("symbolic link"))
        .count();
    assert!(links >= 3, "{:?}", snap.notes);
}

#[test]
fn root_tree_with_truncated_files_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    let tcp = dir.path().join("proc/net/tcp");
    let body = std::fs::read_to_string(&tcp).unwrap();
    // Cut in the middle of the third socket line.
    let cut = body.lines().take(3).map(str::len).sum::<usize>() + 3 + 40;
    std::fs::write(&tcp, &body[..cut]).unwrap();
    let out = snapshot_root(dir.path());
    fails_with(&out, &format!("{}:4", tcp.display()));
    // An empty file (a copy of a file the host did not have, or truncated to nothing) is
    // not a socket table: a note says so, and no sockets are claimed from it.
    std::fs::write(&tcp, "").unwrap();
    let out = snapshot_root(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap: rstaudit::host::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert!(snap.sockets.is_empty());
    assert_eq!(snap.sockets_source, rstaudit::host::SocketsSource::None);
    let shown = tcp.display().to_string();
    let note = snap
        .notes
        .iter()
        .find(|n| n.subject.as_deref() == Some(shown.as_str()))
        .unwrap_or_else(|| panic!("no note on {shown}: {:?}", snap.notes));
    assert_eq!(note.area, "sockets");
    assert_eq!(
        note.message,
        "not read: empty, without the header line /proc/net/tcp always has \
         (absent on the copied host, or the copy is truncated)"
    );
    // Truncated snmp: names without values.
    copied_tree(dir.path());
    let snmp = dir.path().join("proc/net/snmp");
    let first = std::fs::read_to_string(&snmp)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&snmp, first).unwrap();
    fails_with(&snapshot_root(dir.path()), &format!("{}:1", snmp.display()));
}

/// `snapshot --root DIR` with the address space capped at 512 MiB: reading any of the
/// hostile files below whole would need more.
fn snapshot_root_in_little_memory(dir: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut cmd = rstaudit();
    cmd.args(["snapshot".as_ref(), "--root".as_ref(), dir.as_os_str()]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("running rstaudit");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {}",
        started.elapsed(),
        text(&out)
    );
    out
}

/// Files in a --root tree far larger than the real ones: a sparse GiB as a sysctl value and
/// as the kernel release, a NUL byte in a value. Each is a note; the rest is read.
#[test]
fn root_tree_with_huge_or_binary_values_is_read_in_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    let core = dir.path().join("proc/sys/net/core");
    std::fs::create_dir_all(&core).unwrap();
    let sparse = |p: &Path| {
        std::fs::File::create(p).unwrap().set_len(1 << 30).unwrap();
    };
    sparse(&core.join("rmem_default"));
    sparse(&dir.path().join("proc/sys/kernel/osrelease"));
    std::fs::write(
        dir.path().join("proc/sys/net/ipv4/tcp_rmem"),
        "4096\x00\t131072 6291456\n",
    )
    .unwrap();
    let out = snapshot_root_in_little_memory(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let snap: rstaudit::host::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    let note = |subject: &str| {
        snap.notes
            .iter()
            .find(|n| n.subject.as_deref().is_some_and(|s| s.ends_with(subject)))
            .unwrap_or_else(|| panic!("no note on {subject}: {:?}", snap.notes))
            .message
            .clone()
    };
    assert_eq!(
        note("net.core.rmem_default"),
        "not read: longer than 4096 bytes, more than any sysctl value (a damaged copy?)"
    );
    assert_eq!(
        note("net.ipv4.tcp_rmem"),
        "not read: the value holds a NUL byte, which no sysctl value does (a damaged copy?)"
    );
    assert!(
        note("proc/sys/kernel/osrelease").contains("longer than 256 bytes"),
        "{:?}",
        snap.notes
    );
    assert_eq!(snap.kernel.release, "");
    assert_eq!(snap.sysctl("net.core.rmem_default"), None);
    assert_eq!(snap.sysctl("net.ipv4.tcp_rmem"), None);
    assert_eq!(snap.sysctl("net.ipv4.tcp_fin_timeout"), Some("60"));
}

/// /proc/net files with a line far longer than any real one, or (counter files) far larger:
/// an error naming the file and the line, quickly and in little memory.
#[test]
fn root_tree_with_huge_lines_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    copied_tree(dir.path());
    let tcp = dir.path().join("proc/net/tcp");
    let header = std::fs::read_to_string(&tcp)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&tcp, format!("{header}\n{}\n", "1".repeat(1 << 20))).unwrap();
    let out = snapshot_root_in_little_memory(dir.path());
    fails_with(
        &out,
        &format!(
            "{}:2: line longer than 65536 bytes; no /proc/net file has one (the file is damaged)",
            tcp.display()
        ),
    );
    // A sparse GiB of zeros: one endless line.
    std::fs::File::create(&tcp)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    fails_with(
        &snapshot_root_in_little_memory(dir.path()),
        &format!("{}:1: line longer than 65536 bytes", tcp.display()),
    );
    // Counter files are a few KiB: 2 MiB of well-formed lines is a damaged file.
    copied_tree(dir.path());
    let snmp6 = dir.path().join("proc/net/snmp6");
    std::fs::write(&snmp6, "Ip6InReceives 1\n".repeat(2 << 16)).unwrap();
    fails_with(
        &snapshot_root_in_little_memory(dir.path()),
        &format!(
            "{}:65537: the file is larger than 1048576 bytes",
            snmp6.display()
        ),
    );
}

#[test]
fn processes_exiting_during_the_owner_scan_are_skipped() {
    let ns = Netns::new("churn");
    let helper = common::sockhelper_path();
    let script = format!(
        "while :; do timeout 0.05 {} listen:9100:4 connect:9100 connect:9100 >/dev/null 2>&1; done",
        helper.display()
    );
    let mut churn = ns
        .command("sh")
        .args(["-c", &script])
        .spawn()
        .expect("churn loop");
    for round in 0..8 {
        let out = rstaudit()
            .args(["snapshot", "--netns", &ns.name])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", text(&out));
        let snap: rstaudit::host::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
        assert!(snap.sockets.iter().all(|s| s.local_addr.is_loopback()));
    }
    let _ = churn.kill();
    let _ = churn.wait();
}

/// A process that keeps closing a socket and opening another on the same descriptor number
/// while the owner scan and the option reader run: /proc/PID/fd named one socket, pidfd_getfd
/// may fetch the next. Options must only ever be reported for the socket they were read from,
/// by the /proc pass (which must say it missed the sockets that changed under it) and by the
/// kernel's socket iterator (which reads each socket where it finds it, so it misses none).
#[test]
fn a_descriptor_reused_for_another_socket_mid_scan_never_lends_its_options() {
    for how in ["proc", "bpf"] {
        let (rounds, owned, with_options, changed) = churn_under_scans(how);
        eprintln!(
            "--owner-scan {how}: {rounds} sockets made; {owned} seen owned, {with_options} with \
             options; {changed} scans said they missed some"
        );
        assert!(rounds > 20, "{how}: only {rounds} sockets made");
        assert!(
            owned > 0 && with_options > 0,
            "{how}: owned {owned}, with options {with_options}"
        );
        if how == "proc" {
            // The sockets that changed under the scan were said to be unread, not passed over.
            assert!(changed > 0, "no scan said it missed a socket");
        } else {
            assert_eq!(
                changed, 0,
                "the iterator said it missed sockets it cannot miss"
            );
        }
    }
}

/// Snapshots with `--owner-scan how` while a helper churns one descriptor between two
/// sockets: for 3.5 s, and on (at most 14 s in all) until the scans saw an owned socket with
/// options and, for /proc, said they missed one (a loaded machine makes each scan slower and
/// rarer). Every option read is checked against the socket it is reported for. Returns
/// (sockets the helper made, sockets seen owned by it, sockets with options, scans that said
/// they missed some).
fn churn_under_scans(how: &str) -> (u64, usize, usize, usize) {
    let ns = Netns::new("fdchurn");
    // The helper announces itself, then churns until told to stop (15 s at most), a new
    // socket every 30 ms.
    let helper = ns.helper(&["announce", "fd-churn:9201:9202:15000:30"]);
    let (mut owned, mut with_options, mut changed) = (0, 0, 0);
    let started = Instant::now();
    let seen_enough = |owned: usize, with_options: usize, changed: usize| {
        owned > 0 && with_options > 0 && (how != "proc" || changed > 0)
    };
    while started.elapsed() < Duration::from_millis(3500)
        || (!seen_enough(owned, with_options, changed)
            && started.elapsed() < Duration::from_secs(14))
    {
        let out = rstaudit()
            .args(["snapshot", "--netns", &ns.name, "--owner-scan", how])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let snap: rstaudit::host::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
        changed += snap
            .notes
            .iter()
            .filter(|n| n.area == "changed" && n.message.contains("while the scan ran"))
            .count();
        for s in &snap.sockets {
            if s.owner.as_ref().map(|o| o.pid) == Some(helper.pid) {
                owned += 1;
            }
            let Some(opts) = &s.options else { continue };
            with_options += 1;
            let linger0 = opts.linger.is_some_and(|l| l.on && l.seconds == 0);
            match s.local_port {
                9201 => assert!(
                    linger0 && opts.keepalive == Some(false) && opts.keepidle != Some(77),
                    "{how}: port 9201 has SO_LINGER {{1, 0}} and no keepalive: {opts:?}"
                ),
                9202 => assert!(
                    !linger0 && opts.keepalive == Some(true) && opts.keepidle == Some(77),
                    "{how}: port 9202 has keepalive with idle 77 and no linger: {opts:?}"
                ),
                other => panic!("{how}: unexpected socket on port {other}: {s:?}"),
            }
        }
    }
    // The race was really run: the helper churned until told to stop (it says how many
    // sockets it made).
    let mut helper = helper;
    drop(helper.child.stdin.take());
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(helper.child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let rounds: u64 = line
        .trim()
        .strip_prefix("churned ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{how}: the helper stopped churning: {line:?}"));
    (rounds, owned, with_options, changed)
}

/// Wait until process `pid` has a thread in another network namespace than ours (it has
/// listed the namespaces and is reading them), or has exited. False if it exited first.
fn wait_until_it_enters_a_namespace(child: &mut std::process::Child) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    let tasks = format!("/proc/{}/task", child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let entered = std::fs::read_dir(&tasks)
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| m.ino() != own));
        if entered {
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("the audit neither entered a namespace nor exited in 20 s");
}

/// Namespaces deleted while `audit --netns all` reads them: never a crash; each one that
/// was listed is either in the report or named in a note saying it went away. The deletions
/// start once the audit is seen inside a namespace (so every namespace here was listed
/// before any was deleted), 0 to 60 ms later.
#[test]
fn namespaces_deleted_during_an_audit_of_all_do_not_crash_it() {
    let mut gone_notes = 0;
    for round in 0..4 {
        let spaces: Vec<Netns> = (0..6).map(|_| Netns::new("gone")).collect();
        let mut child = rstaudit()
            .args([
                "audit",
                "--netns",
                "all",
                "--format",
                "json",
                "--fail-on",
                "never",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_until_it_enters_a_namespace(&mut child);
        std::thread::sleep(Duration::from_millis(20 * round));
        for ns in &spaces {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns.name])
                .status();
        }
        let out = child.wait_with_output().unwrap();
        let all = text(&out);
        assert!(!all.contains("panicked"), "round {round}: {all}");
        match out.status.code() {
            Some(0) => {
                let report: rstaudit::report::AuditReport =
                    serde_json::from_slice(&out.stdout).expect("a JSON report");
                let notes: Vec<_> = report.namespaces.iter().flat_map(|n| &n.notes).collect();
                for ns in &spaces {
                    if report.namespaces.iter().any(|n| n.netns == ns.name) {
                        continue;
                    }
                    let note = notes
                        .iter()
                        .find(|n| n.subject.as_deref() == Some(ns.name.as_str()))
                        .unwrap_or_else(|| {
                            panic!(
                                "round {round}: {} neither read nor noted: {notes:?}",
                                ns.name
                            )
                        });
                    assert_eq!(note.area, "netns");
                    assert_eq!(note.message, rstaudit::host::GONE_NETNS);
                    gone_notes += 1;
                }
            }
            Some(2) => assert!(all.contains("rsta-gone"), "round {round}: {all}"),
            other => panic!("round {round}: exit {other:?}: {all}"),
        }
    }
    eprintln!("{gone_notes} namespaces noted as gone in 4 rounds");
    // The deletions raced the audit at least once (the audit is inside the first namespace
    // when they start, so the later ones are gone before it reaches them).
    assert!(gone_notes > 0, "no deletion raced the audit in 4 rounds");
}

#[test]
fn interval_with_a_saved_or_copied_source_is_refused_by_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let snap = common::write_file(dir.path(), "s.json", "[]");
    for (flag, path) in [
        ("--snapshot", snap.as_os_str()),
        ("--root", dir.path().as_os_str()),
    ] {
        let out = run_at_once(&[
            "audit".as_ref(),
            flag.as_ref(),
            path,
            "--interval".as_ref(),
            "1".as_ref(),
        ]);
        fails_with(&out, &format!("'{flag} "));
        fails_with(&out, "cannot be used with '--interval <SECONDS>'");
    }
}
