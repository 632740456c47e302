//! A dry run makes every check of the real run.

use super::*;
use crate::common::write_file;

/// A dry run makes every check of the real run: a state directory or persist directory others
/// can write is refused by both, with the same words, and neither writes anything.
#[test]
fn a_dry_run_refuses_what_the_real_run_refuses() {
    use std::os::unix::fs::PermissionsExt;
    let ns = Netns::with_sysctls("otdry", &[("net.core.somaxconn", "1000")]);
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.core.somaxconn:\n    at_least: 4096\n    reason: r\n",
    );
    let p = profile.to_str().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = open.to_str().unwrap();
    let good_state = dir.path().join("state");
    let gs = good_state.to_str().unwrap();
    let persist_open = open.join("90-rstaudit.conf");
    let po = persist_open.to_str().unwrap();
    for (what, args, needle) in [
        (
            "state directory",
            vec!["apply", "--profile", p, "--state-dir", o],
            format!("state directory {o} is writable by group or others (mode 0777)"),
        ),
        (
            "persist directory",
            vec!["apply", "--profile", p, "--state-dir", gs, "--persist", po],
            format!("directory {o} is writable by group or others (mode 0777)"),
        ),
    ] {
        let real = common::rstaudit_as_init(&ns).args(&args).output().unwrap();
        let mut dry_args = args.clone();
        dry_args.push("--dry-run");
        let dry = common::rstaudit_as_init(&ns)
            .args(&dry_args)
            .output()
            .unwrap();
        for (run, out) in [("real", &real), ("dry", &dry)] {
            let t = common::text(out);
            assert_eq!(out.status.code(), Some(2), "{what}, {run} run: {t}");
            assert!(t.contains(&needle), "{what}, {run} run: {t}");
            assert!(t.contains("nothing was written"), "{what}, {run} run: {t}");
        }
        assert_eq!(ns.read_sysctl("net.core.somaxconn"), "1000", "{what}");
        assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0, "{what}");
        assert!(!good_state.exists(), "{what}");
    }
}
