//! apply / verify / rollback / profiles, end to end, inside network
//! namespaces the tests create. Nothing here touches the host's sysctls, and
//! every --persist file is in a temporary directory.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::transcript::{Transcript, fixed_dir};
use common::{ApplySetup, Netns, rstaudit, write_file};

/// Keys the tests set to reset-prone values first, so the profiles have work to do.
const PRE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.ipv4.tcp_abort_on_overflow", "1"),
    ("net.ipv4.tcp_fin_timeout", "120"),
    ("net.core.somaxconn", "128"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
];

const WATCHED: &[&str] = &[
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_fin_timeout",
    "net.core.somaxconn",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_congestion_control",
];

fn prepared(prefix: &str) -> Netns {
    Netns::with_sysctls(prefix, PRE)
}

fn values(ns: &Netns) -> Vec<(String, String)> {
    WATCHED
        .iter()
        .map(|k| (k.to_string(), ns.read_sysctl(k)))
        .collect()
}

fn rsta(args: &[&str]) -> Output {
    rstaudit().args(args).output().expect("running rstaudit")
}

fn apply_args<'a>(ns: &'a Netns, state: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "apply",
        "--netns",
        &ns.name,
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

fn apply(ns: &Netns, state: &Path, extra: &[&str]) -> Output {
    rsta(&apply_args(ns, state, extra))
}

/// [`apply`] run inside the namespace as its PID 1, where it is the initial namespace as
/// rstaudit sees it, so `--persist` may be given.
fn apply_as_init(ns: &Netns, state: &Path, extra: &[&str]) -> Output {
    common::rstaudit_as_init(ns)
        .args(apply_args(ns, state, extra))
        .output()
        .expect("running rstaudit")
}

/// `apply --profile FILE`.
fn apply_file(ns: &Netns, state: &Path, profile: &Path) -> Output {
    apply(ns, state, &["--profile", profile.to_str().unwrap()])
}

fn rollback(state: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["rollback", "--state-dir", state.to_str().unwrap()];
    args.extend_from_slice(extra);
    rsta(&args)
}

fn rollback_files(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn apply_then_verify_passes_and_a_hand_change_is_drift() {
    let ApplySetup { ns, state, .. } = ApplySetup::new("apply-verify", PRE);
    let out = apply(&ns, state.path(), &["--profile", "behind-load-balancer"]);
    let t = common::exits(&out, 0);
    assert!(
        t.contains("net.ipv4.tcp_keepalive_time") && t.contains("7200"),
        "{t}"
    );
    assert!(t.contains("Applied 8 key(s)"), "{t}");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "1");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_keepalive_time"), "300");
    assert_eq!(ns.read_sysctl("net.core.somaxconn"), "4096");

    let verify = |fmt: &str| {
        rsta(&[
            "verify",
            "--profile",
            "behind-load-balancer",
            "--netns",
            &ns.name,
            "--format",
            fmt,
        ])
    };
    let out = verify("table");
    let t = common::exits(&out, 0);
    assert!(t.contains("OK: 9 key(s) match"), "{t}");

    ns.sysctl("net.ipv4.tcp_keepalive_time", "600");
    let out = verify("table");
    let t = common::exits(&out, 1);
    assert!(
        t.contains(
            "DRIFT: net.ipv4.tcp_keepalive_time is 600, profile behind-load-balancer wants <= 300"
        ),
        "{t}"
    );
    let out = verify("json");
    common::exits(&out, 1);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(
        json["drift"],
        serde_json::json!(["net.ipv4.tcp_keepalive_time"])
    );
}

#[test]
fn apply_twice_is_idempotent_and_dry_run_changes_nothing() {
    let ApplySetup { ns, state, .. } = ApplySetup::new("idem", PRE);
    let before = values(&ns);
    let out = apply(&ns, state.path(), &["--profile", "baseline", "--dry-run"]);
    common::exits(&out, 0);
    assert!(common::text(&out).contains("Dry run: nothing was written."));
    assert!(common::text(&out).contains("net.ipv4.tcp_abort_on_overflow"));
    assert_eq!(values(&ns), before, "--dry-run changed a value");
    assert!(rollback_files(state.path()).is_empty());

    let out = apply(&ns, state.path(), &["--profile", "baseline"]);
    common::exits(&out, 0);
    assert_eq!(rollback_files(state.path()).len(), 1);
    let after_first = values(&ns);
    let out = apply(
        &ns,
        state.path(),
        &["--profile", "baseline", "--format", "json"],
    );
    common::exits(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["result"]["written"], serde_json::json!([]));
    assert!(
        json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["change"] == false)
    );
    assert_eq!(values(&ns), after_first);
    assert_eq!(
        rollback_files(state.path()).len(),
        1,
        "a no-op apply wrote a rollback file"
    );
    let out = apply(&ns, state.path(), &["--profile", "baseline"]);
    assert!(
        common::text(&out).contains("Nothing to change"),
        "{}",
        common::text(&out)
    );
}

