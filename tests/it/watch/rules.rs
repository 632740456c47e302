//! The Prometheus rule files of docs/prometheus/ (alerts, recording rules, and the Grafana
//! dashboard's queries written out as recording rules) against promtool: each file loads
//! without an error or a lint remark, every rstaudit metric they read is one `watch`
//! exports, and `promtool test rules` shows the watch alerts firing, and staying quiet, on
//! series of watch's names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rstaudit::rules::{Exposure, Severity};
use rstaudit::watch::metrics::{
    Direction, FindingRow, Format, Limits, Metrics, MetricsOptions, Reset, Verdict,
};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus")
}

fn promtool(args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is needed for this test (Debian package `prometheus`, see test.sh)")
}

fn said(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The rule files of docs/prometheus/.
fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(docs())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// `promtool check rules` with every lint, fatal: the file's rule count.
fn check_rules(file: &Path) -> usize {
    let out = promtool(&[
        "check",
        "rules",
        "--lint=all",
        "--lint-fatal",
        &file.to_string_lossy(),
    ]);
    let text = said(&out);
    assert!(out.status.success(), "{}:\n{text}", file.display());
    assert!(!text.contains("FAILED"), "{}:\n{text}", file.display());
    text.split("SUCCESS: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}: no rule count in:\n{text}", file.display()))
}

/// The Grafana dashboard's queries as a rule file of recording rules (Grafana's variables
/// given values), for promtool to parse.
fn dashboard_as_rules(dir: &Path) -> (PathBuf, usize) {
    let text = std::fs::read_to_string(docs().join("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a target without expr in panel {}", panel["title"]));
            exprs.push(
                expr.replace("$__rate_interval", "5m")
                    .replace("$__range", "1h")
                    .replace("$instance", ".+")
                    .replace("$netns", ".+"),
            );
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            // label_values(METRIC, LABEL): the metric must be one watch exports.
            let metric = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .unwrap_or_else(|| panic!("variable {}: {q}", var["name"]));
            exprs.push(metric.trim().replace("$instance", ".+"));
        }
    }
    let mut rules = String::from("groups:\n  - name: grafana-dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: rstaudit_dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let file = dir.join("grafana-dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    (file, exprs.len())
}

#[test]
fn every_rule_file_and_the_dashboards_queries_pass_promtool_check_rules() {
    let files = rule_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["rstaudit-alerts.yml", "rstaudit-recording.yml"],
        "a new rule file: check it here"
    );
    assert_eq!(check_rules(&files[0]), 9);
    assert_eq!(check_rules(&files[1]), 9);
    let dir = tempfile::tempdir().unwrap();
    let (queries, n) = dashboard_as_rules(dir.path());
    assert!(n >= 6, "{n} queries");
    assert_eq!(check_rules(&queries), n);
    // promtool does find faults: a broken expression fails the check.
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "groups:\n  - name: x\n    rules:\n      - record: x:y:z\n        expr: sum by (a (rate(x[5m]))\n",
    )
    .unwrap();
    let out = promtool(&["check", "rules", &broken.to_string_lossy()]);
    assert!(!out.status.success(), "{}", said(&out));
}

/// The metric families `watch` serves, from its own registry with every family filled.
fn exported() -> String {
    let m = Metrics::new(MetricsOptions {
        limits: Limits::default(),
        events: std::sync::Arc::default(),
    });
    let now = Instant::now();
    m.record_reset(
        &Reset {
            direction: Some(Direction::Sent),
            cause: "no-socket",
            netns: "host",
            container: "web",
            comm: "nginx",
            ..Reset::default()
        },
        1,
        now,
    );
    m.set_findings(
        &[FindingRow {
            netns: "host".into(),
            rule: "linger-zero".into(),
            severity: Severity::High,
            exposure: Exposure::Observed,
            verdict: Verdict::Confirmed,
            count: 1,
        }],
        now,
    );
    m.audit_succeeded(Duration::from_millis(10), 1_800_000_000.0);
    m.encode(Format::Prometheus)
}

#[test]
fn the_watch_rules_and_the_dashboard_read_only_metrics_watch_exports() {
    let text = exported();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (queries, _) = dashboard_as_rules(dir.path());
    let alerts = std::fs::read_to_string(docs().join("rstaudit-alerts.yml")).unwrap();
    // The textfile group (audit and packet-check from a timer) reads those outputs' names.
    let watch_group = alerts.split("  - name: rstaudit\n").next().unwrap();
    for (what, body) in [
        ("alerts (group rstaudit-watch)", watch_group.to_string()),
        (
            "recording rules",
            std::fs::read_to_string(docs().join("rstaudit-recording.yml")).unwrap(),
        ),
        ("dashboard", std::fs::read_to_string(&queries).unwrap()),
    ] {
        let used = metric_names(&body);
        assert!(!used.is_empty(), "{what}");
        for name in used {
            assert!(
                families.contains(&name.as_str()),
                "{what} reads {name}, which watch does not export:\n{text}"
            );
        }
    }
}

