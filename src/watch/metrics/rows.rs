//! The rows of `rstaudit_findings` from an audit report: findings of one rule with one
//! exposure and verdict in one namespace, counted as `audit --format prometheus` counts them.

use super::labels::{FindingRow, Verdict};
use crate::report::AuditReport;
use crate::rules::Finding;

/// Every finding of `report`, with the verdict `verdict_of` gives it, added up per
/// namespace, rule, severity, exposure and verdict.
pub fn finding_rows(
    report: &AuditReport,
    mut verdict_of: impl FnMut(&Finding) -> Verdict,
) -> Vec<FindingRow> {
    let mut rows: Vec<FindingRow> = Vec::new();
    for ns in &report.namespaces {
        add_rows(&mut rows, &ns.netns, &ns.findings, &mut verdict_of);
    }
    rows
}

/// Add the findings of namespace `netns` to `rows`, with the verdict `verdict_of` gives each.
pub fn add_rows(
    rows: &mut Vec<FindingRow>,
    netns: &str,
    findings: &[Finding],
    mut verdict_of: impl FnMut(&Finding) -> Verdict,
) {
    for f in findings {
        let verdict = verdict_of(f);
        match rows.iter_mut().find(|r| {
            r.netns == netns && r.rule == f.rule && r.exposure == f.exposure && r.verdict == verdict
        }) {
            Some(r) => r.count += 1,
            None => rows.push(FindingRow {
                netns: netns.to_string(),
                rule: f.rule.clone(),
                severity: f.severity,
                exposure: f.exposure,
                verdict,
                count: 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Exposure;
    use serde_json::json;

    fn finding(rule: &str, exposure: &str, netns: &str) -> serde_json::Value {
        json!({
            "rule": rule, "title": "t", "severity": "high", "exposure": exposure,
            "cause": "6", "subject": "process", "netns": netns, "message": "m",
            "evidence": {}, "fix": {}
        })
    }

    fn namespace(netns: &str, findings: Vec<serde_json::Value>) -> serde_json::Value {
        json!({
            "netns": netns, "kernel": "6.18", "source": "live", "counters": "since_boot",
            "findings": findings, "not_applicable": [], "not_checked": [], "passed": [],
            "notes": []
        })
    }

    #[test]
    fn findings_are_counted_per_rule_exposure_and_verdict() {
        let report: AuditReport = serde_json::from_value(json!({
            "schema": 3, "tool": "rstaudit", "fail_on": "never",
            "namespaces": [
                namespace("host", vec![
                    finding("linger-zero", "exposed", "host"),
                    finding("linger-zero", "exposed", "host"),
                    finding("linger-zero", "observed", "host"),
                    finding("syn-backlog", "latent", "host"),
                ]),
                namespace("ns1", vec![finding("linger-zero", "exposed", "ns1")]),
            ],
            "summary": { "findings": 5, "by_severity": {}, "by_exposure": {},
                "not_applicable": 0, "not_checked": 0, "passed": 0, "failed": false }
        }))
        .unwrap();
        // The second linger-zero of the host was confirmed by its process's resets.
        let mut n = 0;
        let rows = finding_rows(&report, |f| {
            n += 1;
            if f.rule == "linger-zero" && n == 2 {
                Verdict::Confirmed
            } else {
                Verdict::NotSeen
            }
        });
        let got: Vec<(&str, &str, Exposure, Verdict, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.netns.as_str(),
                    r.rule.as_str(),
                    r.exposure,
                    r.verdict,
                    r.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "host",
                    "linger-zero",
                    Exposure::Exposed,
                    Verdict::NotSeen,
                    1
                ),
                (
                    "host",
                    "linger-zero",
                    Exposure::Exposed,
                    Verdict::Confirmed,
                    1
                ),
                (
                    "host",
                    "linger-zero",
                    Exposure::Observed,
                    Verdict::NotSeen,
                    1
                ),
                ("host", "syn-backlog", Exposure::Latent, Verdict::NotSeen, 1),
                ("ns1", "linger-zero", Exposure::Exposed, Verdict::NotSeen, 1),
            ]
        );
    }
}
