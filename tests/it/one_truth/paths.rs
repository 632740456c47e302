//! Each kind of invalid input through every command that accepts it, and the regressions of
//! the issue that asked for one authority on what is valid.

use super::*;
use crate::common::write_file;

/// Everything the cross-path test feeds the commands.
struct Inputs {
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    ns: Netns,
}

impl Inputs {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            ns: Netns::new("onetruth"),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, body: &str) -> String {
        write_file(self.dir.path(), name, body)
            .display()
            .to_string()
    }

    /// A rule directory holding one rule file.
    fn rules(&self, name: &str, rule: &str) -> String {
        self.write(&format!("{name}/rule.yaml"), rule);
        self.path(name)
    }
}

/// How a case runs.
enum Via {
    Host,
    Namespace,
}

type Case = (String, Via, Vec<String>);

fn case(label: &str, via: Via, args: &[&str]) -> Case {
    (
        label.to_string(),
        via,
        args.iter().map(|a| a.to_string()).collect(),
    )
}

/// Every command that reads a rule directory, with `dir`.
fn rule_commands(dir: &str) -> Vec<Case> {
    let s = snapshot().display().to_string();
    let s = s.as_str();
    vec![
        case("rules lint", Via::Host, &["rules", "lint", dir]),
        case("rules list", Via::Host, &["rules", "list", "--rules", dir]),
        case(
            "rules explain",
            Via::Host,
            &["rules", "explain", "my-rule", "--rules", dir],
        ),
        case("explain", Via::Host, &["explain", "reset", "--rules", dir]),
        case(
            "audit",
            Via::Host,
            &["audit", "--snapshot", s, "--rules", dir],
        ),
        case("fix", Via::Host, &["fix", "--snapshot", s, "--rules", dir]),
        case(
            "packet-check",
            Via::Namespace,
            &["packet-check", "--duration", "1", "--rules", dir],
        ),
        case(
            "packet-check --lab",
            Via::Host,
            &[
                "packet-check",
                "--lab",
                "--rule",
                "closed-port",
                "--rules",
                dir,
            ],
        ),
    ]
}

/// Every command that reads a profile, with `profile` (and a config file naming it).
fn profile_commands(inputs: &Inputs, profile: &str, config: &str) -> Vec<Case> {
    let s = snapshot().display().to_string();
    let s = s.as_str();
    let state = inputs.state.path().display().to_string();
    let state = state.as_str();
    vec![
        case("profiles show", Via::Host, &["profiles", "show", profile]),
        case(
            "apply --dry-run",
            Via::Namespace,
            &[
                "apply",
                "--profile",
                profile,
                "--dry-run",
                "--state-dir",
                state,
            ],
        ),
        case(
            "apply",
            Via::Namespace,
            &["apply", "--profile", profile, "--state-dir", state],
        ),
        case("verify", Via::Namespace, &["verify", "--profile", profile]),
        case(
            "audit --profile",
            Via::Host,
            &["audit", "--snapshot", s, "--profile", profile],
        ),
        case(
            "fix --profile",
            Via::Host,
            &["fix", "--snapshot", s, "--profile", profile],
        ),
        case(
            "audit --config (its profile)",
            Via::Host,
            &["audit", "--snapshot", s, "--config", config],
        ),
    ]
}

/// Every command that takes `--set NAME=VALUE` for the rules, with `set`.
fn set_commands(inputs: &Inputs, set: &str) -> Vec<Case> {
    let s = snapshot().display().to_string();
    let s = s.as_str();
    let state = inputs.state.path().display().to_string();
    let state = state.as_str();
    vec![
        case(
            "audit --set",
            Via::Host,
            &["audit", "--snapshot", s, "--set", set],
        ),
        case(
            "fix --set",
            Via::Host,
            &["fix", "--snapshot", s, "--set", set],
        ),
        case(
            "apply --fixes --dry-run --set",
            Via::Namespace,
            &[
                "apply",
                "--fixes",
                "--dry-run",
                "--state-dir",
                state,
                "--set",
                set,
            ],
        ),
        case(
            "apply --fixes --set",
            Via::Namespace,
            &["apply", "--fixes", "--state-dir", state, "--set", set],
        ),
        case(
            "packet-check --set",
            Via::Namespace,
            &["packet-check", "--duration", "1", "--set", set],
        ),
        case(
            "packet-check --lab --set",
            Via::Host,
            &[
                "packet-check",
                "--lab",
                "--rule",
                "closed-port",
                "--set",
                set,
            ],
        ),
    ]
}