#[test]
fn rollback_restores_exactly_in_the_recorded_namespace() {
    let ApplySetup { ns, state, .. } = ApplySetup::new("rollback", PRE);
    let before = values(&ns);
    let out = apply(&ns, state.path(), &["--profile", "high-connection-server"]);
    common::exits(&out, 0);
    assert_ne!(values(&ns), before);
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_tw_reuse"), "1");
    // No --netns: the rollback file says which namespace it belongs to.
    let out = rollback(state.path(), &[]);
    common::exits(&out, 0);
    assert_eq!(values(&ns), before);
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_tw_reuse"), "2");
    let out = rollback(state.path(), &[]);
    let t = common::exits(&out, 2);
    assert!(t.contains("no rollback file"), "{t}");
}

#[test]
fn a_failure_mid_transaction_leaves_every_key_as_it_was() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("midfail", PRE);
    let before = values(&ns);
    // The kernel itself refuses the third key (no such congestion control);
    // the two keys before it were already written and must be restored.
    let profile = write_file(
        dir.path(),
        "bad-cc.yaml",
        "description: test\nsysctls:\n  net.core.somaxconn:\n    value: 1024\n    reason: t\n  net.ipv4.tcp_abort_on_overflow:\n    value: 0\n    reason: t\n  net.ipv4.tcp_congestion_control:\n    value: no-such-cc\n    reason: t\n  net.ipv4.tcp_syncookies:\n    value: 1\n    reason: t\n",
    );
    let t = common::exits(&apply_file(&ns, state.path(), &profile), 2);
    assert!(
        t.contains("write of net.ipv4.tcp_congestion_control failed"),
        "{t}"
    );
    assert!(
        t.contains("restored every key already written (net.core.somaxconn, net.ipv4.tcp_abort_on_overflow)"),
        "{t}"
    );
    assert_eq!(values(&ns), before);

    // Injected failures at every later step.
    let persist = dir.path().join("90-rstaudit.conf");
    for fault in [
        "rollback-file",
        "write:net.ipv4.tcp_fin_timeout",
        "read-back:net.ipv4.tcp_syncookies",
        "persist-write",
        "persist-rename",
    ] {
        let out = apply_as_init(
            &ns,
            state.path(),
            &[
                "--profile",
                "baseline",
                "--persist",
                persist.to_str().unwrap(),
                "--inject-fault",
                fault,
            ],
        );
        let t = common::text(&out);
        assert_eq!(out.status.code(), Some(2), "{fault}: {t}");
        assert!(t.contains("injected failure"), "{fault}: {t}");
        assert!(t.contains("nothing was changed"), "{fault}: {t}");
        if let Some(key) = fault.split(':').nth(1) {
            assert!(t.contains(&format!("of {key} failed")), "{t}");
        }
        assert_eq!(values(&ns), before, "{fault} left a key changed");
        assert!(!persist.exists(), "{fault} left the persist file");
        assert!(
            rollback_files(state.path())
                .iter()
                .all(|f| f.ends_with(".aborted")),
            "{fault}: {:?}",
            rollback_files(state.path())
        );
    }
}

#[test]
fn global_keys_in_a_namespace_are_reported_not_half_applied() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("global", PRE);
    let before = values(&ns);
    let profile = write_file(
        dir.path(),
        "global.yaml",
        "description: test\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 1\n    reason: t\n  net.core.netdev_max_backlog:\n    value: 5000\n    reason: t\n  net.netfilter.nf_conntrack_max:\n    value: 5000\n    reason: t\n",
    );
    let t = common::exits(&apply_file(&ns, state.path(), &profile), 2);
    assert!(t.contains("nothing was written"), "{t}");
    assert!(t.contains("net.core.netdev_max_backlog: is global"), "{t}");
    assert!(
        t.contains("net.netfilter.nf_conntrack_max: is global"),
        "{t}"
    );
    assert_eq!(values(&ns), before);
    assert!(rollback_files(state.path()).is_empty());
}

