//! Output a person reads on a terminal: tables and text fit the terminal's width (measured
//! as display width, escape codes counting nothing), `--color auto|always|never` beside
//! NO_COLOR, progress on long work only on a terminal and never in JSON, and errors as JSON
//! with `--format json`. The terminal is a real pty: util-linux's `script` runs the command
//! on one, sized with `stty`.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Netns, rstaudit};

/// The command line of the binary under test, each word single-quoted for `sh -c`.
fn shell_line(args: &[&str]) -> String {
    std::iter::once(env!("CARGO_BIN_EXE_rstaudit"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run rstaudit with `args` on a pty `cols` columns wide (in `ns` when given) and return
/// what the terminal received (standard output and error), lines ending in `\n`.
fn on_pty(cols: u16, ns: Option<&Netns>, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let line = format!("stty cols {cols} rows 60; exec {}", shell_line(args));
    let mut cmd = match ns {
        Some(ns) => ns.command("script"),
        None => Command::new("script"),
    };
    cmd.args(["--quiet", "--return", "--command", &line, "/dev/null"])
        .env("RSTAUDIT_CONFIG", "")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("running script(1) from util-linux: the pty tests need it");
    // A redrawn line (progress) starts again after a lone `\r`: count it as a line.
    let text = String::from_utf8_lossy(&out.stdout)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    (out.status.code().unwrap_or(-1), text)
}

/// `text` without escape sequences (CSI such as colours and cursor moves, OSC).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The widest line of `text` in display columns, escape codes counting nothing.
fn widest(text: &str) -> (usize, String) {
    plain(text)
        .lines()
        .map(|l| (tabled::grid::util::string::get_line_width(l), l.to_string()))
        .max_by_key(|(w, _)| *w)
        .unwrap_or_default()
}

fn assert_fits(text: &str, cols: usize) {
    let (w, line) = widest(text);
    assert!(
        w <= cols,
        "a line is {w} columns wide, above {cols}:\n{line}\n--- all:\n{text}"
    );
}

/// A namespace with values that make resets likely: the audit of it has findings.
fn risky() -> Netns {
    Netns::with_sysctls(
        "tux",
        &[
            ("net.ipv4.tcp_abort_on_overflow", "1"),
            ("net.core.somaxconn", "16"),
            ("net.ipv4.tcp_syncookies", "0"),
        ],
    )
}

/// Regression (issue 27): on an 80-column terminal the audit table was 157 columns wide on a
/// stock host and wider with findings.
#[test]
fn the_audit_with_findings_fits_an_80_column_terminal() {
    let ns = risky();
    let (code, text) = on_pty(80, Some(&ns), &[], &["audit", "--fail-on", "never"]);
    assert_eq!(code, 0, "{text}");
    for rule in ["abort-on-overflow", "somaxconn-low", "syncookies-off"] {
        assert!(plain(&text).contains(rule), "no finding {rule}:\n{text}");
    }
    // Coloured on a terminal, and the colour codes take no column: every line of a table
    // is as wide as its border, so the columns line up.
    assert!(text.contains("\x1b["), "{text}");
    assert_fits(&text, 80);
    let clean = plain(&text);
    let mut border = None;
    for line in clean.lines() {
        let w = tabled::grid::util::string::get_line_width(line);
        if line.starts_with('┌') {
            border = Some(w);
        } else if line.starts_with('│') || line.starts_with('├') || line.starts_with('└') {
            assert_eq!(
                Some(w),
                border,
                "a row out of line with its table:\n{line}\n{text}"
            );
        }
    }
    assert!(border.is_some(), "no table:\n{text}");
    // A wide terminal gets the four columns, and still fits.
    let (_, wide) = on_pty(200, Some(&ns), &[], &["audit", "--fail-on", "never"]);
    assert!(plain(&wide).contains("│ rule "), "{wide}");
    assert_fits(&wide, 200);
    // A narrow one still holds every finding, ids whole or cut with an ellipsis.
    let (_, narrow) = on_pty(50, Some(&ns), &[], &["audit", "--fail-on", "never"]);
    assert_fits(&narrow, 50);
    assert!(plain(&narrow).contains("abort-on-overflow"), "{narrow}");
}

/// Piped, the audit keeps its fixed layout and has no colour.
#[test]
fn piped_output_has_no_colour_and_no_terminal_layout() {
    let ns = risky();
    let out = ns
        .command(env!("CARGO_BIN_EXE_rstaudit"))
        .env("RSTAUDIT_CONFIG", "")
        .env_remove("NO_COLOR")
        .args(["audit", "--fail-on", "never"])
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    assert!(!t.contains('\x1b'), "{t}");
    assert!(t.contains("│ rule "), "{t}");
}

fn copied_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copied_proc_tree(dir.path(), &["netstat", "snmp", "tcp"], "6.12.0");
    common::write_file(dir.path(), "proc/sys/net/ipv4/tcp_abort_on_overflow", "1\n");
    dir
}

fn audit_tree(dir: &Path) -> Vec<String> {
    vec![
        "audit".into(),
        "--fail-on".into(),
        "never".into(),
        "--root".into(),
        dir.display().to_string(),
    ]
}

#[test]
fn color_always_never_and_no_color() {
    let dir = copied_tree();
    let args = audit_tree(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Piped: auto has none, always has them.
    let piped = |extra: &[&str]| -> String {
        let out = rstaudit().args(&args).args(extra).output().unwrap();
        common::exits(&out, 0)
    };
    assert!(!piped(&[]).contains('\x1b'));
    assert!(piped(&["--color", "always"]).contains("\x1b["));
    assert!(!piped(&["--color", "never"]).contains('\x1b'));
    // On a terminal: auto colours, unless NO_COLOR is set; never does not; always wins over
    // NO_COLOR.
    let with = |env: &[(&str, &str)], extra: &[&str]| -> String {
        let all: Vec<&str> = args.iter().chain(extra).copied().collect();
        on_pty(100, None, env, &all).1
    };
    assert!(with(&[], &[]).contains("\x1b["));
    assert!(!with(&[("NO_COLOR", "1")], &[]).contains("\x1b["));
    assert!(!with(&[], &["--color", "never"]).contains("\x1b["));
    assert!(with(&[("NO_COLOR", "1")], &["--color", "always"]).contains("\x1b["));
    // A value that is no choice is refused.
    let out = rstaudit()
        .args(["--color", "sometimes", "rules", "list"])
        .output()
        .unwrap();
    let t = common::exits(&out, 2);
    assert!(t.contains("auto, always, never"), "{t}");
}

/// With `--format json`, an error is one JSON object on standard output: the message, a
/// code and the exit code.
#[test]
fn errors_are_json_with_format_json() {
    let json_error = |args: &[&str]| -> (serde_json::Value, Output) {
        let out = rstaudit().args(args).output().unwrap();
        let t = common::exits(&out, 2);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {t}"));
        (v, out)
    };
    let (v, out) = json_error(&[
        "audit",
        "--format",
        "json",
        "--snapshot",
        "/nonexistent/x.json",
    ]);
    let e = &v["error"];
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/x.json"),
        "{v:#}"
    );
    assert_eq!(e["code"], "not-found", "{v:#}");
    assert_eq!(e["exit_code"], 2, "{v:#}");
    assert!(out.stderr.is_empty(), "{}", common::text(&out));
    let (v, _) = json_error(&["audit", "--format=json", "--no-such-flag"]);
    assert_eq!(v["error"]["code"], "usage", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{v:#}"
    );
    let (v, _) = json_error(&["explain", "--format", "json", " "]);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the symptom is empty"),
        "{v:#}"
    );
    let (v, _) = json_error(&["verify", "--format", "json", "--profile", "no-such-profile"]);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-profile"),
        "{v:#}"
    );
    // Without it, errors stay text on standard error.
    let out = rstaudit()
        .args(["audit", "--snapshot", "/nonexistent/x.json"])
        .output()
        .unwrap();
    let t = common::exits(&out, 2);
    assert!(out.stdout.is_empty(), "{t}");
    assert!(t.contains("rstaudit: error:"), "{t}");
}

/// Regression (issue 27): `--interval` gave no sign of life. On a terminal it says what it
/// waits for; piped or as JSON it adds nothing.
#[test]
fn the_interval_shows_progress_on_a_terminal_only() {
    let ns = risky();
    let (code, text) = on_pty(
        80,
        Some(&ns),
        &[],
        &["audit", "--interval", "1", "--fail-on", "never"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        plain(&text).contains("sampling the counters twice, 1 s apart"),
        "{text}"
    );
    let (_, json) = on_pty(
        80,
        Some(&ns),
        &[],
        &[
            "audit",
            "--interval",
            "1",
            "--fail-on",
            "never",
            "--format",
            "json",
        ],
    );
    assert!(!json.contains("sampling"), "{json}");
    let out = ns
        .command(env!("CARGO_BIN_EXE_rstaudit"))
        .env("RSTAUDIT_CONFIG", "")
        .args(["audit", "--interval", "1", "--fail-on", "never"])
        .output()
        .unwrap();
    common::exits(&out, 0);
    assert!(out.stderr.is_empty(), "{}", common::text(&out));
}

/// Regression (issue 27): the lab printed nothing for 27 s. On a terminal it shows which
/// scenario runs; its table fits the terminal.
#[test]
fn the_lab_shows_progress_and_fits_the_terminal() {
    common::require_root();
    let (code, text) = on_pty(
        80,
        None,
        &[],
        &["packet-check", "--lab", "--rule", "linger-zero"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(plain(&text).contains("lab: scenario linger-zero"), "{text}");
    assert!(plain(&text).contains("confirmed"), "{text}");
    assert_fits(&text, 80);
    let (_, json) = on_pty(
        80,
        None,
        &[],
        &[
            "packet-check",
            "--lab",
            "--rule",
            "linger-zero",
            "--format",
            "json",
        ],
    );
    assert!(!json.contains("lab: scenario"), "{json}");
}

/// The fleet report fits the terminal: the host matrix is split into blocks of rule
/// columns, long cells wrap; reading many files shows progress.
#[test]
fn the_fleet_report_fits_the_terminal() {
    let dir = copied_tree();
    let fleet = tempfile::tempdir().unwrap();
    let args = audit_tree(dir.path());
    for host in ["web-1", "web-2", "db-with-a-rather-long-inventory-name"] {
        let out = rstaudit()
            .args(&args)
            .args(["--format", "json", "--set", "idle_timeout=60"])
            .output()
            .unwrap();
        common::exits(&out, 0);
        std::fs::write(fleet.path().join(format!("{host}.json")), &out.stdout).unwrap();
    }
    let fleet_dir = fleet.path().display().to_string();
    let (_, text) = on_pty(80, None, &[], &["report", &fleet_dir, "--fail-on", "never"]);
    assert!(
        plain(&text).contains("db-with-a-rather-long-inventory-name"),
        "{text}"
    );
    assert_fits(&text, 80);
    let (_, narrow) = on_pty(60, None, &[], &["report", &fleet_dir, "--fail-on", "never"]);
    assert_fits(&narrow, 60);
}

/// explain's answer fits the terminal too.
#[test]
fn explain_fits_the_terminal() {
    for cols in [60, 80] {
        let (code, text) = on_pty(
            cols,
            None,
            &[],
            &[
                "explain",
                "--text-only",
                "--limit",
                "0",
                "Connection reset by peer",
            ],
        );
        assert_eq!(code, 0, "{text}");
        assert_fits(&text, cols as usize);
    }
}

/// The lists fit too: `rules list` wraps its titles under their column, `profiles list` its
/// summaries, `rules explain` its lines under their indent.
#[test]
fn lists_and_rule_explanations_fit_the_terminal() {
    for args in [
        &["rules", "list"][..],
        &["profiles", "list"],
        &["rules", "explain", "linger-zero"],
        &["rules", "explain", "keepalive-retry-above-idle-timeout"],
    ] {
        let (code, text) = on_pty(80, None, &[], args);
        assert_eq!(code, 0, "{args:?}: {text}");
        assert_fits(&text, 80);
    }
    let (_, list) = on_pty(80, None, &[], &["rules", "list"]);
    assert!(
        plain(&list).contains("keepalive-retry-above-idle-timeout"),
        "{list}"
    );
    // Piped, `rules list` keeps one rule a line.
    let out = rstaudit().args(["rules", "list"]).output().unwrap();
    let t = common::exits(&out, 0);
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!((31..60).contains(&lines), "{t}");
}