/// Each kind of invalid input (sysctl key, sysctl value, profile parameter, lab parameter,
/// config key, rule field) through every command that accepts that kind of input: the same
/// code and exit 2 from each.
#[test]
fn every_command_gives_an_invalid_input_the_same_code_and_exit_2() {
    let inputs = Inputs::new();
    let mut cases: Vec<(&str, Case)> = Vec::new();

    // A sysctl key no supported kernel has (a rule's fix, a profile, --with).
    let rules = inputs.rules(
        "rules-key",
        &common::GOOD_RULE.replace(
            "    net.ipv4.tcp_syncookies: 1",
            "    net.core.somaxconnn: 4096",
        ),
    );
    let profile = inputs.write(
        "key.yaml",
        "description: x\nsysctls:\n  net.core.somaxconnn:\n    at_least: 4096\n    reason: r\n",
    );
    let config = inputs.write("key-config.yaml", &format!("profile: {profile}\n"));
    for c in rule_commands(&rules)
        .into_iter()
        .chain(profile_commands(&inputs, &profile, &config))
        .chain([case(
            "packet-check --lab --with",
            Via::Host,
            &[
                "packet-check",
                "--lab",
                "--rule",
                "closed-port",
                "--with",
                "net.core.somaxconnn=1",
            ],
        )])
    {
        cases.push(("unknown-sysctl", c));
    }

    // A value the key does not mean (tcp_syncookies is 0, 1 or 2).
    let rules = inputs.rules(
        "rules-value",
        &common::GOOD_RULE.replace(
            "    net.ipv4.tcp_syncookies: 1",
            "    net.ipv4.tcp_syncookies: 7",
        ),
    );
    let profile = inputs.write(
        "value.yaml",
        "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 7\n    reason: r\n",
    );
    let config = inputs.write("value-config.yaml", &format!("profile: {profile}\n"));
    for c in rule_commands(&rules)
        .into_iter()
        .chain(profile_commands(&inputs, &profile, &config))
        .chain([case(
            "packet-check --lab --with",
            Via::Host,
            &[
                "packet-check",
                "--lab",
                "--rule",
                "accept-overflow",
                "--with",
                "net.ipv4.tcp_syncookies=7",
            ],
        )])
    {
        cases.push(("bad-value", c));
    }

    // A rule parameter: a value it cannot take, and a name no rule has (--set, a profile's
    // params, a config file's params).
    for (code, name, value) in [
        ("bad-value", "idle_timeout", "-5"),
        ("unknown-param", "idle_timeuot", "300"),
    ] {
        let set = format!("{name}={value}");
        let profile = inputs.write(
            &format!("{code}-params.yaml"),
            &format!(
                "description: x\nparams:\n  {name}: {value}\nsysctls:\n  net.core.somaxconn:\n    at_least: 1\n    reason: r\n"
            ),
        );
        let config = inputs.write(
            &format!("{code}-config.yaml"),
            &format!("params:\n  {name}: {value}\n"),
        );
        let with_profile = inputs.write(
            &format!("{code}-profile-config.yaml"),
            &format!("profile: {profile}\n"),
        );
        let s = snapshot().display().to_string();
        for c in set_commands(&inputs, &set)
            .into_iter()
            .chain(profile_commands(&inputs, &profile, &with_profile))
            .chain([case(
                "audit --config (params)",
                Via::Host,
                &["audit", "--snapshot", &s, "--config", &config],
            )])
        {
            cases.push((code, c));
        }
    }

    // A lab parameter: a value it cannot take, one no selected scenario uses, and one the live
    // check does not have.
    cases.push((
        "bad-value",
        case(
            "packet-check --lab --set outage",
            Via::Host,
            &[
                "packet-check",
                "--lab",
                "--rule",
                "keepalive-timeout",
                "--set",
                "outage=0",
            ],
        ),
    ));
    cases.push((
        "unknown-param",
        case(
            "packet-check --lab --with (unused)",
            Via::Host,
            &[
                "packet-check",
                "--lab",
                "--rule",
                "closed-port",
                "--with",
                "net.ipv4.tcp_sack=1",
            ],
        ),
    ));
    cases.push((
        "unknown-param",
        case(
            "packet-check --set outage (live)",
            Via::Namespace,
            &["packet-check", "--duration", "1", "--set", "outage=60"],
        ),
    ));

    // A config key the file format does not have, named by --config and by RSTAUDIT_CONFIG.
    let config = inputs.write("unknown-key.yaml", "fail-on: high\n");
    let s = snapshot().display().to_string();
    cases.push((
        "unknown-key",
        case(
            "audit --config",
            Via::Host,
            &["audit", "--snapshot", &s, "--config", &config],
        ),
    ));

    // A rule field the format does not have.
    let rules = inputs.rules(
        "rules-field",
        &format!("{}colour: red\n", common::GOOD_RULE),
    );
    for c in rule_commands(&rules) {
        cases.push(("unknown-key", c));
    }

    let mut failures = Vec::new();
    for (code, (label, via, args)) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = match via {
            Via::Host => plain(&args),
            Via::Namespace => in_ns(&inputs.ns, &args),
        };
        if let Err(t) = is_refused_with(&out, code) {
            failures.push(format!(
                "{label} {args:?}: expected [{code}] and exit 2\n{t}"
            ));
        }
    }
    let out = rstaudit()
        .env("RSTAUDIT_CONFIG", &config)
        .args(["audit", "--snapshot", &s])
        .output()
        .unwrap();
    if let Err(t) = is_refused_with(&out, "unknown-key") {
        failures.push(format!(
            "RSTAUDIT_CONFIG: expected [unknown-key] and exit 2\n{t}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {} paths disagree:\n\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n\n")
    );
}