#[test]
fn hostile_keys_and_out_of_range_values_are_refused_before_anything_is_written() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("hostile", PRE);
    let before = values(&ns);
    for (key, value, expect) in [
        ("\"net.ipv4/../../../etc/passwd\"", "1", "is not valid"),
        ("/etc/passwd", "1", "is not valid"),
        ("kernel.panic", "10", "kernel.panic is outside net.*"),
        ("net.ipv4.tcp_syncookies", "7", "7 is out of range 0..=2"),
        (
            "net.ipv4.tcp_keepalive_time",
            "300000",
            "out of range 1..=32767",
        ),
        ("net.ipv4.tcp_fin_timeout", "\"1\\n2\"", "newline"),
    ] {
        let profile = write_file(
            dir.path(),
            "hostile.yaml",
            &format!(
                "description: test\nsysctls:\n  net.ipv4.tcp_abort_on_overflow:\n    value: 0\n    reason: t\n  {key}:\n    value: {value}\n    reason: t\n"
            ),
        );
        let out = apply_file(&ns, state.path(), &profile);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", common::text(&out));
        let t = common::text(&out);
        assert!(t.contains(expect), "{key}: {t}");
        assert!(t.contains("hostile.yaml:6:3: "), "{key}: {t}");
        assert_eq!(values(&ns), before, "{key}");
        assert!(rollback_files(state.path()).is_empty());
    }
}

#[test]
fn persisted_file_loads_with_sysctl_p_and_gives_the_same_values() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("persist-a", PRE);
    let other = prepared("persist-b");
    let file = dir.path().join("90-rstaudit.conf");
    let out = apply_as_init(
        &ns,
        state.path(),
        &[
            "--profile",
            "mobile-gateway",
            "--persist",
            file.to_str().unwrap(),
        ],
    );
    common::exits(&out, 0);
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(content.starts_with("# Managed by rstaudit"), "{content}");
    common::run(
        other
            .command("sysctl")
            .args(["-q", "-p", file.to_str().unwrap()]),
    );
    assert_eq!(values(&other), values(&ns));

    // verify --persist: the file holds every key.
    let verify_persisted = |persist: &Path| {
        rsta(&[
            "verify",
            "--profile",
            "mobile-gateway",
            "--netns",
            &ns.name,
            "--persist",
            persist.to_str().unwrap(),
        ])
    };
    common::exits(&verify_persisted(&file), 0);
    // A file that lacks the keys: the runtime is right but nothing persists it.
    let empty = dir.path().join("80-other.conf");
    std::fs::write(&empty, "net.ipv4.tcp_syncookies = 1\n").unwrap();
    let t = common::exits(&verify_persisted(&empty), 1);
    assert!(t.contains("NOT PERSISTED"), "{t}");
    assert!(t.contains("a reboot would undo it"), "{t}");

    // A file rstaudit did not create is never overwritten.
    let before = values(&other);
    let out = apply_as_init(
        &other,
        state.path(),
        &[
            "--profile",
            "behind-load-balancer",
            "--persist",
            empty.to_str().unwrap(),
        ],
    );
    let t = common::exits(&out, 2);
    assert!(t.contains("was not created by rstaudit"), "{t}");
    assert_eq!(
        std::fs::read_to_string(&empty).unwrap(),
        "net.ipv4.tcp_syncookies = 1\n"
    );
    assert_eq!(values(&other), before);

    // Rollback of the first apply also removes the file it created.
    let out = rollback(state.path(), &[]);
    common::exits(&out, 0);
    assert!(!file.exists());
}

