//! The config file of `audit` (docs/config.md): the default path (RSTAUDIT_CONFIG in tests,
//! never the host's /etc/rstaudit), `--config FILE`, flags over the file, the accept file it
//! names, and its diagnostics (insta snapshot).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::fixture::{host, listener};

/// tcp_abort_on_overflow=1 (high, exposed), tcp_rfc1337=0 (info) and somaxconn 2000 (above
/// the default min_somaxconn of 1024: somaxconn-low fires only with a higher parameter).
fn saved(dir: &Path) -> PathBuf {
    let snap = host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .sysctl("net.ipv4.tcp_rfc1337", "0")
        .sysctl("net.core.somaxconn", "2000")
        .socket(listener("0.0.0.0:443", 0, 511).owner(812, "nginx"))
        .build();
    let path = dir.join("host.json");
    std::fs::write(&path, serde_json::to_vec(&snap).unwrap()).unwrap();
    path
}

/// `rstaudit audit --snapshot` in `dir`, with RSTAUDIT_CONFIG set to `default` (None: empty,
/// no default file).
fn audit(dir: &Path, default: Option<&Path>, args: &[&str]) -> Output {
    let snap = saved(dir);
    let mut cmd = common::rstaudit();
    if let Some(d) = default {
        cmd.env("RSTAUDIT_CONFIG", d);
    }
    cmd.current_dir(dir)
        .arg("audit")
        .arg("--snapshot")
        .arg(&snap)
        .args(args)
        .output()
        .unwrap()
}

fn rules_fired(out: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", common::text(out)));
    v["namespaces"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_default_file_is_read_and_a_missing_one_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Without a config the high, exposed finding fails the default --fail-on.
    common::exits(&audit(d, None, &[]), 1);
    let conf = common::write_file(d, "etc/config.yaml", "fail_on: critical\n");
    common::exits(&audit(d, Some(&conf), &[]), 0);
    // A missing default file: as if there were none.
    common::exits(&audit(d, Some(&d.join("etc/absent.yaml")), &[]), 1);
    // A file named with --config must exist.
    let out = audit(d, None, &["--config", "absent.yaml"]);
    let text = common::exits(&out, 2);
    assert!(
        text.contains("absent.yaml:1:1: cannot read the config file")
            && text.contains("[unreadable]"),
        "{text}"
    );
    // --config replaces the default file.
    let other = common::write_file(d, "other.yaml", "fail_on: high\n");
    common::exits(
        &audit(d, Some(&conf), &["--config", other.to_str().unwrap()]),
        1,
    );
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = common::write_file(
        d,
        "config.yaml",
        "fail_on: never\nskip: [rfc1337-off]\nparams:\n  min_somaxconn: 3000\n",
    );
    let c = conf.to_str().unwrap();
    let out = audit(d, None, &["--config", c, "--format", "json"]);
    common::exits(&out, 0);
    let fired = rules_fired(&out);
    assert!(fired.contains(&"somaxconn-low".to_string()), "{fired:?}");
    assert!(!fired.contains(&"rfc1337-off".to_string()), "{fired:?}");
    // Each flag wins over its key.
    common::exits(&audit(d, None, &["--config", c, "--fail-on", "high"]), 1);
    let out = audit(
        d,
        None,
        &[
            "--config",
            c,
            "--format",
            "json",
            "--skip",
            "abort-on-overflow",
            "--set",
            "min_somaxconn=1500",
        ],
    );
    let fired = rules_fired(&out);
    assert!(!fired.contains(&"somaxconn-low".to_string()), "{fired:?}");
    assert!(fired.contains(&"rfc1337-off".to_string()), "{fired:?}");
    assert!(
        !fired.contains(&"abort-on-overflow".to_string()),
        "{fired:?}"
    );
}

#[test]
fn profile_and_params_of_the_file_and_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_file(
        d,
        "etc/high.yaml",
        "description: asks for a large somaxconn\nparams:\n  min_somaxconn: 3000\n",
    );
    common::write_file(
        d,
        "etc/low.yaml",
        "description: content with a small somaxconn\nparams:\n  min_somaxconn: 1500\n",
    );
    let fires = |conf: &str, args: &[&str]| {
        let c = common::write_file(d, "etc/config.yaml", conf);
        let mut all = vec![
            "--config",
            c.to_str().unwrap(),
            "--format",
            "json",
            "--fail-on",
            "never",
        ];
        all.extend_from_slice(args);
        let out = audit(d, None, &all);
        common::exits(&out, 0);
        rules_fired(&out).contains(&"somaxconn-low".to_string())
    };
    // The file's profile (relative to the file) sets the parameter ...
    assert!(fires("profile: high.yaml\n", &[]));
    // ... the file's params override its profile ...
    assert!(!fires(
        "profile: high.yaml\nparams:\n  min_somaxconn: 1500\n",
        &[]
    ));
    // ... a --profile flag overrides both ...
    let low = d.join("etc/low.yaml");
    let high = d.join("etc/high.yaml");
    assert!(fires(
        "profile: low.yaml\nparams:\n  min_somaxconn: 1500\n",
        &["--profile", high.to_str().unwrap()]
    ));
    assert!(!fires(
        "profile: high.yaml\n",
        &["--profile", low.to_str().unwrap()]
    ));
    // ... and --set overrides everything.
    assert!(!fires(
        "profile: high.yaml\n",
        &["--set", "min_somaxconn=1500"]
    ));
}

#[test]
fn the_accept_file_named_in_the_config_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::write_file(
        d,
        "etc/accept.yaml",
        "accept:\n  - rule: abort-on-overflow\n    reason: the LB retries\n    expires: 2099-12-31\n",
    );
    // Relative to the config file, not to the working directory.
    let conf = common::write_file(d, "etc/config.yaml", "accept: accept.yaml\n");
    let out = audit(d, Some(&conf), &["--format", "json"]);
    common::exits(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["waivers"][0]["state"], "active", "{v}");
    // --accept overrides it: this one names nothing on the host, so it is unused and fails.
    common::write_file(
        d,
        "other.yaml",
        "accept:\n  - rule: tw-recycle\n    reason: r\n    expires: 2099-12-31\n",
    );
    let out = audit(
        d,
        Some(&conf),
        &["--format", "json", "--accept", "other.yaml"],
    );
    common::exits(&out, 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["waivers"][0]["rule"], "tw-recycle", "{v}");
    assert_eq!(v["waivers"].as_array().unwrap().len(), 1, "{v}");
}

/// The audit with `--config NAME` must refuse (exit 2, nothing on stdout).
fn refused(dir: &Path, name: &str, body: &str) -> String {
    common::write_file(dir, name, body);
    common::refused_stderr(&audit(dir, None, &["--config", name]))
}

#[test]
fn config_file_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut all = String::new();
    all += &refused(d, "unknown-key.yaml", "fail_on: high\nfail-on: low\n");
    all += &refused(d, "wrong-type.yaml", "only: abort-on-overflow\n");
    all += &refused(
        d,
        "values.yaml",
        "profile: \"\"\nfail_on: exposed:severe\nparams:\n  idle_timeout: soon\n",
    );
    all += &refused(
        d,
        "names.yaml",
        "only: [abort-on-overflow, no-such-rule]\nskip: [rfc1337-of]\nparams:\n  idle_timeout: 350\n  idle_timeuot: 350\n",
    );
    insta::assert_snapshot!(all);
}
