//! `apply` and the other owners of a key: the sysctl.d / sysctl.conf file that sets it.
//!
//! Each test applies inside a network namespace it creates, with its own sysctl
//! configuration tree (the hidden `--sysctl-root DIR`: DIR/etc/sysctl.d, ...,
//! DIR/etc/sysctl.conf), so neither the host's sysctls nor its files are involved.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{ApplySetup, rstaudit, write_file};

const PRE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.ipv4.tcp_abort_on_overflow", "1"),
    ("net.ipv4.tcp_fin_timeout", "120"),
    ("net.core.somaxconn", "128"),
];

/// A configuration tree: another tool's file owning somaxconn, a file rstaudit manages
/// setting syncookies, and a sysctl.conf setting fin_timeout to the value baseline wants.
fn tree(root: &Path) {
    write_file(
        root,
        "etc/sysctl.d/60-other.conf",
        "# written by another tool\nnet.core.somaxconn = 1024\n",
    );
    write_file(
        root,
        "etc/sysctl.d/90-rstaudit.conf",
        "# Managed by rstaudit: written by `rstaudit apply --persist`.\nnet.ipv4.tcp_syncookies = 1\n",
    );
    write_file(root, "etc/sysctl.conf", "net.ipv4.tcp_fin_timeout = 60\n");
}

fn apply(s: &ApplySetup, root: &Path, extra: &[&str]) -> Output {
    apply_with(rstaudit(), s, root, extra)
}

/// [`apply`] run inside the namespace as its PID 1, where `--persist` may be given.
fn apply_as_init(s: &ApplySetup, root: &Path, extra: &[&str]) -> Output {
    apply_with(common::rstaudit_as_init(&s.ns), s, root, extra)
}

fn apply_with(mut cmd: Command, s: &ApplySetup, root: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "apply",
        "--profile",
        "baseline",
        "--netns",
        &s.ns.name,
        "--state-dir",
        s.state.path().to_str().unwrap(),
        "--sysctl-root",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cmd.args(&args).output().unwrap()
}

fn values(s: &ApplySetup) -> Vec<String> {
    PRE.iter().map(|(k, _)| s.ns.read_sysctl(k)).collect()
}

fn state_files(s: &ApplySetup) -> usize {
    std::fs::read_dir(s.state.path()).map_or(0, |d| d.count())
}