#[test]
fn profiles_list_and_show() {
    let out = rsta(&["profiles", "list"]);
    assert_eq!(out.status.code(), Some(0));
    let t = String::from_utf8_lossy(&out.stdout);
    for name in [
        "baseline",
        "behind-load-balancer",
        "mobile-gateway",
        "high-connection-server",
        "nat-gateway",
    ] {
        assert!(t.contains(name), "{t}");
    }
    let out = rsta(&["profiles", "show", "behind-load-balancer"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"]["idle_timeout"].as_str(), Some("350"));
    assert_eq!(
        v["sysctls"]["net.ipv4.tcp_syncookies"]["from"].as_str(),
        Some("baseline")
    );
    let out = rsta(&["profiles", "show", "no-such-profile"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_failed_rollback_leaves_the_applied_values_and_keeps_its_file() {
    let ApplySetup { ns, state, .. } = ApplySetup::new("rb-fail", PRE);
    let out = apply(&ns, state.path(), &["--profile", "baseline"]);
    common::exits(&out, 0);
    let applied = values(&ns);
    let out = rollback(
        state.path(),
        &["--inject-fault", "write:net.ipv4.tcp_syncookies"],
    );
    let t = common::exits(&out, 2);
    assert!(
        t.contains("write of net.ipv4.tcp_syncookies failed: injected failure"),
        "{t}"
    );
    assert_eq!(values(&ns), applied);
    // The file is still the latest: a clean rollback then works.
    ns.sysctl("net.core.somaxconn", "2048");
    let out = rollback(state.path(), &[]);
    let t = common::exits(&out, 0);
    assert!(
        t.contains("net.core.somaxconn was changed after the apply"),
        "{t}"
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_syncookies"), "0");
    assert_eq!(ns.read_sysctl("net.core.somaxconn"), "128");
}

#[test]
fn rollback_refuses_when_its_namespace_is_gone() {
    let state = tempfile::tempdir().unwrap();
    {
        let ns = prepared("rb-gone");
        let out = apply(&ns, state.path(), &["--profile", "baseline"]);
        common::exits(&out, 0);
    }
    let out = rollback(state.path(), &[]);
    let t = common::exits(&out, 2);
    assert!(t.contains("is gone"), "{t}");
}

#[test]
fn apply_without_root_is_refused_at_validation() {
    let ApplySetup { ns, state, .. } = ApplySetup::new("noroot", PRE);
    let before = values(&ns);
    // nobody, inside the namespace (ip netns exec does the setns as root first).
    let out = ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_rstaudit"))
        .args(["apply", "--profile", "baseline", "--state-dir"])
        .arg(state.path().join("x"))
        .output()
        .unwrap();
    let t = common::exits(&out, 2);
    assert!(t.contains("permission denied"), "{t}");
    assert!(t.contains("nothing was written"), "{t}");
    assert_eq!(values(&ns), before);
}

#[test]
fn audit_takes_rule_parameters_from_a_profile_name_or_file() {
    let ns = prepared("audit-profile");
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "lb1000.yaml",
        "description: a balancer with a 1000 s idle timeout\nextends: behind-load-balancer\nparams:\n  idle_timeout: 1000\n",
    );
    let audit = |profile: &str| {
        rsta(&[
            "audit",
            "--netns",
            &ns.name,
            "--profile",
            profile,
            "--format",
            "json",
            "--fail-on",
            "never",
        ])
    };
    let out = audit(file.to_str().unwrap());
    let t = common::exits(&out, 0);
    assert!(t.contains("idle timeout of 1000 s"), "{t}");
    let out = audit("mobile-gateway");
    let t = common::exits(&out, 0);
    assert!(t.contains("idle timeout of 300 s"), "{t}");

    std::fs::write(&file, "description: x\nparams:\n  idle_timeout: [1]\n").unwrap();
    let out = audit(file.to_str().unwrap());
    let t = common::exits(&out, 2);
    assert!(t.contains("lb1000.yaml:3:3: parameter idle_timeout"), "{t}");
}

/// List sysctls (ip_local_reserved_ports) answer only the first read of their file: a value
/// longer than a small first read must be read whole by snapshot, apply's read-back and
/// rollback.
#[test]
fn long_list_values_are_read_whole_applied_and_rolled_back() {
    let before = "8080,8443,9000-9100,10250,10255,30000-32767";
    let ns = Netns::with_sysctls("longval", &[("net.ipv4.ip_local_reserved_ports", before)]);
    let out = rsta(&["snapshot", "--netns", &ns.name]);
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a snapshot");
    assert_eq!(
        snap["sysctls"]["net.ipv4.ip_local_reserved_ports"],
        before,
        "{}",
        common::text(&out)
    );
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wanted = "8080,8443,9000-9100,10250,10255,20000-20100,30000-32000";
    let profile = write_file(
        dir.path(),
        "ports.yaml",
        &format!(
            "description: t\nsysctls:\n  net.ipv4.ip_local_reserved_ports:\n    value: \"{wanted}\"\n    reason: t\n"
        ),
    );
    common::exits(&apply_file(&ns, state.path(), &profile), 0);
    assert_eq!(ns.read_sysctl("net.ipv4.ip_local_reserved_ports"), wanted);
    common::exits(&rollback(state.path(), &[]), 0);
    assert_eq!(ns.read_sysctl("net.ipv4.ip_local_reserved_ports"), before);
}

/// Run `rstaudit ARGS` (from the host, or `inside` the namespace as its PID 1) and record it.
fn record(t: &mut Transcript, inside: Option<&Netns>, args: &[&str]) -> Output {
    let out = match inside {
        None => rsta(args),
        Some(ns) => ns
            .as_init(env!("CARGO_BIN_EXE_rstaudit"))
            .args(args)
            .output()
            .unwrap(),
    };
    t.add(args, &out);
    out
}

#[test]
fn transcript_names_stay_stable() {
    let mut t = Transcript::default();
    t.name("/tmp/x", "[DIR]");
    let out = std::process::Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(0),
        stdout: b"/tmp/x/rollback-20261123T192800.123Z-42-0000.json rollback-20261123T192801.000Z-42-0001.json\n\
                  /tmp/x/rollback-20261123T192800.123Z-42-0000.json.done, rollback-x at 2026-11-23T19:28:00.123Z."
            .to_vec(),
        stderr: Vec::new(),
    };
    t.add(&["x"], &out);
    assert_eq!(
        t.finish(),
        "$ rstaudit x\n[exit Some(0)]\n[DIR]/rollback-#1.json rollback-#2.json\n\
         [DIR]/rollback-#1.json.done, rollback-x at [TIME].\n"
    );
}

/// What apply, verify and rollback print for one namespace, pinned byte for byte: the diff
/// (table and JSON), dry runs, an apply, a no-op apply, drift, a rollback (with a key changed
/// since the apply), problems, other owners, and `--persist` in a namespace that is the
/// initial one as seen from inside it.
#[test]
fn apply_verify_and_rollback_print_the_same_for_one_namespace() {
    let ns = prepared("snap1");
    let (state, dir) = (fixed_dir(), fixed_dir());
    let st = state.path().to_str().unwrap();
    let profile = write_file(dir.path(), "snap.yaml", common::transcript::PROFILE);
    let p = profile.to_str().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let root = empty.to_str().unwrap();
    let mut t = Transcript::default();
    t.name(ns.name.clone(), "[NS]")
        .name(st, "[STATE]")
        .name(dir.path().to_str().unwrap(), "[DIR]");
    let n = ns.name.as_str();
    let apply = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["apply", "--profile", p, "--netns", n, "--state-dir", st];
        a.extend(["--sysctl-root", root]);
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    let verify = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "verify",
            "--profile",
            p,
            "--netns",
            n,
            "--sysctl-root",
            root,
        ];
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    let run = |t: &mut Transcript, args: Vec<String>, code: i32| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = record(t, None, &args);
        common::exits(&out, code);
    };
    run(&mut t, apply(&["--dry-run"]), 0);
    run(&mut t, apply(&["--dry-run", "--format", "json"]), 0);
    run(&mut t, apply(&[]), 0);
    run(&mut t, verify(&[]), 0);
    run(&mut t, verify(&["--format", "json"]), 0);
    run(&mut t, apply(&[]), 0);
    run(&mut t, apply(&["--format", "json"]), 0);
    let rb = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["rollback", "--state-dir", st];
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    run(&mut t, rb(&["--dry-run"]), 0);
    run(&mut t, rb(&[]), 0);
    run(&mut t, apply(&["--format", "json"]), 0);
    let partial = write_file(
        dir.path(),
        "80-partial.conf",
        "net.ipv4.tcp_syncookies = 1\n",
    );
    run(&mut t, verify(&["--persist", partial.to_str().unwrap()]), 1);
    ns.sysctl("net.core.somaxconn", "2048");
    run(&mut t, verify(&[]), 1);
    run(&mut t, verify(&["--format", "json"]), 1);
    run(&mut t, rb(&[]), 0);

    // Problems: nothing is written, the diff says why.
    let global = write_file(
        dir.path(),
        "global.yaml",
        "description: t\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 1\n    reason: t\n  \
         net.core.netdev_max_backlog:\n    value: 5000\n    reason: t\n",
    );
    let g = global.to_str().unwrap();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["apply", "--profile", g, "--netns", n, "--state-dir", st];
        a.extend(["--sysctl-root", root]);
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    run(&mut t, with(&[]), 2);
    run(&mut t, with(&["--format", "json"]), 2);
    // A failure mid-transaction: every key written is restored.
    let fault = ["--inject-fault", "read-back:net.ipv4.tcp_fin_timeout"];
    run(&mut t, apply(&fault), 2);
    run(
        &mut t,
        apply(&[&fault[..], &["--format", "json"][..]].concat()),
        2,
    );

    // Other owners: one file of another tool, one rstaudit manages.
    let tree = dir.path().join("tree");
    write_file(
        &tree,
        "etc/sysctl.d/60-other.conf",
        "net.core.somaxconn = 1024\n",
    );
    write_file(
        &tree,
        "etc/sysctl.d/90-rstaudit.conf",
        "# Managed by rstaudit\nnet.ipv4.tcp_syncookies = 1\n",
    );
    let tr = tree.to_str().unwrap();
    let owned = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["apply", "--profile", p, "--netns", n, "--state-dir", st];
        a.extend(["--sysctl-root", tr, "--dry-run"]);
        a.extend(extra);
        a.into_iter().map(String::from).collect()
    };
    run(&mut t, owned(&[]), 2);
    run(&mut t, owned(&["--format", "json"]), 2);
    let over = [
        "--override-owned",
        "net.core.somaxconn,net.ipv4.tcp_rfc1337",
    ];
    run(&mut t, owned(&over), 0);
    run(
        &mut t,
        owned(&[&over[..], &["--format", "json"][..]].concat()),
        0,
    );
    assert_eq!(values(&ns), values(&prepared("snap1-ref")));

    // --persist where the namespace is the initial one (seen from inside it).
    let persist = dir.path().join("90-snap.conf");
    let ps = persist.to_str().unwrap();
    let inside = |t: &mut Transcript, args: &[&str], code: i32| {
        let out = record(t, Some(&ns), args);
        common::exits(&out, code);
    };
    let a = [
        "apply",
        "--profile",
        p,
        "--state-dir",
        st,
        "--sysctl-root",
        root,
        "--netns-scope",
        "rsta-snap1-none-",
    ];
    inside(
        &mut t,
        &[&a[..], &["--persist", ps, "--dry-run"][..]].concat(),
        0,
    );
    inside(&mut t, &[&a[..], &["--persist", ps][..]].concat(), 0);
    inside(&mut t, &["verify", "--profile", p, "--persist", ps], 0);
    inside(&mut t, &["rollback", "--state-dir", st], 0);
    let json = [&a[..], &["--persist", ps, "--format", "json"][..]].concat();
    inside(&mut t, &json, 0);
    inside(&mut t, &json, 0);
    inside(&mut t, &["rollback", "--state-dir", st, "--dry-run"], 0);
    inside(&mut t, &["rollback", "--state-dir", st], 0);
    assert!(!persist.exists());
    insta::assert_snapshot!(t.finish());
}

/// A persist file is loaded into the initial namespace at boot: persisting the values of
/// another namespace is refused, with `--dry-run` too, from outside (`--netns NAME`) and from
/// inside it, and nothing is written.
#[test]
fn persist_outside_the_initial_namespace_is_refused_on_every_path() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("persist-ns", PRE);
    let before = values(&ns);
    let file = dir.path().join("90-rstaudit.conf");
    let f = file.to_str().unwrap();
    let st = state.path().to_str().unwrap();
    let persisting = ["--profile", "baseline", "--persist", f];
    let problem = format!(
        "persist: a sysctl.d file is loaded into the initial network namespace at boot \
         (`sysctl --system`), and namespace {} is not the initial one",
        ns.name
    );
    for extra in [
        &[][..],
        &["--dry-run"],
        &["--format", "json"],
        &["--dry-run", "--format", "json"],
    ] {
        let outside = apply(&ns, state.path(), &[&persisting[..], extra].concat());
        let inside = ns
            .command(env!("CARGO_BIN_EXE_rstaudit"))
            .args(["apply", "--state-dir", st])
            .args(persisting)
            .args(extra)
            .output()
            .unwrap();
        for out in [outside, inside] {
            common::refused(&out, &[&problem, "nothing was written"]);
            if extra.contains(&"json") {
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let problems = json["problems"].as_array().unwrap();
                assert_eq!(problems.len(), 1, "{json}");
                assert!(
                    problems[0].as_str().unwrap().starts_with(problem.as_str()),
                    "{json}"
                );
                assert!(json.get("result").is_none(), "{json}");
            }
            assert_eq!(values(&ns), before, "{extra:?}: {}", common::text(&out));
            assert!(!file.exists(), "{extra:?}");
            assert!(rollback_files(state.path()).is_empty(), "{extra:?}");
        }
    }
}
