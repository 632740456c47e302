//! The fault-injection matrix of docs/reliability.md: a failure at every step of apply and of
//! rollback (the hidden `--inject-fault STEP` flag), a key that cannot be restored, and SIGKILL
//! at random moments of an apply and at a known one. Each leaves the namespace's values exactly
//! as before, or a rollback file in effect that restores them. Also hostile input to apply and
//! rollback: hostile profiles, and rollback files, state directories and persist paths someone
//! else could have written. All in network namespaces the tests create.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{ApplySetup, Netns, rstaudit, text};

/// Every key of the baseline profile, set so that each one must be written.
const PRE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.ipv4.tcp_abort_on_overflow", "1"),
    ("net.ipv4.tcp_timestamps", "0"),
    ("net.ipv4.tcp_rfc1337", "0"),
    ("net.ipv4.tcp_fin_timeout", "120"),
    ("net.core.somaxconn", "128"),
];

/// The keys high-connection-server sets besides baseline's, set so that each must be written.
const HCS_EXTRA: &[(&str, &str)] = &[
    ("net.ipv4.tcp_max_syn_backlog", "128"),
    ("net.ipv4.tcp_max_tw_buckets", "1024"),
    ("net.ipv4.tcp_tw_reuse", "0"),
];

fn values(ns: &Netns) -> Vec<String> {
    PRE.iter().map(|(k, _)| ns.read_sysctl(k)).collect()
}

/// Each of `keys` with its value in the namespace.
fn values_of(ns: &Netns, keys: &[&str]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| (k.to_string(), ns.read_sysctl(k)))
        .collect()
}

/// Names in `dir` that look like a temporary file of an atomic write.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("rstaudit-tmp"))
                .collect()
        })
        .unwrap_or_default()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// Exit 2 with `needle` in stderr, no panic.
#[track_caller]
fn refused(out: &Output, needle: &str) {
    common::refused(out, &[needle]);
}

fn run(args: &[&str]) -> Output {
    rstaudit().args(args).output().expect("running rstaudit")
}

/// `run` inside `ns` as its PID 1, where `--persist` may be given (the namespace is the
/// initial one as rstaudit sees it from there).
fn run_as_init(ns: &Netns, args: &[&str]) -> Output {
    common::rstaudit_as_init(ns)
        .args(args)
        .output()
        .expect("running rstaudit")
}

/// `apply` of `profile` in the namespace.
fn apply_profile_args<'a>(ns: &'a Netns, state: &'a Path, profile: &'a str) -> Vec<&'a str> {
    vec![
        "apply",
        "--netns",
        &ns.name,
        "--state-dir",
        state.to_str().unwrap(),
        "--profile",
        profile,
    ]
}

/// `apply` of the baseline profile, persisted to `persist` (run it with [`run_as_init`]).
fn apply_args<'a>(ns: &'a Netns, state: &'a Path, persist: &'a Path) -> Vec<&'a str> {
    let mut args = apply_profile_args(ns, state, "baseline");
    args.extend(["--persist", persist.to_str().unwrap()]);
    args
}

/// `rollback`, with an injected failure at `fault` if given.
fn rollback(state: &Path, fault: Option<&str>) -> Output {
    let mut args = vec!["rollback", "--state-dir", state.to_str().unwrap()];
    if let Some(step) = fault {
        args.extend(["--inject-fault", step]);
    }
    run(&args)
}

