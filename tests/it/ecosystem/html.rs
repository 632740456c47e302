//! The HTML reports, checked in a real browser: headless Chromium loads the
//! page, lays it out, and a probe script reads back what the browser built
//! (series drawn in the SVG chart, finding cards, their order, external
//! resources). Needs Debian's `chromium` (installed by .ci/run); a missing
//! browser fails the test, it is never skipped.

use crate::common;

use std::path::Path;

use rstaudit::report::html;
use serde_json::Value;

/// Appended to the page under test; the browser runs it after layout and
/// writes its answers, as JSON, into the document title.
const PROBE: &str = r#"<script>
(function () {
  var chart = document.querySelector('svg.chart');
  var series = Array.prototype.slice.call(document.querySelectorAll('svg.chart g.series'));
  var drawn = series.filter(function (g) {
    var line = g.querySelector('polyline');
    return line instanceof SVGElement && g.getBBox().width > 0;
  });
  var res = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  document.title = JSON.stringify({
    chart: !!chart,
    chartWidth: chart ? chart.getBoundingClientRect().width : 0,
    series: series.length,
    drawn: drawn.length,
    labels: series.map(function (g) { return g.getAttribute('data-label'); }),
    findings: Array.prototype.map.call(document.querySelectorAll('article.finding'),
      function (a) { return a.getAttribute('data-rule'); }),
    sections: Array.prototype.map.call(document.querySelectorAll('section.severity'),
      function (s) { return s.id; }),
    fixes: document.querySelectorAll('.fix').length,
    causeRows: (function () {
      var h = Array.prototype.find.call(document.querySelectorAll('h2'),
        function (e) { return e.textContent === 'Resets by cause'; });
      var t = h && h.nextElementSibling;
      return t && t.tagName === 'TABLE' ? t.querySelectorAll('tr').length - 1 : -1;
    })(),
    bodyHeight: document.body.getBoundingClientRect().height,
    resources: res
  });
})();
</script>"#;

fn no_network_resources(page: &str, seen: &Value) {
    assert_eq!(
        seen["resources"],
        serde_json::json!([]),
        "page loaded resources"
    );
    let stripped = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for needle in ["http://", "https://", "src=", "@import", "url("] {
        assert!(!stripped.contains(needle), "page refers to {needle}");
    }
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem-host.json")
}

#[test]
fn audit_html_renders_findings_by_severity_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let out = common::rstaudit()
        .args(["audit", "--snapshot"])
        .arg(fixture())
        .args(["--format", "html", "-o"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&report).unwrap();
    let seen = common::browse(&page, PROBE);

    // What the page must show, from the JSON audit of the same snapshot.
    let json = common::rstaudit()
        .args(["audit", "--snapshot"])
        .arg(fixture())
        .args(["--format", "json"])
        .output()
        .unwrap();
    let audit: Value = serde_json::from_slice(&json.stdout).unwrap();
    let order = ["critical", "high", "medium", "low", "info"];
    let mut findings: Vec<&Value> = audit["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|ns| ns["findings"].as_array().unwrap())
        .collect();
    // Stable sort: worst first, the audit's own order within a severity.
    findings.sort_by_key(|f| order.iter().position(|s| f["severity"] == *s));
    let rules: Vec<&Value> = findings.iter().map(|f| &f["rule"]).collect();
    let mut sections: Vec<String> = findings
        .iter()
        .map(|f| format!("sev-{}", f["severity"].as_str().unwrap()))
        .collect();
    sections.dedup();
    let fixes = findings
        .iter()
        .filter(|f| f["fix"]["sysctls"].is_array() || f["fix"]["advice"].is_string())
        .count();

    assert!(findings.len() >= 3, "the fixture has several findings");
    assert_eq!(
        seen["findings"],
        serde_json::json!(rules),
        "worst first: {seen}"
    );
    assert_eq!(seen["sections"], serde_json::json!(sections), "{seen}");
    assert_eq!(seen["fixes"], fixes, "{seen}");
    assert_eq!(seen["chart"], false);
    assert!(seen["bodyHeight"].as_f64().unwrap() > 300.0, "{seen}");
    assert!(
        page.contains("net.ipv4.tcp_abort_on_overflow"),
        "the fix is shown"
    );
    no_network_resources(&page, &seen);
}

#[test]
fn packet_check_html_chart_has_one_drawn_series_per_cause() {
    let page = html::packet_check(&html::PacketPage {
        title: "rstaudit packet-check".into(),
        subtitle: "10 s on all interfaces".into(),
        series: vec![
            html::Series {
                label: "linger-zero".into(),
                per_second: vec![0, 4, 9, 2, 0, 0, 1, 0, 0, 3],
            },
            html::Series {
                label: "abort-on-overflow".into(),
                per_second: vec![1, 0, 0, 0, 7, 7, 0, 0, 0, 0],
            },
            html::Series {
                label: "unattributed".into(),
                per_second: vec![0; 10],
            },
        ],
        tables: vec![html::Table {
            caption: "Resets by cause".into(),
            headers: vec!["cause".into(), "resets".into()],
            rows: vec![vec!["linger-zero".into(), "19".into()]],
        }],
    });
    let seen = common::browse(&page, PROBE);
    assert_eq!(seen["chart"], true);
    assert!(seen["chartWidth"].as_f64().unwrap() > 100.0, "{seen}");
    assert_eq!(seen["series"], 3, "{seen}");
    assert_eq!(seen["drawn"], 3, "every series is laid out: {seen}");
    assert_eq!(
        seen["labels"],
        serde_json::json!(["linger-zero", "abort-on-overflow", "unattributed"])
    );
    no_network_resources(&page, &seen);
}

/// A real packet-check window over a namespace this test creates, in which a helper makes
/// two kinds of reset (connects to a closed port; a close with unread data).
fn real_packet_check_html(path: &Path) {
    common::require_root();
    let ns = common::Netns::new("htmlpkt");
    let (child, err) = common::start_watching(
        common::rstaudit()
            .args(["packet-check", "--netns", &ns.name, "--duration", "3"])
            .args(["--format", "html", "-o"])
            .arg(path),
    );
    let helper = ns.helper(&["refused:9", "sleep:1200", "refused:9", "unread-close"]);
    common::finish_watching(child, err);
    drop(helper);
}

#[test]
fn packet_check_html_of_a_real_window_charts_each_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resets.html");
    real_packet_check_html(&file);
    let page = std::fs::read_to_string(&file).unwrap();
    let seen = common::browse(&page, PROBE);
    let labels: Vec<&str> = seen["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in ["no-socket", "unread-close"] {
        assert!(labels.contains(&want), "no {want} series: {seen}");
    }
    assert_eq!(
        seen["series"], seen["causeRows"],
        "one series per cause in the table: {seen}"
    );
    assert_eq!(
        seen["drawn"], seen["series"],
        "every series is laid out: {seen}"
    );
    no_network_resources(&page, &seen);
}
