//! `rstaudit rules`: lint reports every problem with file:line:col and exits 2;
//! docs/rules.md is what `rules doc` prints.

use crate::common;

use std::path::Path;

use common::GOOD_RULE as GOOD;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_broken_rule_dir_gives_one_message_per_problem_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a-bad-yaml.yaml", "id: a\ntitle: 'unclosed\n");
    write(
        d,
        "b-unknown-key.yaml",
        &GOOD.replace("id: my-rule", "id: b\ncolour: red"),
    );
    write(
        d,
        "c-wrong-type.yaml",
        &GOOD
            .replace("id: my-rule", "id: c")
            .replace("severity: low", "severity: [low]"),
    );
    write(
        d,
        "d-unknown-sysctl.yaml",
        &GOOD.replace("id: my-rule", "id: d").replace(
            "    net.ipv4.tcp_syncookies: 1",
            "    net.ipv4.tcp_syncookie: 1",
        ),
    );
    write(
        d,
        "e-bad-version.yaml",
        &GOOD.replace("id: my-rule", "id: e").replace(
            "subject: host",
            "subject: host\napplies:\n  kernel: \">=6.0, <5.0\"",
        ),
    );
    write(d, "f-good.yaml", GOOD);
    let out = common::rstaudit()
        .args(["rules", "lint"])
        .arg(d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let at = |file: &str| d.join(file).display().to_string();
    for (file, pos, text) in [
        ("a-bad-yaml.yaml", "3:1", ""),
        ("b-unknown-key.yaml", "2:1", "unknown field `colour`"),
        ("c-wrong-type.yaml", "3:11", "severity"),
        (
            "d-unknown-sysctl.yaml",
            "12:5",
            "unknown sysctl \"net.ipv4.tcp_syncookie\"",
        ),
        ("e-bad-version.yaml", "7:3", "bad kernel version range"),
    ] {
        let prefix = format!("{}:{pos}: ", at(file));
        let line = err
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no message starting {prefix:?} in:\n{err}"));
        assert!(line.contains(text), "{line}");
    }
    assert_eq!(
        err.lines().filter(|l| l.contains(".yaml:")).count(),
        5,
        "{err}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.trim_start().starts_with("hint: "))
            .count(),
        5,
        "{err}"
    );
    assert!(
        err.contains("did you mean net.ipv4.tcp_syncookies?"),
        "{err}"
    );
}

#[test]
fn several_semantic_problems_in_one_file_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD
        .replace("cause: \"2\"", "cause: \"99\"")
        .replace("  eq: 0", "  eq: { param: nope }")
        .replace(
            "explanation: Because.",
            "explanation: Because.\nlab: no-such-lab",
        );
    write(dir.path(), "x.yaml", &text);
    let out = common::rstaudit()
        .args(["rules", "lint"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.contains("x.yaml:")).count(),
        3,
        "{err}"
    );
    assert!(err.contains("x.yaml:4:1: unknown cause"), "{err}");
    assert!(
        err.contains("x.yaml:8:16: unknown parameter \"nope\""),
        "{err}"
    );
    assert!(err.contains("x.yaml:14:1: unknown lab scenario"), "{err}");
}