/// The metric names an expression text reads (`rstaudit_...`, `process_...`; recording
/// rules' own names, with colons, are not metrics).
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.contains("record:"))
        .filter(|l| !l.contains("summary:") && !l.contains("alert:"))
        .flat_map(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .filter(|w| {
                    (w.starts_with("rstaudit_") || w.starts_with("process_")) && !w.contains(':')
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// `promtool test rules` of `tests` against both rule files.
fn test_rules(tests: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tests.yml");
    let files: Vec<String> = rule_files()
        .iter()
        .map(|f| format!("  - {}\n", yaml_str(&f.to_string_lossy())))
        .collect();
    std::fs::write(
        &file,
        format!(
            "rule_files:\n{}evaluation_interval: 1m\ntests:\n{tests}",
            files.concat()
        ),
    )
    .unwrap();
    let out = promtool(&["test", "rules", &file.to_string_lossy()]);
    assert!(
        out.status.success(),
        "promtool test rules:\n{}\n{}",
        said(&out),
        std::fs::read_to_string(&file).unwrap()
    );
}

/// A `rstaudit_resets_total` series as Prometheus scrapes watch (job rstaudit, instance h1).
fn resets(netns: &str, cause: &str, container: &str, comm: &str) -> String {
    yaml_str(&format!(
        "rstaudit_resets_total{{instance=\"h1\",job=\"rstaudit\",direction=\"sent\",cause=\"{cause}\",reason=\"\",netns=\"{netns}\",container=\"{container}\",unit=\"\",comm=\"{comm}\"}}"
    ))
}

#[test]
fn the_watch_alerts_fire_on_watch_series_and_stay_quiet_otherwise() {
    // Counters scraped every minute over 6 h 40 min: linger-zero in namespace host at 0.5/s
    // for 6 h then 5/s (rising); no-socket steady at 3/s (high, not rising); container web's
    // unread-close at 2/s throughout.
    let rising = resets("host", "linger-zero", "", "nginx");
    let steady = resets("host", "no-socket", "", "curl");
    let web = resets("pod 1 (nginx)", "unread-close", "web", "nginx");
    let up = yaml_str("up{instance=\"h1\",job=\"rstaudit\"}");
    let audit =
        yaml_str("rstaudit_audit_last_success_timestamp_seconds{instance=\"h1\",job=\"rstaudit\"}");
    let started = yaml_str("process_start_time_seconds{instance=\"h1\",job=\"rstaudit\"}");
    let dropped = yaml_str(
        "rstaudit_events_dropped_total{instance=\"h1\",job=\"rstaudit\",reason=\"queue_full\"}",
    );
    let finding = |rule: &str, severity: &str, verdict: &str| {
        yaml_str(&format!(
            "rstaudit_findings{{instance=\"h1\",job=\"rstaudit\",netns=\"host\",rule=\"{rule}\",severity=\"{severity}\",exposure=\"observed\",verdict=\"{verdict}\"}}"
        ))
    };
    let confirmed = finding("linger-zero", "high", "confirmed");
    let low = finding("keepalive-off", "low", "confirmed");
    let not_seen = finding("syn-backlog", "medium", "not_seen");
    // Audits succeed each 5 minutes for 6 h (the timestamp in seconds), then stop; watch
    // started at 0. Events are dropped only at the end: 50 a minute from 6 h 31 min.
    let series = format!(
        "      - series: {rising}\n        values: '0+30x360 11100+300x40'\n\
         \x20     - series: {steady}\n        values: '0+180x400'\n\
         \x20     - series: {web}\n        values: '0+120x400'\n\
         \x20     - series: {up}\n        values: '1x370 0x30'\n\
         \x20     - series: {audit}\n        values: '0+60x360 21600x40'\n\
         \x20     - series: {started}\n        values: '0x400'\n\
         \x20     - series: {dropped}\n        values: '0x390 0+50x10'\n\
         \x20     - series: {confirmed}\n        values: '1x400'\n\
         \x20     - series: {low}\n        values: '1x400'\n\
         \x20     - series: {not_seen}\n        values: '1x400'\n"
    );
    let alert = |at: &str, name: &str, expected: &str| {
        format!(
            "      - eval_time: {at}\n        alertname: {name}\n        exp_alerts:{expected}\n"
        )
    };
    let none = " []";
    let mut checks = String::new();
    // Rising: not before the rise, and for linger-zero only once it has lasted 10 minutes.
    checks += &alert("6h", "RstauditWatchResetsRising", none);
    checks += &alert(
        "6h20m",
        "RstauditWatchResetsRising",
        &format!(
            "\n          - exp_labels: {{severity: warning, instance: h1, netns: host, cause: linger-zero}}\n\
             \x20           exp_annotations:\n\
             \x20             summary: 'h1: TCP resets rising, cause linger-zero (host)'\n\
             \x20             description: {}",
            yaml_str(
                "h1 (namespace host) sees 5.0 resets per second of cause linger-zero over the \
                 last 5 minutes, more than twice its 6-hour rate. Run `rstaudit explain \
                 linger-zero` for the cause and its fix."
            )
        ),
    );
    // The container's steady resets (2/s) after 15 minutes of them.
    checks += &alert("10m", "RstauditContainerResets", none);
    checks += &alert(
        "1h",
        "RstauditContainerResets",
        &format!(
            "\n          - exp_labels: {{severity: warning, instance: h1, container: web, cause: unread-close}}\n\
             \x20           exp_annotations:\n\
             \x20             summary: 'h1: container web has unread-close resets'\n\
             \x20             description: {}",
            yaml_str(
                "Container web on h1 has seen 2.0 resets per second of cause unread-close for \
                 15 minutes. Run `rstaudit explain unread-close` for the cause and its fix."
            )
        ),
    );
    // Confirmed and at least medium: linger-zero only (keepalive-off is low, syn-backlog not
    // seen).
    checks += &alert(
        "1h",
        "RstauditConfirmedFinding",
        "\n          - exp_labels: {instance: h1, netns: host, rule: linger-zero, severity: high}\n\
         \x20           exp_annotations:\n\
         \x20             summary: 'h1: rstaudit linger-zero confirmed by resets (host)'\n\
         \x20             description: 'The audit of h1 (namespace host) found linger-zero (high), and resets of its kind were seen in the watch window. Run `rstaudit rules explain linger-zero` for the fix.'",
    );
    // Audits stop at 6 h: stale 30 minutes later (and 5 minutes of it), not before; not
    // in watch's first half hour either, while the first audit may still run.
    checks += &alert("6h20m", "RstauditAuditStale", none);
    checks += &alert(
        "6h36m",
        "RstauditAuditStale",
        "\n          - exp_labels: {severity: warning, instance: h1, job: rstaudit}\n\
         \x20           exp_annotations:\n\
         \x20             summary: 'h1: no rstaudit audit has succeeded for 30 minutes'\n\
         \x20             description: 'rstaudit watch on h1 has had no successful audit for 36m 0s; its findings are old. GET /healthz on the instance says why.'",
    );
    checks += &alert("6h20m", "RstauditEventsDropped", none);
    checks += &alert(
        "6h38m",
        "RstauditEventsDropped",
        "\n          - exp_labels: {severity: info, instance: h1, reason: queue_full}\n\
         \x20           exp_annotations:\n\
         \x20             summary: 'h1: rstaudit dropped event lines (queue_full)'\n\
         \x20             description: 'rstaudit watch on h1 dropped 350 event lines in 10 minutes (queue_full: queue_full when the reader is behind, write_failed when the file cannot be written).'",
    );
    checks += &alert("6h", "RstauditWatchDown", none);
    checks += &alert(
        "6h30m",
        "RstauditWatchDown",
        "\n          - exp_labels: {severity: warning, instance: h1, job: rstaudit}\n\
         \x20           exp_annotations:\n\
         \x20             summary: 'h1: rstaudit watch is down'\n\
         \x20             description: 'Prometheus cannot scrape rstaudit watch on h1.'",
    );
    // The recording rules' values at 1 h.
    let records = "    promql_expr_test:\n\
         \x20     - expr: instance_container_cause:rstaudit_resets:rate5m\n        eval_time: 1h\n        exp_samples:\n\
         \x20         - labels: 'instance_container_cause:rstaudit_resets:rate5m{instance=\"h1\",container=\"web\",cause=\"unread-close\"}'\n            value: 2\n\
         \x20     - expr: instance_netns_cause:rstaudit_resets:rate5m{cause=\"no-socket\"}\n        eval_time: 1h\n        exp_samples:\n\
         \x20         - labels: 'instance_netns_cause:rstaudit_resets:rate5m{instance=\"h1\",netns=\"host\",cause=\"no-socket\"}'\n            value: 3\n\
         \x20     - expr: instance:rstaudit_resets:rate5m\n        eval_time: 1h\n        exp_samples:\n\
         \x20         - labels: 'instance:rstaudit_resets:rate5m{instance=\"h1\"}'\n            value: 5.5\n\
         \x20     - expr: instance_severity_verdict:rstaudit_findings:sum{verdict=\"confirmed\"}\n        eval_time: 1h\n        exp_samples:\n\
         \x20         - labels: 'instance_severity_verdict:rstaudit_findings:sum{instance=\"h1\",severity=\"high\",verdict=\"confirmed\"}'\n            value: 1\n\
         \x20         - labels: 'instance_severity_verdict:rstaudit_findings:sum{instance=\"h1\",severity=\"low\",verdict=\"confirmed\"}'\n            value: 1\n\
         \x20     - expr: instance:rstaudit_audit_age_seconds\n        eval_time: 6h30m\n        exp_samples:\n\
         \x20         - labels: 'instance:rstaudit_audit_age_seconds{instance=\"h1\"}'\n            value: 1800\n";
    test_rules(&format!(
        "  - interval: 1m\n    input_series:\n{series}    alert_rule_test:\n{checks}{records}"
    ));
}
