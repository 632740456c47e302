//! `rstaudit audit --accept FILE`: waivers accept findings (still shown, not counted against
//! --fail-on), expired and unused waivers are reported and fail the audit, and the accept
//! file's problems are diagnostics (pinned as insta snapshots).

use crate::common;

use std::path::{Path, PathBuf};

use common::fixture::{host, listener};

/// tcp_abort_on_overflow=1 (high, exposed: nginx listens) and tcp_rfc1337=0 (info).
fn saved(dir: &Path) -> PathBuf {
    let snap = host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .sysctl("net.ipv4.tcp_rfc1337", "0")
        .socket(listener("0.0.0.0:443", 0, 511).owner(812, "nginx"))
        .build();
    let path = dir.join("host.json");
    std::fs::write(&path, serde_json::to_vec(&snap).unwrap()).unwrap();
    path
}

fn audit(dir: &Path, args: &[&str]) -> std::process::Output {
    let snap = saved(dir);
    common::rstaudit()
        .current_dir(dir)
        .arg("audit")
        .arg("--snapshot")
        .arg(&snap)
        .args(args)
        .output()
        .unwrap()
}

fn accept_file(dir: &Path, body: &str) -> String {
    common::write_file(dir, "accept.yaml", body);
    "accept.yaml".to_string()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", common::text(out)))
}

fn finding<'a>(report: &'a serde_json::Value, rule: &str) -> &'a serde_json::Value {
    report["namespaces"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} finding in {report}"))
}

const NGINX_WAIVER: &str = "accept:\n  - rule: abort-on-overflow\n    process: nginx\n    reason: the LB retries; tracked in OPS-42\n    expires: 2099-12-31\n";

#[test]
fn accepted_findings_stay_in_every_output_and_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Without the waiver the high, exposed finding fails the default --fail-on.
    common::exits(&audit(d, &[]), 1);
    let accept = accept_file(d, NGINX_WAIVER);
    let out = audit(d, &["--accept", &accept, "--format", "json"]);
    common::exits(&out, 0);
    let report = json(&out);
    assert_eq!(report["schema"], 4);
    let f = finding(&report, "abort-on-overflow");
    assert_eq!(
        f["accepted"]["reason"], "the LB retries; tracked in OPS-42",
        "{f}"
    );
    assert_eq!(f["accepted"]["expires"], "2099-12-31");
    assert_eq!(f["accepted"]["waiver"], "accept.yaml:2");
    assert!(finding(&report, "rfc1337-off").get("accepted").is_none());
    assert_eq!(report["waivers"][0]["state"], "active", "{report}");
    assert_eq!(report["waivers"][0]["matched"], 1);
    assert_eq!(report["summary"]["failed"], false);
    assert_eq!(
        report["summary"]["findings"], 2,
        "accepted findings still count as findings"
    );

    let table = common::exits(&audit(d, &["--accept", &accept]), 0);
    assert!(
        table.contains("ACCEPTED until 2099-12-31: the LB"),
        "{table}"
    );
    assert!(
        table.contains("Waivers: 1 finding accepted by 1 waiver; 0 expired or unused."),
        "{table}"
    );

    let junit = common::exits(&audit(d, &["--accept", &accept, "--format", "junit"]), 0);
    assert!(!junit.contains("<failure"), "{junit}");
    assert!(
        junit.contains("accepted until 2099-12-31: the LB retries"),
        "{junit}"
    );
    assert!(
        junit.contains("<testsuite name=\"rstaudit waivers\" tests=\"1\" failures=\"0\""),
        "{junit}"
    );

    let prom = common::exits(
        &audit(d, &["--accept", &accept, "--format", "prometheus"]),
        0,
    );
    assert!(
        prom.contains("rstaudit_findings_accepted{netns=\"host\",rule=\"abort-on-overflow\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("rstaudit_waivers{state=\"active\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("rstaudit_audit_failed{fail_on=\"exposed:medium\"} 0"),
        "{prom}"
    );

    let html = common::exits(&audit(d, &["--accept", &accept, "--format", "html"]), 0);
    assert!(
        html.contains("<strong>Accepted</strong> until 2099-12-31: the LB retries"),
        "{html}"
    );
    assert!(html.contains("id=\"waivers\""), "{html}");
}

#[test]
fn a_waiver_accepts_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (scope, accepted) in [
        ("    sysctl: net.ipv4.tcp_abort_on_overflow\n", true),
        ("    netns: host\n", true),
        ("    process: java\n", false),
        ("    netns: blue\n", false),
        ("    sysctl: net.ipv4.tcp_rfc1337\n", false),
    ] {
        let accept = accept_file(
            d,
            &format!(
                "accept:\n  - rule: abort-on-overflow\n{scope}    reason: r\n    expires: 2099-12-31\n"
            ),
        );
        let out = audit(
            d,
            &[
                "--accept",
                &accept,
                "--format",
                "json",
                "--fail-on",
                "never",
            ],
        );
        common::exits(&out, 0);
        let report = json(&out);
        let f = finding(&report, "abort-on-overflow");
        assert_eq!(f.get("accepted").is_some(), accepted, "{scope}: {f}");
        let state = if accepted { "active" } else { "unused" };
        assert_eq!(report["waivers"][0]["state"], state, "{scope}");
    }
}

