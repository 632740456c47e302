//! The example Ansible role (docs/ansible/) run for real with ansible-core
//! against localhost, aimed with `rstaudit_netns` at a namespace this test
//! creates, so the host's own settings are never touched.
//!
//! Needs root and ansible-core (pip, installed by .ci/run); a missing
//! ansible fails the test, it is never skipped.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Keys the test sets to values the `baseline` profile corrects, with the bad value.
const BAD: [(&str, &str); 2] = [
    ("net.ipv4.tcp_abort_on_overflow", "1"),
    ("net.ipv4.tcp_rfc1337", "0"),
];

fn host_sysctl(key: &str) -> String {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

struct Play {
    dir: tempfile::TempDir,
    ns: String,
}

impl Play {
    fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    /// `ansible-playbook docs/ansible/site.yml` against localhost, with `extra` arguments.
    fn run(&self, extra: &[&str]) -> Output {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let inventory = self.dir.path().join("inventory.ini");
        std::fs::write(
            &inventory,
            "localhost ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n",
        )
        .unwrap();
        let vars = serde_json::json!({
            "rstaudit_bin": env!("CARGO_BIN_EXE_rstaudit"),
            "rstaudit_netns": self.ns,
            "rstaudit_profile": "baseline",
            "rstaudit_state_dir": self.dir.path().join("state"),
            "rstaudit_results_dir": self.results(),
            "rstaudit_become": false,
        });
        // ansible-core is installed with `python3 -m pip`; run its CLI through the same python
        // so no console-script shim on PATH is needed.
        let out = Command::new("python3")
            .args(["-m", "ansible.cli.playbook", "-i"])
            .arg(&inventory)
            .arg(root.join("docs/ansible/site.yml"))
            .arg("-e")
            .arg(vars.to_string())
            .args(extra)
            .env("ANSIBLE_HOME", self.dir.path().join("ansible-home"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_CONFIG", self.dir.path().join("none.cfg"))
            .output()
            .expect("python3 is needed for this test");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("No module named ansible"),
            "ansible-core is needed for this test (pip install ansible-core, see .ci/run): {stderr}"
        );
        out
    }
}

#[test]
fn ansible_role_audits_collects_applies_and_fails_on_drift() {
    common::require_root();
    let ns = common::Netns::new("ansible");
    for (key, bad) in BAD {
        ns.sysctl(key, bad);
    }
    let host_before: Vec<String> = BAD.iter().map(|(k, _)| host_sysctl(k)).collect();
    let play = Play {
        dir: tempfile::tempdir().unwrap(),
        ns: ns.name.clone(),
    };

    // Check mode: audit and dry run only; verify finds the drift and fails the play.
    let out = play.run(&["--check"]);
    let log = common::text(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "check mode must fail on drift:\n{log}"
    );
    assert!(log.contains("drifted from profile baseline"), "{log}");
    assert!(
        log.contains("net.ipv4.tcp_abort_on_overflow: 1 -> 0"),
        "{log}"
    );
    for (key, bad) in BAD {
        assert_eq!(ns.read_sysctl(key), bad, "check mode changed {key}");
    }
    let result = play.results().join("localhost.json");
    let audit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).expect("collected audit result"))
            .expect("the collected audit result is JSON");
    assert_eq!(audit["schema"], 4, "{audit}");
    assert_eq!(audit["namespaces"][0]["netns"], ns.name.as_str(), "{audit}");
    assert!(
        audit["namespaces"][0]["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["rule"] == "abort-on-overflow")),
        "the audit saw the namespace's bad value: {audit}"
    );

    // The fleet report step ran on the controller over the collected audits.
    let page = std::fs::read_to_string(play.results().join("fleet.html"))
        .expect("the role wrote the fleet report");
    assert!(page.contains("data-host=\"localhost\""), "{page}");
    assert!(log.contains("rstaudit fleet report"), "{log}");
    assert!(log.contains("1 host(s) audited, 0 failed"), "{log}");

    // A real run applies the profile inside the namespace and verifies it.
    let out = play.run(&[]);
    let log = common::text(&out);
    assert!(out.status.success(), "real run failed:\n{log}");
    assert!(
        log.contains("changed=1") || log.contains("changed=2"),
        "{log}"
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "0");
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_rfc1337"), "1");

    // Check mode again: no drift, nothing would change.
    let out = play.run(&["--check"]);
    let log = common::text(&out);
    assert!(out.status.success(), "no drift expected:\n{log}");
    assert!(log.contains("changed=0"), "{log}");
    assert!(log.contains("failed=0"), "{log}");

    // Drift introduced behind the role's back fails the next check.
    ns.sysctl("net.ipv4.tcp_abort_on_overflow", "1");
    let out = play.run(&["--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::text(&out));

    let host_after: Vec<String> = BAD.iter().map(|(k, _)| host_sysctl(k)).collect();
    assert_eq!(host_before, host_after, "the host's own values changed");
}

#[test]
fn ansible_role_records_an_audit_that_could_not_run_for_the_fleet_report() {
    let play = Play {
        dir: tempfile::tempdir().unwrap(),
        ns: "rsta-no-such-namespace".to_string(),
    };
    let out = play.run(&["--check"]);
    let log = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "the host must fail:\n{log}");
    assert!(
        log.contains("rstaudit audit could not run on localhost"),
        "{log}"
    );
    let record = std::fs::read_to_string(play.results().join("localhost.json"))
        .expect("the role records the failed audit on the controller");
    let v: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert!(
        v["audit_error"]
            .as_str()
            .is_some_and(|e| e.contains("rsta-no-such-namespace")),
        "{record}"
    );
    let out = common::rstaudit()
        .args(["report", "--format", "json"])
        .arg(play.results())
        .output()
        .unwrap();
    let t = common::exits(&out, 2);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["failed"][0]["host"], "localhost", "{t}");
    assert!(
        r["failed"][0]["reason"]
            .as_str()
            .is_some_and(|e| e.starts_with("the audit could not run: ")
                && e.contains("rsta-no-such-namespace")),
        "{t}"
    );
}
