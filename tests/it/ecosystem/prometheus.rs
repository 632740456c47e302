//! The Prometheus outputs and the example alert rules, checked with promtool
//! (Debian package `prometheus`, installed by .ci/run): the rules load, real
//! metrics output passes `promtool check metrics`, and `promtool test rules`
//! shows each alert firing on real output and staying quiet when it should.
//! A missing promtool fails the test, it is never skipped.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn alerts() -> PathBuf {
    root().join("docs/prometheus/rstaudit-alerts.yml")
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test (Debian package `prometheus`, see .ci/run)");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("writing to promtool");
    drop(input);
    child.wait_with_output().unwrap()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check metrics` must pass without a single lint remark.
fn check_metrics(text: &str) {
    let out = promtool(&["check", "metrics"], Some(text));
    assert_ok(&out, &format!("promtool check metrics on:\n{text}"));
    let remarks = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(remarks.trim().is_empty(), "promtool remarks: {remarks}");
}

/// Samples of an exposition text: (`name{labels}`, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The labels of a series as (name, value) pairs (values are plain in our outputs).
fn labels(series: &str) -> Vec<(String, String)> {
    let Some((_, rest)) = series.split_once('{') else {
        return vec![];
    };
    rest.trim_end_matches('}')
        .split("\",")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once("=\"").unwrap();
            (k.to_string(), v.trim_end_matches('"').to_string())
        })
        .collect()
}

/// Add the labels Prometheus adds when it scrapes node_exporter.
fn scraped(series: &str) -> String {
    match series.split_once('{') {
        Some((name, rest)) => format!("{name}{{instance=\"h1\",job=\"node\",{rest}"),
        None => format!("{series}{{instance=\"h1\",job=\"node\"}}"),
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Run `promtool test rules` with these tests against the alert file.
fn test_rules(tests: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tests.yml");
    std::fs::write(
        &file,
        format!(
            "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n{tests}",
            yaml_str(&alerts().to_string_lossy())
        ),
    )
    .unwrap();
    let out = promtool(&["test", "rules", &file.to_string_lossy()], None);
    assert_ok(
        &out,
        &format!(
            "promtool test rules\n{}",
            std::fs::read_to_string(&file).unwrap()
        ),
    );
}

fn audit_metrics() -> String {
    let out = common::rstaudit()
        .args(["audit", "--snapshot"])
        .arg(root().join("tests/fixtures/ecosystem-host.json"))
        .args(["--format", "prometheus", "--fail-on", "never"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn alert_rules_pass_promtool_check() {
    let out = promtool(&["check", "rules", &alerts().to_string_lossy()], None);
    assert_ok(&out, "promtool check rules");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 9 rules found"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn audit_metrics_pass_promtool_and_fire_the_high_finding_alert() {
    let text = audit_metrics();
    check_metrics(&text);

    let mut series = String::new();
    let mut expected = String::new();
    for (s, v) in samples(&text) {
        series.push_str(&format!(
            "      - series: {}\n        values: '{v}x40'\n",
            yaml_str(&scraped(&s))
        ));
        let l = labels(&s);
        let get = |k: &str| {
            l.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let sev = get("severity");
        if s.starts_with("rstaudit_findings{") && (sev == "high" || sev == "critical") && v > 0.0 {
            let (netns, rule) = (get("netns"), get("rule"));
            expected.push_str(&format!(
                "          - exp_labels: {{instance: h1, netns: {}, rule: {}, severity: {sev}}}\n\
                 \x20           exp_annotations:\n\
                 \x20             summary: {}\n\
                 \x20             description: {}\n",
                yaml_str(&netns),
                yaml_str(&rule),
                yaml_str(&format!("h1: rstaudit {sev} finding {rule} ({netns})")),
                yaml_str(&format!(
                    "The last audit of h1 (namespace {netns}) found {v} {sev} finding(s) of rule {rule}. \
                     Run `rstaudit rules explain {rule}` and `rstaudit audit` on the host for the fix."
                )),
            ));
        }
    }
    assert!(
        !expected.is_empty(),
        "the fixture has high findings, so rstaudit_findings{{severity=\"high\"}} must be present:\n{text}"
    );
    test_rules(&format!(
        "  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n\
         \x20     - eval_time: 10m\n        alertname: RstauditHighFinding\n        exp_alerts: []\n\
         \x20     - eval_time: 30m\n        alertname: RstauditHighFinding\n        exp_alerts:\n{expected}\
         \x20     - eval_time: 30m\n        alertname: RstauditResetsRising\n        exp_alerts: []\n"
    ));
}

#[test]
fn resets_rising_alert_fires_on_a_rise_of_one_cause_only() {
    // One-minute packet-check windows: cause A steady at 1/s then 10/s; cause B steady at 5/s.
    let a =
        "rstaudit_packet_resets{instance=\"h1\",job=\"node\",netns=\"host\",cause=\"linger-zero\"}";
    let b =
        "rstaudit_packet_resets{instance=\"h1\",job=\"node\",netns=\"host\",cause=\"no-socket\"}";
    let w = "rstaudit_packet_window_seconds{instance=\"h1\",job=\"node\",netns=\"host\"}";
    test_rules(&format!(
        "  - interval: 1m\n    input_series:\n\
         \x20     - series: {}\n        values: '60x360 600x30'\n\
         \x20     - series: {}\n        values: '300x390'\n\
         \x20     - series: {}\n        values: '60x390'\n\
         \x20   alert_rule_test:\n\
         \x20     - eval_time: 6h\n        alertname: RstauditResetsRising\n        exp_alerts: []\n\
         \x20     - eval_time: 6h20m\n        alertname: RstauditResetsRising\n        exp_alerts:\n\
         \x20         - exp_labels: {{severity: warning, instance: h1, job: node, netns: host, cause: linger-zero}}\n\
         \x20           exp_annotations:\n\
         \x20             summary: 'h1: TCP resets rising, cause linger-zero'\n\
         \x20             description: {}\n",
        yaml_str(a),
        yaml_str(b),
        yaml_str(w),
        yaml_str(
            "h1 (namespace host) saw 10.0 resets per second of cause linger-zero in the last \
             packet-check window, more than twice its 6-hour average. \
             See `rstaudit packet-check --format html` on the host for the timeline."
        ),
    ));
}

/// Real packet-check output: a window over a namespace this test creates, in which a helper
/// makes two kinds of reset (a connect to a closed port; a close with unread data).
fn real_packet_check(format: &str) -> String {
    common::require_root();
    let ns = common::Netns::new("ecopkt");
    let (child, err) = common::start_watching(
        common::rstaudit()
            .args(["packet-check", "--netns", &ns.name, "--duration", "3"])
            .args(["--format", format])
            .stdout(Stdio::piped()),
    );
    let helper = ns.helper(&["refused:9", "refused:9", "unread-close"]);
    let out = common::finish_watching(child, err);
    drop(helper);
    out
}

#[test]
fn packet_check_metrics_pass_promtool_and_feed_the_rising_alert() {
    let text = real_packet_check("prometheus");
    check_metrics(&text);
    let resets: Vec<(String, f64)> = samples(&text)
        .into_iter()
        .filter(|(s, _)| s.starts_with("rstaudit_packet_resets{"))
        .collect();
    let causes: Vec<String> = resets
        .iter()
        .flat_map(|(s, _)| labels(s))
        .filter(|(k, _)| k == "cause")
        .map(|(_, v)| v)
        .collect();
    for want in ["no-socket", "unread-close"] {
        assert!(causes.iter().any(|c| c == want), "{want} missing:\n{text}");
    }
    let window = samples(&text)
        .into_iter()
        .find(|(s, _)| s.starts_with("rstaudit_packet_window_seconds"))
        .expect("rstaudit_packet_window_seconds");

    // The real series, as Prometheus would scrape them every minute for 6 h 30 min: the
    // no-socket count rises tenfold for the last 30 minutes, the others stay as they were.
    let rising = resets
        .iter()
        .find(|(s, _)| s.contains("cause=\"no-socket\""))
        .unwrap();
    let mut series = format!(
        "      - series: {}\n        values: '60x390'\n",
        yaml_str(&scraped(&window.0))
    );
    for (s, _) in &resets {
        let values = if s == &rising.0 {
            "60x360 600x30"
        } else {
            "90x390"
        };
        series.push_str(&format!(
            "      - series: {}\n        values: '{values}'\n",
            yaml_str(&scraped(s))
        ));
    }
    let l = labels(&rising.0);
    let netns = &l.iter().find(|(k, _)| k == "netns").unwrap().1;
    test_rules(&format!(
        "  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n\
         \x20     - eval_time: 6h\n        alertname: RstauditResetsRising\n        exp_alerts: []\n\
         \x20     - eval_time: 6h20m\n        alertname: RstauditResetsRising\n        exp_alerts:\n\
         \x20         - exp_labels: {{severity: warning, instance: h1, job: node, netns: {}, cause: no-socket}}\n\
         \x20           exp_annotations:\n\
         \x20             summary: 'h1: TCP resets rising, cause no-socket'\n\
         \x20             description: {}\n",
        yaml_str(netns),
        yaml_str(&format!(
            "h1 (namespace {netns}) saw 10.0 resets per second of cause no-socket in the last \
             packet-check window, more than twice its 6-hour average. \
             See `rstaudit packet-check --format html` on the host for the timeline."
        )),
    ));
}
