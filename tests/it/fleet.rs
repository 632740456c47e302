//! `rstaudit report`: the fleet view over a generated fleet of JSON audits. Every host file
//! starts as a real audit (`rstaudit audit --snapshot` of the ecosystem fixture) and is
//! then changed per host: exposures, severities, findings removed, time stamps, fix values.
//! The HTML page is checked in headless Chromium (Debian's `chromium`; a missing browser
//! fails the test, it is never skipped).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem-host.json")
}

/// The real audit every host starts from.
fn base() -> &'static Value {
    static BASE: OnceLock<Value> = OnceLock::new();
    BASE.get_or_init(|| {
        let out = common::rstaudit()
            .args([
                "audit",
                "--format",
                "json",
                "--fail-on",
                "never",
                "--snapshot",
            ])
            .arg(fixture())
            .output()
            .unwrap();
        common::exits(&out, 0);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["taken_at_ms"].as_u64().is_some(),
            "the audit JSON carries taken_at_ms"
        );
        v
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn findings(v: &mut Value) -> impl Iterator<Item = &mut Value> {
    v["namespaces"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|ns| ns["findings"].as_array_mut().unwrap().iter_mut())
}

fn keep_only(v: &mut Value, rule: &str) {
    for ns in v["namespaces"].as_array_mut().unwrap() {
        ns["findings"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["rule"] == rule);
    }
}

fn all_latent(v: &mut Value) {
    for f in findings(v) {
        f["exposure"] = json!("latent");
    }
}

/// Write HOST.json from the base audit (fresh: a minute old), changed by `edit`.
fn host(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v = base().clone();
    v["taken_at_ms"] = json!(now_ms() - 60_000);
    edit(&mut v);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    path
}

fn set_mtime(path: &Path, ago: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

/// The generated fleet: nine host files and four bad ones.
///
/// | host | what |
/// |---|---|
/// | charlie | only abort-on-overflow, observed |
/// | bravo | the audit as is (abort-on-overflow exposed/high, ...) |
/// | echo | as bravo, somaxconn fix 8192 instead of 4096 |
/// | foxtrot | only resets-abort-on-data (exposed/low) |
/// | alpha | every finding latent |
/// | ancient | every finding latent, no taken_at_ms, file 10 days old (stale) |
/// | notime | every finding latent, no taken_at_ms, file an hour old |
/// | stale | every finding latent, audited 3 days ago |
/// | delta | no findings |
fn fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    host(d, "alpha", all_latent);
    host(d, "bravo", |_| {});
    host(d, "charlie", |v| {
        keep_only(v, "abort-on-overflow");
        for f in findings(v) {
            f["exposure"] = json!("observed");
        }
    });
    host(d, "delta", |v| keep_only(v, "no-such-rule"));
    host(d, "echo", |v| {
        for f in findings(v) {
            let sysctls = f.pointer_mut("/fix/sysctls").and_then(Value::as_array_mut);
            for s in sysctls.into_iter().flatten() {
                if s["key"] == "net.core.somaxconn" {
                    s["value"] = json!("8192");
                }
            }
        }
    });
    host(d, "foxtrot", |v| keep_only(v, "resets-abort-on-data"));
    host(d, "stale", |v| {
        all_latent(v);
        v["taken_at_ms"] = json!(now_ms() - 3 * 86_400_000);
    });
    let notime = host(d, "notime", |v| {
        all_latent(v);
        v.as_object_mut().unwrap().remove("taken_at_ms");
    });
    set_mtime(&notime, Duration::from_secs(3600));
    let ancient = host(d, "ancient", |v| {
        all_latent(v);
        v.as_object_mut().unwrap().remove("taken_at_ms");
    });
    set_mtime(&ancient, Duration::from_secs(10 * 86_400));
    std::fs::write(
        d.join("garbage.json"),
        "TASK [rstaudit : Audit] fatal: ...\n",
    )
    .unwrap();
    std::fs::write(d.join("empty.json"), "").unwrap();
    std::fs::write(d.join("future.json"), r#"{"schema": 99, "hosts": []}"#).unwrap();
    std::fs::write(d.join("nothing.json"), r#"{"schema": 2, "namespaces": []}"#).unwrap();
    std::fs::write(d.join("notes.txt"), "not read: not *.json").unwrap();
    dir
}

fn report(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd: Command = common::rstaudit();
    cmd.arg("report").args(args).args(paths);
    cmd.output().unwrap()
}

fn json_report(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = report(&all, &[dir]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        common::text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn hosts(r: &Value) -> Vec<&str> {
    r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect()
}

fn host_row<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("no host {name}"))
}

#[test]
fn matrix_cells_hold_exposure_and_severity() {
    let dir = fleet();
    let r = json_report(dir.path(), &[]);
    assert_eq!(r["schema"], 1);
    let cell = |h: &str, rule: &str| host_row(&r, h)["cells"][rule].clone();
    assert_eq!(cell("charlie", "abort-on-overflow")["exposure"], "observed");
    assert_eq!(cell("charlie", "abort-on-overflow")["severity"], "high");
    assert_eq!(cell("bravo", "abort-on-overflow")["exposure"], "exposed");
    assert_eq!(cell("alpha", "abort-on-overflow")["exposure"], "latent");
    assert!(
        cell("bravo", "abort-on-overflow")["reason"]
            .as_str()
            .unwrap()
            .contains("listener"),
        "{r:#}"
    );
    assert_eq!(cell("charlie", "linger-zero"), Value::Null);
    assert_eq!(host_row(&r, "delta")["cells"], json!({}));
    let base_findings = findings(&mut base().clone()).count() as u64;
    assert_eq!(host_row(&r, "bravo")["findings"], base_findings);
    assert_eq!(
        host_row(&r, "bravo")["cells"].as_object().unwrap().len() as u64,
        base_findings,
        "one cell per rule"
    );
}

#[test]
fn hosts_are_ordered_by_what_is_at_risk() {
    let dir = fleet();
    let r = json_report(dir.path(), &[]);
    // Observed first, then exposed by severity (high before low), then latent, then clean.
    assert_eq!(
        hosts(&r),
        [
            "charlie", "bravo", "echo", "foxtrot", "alpha", "ancient", "notime", "stale", "delta"
        ]
    );
    assert_eq!(host_row(&r, "charlie")["worst"]["exposure"], "observed");
    assert_eq!(host_row(&r, "delta")["worst"], Value::Null);
    for (h, failing) in [
        ("charlie", true),
        ("bravo", true),
        ("foxtrot", false),
        ("alpha", false),
    ] {
        assert_eq!(host_row(&r, h)["failing"], failing, "{h}");
    }
}

#[test]
fn common_findings_come_first_with_the_fixes_that_clear_them() {
    let dir = fleet();
    let r = json_report(dir.path(), &[]);
    let rules = r["rules"].as_array().unwrap();
    // abort-on-overflow and resets-abort-on-data are on 7 hosts each (the six full audits,
    // and charlie or foxtrot); the one that fails on more hosts comes first.
    assert_eq!(rules[0]["rule"], "abort-on-overflow");
    assert_eq!(rules[0]["hosts"], 7);
    assert_eq!(rules[0]["hosts_failing"], 3);
    assert_eq!(
        rules[0]["by_exposure"],
        json!({"observed": 1, "exposed": 2, "latent": 4})
    );
    assert_eq!(
        rules[0]["fixes"],
        json!([{"key": "net.ipv4.tcp_abort_on_overflow", "value": "0", "hosts": 7}])
    );
    assert_eq!(rules[1]["rule"], "resets-abort-on-data");
    assert_eq!(rules[1]["hosts"], 7);
    assert!(rules[1]["advice"].as_str().is_some(), "{:#}", rules[1]);
    for w in rules.windows(2) {
        assert!(w[0]["hosts"].as_u64() >= w[1]["hosts"].as_u64());
    }
    let fixes = r["fixes"].as_array().unwrap();
    let fix = |k: &str, v: &str| {
        fixes
            .iter()
            .find(|f| f["key"] == k && f["value"] == v)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(fixes[0]["key"], "net.ipv4.tcp_abort_on_overflow");
    assert_eq!(fixes[0]["hosts"], 7);
    // alpha, ancient, bravo, notime, stale; echo asks for 8192.
    assert_eq!(fix("net.core.somaxconn", "4096")["hosts"], 5);
    assert_eq!(
        fix("net.core.somaxconn", "4096")["rules"],
        json!(["listener-clamped", "somaxconn-low"])
    );
    assert_eq!(fix("net.core.somaxconn", "8192")["hosts"], 1);
}

#[test]
fn failed_and_stale_hosts_are_listed_not_fatal() {
    let dir = fleet();
    let missing = dir.path().join("missing.json");
    let out = report(&["--format", "json"], &[dir.path(), &missing]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    common::exits(&out, 1);
    let failed: Vec<(&str, &str)> = r["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["host"].as_str().unwrap(), f["reason"].as_str().unwrap()))
        .collect();
    let reason = |h: &str| failed.iter().find(|f| f.0 == h).map(|f| f.1).unwrap_or("");
    assert_eq!(failed.len(), 5, "{failed:?}");
    assert!(reason("empty").contains("empty file"), "{failed:?}");
    assert!(
        reason("garbage").contains("not an audit report"),
        "{failed:?}"
    );
    assert!(reason("future").contains("schema 99"), "{failed:?}");
    assert!(
        reason("nothing").contains("no network namespace"),
        "{failed:?}"
    );
    assert!(reason("missing").contains("could not read"), "{failed:?}");
    assert_eq!(r["summary"]["files"], 14);
    assert_eq!(r["summary"]["audited"], 9);
    assert_eq!(r["summary"]["failed"], 5);

    assert_eq!(r["summary"]["stale"], 2);
    assert_eq!(host_row(&r, "stale")["stale"], true);
    assert_eq!(host_row(&r, "stale")["time_source"], "audit");
    assert!(host_row(&r, "stale")["age_seconds"].as_i64().unwrap() >= 3 * 86_400);
    assert_eq!(host_row(&r, "ancient")["stale"], true);
    assert_eq!(host_row(&r, "ancient")["time_source"], "file");
    assert_eq!(host_row(&r, "notime")["stale"], false);
    assert_eq!(host_row(&r, "notime")["time_source"], "file");
    assert_eq!(host_row(&r, "bravo")["stale"], false);

    let r = json_report(dir.path(), &["--max-age", "30d"]);
    assert_eq!(r["summary"]["stale"], 0);
    let r = json_report(dir.path(), &["--max-age", "30m"]);
    assert_eq!(r["summary"]["stale"], 3, "notime (1 h) is stale too");
}

#[test]
fn exit_codes_follow_fail_on_across_the_fleet() {
    let dir = fleet();
    for (fail_on, code) in [
        ("medium", 1),
        ("exposed:medium", 1),
        ("critical", 0),
        ("observed:high", 1),
        ("observed:critical", 0),
        ("never", 0),
        ("latent:info", 1),
    ] {
        let out = report(&["--fail-on", fail_on], &[dir.path()]);
        common::exits(&out, code);
    }
    // Only the clean and latent hosts: nothing fails by default.
    let d = dir.path();
    let out = report(&[], &[&d.join("alpha.json"), &d.join("delta.json")]);
    common::exits(&out, 0);
    // No usable audit: exit 2, the report still lists them.
    let out = report(&[], &[&d.join("garbage.json"), &d.join("empty.json")]);
    let t = common::exits(&out, 2);
    assert!(t.contains("garbage") && t.contains("empty file"), "{t}");
    let empty = tempfile::tempdir().unwrap();
    let t = common::exits(&report(&[], &[empty.path()]), 2);
    assert!(t.contains("no audit file"), "{t}");
    let t = common::exits(&report(&["--fail-on", "bogus"], &[d]), 2);
    assert!(t.contains("not a severity"), "{t}");
}

#[test]
fn table_shows_every_section() {
    let dir = fleet();
    let out = report(&[], &[dir.path()]);
    let t = common::exits(&out, 1);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "9 host(s) audited, 4 failed, 2 stale",
        "Most common findings",
        "Fixes that would clear them",
        "net.core.somaxconn = 4096           5",
        "Hosts, most at risk first",
        "Failed (4)",
        "Stale (2)",
        "the file's modification time",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{t}");
    }
    let charlie = text.lines().find(|l| l.starts_with("charlie ")).unwrap();
    assert!(
        charlie.contains("O:high") && charlie.contains("FAIL"),
        "{charlie}"
    );
    let first_host = text
        .lines()
        .skip_while(|l| !l.starts_with("Hosts,"))
        .nth(2)
        .unwrap();
    assert!(first_host.starts_with("charlie "), "{t}");
}

#[test]
fn prometheus_has_fleet_gauges() {
    let dir = fleet();
    let out = report(&["--format", "prometheus"], &[dir.path()]);
    common::exits(&out, 1);
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "rstaudit_fleet_hosts{state=\"audited\"} 9",
        "rstaudit_fleet_hosts{state=\"failed\"} 4",
        "rstaudit_fleet_hosts{state=\"stale\"} 2",
        "rstaudit_fleet_failing{fail_on=\"exposed:medium\"} 1",
        "rstaudit_fleet_rule_hosts{rule=\"abort-on-overflow\",severity=\"high\",exposure=\"observed\"} 1",
        "rstaudit_fleet_host_findings{host=\"charlie\",rule=\"abort-on-overflow\",severity=\"high\",exposure=\"observed\",accepted=\"false\"} 1",
        "rstaudit_fleet_host_stale{host=\"ancient\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    // Every sample line is NAME{labels} VALUE or NAME VALUE, with a number.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        assert!(l.starts_with("rstaudit_fleet_"), "{l}");
    }
    assert!(text.contains("rstaudit_fleet_host_failed{host=\"empty\""));
    // promtool (Debian package `prometheus`, as tests/it/ecosystem/prometheus.rs) accepts it
    // without a single lint remark.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test (Debian package `prometheus`, see .ci/run)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let remarks = common::text(&out);
    assert!(out.status.success(), "{remarks}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool remarks: {remarks}"
    );
}

/// Appended to the page: reads back what the browser built into the title.
const PROBE: &str = r#"<script>
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('table.matrix tbody tr'));
  var res = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  document.title = JSON.stringify({
    hosts: rows.map(function (r) { return r.getAttribute('data-host'); }),
    columns: document.querySelectorAll('table.matrix th.rule').length,
    observed: Array.prototype.map.call(document.querySelectorAll('td.cell.observed'),
      function (c) { return c.closest('tr').getAttribute('data-host') + ' ' + c.getAttribute('data-rule'); }),
    colored: (function () {
      var c = document.querySelector('td.cell.observed');
      return c ? getComputedStyle(c).backgroundColor : '';
    })(),
    common: Array.prototype.map.call(document.querySelectorAll('table.common tr[data-rule]'),
      function (r) { return r.getAttribute('data-rule'); }),
    fixes: document.querySelectorAll('table.fixes tr[data-key]').length,
    failed: Array.prototype.map.call(document.querySelectorAll('table.failed tr[data-host]'),
      function (r) { return r.getAttribute('data-host'); }),
    stale: Array.prototype.map.call(document.querySelectorAll('table.stale tr[data-host]'),
      function (r) { return r.getAttribute('data-host'); }),
    width: document.querySelector('table.matrix').getBoundingClientRect().width,
    resources: res
  });
})();
</script>"#;

#[test]
fn html_is_self_contained_and_shows_the_fleet_in_chromium() {
    let dir = fleet();
    let page_file = dir.path().join("out").join("fleet.html");
    std::fs::create_dir(dir.path().join("out")).unwrap();
    let out = report(&["--format", "html", "-o"], &[&page_file, dir.path()]);
    common::exits(&out, 1);
    let page = std::fs::read_to_string(&page_file).unwrap();
    let json = json_report(dir.path(), &[]);
    let seen = common::browse(&page, PROBE);
    let expected: Vec<Value> = hosts(&json).into_iter().map(|h| json!(h)).collect();
    assert_eq!(seen["hosts"], Value::Array(expected), "{seen:#}");
    assert_eq!(
        seen["columns"].as_u64(),
        Some(json["rules"].as_array().unwrap().len() as u64)
    );
    assert_eq!(seen["observed"], json!(["charlie abort-on-overflow"]));
    assert_ne!(seen["colored"], "rgba(0, 0, 0, 0)", "{seen:#}");
    assert_eq!(seen["common"][0], "abort-on-overflow");
    assert_eq!(
        seen["fixes"].as_u64(),
        Some(json["fixes"].as_array().unwrap().len() as u64)
    );
    assert_eq!(
        seen["failed"],
        json!(["empty", "future", "garbage", "nothing"])
    );
    assert_eq!(seen["stale"], json!(["ancient", "stale"]));
    assert!(seen["width"].as_f64().unwrap() > 100.0, "{seen:#}");
    assert_eq!(seen["resources"], json!([]), "the page loaded resources");
    let stripped = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for needle in ["http://", "https://", "src=", "@import", "url(", "<script"] {
        assert!(!stripped.contains(needle), "page refers to {needle}");
    }
}

#[test]
fn names_in_files_are_escaped_in_html_and_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "web<1>\"x", |v| {
        keep_only(v, "abort-on-overflow")
    });
    let out = report(&["--format", "html"], &[dir.path()]);
    common::exits(&out, 1);
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.contains("web&lt;1&gt;&quot;x") && !page.contains("web<1>"),
        "{page}"
    );
    let out = report(&["--format", "prometheus"], &[dir.path()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("host=\"web<1>\\\"x\""), "{text}");
}

