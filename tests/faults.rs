//! The fault-injection matrix of docs/reliability.md: a failure at every step of apply and of
//! rollback (the hidden `--inject-fault STEP` flag), and SIGKILL at random moments of an apply.
//! Each leaves the namespace's values exactly as before and the rollback file usable. All in
//! network namespaces the tests create.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Instant;

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

fn values(ns: &Netns) -> Vec<String> {
    PRE.iter().map(|(k, _)| ns.read_sysctl(k)).collect()
}

/// Assert the exit code (showing the output otherwise).
#[track_caller]
fn exits(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
}

fn run(args: &[&str]) -> Output {
    rstaudit().args(args).output().expect("running rstaudit")
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

/// `apply` of the baseline profile, persisted to `persist`.
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
        let out = run(&args);
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
    let out = run(&apply_args(&ns, state.path(), &persist));
    exits(&out, 0);
    assert_ne!(values(&ns), before);
    let out = rollback(state.path(), None);
    exits(&out, 0);
    assert_eq!(values(&ns), before);
    assert!(
        !persist.exists(),
        "rollback removes the persist file it created"
    );
}

#[test]
fn a_failed_apply_keeps_the_previous_rollback_file_usable() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("fkeep", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    let before = values(&ns);
    let out = run(&apply_args(&ns, state.path(), &persist));
    exits(&out, 0);
    let applied = values(&ns);
    let first = in_effect(state.path());
    assert_eq!(first.len(), 1);
    // A second apply (another profile) that fails half-way.
    let mut args = apply_profile_args(&ns, state.path(), "high-connection-server");
    args.extend(["--inject-fault", "read-back:net.ipv4.tcp_tw_reuse"]);
    let out = run(&args);
    exits(&out, 2);
    assert_eq!(values(&ns), applied);
    assert_eq!(in_effect(state.path()), first);
    let out = rollback(state.path(), None);
    exits(&out, 0);
    assert_eq!(values(&ns), before);
}

#[test]
fn rollback_fails_at_every_step_and_can_be_retried() {
    let ApplySetup { ns, state, dir } = ApplySetup::new("frollback", PRE);
    let persist = dir.path().join("90-rstaudit.conf");
    // A first apply creates the persist file, so that rolling back the second one rewrites it
    // (temp file, rename) rather than removing it.
    let first = dir.path().join("first.yaml");
    std::fs::write(
        &first,
        "description: first\nsysctls:\n  net.ipv4.tcp_keepalive_time:\n    value: 600\n    reason: t\n",
    )
    .unwrap();
    let mut args = apply_profile_args(&ns, state.path(), first.to_str().unwrap());
    args.extend(["--persist", persist.to_str().unwrap()]);
    let out = run(&args);
    exits(&out, 0);
    let first_persisted = std::fs::read_to_string(&persist).unwrap();
    let before = values(&ns);
    let out = run(&apply_args(&ns, state.path(), &persist));
    exits(&out, 0);
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
    exits(&out, 0);
    assert_eq!(values(&ns), before);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), first_persisted);
    assert_eq!(in_effect(state.path()).len(), 1);
    // Removing a persist file the apply created: the removal is the persist-write step.
    let out = rollback(state.path(), Some("persist-write"));
    exits(&out, 2);
    assert_eq!(std::fs::read_to_string(&persist).unwrap(), first_persisted);
    let out = rollback(state.path(), None);
    exits(&out, 0);
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
    let out = run(&apply_args(&ns, state.path(), &persist));
    exits(&out, 0);
    let whole = started.elapsed();
    let out = rollback(state.path(), None);
    exits(&out, 0);
    assert_eq!(values(&ns), before);

    let rounds = 24u32;
    let mut partial = 0;
    for i in 0..rounds {
        let delay = whole * i / rounds;
        let mut child = rstaudit()
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