/// Rollback files still in effect (not `.done` / `.aborted`).
fn in_effect(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("rollback-") && n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A first apply (tcp_keepalive_time 600, a profile written in `dir`) that creates the persist
/// file; returns what it wrote there.
fn apply_first_with_persist(ns: &Netns, state: &Path, dir: &Path, persist: &Path) -> String {
    let first = dir.join("first.yaml");
    std::fs::write(
        &first,
        "description: first\nsysctls:\n  net.ipv4.tcp_keepalive_time:\n    value: 600\n    reason: t\n",
    )
    .unwrap();
    let mut args = apply_profile_args(ns, state, first.to_str().unwrap());
    args.extend(["--persist", persist.to_str().unwrap()]);
    common::exits(&run_as_init(ns, &args), 0);
    std::fs::read_to_string(persist).unwrap()
}

fn steps() -> Vec<String> {
    let mut steps = vec!["validate".to_string(), "rollback-file".to_string()];
    for (k, _) in PRE {
        steps.push(format!("write:{k}"));
        steps.push(format!("read-back:{k}"));
    }
    steps.push("persist-write".to_string());
    steps.push("persist-rename".to_string());
    steps
}

#[test]
fn apply_fails_at_every_step_and_leaves_every_value_as_it_was() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("fapply", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values(&ns);
    for step in steps() {
        let mut args = apply_args(&ns, state.path(), &persist);
        args.extend(["--inject-fault", &step]);
        let out = run_as_init(&ns, &args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{step}: {all}");
        assert!(all.contains("injected failure"), "{step}: {all}");
        assert!(!all.contains("panicked"), "{step}: {all}");
        assert_eq!(values(&ns), before, "{step} left a value changed: {all}");
        assert!(!persist.exists(), "{step} left the persist file");
        assert!(
            in_effect(state.path()).is_empty(),
            "{step} left a rollback file in effect: {:?}",
            in_effect(state.path())
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{step} left {leftovers:?}");
    }
    // After all that, a clean apply and rollback still work.
    let out = run_as_init(&ns, &apply_args(&ns, state.path(), &persist));
    common::exits(&out, 0);
    assert_ne!(values(&ns), before);
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert_eq!(values(&ns), before);
    assert!(
        !persist.exists(),
        "rollback removes the persist file it created"
    );
}

/// The keys `profiles show NAME` lists.
fn profile_keys(name: &str) -> Vec<String> {
    let out = run(&["profiles", "show", name]);
    common::exits(&out, 0);
    let shown: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let keys: Vec<String> = shown["sysctls"]
        .as_mapping()
        .unwrap_or_else(|| panic!("no sysctls in `profiles show {name}`"))
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(!keys.is_empty(), "no keys in `profiles show {name}`");
    keys
}

#[test]
fn a_failed_apply_keeps_the_previous_rollback_file_usable() {
    let pre: Vec<(&str, &str)> = PRE.iter().chain(HCS_EXTRA).copied().collect();
    let ApplySetup { ns, state, dir } = ApplySetup::new("fkeep", &pre);
    // Every key of both profiles is watched (and set above so that it must be written).
    let mut keys = profile_keys("baseline");
    keys.extend(profile_keys("high-connection-server"));
    keys.sort();
    keys.dedup();
    let watched: Vec<&str> = pre.iter().map(|(k, _)| *k).collect();
    for k in &keys {
        assert!(watched.contains(&k.as_str()), "{k} is not watched");
    }
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values_of(&ns, &watched);
    let out = run_as_init(&ns, &apply_args(&ns, state.path(), &persist));
    common::exits(&out, 0);
    let applied = values_of(&ns, &watched);
    let first = in_effect(state.path());
    assert_eq!(first.len(), 1);
    // A second apply (another profile) that fails at its last key, after writing the others.
    let mut args = apply_profile_args(&ns, state.path(), "high-connection-server");
    args.extend(["--inject-fault", "read-back:net.ipv4.tcp_tw_reuse"]);
    let out = run(&args);
    common::exits(&out, 2);
    // The restored keys as the error lists them (stdout's diff table lists every key).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let restored: Vec<&str> = stderr
        .split_once("restored every key already written (")
        .and_then(|(_, rest)| rest.split_once("), nothing was changed"))
        .unwrap_or_else(|| panic!("no list of restored keys: {}", text(&out)))
        .0
        .split(", ")
        .collect();
    assert_eq!(
        restored,
        [
            "net.core.somaxconn",
            "net.ipv4.tcp_max_syn_backlog",
            "net.ipv4.tcp_max_tw_buckets",
            "net.ipv4.tcp_tw_reuse",
        ],
        "{}",
        text(&out)
    );
    assert_eq!(values_of(&ns, &watched), applied);
    assert_eq!(in_effect(state.path()), first);
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert_eq!(values_of(&ns, &watched), before);
}

#[test]
fn a_key_that_cannot_be_restored_is_named_and_rollback_repairs_it() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("frestore", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values(&ns);
    // The keys are written in name order, net.ipv4.tcp_timestamps last: every key is written,
    // its read-back fails, and restoring net.core.somaxconn fails too.
    let mut args = apply_args(&ns, state.path(), &persist);
    args.extend([
        "--inject-fault",
        "read-back:net.ipv4.tcp_timestamps",
        "--inject-fault",
        "restore:net.core.somaxconn",
    ]);
    let out = run_as_init(&ns, &args);
    refused(
        &out,
        "COULD NOT RESTORE: net.core.somaxconn: injected failure (restore:net.core.somaxconn)",
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("read-back of net.ipv4.tcp_timestamps failed"),
        "{stderr}"
    );
    // Every other key is back; somaxconn holds the profile's value.
    let now = values(&ns);
    for (i, (k, _)) in PRE.iter().enumerate() {
        if *k == "net.core.somaxconn" {
            assert_eq!(now[i], "4096", "{stderr}");
        } else {
            assert_eq!(now[i], before[i], "{k}: {stderr}");
        }
    }
    assert!(!persist.exists(), "the persist step never ran");
    // The rollback file stays in effect, and the message says how to use it.
    let files = in_effect(state.path());
    assert_eq!(files.len(), 1, "{stderr}");
    assert!(stderr.contains(&files[0]), "{stderr}");
    // The command it prints is what restores it.
    let words = common::hint_after(&stderr, "COULD NOT RESTORE: ");
    assert_eq!(words[..2], ["rstaudit", "rollback"], "{stderr}");
    let hint: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let out = run(&hint);
    common::exits(&out, 0);
    assert_eq!(values(&ns), before);
    assert!(!persist.exists());
    assert!(in_effect(state.path()).is_empty());
}

#[test]
fn rollback_fails_at_every_step_and_can_be_retried() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("frollback", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    // A first apply creates the persist file, so that rolling back the second one rewrites it
    // (temp file, rename) rather than removing it.
    let first_persisted = apply_first_with_persist(&ns, state.path(), dir.path(), &persist);
    let before = values(&ns);
    let out = run_as_init(&ns, &apply_args(&ns, state.path(), &persist));
    common::exits(&out, 0);
    let applied = values(&ns);
    let persisted = std::fs::read_to_string(&persist).unwrap();
    let file = in_effect(state.path());
    assert_eq!(file.len(), 2);
    for step in steps() {
        if step == "rollback-file" {
            continue; // a rollback writes no rollback file of its own
        }
        let out = rollback(state.path(), Some(step.as_str()));
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{step}: {all}");
        assert!(!all.contains("panicked"), "{step}: {all}");
        assert_eq!(values(&ns), applied, "{step} left a value half-restored");
        assert_eq!(
            std::fs::read_to_string(&persist).ok().as_deref(),
            Some(persisted.as_str()),
            "{step} changed the persist file"
        );
        assert_eq!(in_effect(state.path()), file, "{step}: rollback file");
    }
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert_eq!(values(&ns), before);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), first_persisted);
    assert_eq!(in_effect(state.path()).len(), 1);
    // Removing a persist file the apply created: the removal is the persist-write step.
    let out = rollback(state.path(), Some("persist-write"));
    common::exits(&out, 2);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), first_persisted);
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert!(!persist.exists());
    assert!(in_effect(state.path()).is_empty());
}