#[test]
fn an_expired_waiver_accepts_nothing_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let accept = accept_file(d, &NGINX_WAIVER.replace("2099-12-31", "2020-01-01"));
    let out = audit(d, &["--accept", &accept, "--format", "json"]);
    common::exits(&out, 1);
    let report = json(&out);
    assert!(
        finding(&report, "abort-on-overflow")
            .get("accepted")
            .is_none()
    );
    assert_eq!(report["waivers"][0]["state"], "expired");
    assert_eq!(report["waivers"][0]["matched"], 1);
    let table = common::exits(&audit(d, &["--accept", &accept]), 1);
    assert!(
        table.contains("exposed or observed findings at or above medium and 1 expired or unused waiver (--fail-on exposed:medium): exit 1"),
        "{table}"
    );
    // The finding alone would pass --fail-on critical; the expired waiver still fails it.
    common::exits(&audit(d, &["--fail-on", "critical"]), 0);
    let table = common::exits(
        &audit(d, &["--accept", &accept, "--fail-on", "critical"]),
        1,
    );
    assert!(
        table.contains("accept.yaml:2 abort-on-overflow (process nginx): EXPIRED on 2020-01-01"),
        "{table}"
    );
    assert!(
        table.contains("1 expired or unused waiver (--fail-on exposed:critical): exit 1"),
        "{table}"
    );
    let junit = common::exits(
        &audit(
            d,
            &[
                "--accept",
                &accept,
                "--fail-on",
                "critical",
                "--format",
                "junit",
            ],
        ),
        1,
    );
    assert!(junit.contains("<failure type=\"expired\""), "{junit}");
    // --fail-on never: reported, exit 0.
    let table = common::exits(&audit(d, &["--accept", &accept, "--fail-on", "never"]), 0);
    assert!(table.contains("EXPIRED on 2020-01-01"), "{table}");
}

#[test]
fn an_unused_waiver_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // tw-recycle passes on this host: its waiver matches nothing.
    let accept = accept_file(
        d,
        &format!(
            "{NGINX_WAIVER}  - rule: tw-recycle\n    reason: old kernel\n    expires: 2099-01-01\n"
        ),
    );
    let out = audit(d, &["--accept", &accept, "--format", "json"]);
    common::exits(&out, 1);
    let report = json(&out);
    assert_eq!(report["waivers"][1]["state"], "unused", "{report}");
    assert_eq!(report["waivers"][1]["waiver"], "accept.yaml:6");
    assert_eq!(report["summary"]["failed"], true);
    let prom = common::exits(
        &audit(d, &["--accept", &accept, "--format", "prometheus"]),
        1,
    );
    assert!(
        prom.contains("rstaudit_waivers{state=\"unused\"} 1"),
        "{prom}"
    );
    let table = common::exits(&audit(d, &["--accept", &accept]), 1);
    assert!(
        table.contains("accept.yaml:6 tw-recycle: UNUSED"),
        "{table}"
    );
}

/// Run the audit with an accept file; it must refuse (exit 2, nothing on stdout).
fn refused(dir: &Path, name: &str, body: Option<&str>) -> String {
    if let Some(body) = body {
        common::write_file(dir, name, body);
    }
    common::refused_stderr(&audit(dir, &["--accept", name]))
}

#[test]
fn accept_file_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut all = String::new();
    all += &refused(
        d,
        "unknown-key.yaml",
        Some("accept:\n  - rule: abort-on-overflow\n    reasn: typo\n    expires: 2099-01-01\n"),
    );
    all += &refused(
        d,
        "wrong-type.yaml",
        Some(
            "accept:\n  - rule: abort-on-overflow\n    reason: [one, two]\n    expires: 2099-01-01\n",
        ),
    );
    all += &refused(
        d,
        "not-a-list.yaml",
        Some("accept:\n  rule: abort-on-overflow\n"),
    );
    all += &refused(
        d,
        "semantic.yaml",
        Some(
            "accept:\n  - rule: abort-on-overflw\n    reason: typo in the id\n    expires: 2099-01-01\n  - rule: abort-on-overflow\n    expires: 2099-01-01\n  - rule: rfc1337-off\n    reason: \" \"\n    expires: 2027-02-30\n  - rule: half-open\n    reason: no expiry\n  - reason: no rule\n    sysctl: net/ipv4/../x\n    expires: 31.12.2099\n",
        ),
    );
    all += &refused(d, "missing.yaml", None);
    insta::assert_snapshot!(all.replace(&*d.to_string_lossy(), "[DIR]"));
}

