//! The audit as a terminal report: findings grouped by severity, the fix
//! beside each, then a summary (by severity, not applicable, not checked).

use std::fmt::Write;

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{AuditReport, SEVERITIES};
use crate::rules::{Finding, Severity};

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn severity_color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    }
}

fn fix_text(f: &Finding) -> String {
    let mut out = String::new();
    for s in &f.fix.sysctls {
        let _ = write!(out, "{} = {}", s.key, s.value);
        if let Some(cur) = &s.current {
            let _ = write!(out, " (now {cur})");
        }
        out.push('\n');
    }
    if let Some(a) = &f.fix.advice {
        out.push_str(a);
    }
    out.trim_end().to_string()
}

fn finding_text(f: &Finding) -> String {
    let mut out = format!("{}\n{}", f.title, f.message);
    // The header already says when counters are totals since boot.
    for n in f
        .notes
        .iter()
        .filter(|n| !n.starts_with("counters are totals since boot"))
    {
        let _ = write!(out, "\nnote: {n}");
    }
    if let Some(lab) = &f.lab {
        let _ = write!(
            out,
            "\nreproduce: rstaudit packet-check --lab --rule {}",
            f.rule
        );
        let _ = lab;
    }
    out
}

/// Render the report as text; `color` adds ANSI colours (only for a terminal, without NO_COLOR).
pub fn table(report: &AuditReport, color: bool) -> Vec<u8> {
    let mut out = String::new();
    let many = report.namespaces.len() > 1;
    for ns in &report.namespaces {
        let _ = writeln!(
            out,
            "{} (kernel {}, {}; counters {})",
            paint(
                color,
                "1",
                &format!("rstaudit audit of network namespace {}", ns.netns)
            ),
            ns.kernel,
            ns.source,
            match ns.window_seconds {
                Some(w) => format!("compared over {w} s"),
                None => "are totals since boot".to_string(),
            }
        );
        out.push('\n');
        if ns.findings.is_empty() {
            let _ = writeln!(out, "No findings.\n");
        }
        for sev in SEVERITIES {
            let group: Vec<&Finding> = ns.findings.iter().filter(|f| f.severity == sev).collect();
            if group.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "{}",
                paint(
                    color,
                    severity_color(sev),
                    &format!("{} ({})", sev.as_str().to_uppercase(), group.len())
                )
            );
            let mut b = Builder::default();
            b.push_record(["rule", "finding", "fix"]);
            for f in group {
                b.push_record([
                    // Never break an id: it is what users paste into --only / --skip.
                    f.rule.clone(),
                    wrap(&finding_text(f), 64),
                    wrap(&fix_text(f), 44),
                ]);
            }
            let mut t = b.build();
            t.with(Style::sharp());
            let _ = writeln!(out, "{t}\n");
        }
        if !ns.not_applicable.is_empty() {
            let _ = writeln!(out, "Not applicable here ({}):", ns.not_applicable.len());
            for s in &ns.not_applicable {
                let _ = writeln!(out, "  {}: {}", s.rule, s.reason);
            }
            out.push('\n');
        }
        if !ns.not_checked.is_empty() {
            let _ = writeln!(out, "Could not be checked ({}):", ns.not_checked.len());
            for s in &ns.not_checked {
                let _ = writeln!(out, "  {}: {}", s.rule, s.reason);
            }
            out.push('\n');
        }
        if !ns.notes.is_empty() {
            let _ = writeln!(out, "Not read ({}):", ns.notes.len());
            for n in &ns.notes {
                let subject = n
                    .subject
                    .as_deref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {}{}: {}", n.area, subject, n.message);
            }
            out.push('\n');
        }
        if many {
            out.push('\n');
        }
    }
    let s = &report.summary;
    let parts: Vec<String> = SEVERITIES
        .iter()
        .map(|sev| {
            format!(
                "{} {}",
                s.by_severity.get(sev.as_str()).copied().unwrap_or(0),
                sev.as_str()
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "Summary: {} finding{} ({}); {} passed, {} not applicable, {} not checked.",
        s.findings,
        if s.findings == 1 { "" } else { "s" },
        parts.join(", "),
        s.passed,
        s.not_applicable,
        s.not_checked
    );
    let verdict = if report.fail_on == "never" {
        "--fail-on never: exit 0".to_string()
    } else if s.failed {
        format!("findings at or above {}: exit 1", report.fail_on)
    } else {
        format!("nothing at or above {}: exit 0", report.fail_on)
    };
    let _ = writeln!(out, "{verdict}");
    out.into_bytes()
}

/// Wrap text at spaces to `width` columns, keeping its own line breaks; a
/// word longer than a line is split.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let mut word = word;
            let len = word.chars().count();
            if col > 0 && col + 1 + len > width {
                out.push('\n');
                col = 0;
            } else if col > 0 {
                out.push(' ');
                col += 1;
            }
            while word.chars().count() > width - col {
                let cut = word
                    .char_indices()
                    .nth(width - col)
                    .map_or(word.len(), |(i, _)| i);
                out.push_str(&word[..cut]);
                out.push('\n');
                word = &word[cut..];
                col = 0;
            }
            out.push_str(word);
            col += word.chars().count();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_words_and_keeps_line_breaks() {
        assert_eq!(wrap("aa bb cc\ndd", 5), "aa bb\ncc\ndd");
        assert_eq!(wrap("abcdefghij", 4), "abcd\nefgh\nij");
        assert_eq!(wrap("", 4), "");
    }
}