#[test]
fn accepted_findings_do_not_fail_and_rotting_waivers_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let golf = host(d, "golf", |v| {
        keep_only(v, "abort-on-overflow");
        for f in findings(v) {
            f["accepted"] = json!({"reason": "drained by the LB", "expires": "2099-01-01", "waiver": "accept.yaml:3"});
        }
    });
    let hotel = host(d, "hotel", |v| {
        all_latent(v);
        v["waivers"] = json!([
            {"rule": "linger-zero", "reason": "x", "expires": "2020-01-01", "waiver": "accept.yaml:7", "state": "expired", "matched": 1},
            {"rule": "rfc1337-off", "reason": "y", "expires": "2099-01-01", "waiver": "accept.yaml:9", "state": "active", "matched": 1}
        ]);
    });
    host(d, "india", |v| keep_only(v, "abort-on-overflow"));

    let r = json_report(d, &[]);
    assert_eq!(hosts(&r), ["india", "hotel", "golf"]);
    let cell = &host_row(&r, "golf")["cells"]["abort-on-overflow"];
    assert_eq!(cell["accepted"], true);
    assert_eq!(cell["exposure"], "exposed");
    assert_eq!(host_row(&r, "golf")["failing"], false);
    assert_eq!(host_row(&r, "golf")["accepted"], 1);
    assert_eq!(host_row(&r, "india")["failing"], true);
    assert_eq!(host_row(&r, "hotel")["failing"], true);
    assert_eq!(
        host_row(&r, "hotel")["waiver_problems"],
        json!(["expired: linger-zero (accept.yaml:7)"])
    );
    assert_eq!(r["summary"]["accepted"], 1);
    assert_eq!(r["summary"]["waiver_problems"], 1);
    let rule = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule"] == "abort-on-overflow")
        .unwrap();
    assert_eq!(rule["hosts_accepted"], 1);
    assert_eq!(rule["hosts_failing"], 1, "india only");

    common::exits(&report(&[], &[&golf]), 0);
    common::exits(&report(&[], &[&hotel]), 1);
    common::exits(&report(&["--fail-on", "never"], &[&hotel]), 0);
    let out = report(&[], &[d]);
    common::exits(&out, 1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("E:high*"), "{text}");
    assert!(
        text.contains("Waivers that expired or match nothing (1)"),
        "{text}"
    );
    let out = report(&["--format", "html"], &[d]);
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.contains("class=\"cell exposed high accepted\" data-rule=\"abort-on-overflow\" title=\"accepted by a waiver: "),
        "{page}"
    );
    assert!(page.contains("<h2 id=\"waivers\">"), "{page}");
}

