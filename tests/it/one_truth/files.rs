//! Every problem of a file, of its `extends:` chain and of the files a config file names, in
//! one run; syntax errors named as such.

use super::*;
use crate::common::write_file;

/// Every problem of a profile's whole `extends:` chain in one run: the child's values, the
/// parent's own values, and the parent's missing parent.
#[test]
fn every_problem_of_an_extends_chain_comes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "middle.yaml",
        "description: m\nextends: ./missing.yaml\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n    value: 0\n    reason: r\n",
    );
    let child = write_file(
        dir.path(),
        "child.yaml",
        "description: c\nextends: ./middle.yaml\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 7\n    reason: r\n",
    );
    let out = plain(&["profiles", "show", child.to_str().unwrap()]);
    let stderr = common::refused_stderr(&out);
    for needle in [
        "child.yaml:4:3: net.ipv4.tcp_syncookies: 7 is out of range 0..=2 [bad-value]",
        "middle.yaml:4:3: net.ipv4.tcp_fin_timeout: 0 is out of range 1..=3600 [bad-value]",
        "middle.yaml:2:1: cannot read profile file",
        "[unreadable]",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }

    // A parent that names no profile at all, beside a file whose shape is wrong.
    write_file(
        dir.path(),
        "shape.yaml",
        "description: s\nextends: no-such-profile\nsysctl: {}\n",
    );
    let out = plain(&[
        "profiles",
        "show",
        &dir.path().join("shape.yaml").display().to_string(),
    ]);
    let stderr = common::refused_stderr(&out);
    assert!(
        stderr.contains("unknown field `sysctl`") && stderr.contains("[unknown-key]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("shape.yaml:2:1: unknown profile \"no-such-profile\"")
            && stderr.contains("[unknown-profile]"),
        "{stderr}"
    );
}

/// The config file's problems, its profile's and its accept file's, in one run.
#[test]
fn a_config_file_and_the_files_it_names_are_checked_together() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 7\n    reason: r\n",
    );
    write_file(
        dir.path(),
        "accept.yaml",
        "accept:\n  - rule: no-such-rule\n    reason: r\n    expires: 2099-01-01\n",
    );
    let config = write_file(
        dir.path(),
        "config.yaml",
        "profile: ./p.yaml\nfail_on: exposed:severe\naccept: accept.yaml\nparams:\n  idle_timeout: -5\n",
    );
    let s = snapshot().display().to_string();
    let out = plain(&[
        "audit",
        "--snapshot",
        &s,
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = common::refused_stderr(&out);
    for needle in [
        "problems in the config file and the files it names:",
        "config.yaml:2:1: fail_on \"exposed:severe\"",
        "config.yaml:5:3: parameter idle_timeout: -5 is out of range 1..=604800 seconds [bad-value]",
        "p.yaml:3:3: net.ipv4.tcp_syncookies: 7 is out of range 0..=2 [bad-value]",
        "accept.yaml:2:",
        "[unknown-rule]",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
}

/// An unclosed `[` where a mapping is expected is named a syntax error in every file kind.
#[test]
fn an_unclosed_bracket_is_a_syntax_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let profile = write_file(
        d,
        "p.yaml",
        "description: x\nsysctls: [\n  net.core.somaxconn: 1\n",
    );
    let rules = d.join("rules");
    write_file(&rules, "r.yaml", "id: x\ntitle: t\nfix: [\n  sysctls: 1\n");
    let config = write_file(d, "c.yaml", "params: [\n  idle_timeout: 300\n");
    let accept = write_file(d, "a.yaml", "accept: [\n  rule: x\n");
    let s = snapshot().display().to_string();
    for out in [
        plain(&["profiles", "show", profile.to_str().unwrap()]),
        plain(&["rules", "lint", rules.to_str().unwrap()]),
        plain(&[
            "audit",
            "--snapshot",
            &s,
            "--config",
            config.to_str().unwrap(),
        ]),
        plain(&[
            "audit",
            "--snapshot",
            &s,
            "--accept",
            accept.to_str().unwrap(),
        ]),
    ] {
        let stderr = common::refused_stderr(&out);
        assert!(stderr.contains("[syntax]"), "{stderr}");
        assert!(!stderr.contains("[wrong-type]"), "{stderr}");
    }
}
