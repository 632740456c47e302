//! An error about a value the user gave on the command line names the flag that gave it, and
//! only then: the library's errors say what is wrong with a namespace name or a profile, and
//! the command layer adds `--netns` or `--profile`. A namespace recorded in a rollback file
//! was not given by a flag, and its error names none.

mod common;

use common::{Netns, exits, rstaudit};

/// A namespace name that no test creates.
const NO_SUCH: &str = "rstaudit-no-such-namespace";

fn run(args: &[&str]) -> std::process::Output {
    rstaudit().args(args).output().expect("running rstaudit")
}

/// Every command that takes `--netns NAME|PATH`, with what else it needs to get that far.
fn netns_commands(netns: &str) -> Vec<Vec<String>> {
    let with = |args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--netns".to_string(), netns.to_string()]);
        v
    };
    vec![
        with(&["audit"]),
        with(&["snapshot"]),
        with(&["fix"]),
        with(&["apply", "--profile", "baseline", "--dry-run"]),
        with(&["verify", "--profile", "baseline"]),
        with(&["packet-check", "--duration", "1"]),
    ]
}

#[test]
fn a_namespace_that_does_not_exist_is_named_with_its_flag() {
    common::require_root();
    for args in netns_commands(NO_SUCH) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = exits(&run(&args), 2);
        let expected = format!(
            "rstaudit: error: --netns {NO_SUCH}: cannot open /run/netns/{NO_SUCH} (list names \
             with `ip netns list`, or give /proc/PID/ns/net): No such file or directory"
        );
        assert!(t.contains(&expected), "{args:?}: {t}");
    }
}

#[test]
fn a_namespace_name_that_is_not_a_name_is_quoted_after_its_flag() {
    common::require_root();
    for name in ["..", "."] {
        for args in netns_commands(name) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let t = exits(&run(&args), 2);
            let expected = format!("rstaudit: error: --netns {name:?}: not a namespace name");
            assert!(t.contains(&expected), "{args:?}: {t}");
        }
    }
}

#[test]
fn an_unknown_profile_is_named_with_its_flag() {
    for args in [
        vec![
            "audit",
            "--profile",
            "no-such-profile",
            "--root",
            "/nonexistent",
        ],
        vec!["apply", "--profile", "no-such-profile", "--dry-run"],
        vec!["verify", "--profile", "no-such-profile"],
    ] {
        let t = exits(&run(&args), 2);
        assert!(
            t.contains(
                "--profile:1:1: unknown profile \"no-such-profile\": built-in profiles are "
            ),
            "{args:?}: {t}"
        );
    }
}

/// `rollback` reads the namespace from its file: when it is gone, the error says so with the
/// recorded path, and names no flag the user did not give.
#[test]
fn a_rollback_whose_namespace_is_gone_names_no_flag() {
    common::require_root();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let path = {
        let ns = Netns::with_sysctls("rb-noflag", &[("net.core.somaxconn", "128")]);
        let out = run(&[
            "apply",
            "--netns",
            &ns.name,
            "--state-dir",
            state_dir,
            "--profile",
            "baseline",
        ]);
        exits(&out, 0);
        format!("/run/netns/{}", ns.name)
    };
    let t = exits(&run(&["rollback", "--state-dir", state_dir]), 2);
    assert!(t.contains("is gone"), "{t}");
    assert!(
        t.contains(&format!("{path}: cannot open {path} (")),
        "the recorded path, not a flag: {t}"
    );
    assert!(!t.contains("--netns"), "names a flag it was not given: {t}");
}

#[test]
fn an_unknown_fault_step_is_named_with_its_flag() {
    for mut args in [
        vec!["apply", "--profile", "baseline", "--dry-run"],
        vec!["rollback"],
    ] {
        args.extend(["--inject-fault", "bogus"]);
        let t = exits(&run(&args), 2);
        assert!(
            t.contains(
                "rstaudit: error: --inject-fault \"bogus\": expected validate, rollback-file, \
                 write:KEY, read-back:KEY, persist-write, persist-rename, restore:KEY or \
                 pause-after-write:KEY"
            ),
            "{args:?}: {t}"
        );
    }
}