#[test]
fn two_files_of_one_name_stay_two_hosts() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    host(a.path(), "web", |_| {});
    let second = host(b.path(), "web", all_latent);
    let r = json_report(a.path(), &["--max-age", "1d"]);
    assert_eq!(hosts(&r), ["web"]);
    let out = report(&["--format", "json"], &[a.path(), b.path()]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["summary"]["audited"], 2);
    assert_eq!(hosts(&r), ["web", second.to_str().unwrap()]);
}

#[test]
fn a_fleet_report_written_among_the_audits_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "web", all_latent);
    let own = dir.path().join("fleet.json");
    common::exits(&report(&["--format", "json", "-o"], &[&own, dir.path()]), 0);
    let r = json_report(dir.path(), &[]);
    assert_eq!(hosts(&r), ["web"]);
    assert_eq!(r["failed"][0]["host"], "fleet");
    assert_eq!(
        r["failed"][0]["reason"],
        "a fleet report (rstaudit report --format json), not a host's audit"
    );
}

/// Regression (issue 27): `report` hung on a FIFO and read /dev/zero up to its size limit.
/// Only regular files are read; anything else is a failed row at once.
#[test]
fn report_reads_regular_files_only_and_at_once() {
    let dir = tempfile::tempdir().unwrap();
    host(dir.path(), "web", all_latent);
    let fifo = dir.path().join("pipe.json");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let started = std::time::Instant::now();
    let mut child = common::rstaudit()
        .args(["report", "--format", "json"])
        .arg(dir.path())
        .arg("/dev/zero")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("report still runs after {limit:?}: it waits on the FIFO or reads /dev/zero");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hosts(&r), ["web"]);
    let failed = r["failed"].as_array().unwrap();
    let reason = |host: &str| {
        failed
            .iter()
            .find(|f| f["host"] == host)
            .unwrap_or_else(|| panic!("{host} not failed: {r:#}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        reason("pipe").contains("not a regular file (a FIFO)"),
        "{r:#}"
    );
    assert!(
        reason("zero").contains("not a regular file (a device)"),
        "{r:#}"
    );
}

/// Regression (issue 27): one file given twice, or directly and through its directory,
/// counted as two hosts.
#[test]
fn one_file_given_twice_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let web = host(dir.path(), "web", |_| {});
    let out = report(&["--format", "json"], &[dir.path(), &web, &web]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["summary"]["audited"], 1, "{r:#}");
    assert_eq!(r["summary"]["duplicates"], 2, "{r:#}");
    assert_eq!(hosts(&r), ["web"]);
    for d in r["duplicates"].as_array().unwrap() {
        assert_eq!(d["reason"], "same file", "{d}");
        assert_eq!(d["same_as"], web.to_str().unwrap(), "{d}");
    }
    let out = report(&[], &[dir.path(), &web]);
    let t = common::text(&out);
    assert!(t.contains("1 counted once with another"), "{t}");
    assert!(t.contains("Counted once (1)"), "{t}");
}

