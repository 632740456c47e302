//! The audit as JUnit XML: one test suite per namespace, one test case per
//! rule (failed = a finding at or above the exposure of `--fail-on`, skipped =
//! not applicable or not checked). A rule whose findings are all below that
//! exposure (latent, by default) passes, with its findings in `<system-out>`,
//! so a dashboard turns red for what is at risk and still shows the rest.

use std::fmt::Write;

pub use super::escape::xml as escape;
use super::{AuditReport, NamespaceReport};
use crate::rules::{Exposure, Finding, Threshold};

/// The least exposure that makes a finding a failure: that of `--fail-on` (`exposed` when
/// it is `never`).
fn failing_exposure(report: &AuditReport) -> Exposure {
    Threshold::parse(&report.fail_on).map_or(Exposure::Exposed, |t| t.exposure)
}

/// Render JUnit XML.
pub fn junit(report: &AuditReport) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let least = failing_exposure(report);
    let total: usize = report
        .namespaces
        .iter()
        .map(|n| n.passed.len() + n.not_applicable.len() + n.not_checked.len() + distinct_rules(n))
        .sum::<usize>()
        + report.waivers.len();
    let _ = writeln!(
        out,
        "<testsuites name=\"rstaudit\" tests=\"{total}\" failures=\"{}\">",
        report
            .namespaces
            .iter()
            .map(|n| failing_rules(n, least))
            .sum::<usize>()
            + report.stale_waivers().count()
    );
    for ns in &report.namespaces {
        let failures = failing_rules(ns, least);
        let skipped = ns.not_applicable.len() + ns.not_checked.len();
        let tests = ns.passed.len() + skipped + distinct_rules(ns);
        let _ = writeln!(
            out,
            "  <testsuite name=\"rstaudit audit {}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">",
            escape(&ns.netns)
        );
        let mut ids: Vec<&str> = ns.findings.iter().map(|f| f.rule.as_str()).collect();
        ids.dedup();
        for id in ids {
            let group: Vec<_> = ns.findings.iter().filter(|f| f.rule == id).collect();
            let _ = writeln!(
                out,
                "    <testcase classname=\"rstaudit.{}\" name=\"{}\">",
                escape(&ns.netns),
                escape(id)
            );
            let body: Vec<String> = group
                .iter()
                .map(|f| {
                    let mut t = match &f.accepted {
                        Some(a) => format!("accepted until {}: {}\n", a.expires, a.reason),
                        None => String::new(),
                    };
                    t.push_str(&f.message);
                    let _ = write!(t, "\n{}: {}", f.exposure.as_str(), f.exposure_reason);
                    for s in &f.fix.sysctls {
                        let _ = write!(t, "\nfix: {} = {}", s.key, s.value);
                    }
                    if let Some(a) = &f.fix.advice {
                        let _ = write!(t, "\nadvice: {a}");
                    }
                    t
                })
                .collect();
            if group.iter().any(|f| fails(f, least)) {
                let _ = writeln!(
                    out,
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    group[0].severity.as_str(),
                    escape(&group[0].title),
                    escape(&body.join("\n\n"))
                );
            } else {
                let _ = writeln!(
                    out,
                    "      <system-out>{} ({}): {}</system-out>",
                    escape(&group[0].title),
                    group[0].severity.as_str(),
                    escape(&body.join("\n\n"))
                );
            }
            let _ = writeln!(out, "    </testcase>");
        }
        for s in ns.not_applicable.iter().chain(&ns.not_checked) {
            let _ = writeln!(
                out,
                "    <testcase classname=\"rstaudit.{}\" name=\"{}\">",
                escape(&ns.netns),
                escape(&s.rule)
            );
            let _ = writeln!(out, "      <skipped message=\"{}\"/>", escape(&s.reason));
            let _ = writeln!(out, "    </testcase>");
        }
        for id in &ns.passed {
            let _ = writeln!(
                out,
                "    <testcase classname=\"rstaudit.{}\" name=\"{}\"/>",
                escape(&ns.netns),
                escape(id)
            );
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    waivers_suite(&mut out, report);
    out.push_str("</testsuites>\n");
    out.into_bytes()
}

/// A finding that fails its rule's test case: at or above `least` and not accepted.
fn fails(f: &Finding, least: Exposure) -> bool {
    f.exposure >= least && f.accepted.is_none()
}

/// One test case per waiver of `--accept`: an expired or unused one fails.
fn waivers_suite(out: &mut String, report: &AuditReport) {
    if report.waivers.is_empty() {
        return;
    }
    let failures = report.stale_waivers().count();
    let _ = writeln!(
        out,
        "  <testsuite name=\"rstaudit waivers\" tests=\"{}\" failures=\"{failures}\" skipped=\"0\" errors=\"0\">",
        report.waivers.len()
    );
    for w in &report.waivers {
        let _ = write!(
            out,
            "    <testcase classname=\"rstaudit.waivers\" name=\"{}\">",
            escape(&format!("{} {}", w.waiver, w.rule))
        );
        if w.state.is_stale() {
            let _ = write!(
                out,
                "<failure type=\"{}\" message=\"{}\">{}</failure>",
                w.state.as_str(),
                escape(&format!(
                    "waiver {} (expires {}) is {}",
                    w.rule,
                    w.expires,
                    w.state.as_str()
                )),
                escape(&w.reason)
            );
        } else {
            let _ = write!(
                out,
                "<system-out>{}</system-out>",
                escape(&format!(
                    "accepts {} finding(s) until {}: {}",
                    w.matched, w.expires, w.reason
                ))
            );
        }
        let _ = writeln!(out, "</testcase>");
    }
    let _ = writeln!(out, "  </testsuite>");
}

fn distinct_rules(ns: &NamespaceReport) -> usize {
    rules_of(ns.findings.iter())
}

/// Rules with a finding at or above `least`.
fn failing_rules(ns: &NamespaceReport, least: Exposure) -> usize {
    rules_of(ns.findings.iter().filter(|f| fails(f, least)))
}

fn rules_of<'a>(findings: impl Iterator<Item = &'a Finding>) -> usize {
    let mut ids: Vec<&str> = findings.map(|f| f.rule.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}
