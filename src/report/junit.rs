//! The audit as JUnit XML: one test suite per namespace, one test case per
//! rule (failed = finding, skipped = not applicable or not checked).

use std::fmt::Write;

use super::AuditReport;

/// Escape text for XML attributes and content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Render JUnit XML.
pub fn junit(report: &AuditReport) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total: usize = report
        .namespaces
        .iter()
        .map(|n| n.passed.len() + n.not_applicable.len() + n.not_checked.len() + distinct_rules(n))
        .sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"rstaudit\" tests=\"{total}\" failures=\"{}\">",
        report.namespaces.iter().map(distinct_rules).sum::<usize>()
    );
    for ns in &report.namespaces {
        let failures = distinct_rules(ns);
        let skipped = ns.not_applicable.len() + ns.not_checked.len();
        let tests = ns.passed.len() + skipped + failures;
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
                    let mut t = f.message.clone();
                    for s in &f.fix.sysctls {
                        let _ = write!(t, "\nfix: {} = {}", s.key, s.value);
                    }
                    if let Some(a) = &f.fix.advice {
                        let _ = write!(t, "\nadvice: {a}");
                    }
                    t
                })
                .collect();
            let _ = writeln!(
                out,
                "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                group[0].severity.as_str(),
                escape(&group[0].title),
                escape(&body.join("\n\n"))
            );
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
    out.push_str("</testsuites>\n");
    out.into_bytes()
}

fn distinct_rules(ns: &super::NamespaceReport) -> usize {
    let mut ids: Vec<&str> = ns.findings.iter().map(|f| f.rule.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}