/// Computed values, `absent:` and the retransmission functions are checked like the rest:
/// a value that depends on itself, `absent` without a sysctl, a function with the wrong
/// number of operands and an unknown computed name each get their message.
#[test]
fn computed_values_and_kernel_functions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD
        .replace(
            "subject: host",
            "subject: host\ncomputed:\n  a: { computed: b }\n  b: { add: [{ computed: a }, 1] }\n  c: { param: x, absent: 3 }\n  d: { tcp_give_up_ms: [1, 2] }",
        )
        .replace("  eq: 0", "  eq: { computed: nope }");
    write(dir.path(), "x.yaml", &text);
    let out = common::rstaudit()
        .args(["rules", "lint"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in [
        "computed value \"a\" depends on itself (a -> b -> a)",
        "`absent` only goes with `sysctl`",
        "`tcp_give_up_ms` needs exactly 3 operands",
        "unknown computed value \"nope\"",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    // The same values, well formed, lint clean.
    let text = GOOD
        .replace(
            "subject: host",
            "subject: host\ncomputed:\n  a: { sysctl: net.ipv4.tcp_rto_max_ms, absent: 120000 }\n  b: { tcp_give_up_ms: [{ sysctl: net.ipv4.tcp_retries2 }, 200, { computed: a }] }",
        )
        .replace("  eq: 0", "  lt: { computed: b }")
        .replace("message: syncookies off", "message: \"gives up after {computed:b} ms\"");
    write(dir.path(), "x.yaml", &text);
    let out = common::rstaudit()
        .args(["rules", "lint"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", common::text(&out));
}

#[test]
fn rules_dir_overrides_builtin_rules_by_id_and_adds_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mine.yaml", GOOD);
    write(
        dir.path(),
        "override.yaml",
        &GOOD
            .replace("id: my-rule", "id: syncookies-off")
            .replace("title: A rule", "title: Overridden"),
    );
    let out = common::rstaudit()
        .args(["rules", "list", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("my-rule"), "{text}");
    assert!(text.contains("Overridden"), "{text}");
    assert_eq!(text.matches("syncookies-off").count(), 1, "{text}");
}

/// A directory with no rule file in it: `rules lint` fails (linting nothing is a wrong path);
/// an audit runs the built-in rules and says on standard error that the directory was empty
/// (an empty drop-in directory is normal, a mistyped one looks the same).
#[test]
fn a_rules_dir_without_rule_files_is_refused_by_lint_and_said_by_audit() {
    let dir = tempfile::tempdir().unwrap();
    // Files that are not rule files by name: they are not read.
    write(dir.path(), "README.md", "# my rules\n");
    write(dir.path(), "mine.yaml.bak", GOOD);
    let out = common::rstaudit()
        .args(["rules", "lint"])
        .arg(dir.path())
        .output()
        .unwrap();
    common::refused(&out, &["holds no rule files (*.yaml, *.yml)"]);
    let out = common::rstaudit()
        .args([
            "audit",
            "--snapshot",
            "tests/fixtures/ecosystem-host.json",
            "--fail-on",
            "never",
            "--rules",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("holds no rule files (*.yaml, *.yml); only the built-in rules run"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Summary:"));
}

#[test]
fn builtin_rules_lint_clean_and_explain() {
    let out = common::rstaudit().args(["rules", "lint"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::rstaudit()
        .args(["rules", "explain", "linger-zero"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TCPAbortOnData") && text.contains("lab scenario: `linger-zero`"),
        "{text}"
    );
    let out = common::rstaudit()
        .args(["rules", "explain", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn docs_rules_md_is_generated_from_the_rules() {
    let out = common::rstaudit().args(["rules", "doc"]).output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == on_disk,
        "docs/rules.md is stale: run `cargo run -- rules doc > docs/rules.md`"
    );
}

#[test]
fn packet_check_refuses_a_broken_rule_dir_before_watching() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "b-unknown-key.yaml",
        &GOOD.replace("id: my-rule", "id: b\ncolour: red"),
    );
    for mode in [&["--duration", "1"][..], &["--lab", "--all"][..]] {
        let out = common::rstaudit()
            .arg("packet-check")
            .args(mode)
            .arg("--rules")
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{mode:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("b-unknown-key.yaml:2:1: ") && err.contains("unknown field `colour`"),
            "{mode:?}: {err}"
        );
        assert!(!err.contains("watching"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// Conditions are printed as written: TCP states, timers and booleans by name, not number.
#[test]
fn explain_prints_states_timers_and_booleans_by_name() {
    let explain = |id: &str| {
        let out = common::rstaudit()
            .args(["rules", "explain", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain("retransmitting-sockets");
    assert!(
        text.contains("socket state in [ESTABLISHED, SYN_SENT, FIN_WAIT1, CLOSE_WAIT, LAST_ACK]"),
        "{text}"
    );
    assert!(text.contains("socket timer == retransmit"), "{text}");
    let text = explain("linger-zero");
    assert!(text.contains("option linger_on == true"), "{text}");
    let text = explain("unread-close");
    assert!(
        text.contains("socket state in [CLOSE_WAIT, LAST_ACK]"),
        "{text}"
    );
    assert!(!text.contains("[8, 9]"), "{text}");
}

#[test]
fn explain_half_open() {
    let out = common::rstaudit()
        .args(["rules", "explain", "half-open"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cause: half-open (docs/causes.md#half-open)"),
        "{text}"
    );
    assert!(text.contains("socket state == ESTABLISHED"), "{text}");
    assert!(text.contains("does not prevent the reset"), "{text}");
}