/// `ansible-playbook docs/ansible/site.yml` against localhost, aimed at namespace `ns`, with
/// the accept file `accept` (ansible-core is needed, as for tests/it/ecosystem/ansible.rs).
fn play(dir: &Path, ns: &str, accept: &Path) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inventory = common::write_file(
        dir,
        "inventory.ini",
        "localhost ansible_connection=local ansible_python_interpreter=\"{{ ansible_playbook_python }}\"\n",
    );
    let vars = serde_json::json!({
        "rstaudit_bin": env!("CARGO_BIN_EXE_rstaudit"),
        "rstaudit_netns": ns,
        "rstaudit_profile": "baseline",
        "rstaudit_state_dir": dir.join("state"),
        "rstaudit_results_dir": dir.join("results"),
        "rstaudit_become": false,
        "rstaudit_accept": accept,
    });
    let out = std::process::Command::new("python3")
        .args(["-m", "ansible.cli.playbook", "-i"])
        .arg(&inventory)
        .arg(root.join("docs/ansible/site.yml"))
        .arg("-e")
        .arg(vars.to_string())
        .env("ANSIBLE_HOME", dir.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_CONFIG", dir.join("none.cfg"))
        .output()
        .expect("python3 is needed for this test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named ansible"),
        "ansible-core is needed for this test (pip install ansible-core, see .ci/run): {stderr}"
    );
    out
}

#[test]
fn the_ansible_role_passes_the_accept_file_and_fails_on_a_stale_waiver() {
    common::require_root();
    let ns = common::Netns::new("accept");
    ns.sysctl("net.ipv4.tcp_abort_on_overflow", "1");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // An expired waiver fails the host before anything is applied.
    let accept = common::write_file(
        d,
        "accept.yaml",
        &NGINX_WAIVER
            .replace("    process: nginx\n", "")
            .replace("2099-12-31", "2020-01-01"),
    );
    let out = play(d, &ns.name, &accept);
    let log = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("stale waivers in"), "{log}");
    assert!(
        log.contains("abort-on-overflow: expired (expires 2020-01-01)"),
        "{log}"
    );
    assert_eq!(ns.read_sysctl("net.ipv4.tcp_abort_on_overflow"), "1");

    // A waiver in force: the collected result marks the finding accepted, the play goes on.
    common::write_file(
        d,
        "accept.yaml",
        &NGINX_WAIVER.replace("    process: nginx\n", ""),
    );
    let out = play(d, &ns.name, &accept);
    let log = common::text(&out);
    assert!(out.status.success(), "{log}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("results/localhost.json")).unwrap())
            .unwrap();
    let f = finding(&result, "abort-on-overflow");
    assert_eq!(
        f["accepted"]["reason"], "the LB retries; tracked in OPS-42",
        "{f}"
    );
    assert_eq!(result["waivers"][0]["state"], "active", "{result}");
}

#[test]
fn junit_and_prometheus_with_waivers_pass_their_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // One waiver in force, one expired, one unused.
    let accept = accept_file(
        d,
        &format!(
            "{NGINX_WAIVER}  - rule: rfc1337-off\n    reason: <old & \"quoted\">\n    expires: 2020-01-01\n  - rule: tw-recycle\n    reason: r\n    expires: 2099-01-01\n"
        ),
    );
    let out = audit(
        d,
        &["--accept", &accept, "--format", "junit", "-o", "r.xml"],
    );
    common::exits(&out, 1);
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit.xsd");
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(d.join("r.xml"))
        .output()
        .expect("xmllint is needed for this test (Debian libxml2-utils, see .ci/run)");
    assert!(lint.status.success(), "{}", common::text(&lint));
    let xml = std::fs::read_to_string(d.join("r.xml")).unwrap();
    assert!(
        xml.contains("<testsuite name=\"rstaudit waivers\" tests=\"3\" failures=\"2\""),
        "{xml}"
    );

    let out = audit(d, &["--accept", &accept, "--format", "prometheus"]);
    common::exits(&out, 1);
    let prom = String::from_utf8(out.stdout).unwrap();
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test (Debian package `prometheus`, see .ci/run)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), prom.as_bytes()).unwrap();
    let checked = child.wait_with_output().unwrap();
    assert!(checked.status.success(), "{}", common::text(&checked));
    let remarks = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(remarks.trim().is_empty(), "promtool remarks: {remarks}");
    for line in [
        "rstaudit_waivers{state=\"active\"} 1",
        "rstaudit_waivers{state=\"expired\"} 1",
        "rstaudit_waivers{state=\"unused\"} 1",
        "rstaudit_audit_failed{fail_on=\"exposed:medium\"} 1",
    ] {
        assert!(prom.contains(line), "{line}: {prom}");
    }
}
