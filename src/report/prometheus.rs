//! The audit in the Prometheus text format, for node_exporter's textfile
//! collector (write it with `-o /var/lib/node_exporter/textfile/rstaudit.prom`,
//! the file is replaced atomically). Gauges only: every value describes the
//! last audit, none is a counter.

use std::fmt::Write;

use super::escape::prometheus_label as label;
use super::{AuditReport, SEVERITIES};
use crate::rules::Exposure;
use crate::rules::accept::WaiverState;

/// Render the metrics.
pub fn prometheus(report: &AuditReport) -> Vec<u8> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP rstaudit_findings Findings of the last audit, by namespace, rule, severity and exposure (latent, exposed, observed; socket findings count processes)."
    );
    let _ = writeln!(out, "# TYPE rstaudit_findings gauge");
    for ns in &report.namespaces {
        let mut rows: Vec<(&str, &str, &str, u64)> = Vec::new();
        for f in &ns.findings {
            let exposure = f.exposure.as_str();
            match rows.iter_mut().find(|r| r.0 == f.rule && r.2 == exposure) {
                Some(r) => r.3 += 1,
                None => rows.push((&f.rule, f.severity.as_str(), exposure, 1)),
            }
        }
        for (rule, sev, exposure, n) in rows {
            let _ = writeln!(
                out,
                "rstaudit_findings{{netns=\"{}\",rule=\"{}\",severity=\"{sev}\",exposure=\"{exposure}\"}} {n}",
                label(&ns.netns),
                label(rule)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_finding_sockets Sockets matched by socket, listener and process findings of the last audit."
    );
    let _ = writeln!(out, "# TYPE rstaudit_finding_sockets gauge");
    for ns in &report.namespaces {
        let mut rows: Vec<(&str, u64)> = Vec::new();
        for f in ns.findings.iter().filter(|f| f.subject != "host") {
            let c = f.count.unwrap_or(0);
            match rows.iter_mut().find(|r| r.0 == f.rule) {
                Some(r) => r.1 += c,
                None => rows.push((&f.rule, c)),
            }
        }
        for (rule, n) in rows {
            let _ = writeln!(
                out,
                "rstaudit_finding_sockets{{netns=\"{}\",rule=\"{}\"}} {n}",
                label(&ns.netns),
                label(rule)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_findings_by_severity Findings of the last audit by severity."
    );
    let _ = writeln!(out, "# TYPE rstaudit_findings_by_severity gauge");
    for ns in &report.namespaces {
        for sev in SEVERITIES {
            let n = ns.findings.iter().filter(|f| f.severity == sev).count();
            let _ = writeln!(
                out,
                "rstaudit_findings_by_severity{{netns=\"{}\",severity=\"{}\"}} {n}",
                label(&ns.netns),
                sev.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_findings_by_exposure Findings of the last audit by exposure (latent, exposed, observed)."
    );
    let _ = writeln!(out, "# TYPE rstaudit_findings_by_exposure gauge");
    for ns in &report.namespaces {
        for exposure in Exposure::ALL {
            let n = ns
                .findings
                .iter()
                .filter(|f| f.exposure == exposure)
                .count();
            let _ = writeln!(
                out,
                "rstaudit_findings_by_exposure{{netns=\"{}\",exposure=\"{}\"}} {n}",
                label(&ns.netns),
                exposure.as_str()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_rules Rules of the last audit by outcome (fired, passed, not_applicable, not_checked)."
    );
    let _ = writeln!(out, "# TYPE rstaudit_rules gauge");
    for ns in &report.namespaces {
        let mut fired: Vec<&str> = ns.findings.iter().map(|f| f.rule.as_str()).collect();
        fired.sort_unstable();
        fired.dedup();
        for (status, n) in [
            ("fired", fired.len()),
            ("passed", ns.passed.len()),
            ("not_applicable", ns.not_applicable.len()),
            ("not_checked", ns.not_checked.len()),
        ] {
            let _ = writeln!(
                out,
                "rstaudit_rules{{netns=\"{}\",status=\"{status}\"}} {n}",
                label(&ns.netns)
            );
        }
    }
    waivers(&mut out, report);
    let _ = writeln!(
        out,
        "# HELP rstaudit_audit_failed 1 when a finding is at or above --fail-on (EXPOSURE:SEVERITY)."
    );
    let _ = writeln!(out, "# TYPE rstaudit_audit_failed gauge");
    let _ = writeln!(
        out,
        "rstaudit_audit_failed{{fail_on=\"{}\"}} {}",
        label(&report.fail_on),
        u8::from(report.summary.failed)
    );
    out.into_bytes()
}

/// With `--accept`: findings accepted by a waiver, and the waivers by state.
fn waivers(out: &mut String, report: &AuditReport) {
    if report.waivers.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_findings_accepted Findings of the last audit a waiver of the accept file accepts (also counted in rstaudit_findings)."
    );
    let _ = writeln!(out, "# TYPE rstaudit_findings_accepted gauge");
    for ns in &report.namespaces {
        let mut rows: Vec<(&str, u64)> = Vec::new();
        for f in ns.findings.iter().filter(|f| f.accepted.is_some()) {
            match rows.iter_mut().find(|r| r.0 == f.rule) {
                Some(r) => r.1 += 1,
                None => rows.push((&f.rule, 1)),
            }
        }
        for (rule, n) in rows {
            let _ = writeln!(
                out,
                "rstaudit_findings_accepted{{netns=\"{}\",rule=\"{}\"}} {n}",
                label(&ns.netns),
                label(rule)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_waivers Waivers of the accept file by state (active, expired, unused)."
    );
    let _ = writeln!(out, "# TYPE rstaudit_waivers gauge");
    for state in [
        WaiverState::Active,
        WaiverState::Expired,
        WaiverState::Unused,
    ] {
        let n = report.waivers.iter().filter(|w| w.state == state).count();
        let _ = writeln!(out, "rstaudit_waivers{{state=\"{}\"}} {n}", state.as_str());
    }
}