/// Two audits of one host (same machine id and hostname) count once: the newest wins and
/// the other is listed as a duplicate. A host cloned from the same image (same machine id,
/// another hostname) is another host.
#[test]
fn two_audits_of_one_host_count_once_and_the_newest_wins() {
    let dir = tempfile::tempdir().unwrap();
    let id = |name: &'static str, minutes_ago: u64| {
        move |v: &mut Value| {
            v["host"] = json!({"hostname": name, "machine_id": "0123456789abcdef0123456789abcdef"});
            v["taken_at_ms"] = json!(now_ms() - minutes_ago * 60_000);
        }
    };
    let old = host(dir.path(), "web-1-monday", id("web-1", 90));
    let new = host(dir.path(), "web-1", id("web-1", 5));
    host(dir.path(), "web-1-clone", id("web-2", 5));
    let r = json_report(dir.path(), &[]);
    assert_eq!(r["summary"]["audited"], 2, "{r:#}");
    assert!(
        hosts(&r).contains(&"web-1") && hosts(&r).contains(&"web-1-clone"),
        "{r:#}"
    );
    let d = &r["duplicates"].as_array().unwrap()[0];
    assert_eq!(d["file"], old.to_str().unwrap(), "{r:#}");
    assert_eq!(d["same_as"], new.to_str().unwrap(), "{r:#}");
    assert_eq!(d["reason"], "same host", "{r:#}");
    let row = host_row(&r, "web-1");
    assert_eq!(row["machine_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(row["hostname"], "web-1");
    // Prometheus counts them too.
    let out = report(&["--format", "prometheus"], &[dir.path()]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("rstaudit_fleet_hosts{state=\"duplicate\"} 1"),
        "{t}"
    );
}
