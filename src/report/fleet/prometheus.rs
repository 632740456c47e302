//! The fleet report in the Prometheus text format (for node_exporter's textfile collector
//! on the controller). Gauges only: every value describes the last report.

use std::fmt::Write;

use super::FleetReport;
use crate::report::escape::prometheus_label as label;

fn head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// Render the metrics.
pub fn prometheus(r: &FleetReport) -> Vec<u8> {
    let mut out = String::new();
    let s = &r.summary;
    head(
        &mut out,
        "rstaudit_fleet_hosts",
        "Hosts of the last fleet report by state: audited, failed (no usable audit), stale (older than the maximum age), with_findings, failing (a finding at or above --fail-on), duplicate (files counted once with another: the same file, or an older audit of the same host).",
    );
    for (state, n) in [
        ("audited", s.audited),
        ("failed", s.failed),
        ("stale", s.stale),
        ("with_findings", s.hosts_with_findings),
        ("failing", s.hosts_failing),
        ("duplicate", s.duplicates),
    ] {
        let _ = writeln!(out, "rstaudit_fleet_hosts{{state=\"{state}\"}} {n}");
    }
    head(
        &mut out,
        "rstaudit_fleet_failing",
        "1 when a finding somewhere in the fleet is at or above --fail-on (the exit code is 1).",
    );
    let _ = writeln!(
        out,
        "rstaudit_fleet_failing{{fail_on=\"{}\"}} {}",
        label(&r.fail_on),
        u8::from(s.failing)
    );
    head(
        &mut out,
        "rstaudit_fleet_rule_hosts",
        "Hosts where a rule fired, by the worst exposure it had on the host.",
    );
    for rule in &r.rules {
        for (exposure, n) in &rule.by_exposure {
            let _ = writeln!(
                out,
                "rstaudit_fleet_rule_hosts{{rule=\"{}\",severity=\"{}\",exposure=\"{exposure}\"}} {n}",
                label(&rule.rule),
                rule.severity.as_str()
            );
        }
    }
    head(
        &mut out,
        "rstaudit_fleet_host_findings",
        "Findings of a rule on a host (its worst severity and exposure there; accepted=\"true\" when a waiver accepts all of them).",
    );
    for h in &r.hosts {
        for (rule, c) in &h.cells {
            let _ = writeln!(
                out,
                "rstaudit_fleet_host_findings{{host=\"{}\",rule=\"{}\",severity=\"{}\",exposure=\"{}\",accepted=\"{}\"}} {}",
                label(&h.host),
                label(rule),
                c.severity.as_str(),
                c.exposure.as_str(),
                c.accepted,
                c.findings
            );
        }
    }
    head(
        &mut out,
        "rstaudit_fleet_host_audit_age_seconds",
        "Age of each host's audit when the report was made (hosts of unknown age are left out; see rstaudit_fleet_host_stale).",
    );
    for h in &r.hosts {
        if let Some(a) = h.age_seconds {
            let _ = writeln!(
                out,
                "rstaudit_fleet_host_audit_age_seconds{{host=\"{}\"}} {a}",
                label(&h.host)
            );
        }
    }
    head(
        &mut out,
        "rstaudit_fleet_host_stale",
        "1 when the host's audit is older than the maximum age, or of unknown age.",
    );
    for h in &r.hosts {
        let _ = writeln!(
            out,
            "rstaudit_fleet_host_stale{{host=\"{}\"}} {}",
            label(&h.host),
            u8::from(h.stale)
        );
    }
    head(
        &mut out,
        "rstaudit_fleet_host_waiver_problems",
        "Waivers of a host's audit that expired or match nothing (hosts with none are left out).",
    );
    for h in r.hosts.iter().filter(|h| !h.waiver_problems.is_empty()) {
        let _ = writeln!(
            out,
            "rstaudit_fleet_host_waiver_problems{{host=\"{}\"}} {}",
            label(&h.host),
            h.waiver_problems.len()
        );
    }
    head(
        &mut out,
        "rstaudit_fleet_host_failed",
        "Files of the last report that held no usable audit (1 each), with the reason.",
    );
    for f in &r.failed {
        let _ = writeln!(
            out,
            "rstaudit_fleet_host_failed{{host=\"{}\",reason=\"{}\"}} 1",
            label(&f.host),
            label(&f.reason)
        );
    }
    head(
        &mut out,
        "rstaudit_fleet_report_timestamp_seconds",
        "When the report was made, seconds since the Unix epoch.",
    );
    let _ = writeln!(
        out,
        "rstaudit_fleet_report_timestamp_seconds {}",
        r.generated_at_ms / 1000
    );
    out.into_bytes()
}