#[test]
fn sigkill_during_apply_leaves_a_state_that_rollback_repairs() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("fkill", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values(&ns);
    // How long a whole apply takes here, to spread the kills over it.
    let started = Instant::now();
    let out = run_as_init(&ns, &apply_args(&ns, state.path(), &persist));
    common::exits(&out, 0);
    let whole = started.elapsed();
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert_eq!(values(&ns), before);

    let rounds = 24u32;
    let mut partial = 0;
    for i in 0..rounds {
        let delay = whole * i / rounds;
        let mut child = common::rstaudit_as_init(&ns)
            .args(apply_args(&ns, state.path(), &persist))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = values(&ns);
        if now != before {
            partial += 1;
            assert!(
                !in_effect(state.path()).is_empty(),
                "round {i} ({delay:?}): values changed without a rollback file"
            );
        }
        if !in_effect(state.path()).is_empty() {
            let out = rollback(state.path(), None);
            assert_eq!(out.status.code(), Some(0), "round {i}: {}", text(&out));
        }
        assert_eq!(values(&ns), before, "round {i} ({delay:?}) not repaired");
        assert!(!persist.exists(), "round {i}: persist file left behind");
        assert!(in_effect(state.path()).is_empty());
    }
    eprintln!("{partial} of {rounds} kills landed mid-write (whole apply {whole:?})");
}

