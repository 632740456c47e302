//! What a user reads when a rule or profile file is wrong: every problem at once, each
//! `file:line:col: message [code]` with a hint. Pinned as insta snapshots, so a change to
//! any message, position or code is seen in review. Files are given by relative paths from
//! a temporary working directory, so the snapshots hold no temporary names.

use crate::common;

use std::path::Path;

use common::GOOD_RULE;

/// Run rstaudit in `dir`; it must refuse (exit 2). Its standard error.
fn refused_in(dir: &Path, args: &[&str]) -> String {
    let out = common::rstaudit()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    // Messages that name a file by its resolved path (an `extends:` cycle) show `[DIR]`.
    let real = dir.canonicalize().unwrap();
    common::refused_stderr(&out).replace(real.to_str().unwrap(), "[DIR]")
}

#[test]
fn rules_lint_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_file(d, "r/a-syntax.yaml", "id: a\ntitle: 'unclosed\n");
    common::write_file(
        d,
        "r/b-unknown-key.yaml",
        &GOOD_RULE.replace("id: my-rule", "id: b\ncolour: red"),
    );
    common::write_file(
        d,
        "r/c-semantic.yaml",
        &GOOD_RULE
            .replace("id: my-rule", "id: c")
            .replace("cause: \"2\"", "cause: \"99\"")
            .replace(
                "    net.ipv4.tcp_syncookies: 1",
                "    net.ipv4.tcp_syncookie: 1",
            )
            .replace("explanation: Because.", "explanation: \" \"\nlab: nowhere"),
    );
    common::write_file(d, "r/d-good.yaml", GOOD_RULE);
    common::write_file(d, "r/e-duplicate.yaml", GOOD_RULE);
    insta::assert_snapshot!(refused_in(d, &["rules", "lint", "r"]));
}

#[test]
fn profiles_show_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_file(
        d,
        "p.yaml",
        "description: \" \"\nextends: baseline\nparams:\n  idle_timeout: 60\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 7\n    reason: x\n  kernel.panic:\n    value: 1\n    reason: x\n  net.ipv4.tcp_fin_timeout:\n    value: 30\n  net.ipv4.tcp_keepalive_time:\n    value: 600\n    reason: x\n  net.ipv4.tcp_tw_reuse:\n    value: 1\n    reason: x\n  net.ipv4.tcp_timestamps:\n    value: 0\n    reason: x\n",
    );
    common::write_file(d, "shape.yaml", "description: x\nsysctls: [1, 2]\n");
    common::write_file(
        d,
        "loop-a.yaml",
        "description: a\nextends: ./loop-b.yaml\nsysctls: {}\n",
    );
    common::write_file(
        d,
        "loop-b.yaml",
        "description: b\nextends: ./loop-a.yaml\nsysctls: {}\n",
    );
    insta::assert_snapshot!(
        "profile_semantic",
        refused_in(d, &["profiles", "show", "./p.yaml"])
    );
    insta::assert_snapshot!(
        "profile_shape",
        refused_in(d, &["profiles", "show", "./shape.yaml"])
    );
    insta::assert_snapshot!(
        "profile_cycle",
        refused_in(d, &["profiles", "show", "./loop-a.yaml"])
    );
}
