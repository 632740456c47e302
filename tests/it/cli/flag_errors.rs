//! An error about a value the user gave on the command line names the flag that gave it, and
//! only then: the library's errors say what is wrong with a namespace name or a profile, and
//! the command layer adds `--netns` or `--profile`. A namespace recorded in a rollback file
//! was not given by a flag, and its error names none.

use crate::common;

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

/// `--interval` and `--root` values the collector refuses: the message names the flag and
/// the value, from every command that collects.
#[test]
fn a_refused_interval_or_root_is_named_with_its_flag() {
    let empty = tempfile::tempdir().unwrap();
    let file = common::write_file(empty.path(), "file", "x\n");
    let dir = empty.path().join("copy");
    std::fs::create_dir(&dir).unwrap();
    let (file, dir) = (file.to_str().unwrap(), dir.to_str().unwrap());
    for command in ["audit", "snapshot", "fix"] {
        for (args, expected) in [
            (
                vec!["--interval", "0.01"],
                "rstaudit: error: --interval 0.01: expected a number of seconds from 0.1 to 3600"
                    .to_string(),
            ),
            (
                vec!["--root", file],
                format!("rstaudit: error: --root {file}: not a directory"),
            ),
            (
                vec!["--root", dir],
                format!(
                    "rstaudit: error: --root {dir}: holds neither proc/sys/net nor proc/net; \
                     give the directory that contains the copied proc/"
                ),
            ),
        ] {
            let mut all = vec![command];
            all.extend(&args);
            let t = exits(&run(&all), 2);
            assert!(t.contains(&expected), "{all:?}: {t}");
        }
    }
}

/// The library's own errors name no flag: a caller that is not the command line (a test, a
/// tool built on the library) gets what is wrong with the value, and adds its own words.
#[test]
fn library_errors_name_no_flag() {
    use rstaudit::host::{self, CollectError, CollectOptions, Source, SourceError};
    let dir = tempfile::tempdir().unwrap();
    let file = common::write_file(dir.path(), "file", "x\n");
    let opts = |source, interval| CollectOptions {
        source,
        netns: None,
        interval,
        owners: false,
        options: false,
        scan: host::OwnerScan::Auto,
    };
    let err = host::collect(&opts(Source::Root(file.clone()), None)).unwrap_err();
    assert!(
        matches!(&err, CollectError::Source(SourceError::RootNotADirectory(f)) if *f == file),
        "{err:?}"
    );
    assert_eq!(format!("{err:#}"), "not a directory");
    let err = host::collect(&opts(Source::Live, Some(0.01))).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "expected a number of seconds from 0.1 to 3600"
    );

    let err = host::netns::resolve("..").unwrap_err();
    assert_eq!(
        (err.spec(), err.to_string().as_str()),
        ("..", "not a namespace name")
    );

    let err = rstaudit::remedy::profiles::load("no-such-profile").unwrap_err();
    assert!(
        err.problems.iter().all(|p| !p.file.starts_with("--")),
        "{err}"
    );
}