/// Regression: `fix --set idle_timeout=-5` printed `net.ipv4.tcp_keepalive_time = -4`.
#[test]
fn fix_refuses_an_idle_timeout_no_middlebox_has() {
    let s = snapshot().display().to_string();
    let out = plain(&["fix", "--snapshot", &s, "--set", "idle_timeout=-5"]);
    is_refused_with(&out, "bad-value").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("= -4"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--set idle_timeout=-5: parameter idle_timeout: -5 is out of range"),
        "{stderr}"
    );
}

/// A rule of the user's own that computes a value its key cannot take: the value is shown,
/// written and applied nowhere; the finding says why it has none.
#[test]
fn a_computed_fix_the_key_cannot_take_is_dropped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "rules/ka.yaml",
        r#"id: my-keepalive
title: Keepalive against my middlebox
severity: high
cause: "5"
subject: host
params:
  my_idle:
    default: 300
    description: my middlebox's idle timeout
when:
  sysctl: net.ipv4.tcp_keepalive_time
  ge: { param: my_idle }
message: keepalive too late
fix:
  sysctls:
    net.ipv4.tcp_keepalive_time: { sub: [{ param: my_idle }, 1] }
explanation: Because.
"#,
    );
    let rules = dir.path().join("rules");
    let s = snapshot().display().to_string();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "--snapshot".to_string(),
            s.clone(),
            "--rules".into(),
            rules.display().to_string(),
            "--only".into(),
            "my-keepalive".into(),
            "--set".into(),
            "my_idle=-3".into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    let out = rstaudit()
        .arg("audit")
        .args(args(&["--format", "json", "--fail-on", "never"]))
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = &report["namespaces"][0]["findings"][0];
    assert_eq!(finding["rule"], "my-keepalive", "{t}");
    assert!(finding["fix"]["sysctls"].is_null(), "{finding:#}");
    let notes = finding["notes"].to_string();
    assert!(
        notes.contains("no value recommended for net.ipv4.tcp_keepalive_time: the computed -4"),
        "{notes}"
    );
    let out = rstaudit().arg("fix").args(args(&[])).output().unwrap();
    let t = common::exits(&out, 0);
    assert!(!t.contains("= -4"), "{t}");
}

/// Regression: `rules lint` passed a rule whose fix sets tcp_syncookies to 7.
#[test]
fn rules_lint_refuses_a_fix_value_the_key_does_not_mean() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "r.yaml",
        &common::GOOD_RULE.replace(
            "    net.ipv4.tcp_syncookies: 1",
            "    net.ipv4.tcp_syncookies: 7",
        ),
    );
    let out = plain(&["rules", "lint", dir.path().to_str().unwrap()]);
    let stderr = common::refused_stderr(&out);
    assert!(
        stderr
            .contains("r.yaml:12:5: net.ipv4.tcp_syncookies: 7 is out of range 0..=2 [bad-value]"),
        "{stderr}"
    );
}

/// Regression: `packet-check --set nope=1` ran, the error only a note of its audit.
#[test]
fn packet_check_refuses_a_parameter_no_rule_has_before_watching() {
    let ns = Netns::new("otnope");
    let out = in_ns(&ns, &["packet-check", "--duration", "3", "--set", "nope=1"]);
    is_refused_with(&out, "unknown-param").unwrap();
    assert!(
        !common::text(&out).contains("watching TCP resets"),
        "{}",
        common::text(&out)
    );
}

/// Regression: a profile with `net.core.somaxconnn` passed `profiles show` (exit 0) and
/// verify then exited 1 ("does not exist"), with no "did you mean".
#[test]
fn a_misspelt_profile_key_is_refused_with_the_nearest_name() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write_file(
        dir.path(),
        "p.yaml",
        "description: x\nsysctls:\n  net.core.somaxconnn:\n    at_least: 4096\n    reason: r\n",
    );
    let p = profile.to_str().unwrap();
    let ns = Netns::new("otmisspelt");
    for out in [
        plain(&["profiles", "show", p]),
        in_ns(&ns, &["verify", "--profile", p]),
    ] {
        let stderr = common::refused_stderr(&out);
        assert!(
            stderr.contains("p.yaml:3:3: unknown sysctl \"net.core.somaxconnn\"")
                && stderr.contains("[unknown-sysctl]")
                && stderr.contains("hint: did you mean net.core.somaxconn?"),
            "{stderr}"
        );
    }
}