/// Start an apply that holds for 2 s after writing `key`, wait until the namespace shows the
/// write, and SIGKILL it there (`unshare --kill-child` passes the kill on to rstaudit).
fn kill_after_writing(ns: &Netns, args: &[&str], key: &str, old: &str) {
    let mut args = args.to_vec();
    let pause = format!("pause-after-write:{key}");
    args.extend(["--inject-fault", pause.as_str()]);
    let mut child = common::rstaudit_as_init(ns)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while ns.read_sysctl(key) == old {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply ended ({status}) before writing {key}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{key} never written"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL, while the apply is held after writing `key`
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        None,
        "the apply ended on its own ({status}), not by the kill"
    );
}

#[test]
fn sigkill_at_a_known_point_mid_write_is_repaired_by_rollback() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("fkillat", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    let mut keys: Vec<&str> = PRE.iter().map(|(k, _)| *k).collect();
    keys.push("net.ipv4.tcp_keepalive_time");
    // Keys are written in name order: somaxconn, tcp_abort_on_overflow, tcp_fin_timeout, ...
    let fin = "net.ipv4.tcp_fin_timeout";

    // 1. No persist file before: the kill leaves three keys written, a rollback file in
    //    effect, no persist file and no temporary file.
    let before = values_of(&ns, &keys);
    kill_after_writing(&ns, &apply_args(&ns, state.path(), &persist), fin, "120");
    let killed = values_of(&ns, &keys);
    let changed: Vec<&str> = before
        .iter()
        .zip(&killed)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0.as_str())
        .collect();
    // Written before the kill (in the order of PRE): the first three keys, no others.
    assert_eq!(
        changed,
        [
            "net.ipv4.tcp_abort_on_overflow",
            "net.ipv4.tcp_fin_timeout",
            "net.core.somaxconn"
        ]
    );
    assert_eq!(in_effect(state.path()).len(), 1);
    assert!(!persist.exists());
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    assert_eq!(temp_files(state.path()), Vec::<String>::new());
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert_eq!(values_of(&ns, &keys), before);
    assert!(!persist.exists());
    assert!(in_effect(state.path()).is_empty());

    // 2. A persist file from an earlier apply: the kill leaves it as it was, and the rollback
    //    keeps (restores) that content.
    let first_persisted = apply_first_with_persist(&ns, state.path(), dir.path(), &persist);
    let before = values_of(&ns, &keys);
    let effect = in_effect(state.path());
    assert_eq!(effect.len(), 1);
    kill_after_writing(&ns, &apply_args(&ns, state.path(), &persist), fin, "120");
    assert_ne!(values_of(&ns, &keys), before);
    assert_eq!(in_effect(state.path()).len(), 2);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), first_persisted);
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    assert_eq!(temp_files(state.path()), Vec::<String>::new());
    let out = rollback(state.path(), None);
    common::exits(&out, 0);
    assert_eq!(values_of(&ns, &keys), before);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), first_persisted);
    assert_eq!(in_effect(state.path()), effect);
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
}