#[test]
fn apply_refuses_a_key_another_file_owns_and_changes_nothing() {
    let s = ApplySetup::new("own-refuse", PRE);
    let root = s.dir.path().join("root");
    tree(&root);
    let before = values(&s);
    let other = root.join("etc/sysctl.d/60-other.conf");
    for extra in [&[][..], &["--dry-run"][..]] {
        let out = apply(&s, &root, extra);
        common::refused(
            &out,
            &[
                &format!(
                    "net.core.somaxconn: set by {}:2 (= 1024), a file rstaudit does not manage",
                    other.display()
                ),
                "--override-owned net.core.somaxconn",
                "nothing was written",
            ],
        );
        let t = common::text(&out);
        // The diff shows who owns what; the managed file and sysctl.conf (whose value is
        // the target) are no conflict.
        assert!(
            t.contains(&format!(
                "net.core.somaxconn: {}:2 sets 1024 (another owner)",
                other.display()
            )),
            "{t}"
        );
        assert!(
            t.contains("90-rstaudit.conf:2 sets 1 (managed by rstaudit)"),
            "{t}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("net.ipv4.tcp_syncookies: set by"), "{t}");
        assert!(!stderr.contains("net.ipv4.tcp_fin_timeout: set by"), "{t}");
        assert_eq!(values(&s), before, "a refused apply changed a value");
        assert_eq!(state_files(&s), 0, "a refused apply wrote a rollback file");
    }
}

#[test]
fn override_owned_changes_the_key_and_the_dry_run_shows_the_owners() {
    let s = ApplySetup::new("own-override", PRE);
    let root = s.dir.path().join("root");
    tree(&root);
    let before = values(&s);
    let over = ["--override-owned", "net.core.somaxconn"];
    let out = apply(&s, &root, &[&over[..], &["--dry-run"]].concat());
    let t = common::exits(&out, 0);
    assert!(
        t.contains("net.core.somaxconn: ")
            && t.contains(
                "60-other.conf:2 sets 1024 (another owner; --override-owned: changed anyway)"
            ),
        "{t}"
    );
    assert!(t.contains("net.ipv4.tcp_fin_timeout: "), "{t}");
    assert!(
        t.contains("etc/sysctl.conf:1 sets 60 (another owner)"),
        "{t}"
    );
    assert_eq!(values(&s), before, "--dry-run changed a value");

    let out = apply(&s, &root, &[&over[..], &["--format", "json"]].concat());
    common::exits(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["overridden"],
        serde_json::json!(["net.core.somaxconn"])
    );
    let owners = json["owners"].as_array().unwrap();
    let somax = owners
        .iter()
        .find(|o| o["key"] == "net.core.somaxconn")
        .unwrap();
    assert_eq!(somax["line"], 2);
    assert_eq!(somax["managed"], false);
    assert_eq!(s.ns.read_sysctl("net.core.somaxconn"), "4096");
    assert_eq!(s.ns.read_sysctl("net.ipv4.tcp_syncookies"), "1");
}

#[test]
fn persist_warns_when_a_later_file_overrides_it_at_boot() {
    let s = ApplySetup::new("own-persist", PRE);
    let root = s.dir.path().join("root");
    tree(&root);
    // A later file (by name) sets abort_on_overflow to 1 again; it is another owner, so it
    // needs --override-owned too.
    let late = write_file(
        &root,
        "etc/sysctl.d/99-late.conf",
        "net.ipv4.tcp_abort_on_overflow = 1\n",
    );
    let persist = root.join("etc/sysctl.d/50-rstaudit.conf");
    let out = apply_as_init(
        &s,
        &root,
        &[
            "--override-owned",
            "net.core.somaxconn,net.ipv4.tcp_abort_on_overflow",
            "--persist",
            persist.to_str().unwrap(),
        ],
    );
    let t = common::exits(&out, 0);
    let late = late.canonicalize().unwrap();
    assert!(
        t.contains(&format!(
            "warning: {}:1 sets net.ipv4.tcp_abort_on_overflow = 1 and comes later in `sysctl --system` order: at boot it overrides the persisted 0",
            late.display()
        )),
        "{t}"
    );
    // 60-other.conf comes before 50-rstaudit.conf? No: 50 < 60, so 60-other.conf (1024)
    // overrides somaxconn too.
    assert!(
        t.contains("60-other.conf:2 sets net.core.somaxconn = 1024 and comes later"),
        "{t}"
    );
    // 90-rstaudit.conf (managed, later) sets syncookies = 1, as persisted: no warning.
    assert!(!t.contains("sets net.ipv4.tcp_syncookies"), "{t}");
    assert!(persist.exists());
    assert_eq!(s.ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "0");

    // A file `sysctl --system` never reads is said so.
    let elsewhere = s.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = apply_as_init(
        &s,
        &root,
        &[
            "--dry-run",
            "--override-owned",
            "net.core.somaxconn",
            "--persist",
            elsewhere.join("90-x.conf").to_str().unwrap(),
        ],
    );
    let t = common::exits(&out, 0);
    assert!(
        t.contains("90-x.conf is not in a directory `sysctl --system` reads"),
        "{t}"
    );
}

#[test]
fn verify_reads_the_configuration_under_sysctl_root() {
    let s = ApplySetup::new("own-verify", PRE);
    let root = s.dir.path().join("root");
    tree(&root);
    let out = apply(&s, &root, &["--override-owned", "net.core.somaxconn"]);
    common::exits(&out, 0);
    let out = rstaudit()
        .args([
            "verify",
            "--profile",
            "baseline",
            "--netns",
            &s.ns.name,
            "--format",
            "json",
            "--sysctl-root",
            root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    common::exits(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{json}");
    assert!(
        files[0].as_str().unwrap().ends_with("60-other.conf"),
        "{json}"
    );
    let rows = json["rows"].as_array().unwrap();
    let somax = rows
        .iter()
        .find(|r| r["key"] == "net.core.somaxconn")
        .unwrap();
    assert_eq!(somax["persist"], "differs", "{json}");
}