/// The inode of the namespace's file under /run/netns.
fn netns_inode(ns: &Netns) -> u64 {
    std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino()
}

/// A rollback file as an attacker would write it: a key outside net.* and a persist file
/// that does not exist yet, with content of their choosing.
fn crafted_rollback(ns: &Netns, key: &str, old: &str, persist: &Path) -> String {
    serde_json::json!({
        "schema": 1,
        "created_at": "2030-01-01T00:00:00.000Z",
        "what": "profile baseline",
        "netns": {
            "name": ns.name,
            "inode": netns_inode(ns),
            "path": format!("/run/netns/{}", ns.name),
        },
        "keys": [{"key": key, "old": old, "new": "1", "outside_net": key != "net.core.somaxconn"}],
        "persist": {"path": persist, "previous": "* * * * * root echo planted\n"},
    })
    .to_string()
}

#[test]
fn rollback_files_someone_else_could_write_are_refused_and_change_nothing() {
    let ApplySetup {
        ns,
        state: state_tmp,
        dir,
    } = ApplySetup::new("fhostile", PRE);
    // A state directory the apply creates (0700).
    let state = state_tmp.path().join("rstaudit");
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values(&ns);
    common::exits(&run_as_init(&ns, &apply_args(&ns, &state, &persist)), 0);
    let applied = values(&ns);
    let persisted = std::fs::read_to_string(&persist).unwrap();
    let effect = in_effect(&state);
    assert_eq!(effect.len(), 1);
    let file = state.join(&effect[0]);
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    let unchanged = |case: &str| {
        assert_eq!(values(&ns), applied, "{case}: a value changed");
        assert_eq!(
            std::fs::read_to_string(&persist).unwrap(),
            persisted,
            "{case}: persist file"
        );
        assert_eq!(in_effect(&state), effect, "{case}: rollback file");
    };
    let state_arg = state.to_str().unwrap();
    let file_arg = file.to_str().unwrap();

    // The rollback file owned by another user (nobody).
    chown(&file, 65534);
    for args in [
        vec!["rollback", "--state-dir", state_arg],
        vec!["rollback", file_arg],
    ] {
        let out = run(&args);
        refused(
            &out,
            &format!("rollback file {file_arg} is owned by uid 65534, not by uid 0"),
        );
        refused(&out, "nothing was changed");
        unchanged("owner");
    }
    chown(&file, 0);

    // The rollback file writable by others.
    chmod(&file, 0o666);
    refused(
        &rollback(&state, None),
        &format!("rollback file {file_arg} is writable by group or others (mode 0666)"),
    );
    unchanged("mode 0666");
    chmod(&file, 0o600);

    // A symbolic link (to a good file): refused, not followed.
    let link = state.join("rollback-99991231T235959.999Z-1-0000.json");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    refused(
        &rollback(&state, None),
        &format!("rollback file {} is a symbolic link", link.display()),
    );
    refused(
        &run(&["rollback", link.to_str().unwrap()]),
        "is a symbolic link",
    );
    std::fs::remove_file(&link).unwrap();
    unchanged("symlink");

    // A state directory anyone can write (or another user owns): nothing in it is used.
    chmod(&state, 0o777);
    refused(
        &rollback(&state, None),
        &format!("state directory {state_arg} is writable by group or others (mode 0777)"),
    );
    unchanged("state dir 0777");
    // ... nor written: an apply refuses it before the first change.
    let other = dir.path().join("first.yaml");
    std::fs::write(
        &other,
        "description: t\nsysctls:\n  net.ipv4.tcp_keepalive_time:\n    value: 600\n    reason: t\n",
    )
    .unwrap();
    let keepalive = ns.read_sysctl("net.ipv4.tcp_keepalive_time");
    refused(
        &run(&apply_profile_args(&ns, &state, other.to_str().unwrap())),
        "(mode 0777)",
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_keepalive_time"), keepalive);
    unchanged("apply into a state dir 0777");
    chmod(&state, 0o700);
    chown(&state, 65534);
    refused(
        &rollback(&state, None),
        &format!("state directory {state_arg} is owned by uid 65534, not by uid 0"),
    );
    unchanged("state dir owner");
    chown(&state, 0);

    // A planted file (another user's) asking for a key outside net.* and a new file elsewhere.
    let open = tempfile::tempdir().unwrap();
    chmod(open.path(), 0o777);
    let planted_target = open.path().join("planted");
    let planted = state.join("rollback-99991231T235959.999Z-2-0000.json");
    std::fs::write(
        &planted,
        crafted_rollback(&ns, "kernel.core_pattern", "core", &planted_target),
    )
    .unwrap();
    chown(&planted, 65534);
    refused(
        &rollback(&state, None),
        &format!("rollback file {} is owned by uid 65534", planted.display()),
    );
    assert!(!planted_target.exists());
    std::fs::remove_file(&planted).unwrap();
    unchanged("planted file");

    // Root's own rollback file whose persist path is in a directory anyone can write.
    let good = std::fs::read_to_string(&file).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&good).unwrap();
    record["persist"] = serde_json::json!({
        "path": planted_target,
        "previous": "* * * * * root echo planted\n",
    });
    std::fs::write(&file, record.to_string()).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    refused(
        &rollback(&state, None),
        &format!(
            "the persist file it records, {}: directory {} is writable by group or others (mode 0777)",
            planted_target.display(),
            open.path().display()
        ),
    );
    assert!(!planted_target.exists());
    assert_eq!(std::fs::read_dir(open.path()).unwrap().count(), 0);
    unchanged("persist path in a 0777 directory");
    // ... and a relative one.
    record["persist"]["path"] = "planted".into();
    std::fs::write(&file, record.to_string()).unwrap();
    refused(
        &rollback(&state, None),
        "the persist file it records, planted: is not an absolute path",
    );
    unchanged("relative persist path");
    // An apply refuses such a --persist too, before the first change.
    let other_state = tempfile::tempdir().unwrap();
    let mut args = apply_profile_args(&ns, other_state.path(), other.to_str().unwrap());
    let target = planted_target.to_str().unwrap();
    args.extend(["--persist", target]);
    refused(
        &run_as_init(&ns, &args),
        &format!(
            "directory {} is writable by group or others",
            open.path().display()
        ),
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_keepalive_time"), keepalive);
    assert!(in_effect(other_state.path()).is_empty());
    assert_eq!(std::fs::read_dir(open.path()).unwrap().count(), 0);

    // With everything put back, the rollback works.
    std::fs::write(&file, good).unwrap();
    common::exits(&rollback(&state, None), 0);
    assert_eq!(values(&ns), before);
    assert!(!persist.exists());
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_refused_persist_path_is_left_alone_with_skip_persist() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("fskip", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values(&ns);
    common::exits(
        &run_as_init(&ns, &apply_args(&ns, state.path(), &persist)),
        0,
    );
    let applied = values(&ns);
    assert_ne!(applied, before);
    let persisted = std::fs::read_to_string(&persist).unwrap();
    let effect = in_effect(state.path());
    assert_eq!(effect.len(), 1);
    let file = state.path().join(&effect[0]);
    // As an earlier version recorded `--persist 90-x.conf`: a relative path.
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    record["persist"]["path"] = "90-x.conf".into();
    std::fs::write(&file, record.to_string()).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);
    // Run where the relative path points, with a managed file there that a rollback of an
    // apply that created it would remove.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("90-x.conf"), &persisted).unwrap();
    let rollback_in_cwd = |extra: &[&str]| {
        rstaudit()
            .args(["rollback", "--state-dir", state.path().to_str().unwrap()])
            .args(extra)
            .current_dir(cwd.path())
            .output()
            .unwrap()
    };
    let dir_names = names(dir.path());

    let out = rollback_in_cwd(&[]);
    common::refused(
        &out,
        &[
            "the persist file it records, 90-x.conf: is not an absolute path",
            &format!(
                "nothing was changed; to restore the values and leave the persist file to you, \
                 run `rstaudit rollback --skip-persist {}`",
                file.display()
            ),
        ],
    );
    assert_eq!(values(&ns), applied);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), persisted);
    assert_eq!(in_effect(state.path()), effect);
    assert_eq!(names(cwd.path()), ["90-x.conf"]);
    assert_eq!(names(dir.path()), dir_names);

    // The command the refusal prints restores the values and leaves the persist file.
    let words = common::hint_after(
        &String::from_utf8_lossy(&out.stderr),
        "leave the persist file to you, run ",
    );
    assert_eq!(words[..3], ["rstaudit", "rollback", "--skip-persist"]);
    let out = rstaudit()
        .args(&words[1..])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    common::exits(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("persist file 90-x.conf left as it is (--skip-persist)\n"),
        "{}",
        text(&out)
    );
    assert!(!stdout.contains("removed"), "{}", text(&out));
    assert_eq!(values(&ns), before);
    // The apply created the persist file; a full rollback would remove it.
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), persisted);
    assert_eq!(names(dir.path()), dir_names);
    assert_eq!(names(cwd.path()), ["90-x.conf"]);
    assert_eq!(
        std::fs::read_to_string(cwd.path().join("90-x.conf")).unwrap(),
        persisted
    );
    assert!(in_effect(state.path()).is_empty());
}

/// A valid key that would change (tcp_fin_timeout is 120 in PRE), for profiles whose other
/// problem is later in the file.
const VALID: &str = "  net.ipv4.tcp_fin_timeout:\n    value: 30\n    reason: t\n";

#[test]
fn hostile_profiles_given_to_apply_change_nothing() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("fprofile", PRE);
    let before = values(&ns);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "deep.yaml",
            format!("description: x\nsysctls: {}\n", common::deep_flow(100_000)),
            "nested more than 64 levels deep",
        ),
        (
            "laughs.yaml",
            format!(
                "description: x\nsysctls:\n{VALID}params:\n{}",
                common::LAUGHS
            ),
            "repetition limit exceeded",
        ),
        (
            "long.yaml",
            format!("description: {}\nsysctls:\n{VALID}", "x".repeat(4 << 20)),
            "larger than 1048576 bytes",
        ),
        (
            "field.yaml",
            format!("description: x\nsysctls:\n{VALID}    colour: red\n"),
            "unknown field `colour`",
        ),
        (
            "nokey.yaml",
            format!(
                "description: x\nsysctls:\n{VALID}  net.ipv4.tcp_no_such_key:\n    value: 1\n    reason: t\n"
            ),
            "unknown sysctl \"net.ipv4.tcp_no_such_key\": no supported kernel (Linux 4.9 to 6.18) has it [unknown-sysctl]",
        ),
        (
            "range.yaml",
            format!(
                "description: x\nsysctls:\n{VALID}  net.ipv4.tcp_syncookies:\n    value: 5\n    reason: t\n"
            ),
            "net.ipv4.tcp_syncookies: 5 is out of range 0..=2",
        ),
    ];
    for (name, body, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let started = Instant::now();
        let out = run(&apply_profile_args(
            &ns,
            state.path(),
            path.to_str().unwrap(),
        ));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} took {:?}",
            started.elapsed()
        );
        refused(&out, needle);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The file, or the profile (named after the file) when the keys are checked.
        let stem = name.trim_end_matches(".yaml");
        assert!(
            stderr.contains(stem),
            "{name}: the file is not named: {stderr}"
        );
        assert!(
            stderr.len() < 4096,
            "{name}: {} bytes of error",
            stderr.len()
        );
        eprintln!("{name}: {}", stderr.trim());
        assert_eq!(values(&ns), before, "{name} changed a value");
        assert_eq!(
            std::fs::read_dir(state.path()).unwrap().count(),
            0,
            "{name} left something in the state directory"
        );
    }
}
