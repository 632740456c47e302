//! The audit as a terminal report: findings grouped by severity, the fix
//! beside each, then a summary (by severity, not applicable, not checked).

use std::fmt::Write;

use tabled::builder::Builder;
use tabled::settings::Style;

use super::{AuditReport, SEVERITIES};
use crate::rules::{Exposure, Finding, Severity};

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

fn exposure_color(e: Exposure) -> &'static str {
    match e {
        Exposure::Observed => "1;31",
        Exposure::Exposed => "33",
        Exposure::Latent => "2",
    }
}

fn finding_text(f: &Finding) -> String {
    let mut out = match &f.accepted {
        Some(a) => format!("ACCEPTED until {}: {}\n", a.expires, a.reason),
        None => String::new(),
    };
    let _ = write!(out, "{}\n{}", f.title, f.message);
    if !f.exposure_reason.is_empty() {
        let _ = write!(out, "\n{}: {}", f.exposure.as_str(), f.exposure_reason);
    }
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
            b.push_record(["rule", "exposure", "finding", "fix"]);
            for f in group {
                b.push_record([
                    // Never break an id: it is what users paste into --only / --skip.
                    f.rule.clone(),
                    paint(color, exposure_color(f.exposure), f.exposure.as_str()),
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
            notes_text(&mut out, &ns.notes);
            out.push('\n');
        }
        if many {
            out.push('\n');
        }
    }
    waivers_text(&mut out, report);
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
    let exposures: Vec<String> = Exposure::ALL
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                s.by_exposure.get(e.as_str()).copied().unwrap_or(0),
                e.as_str()
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "Summary: {} finding{} ({}; {}); {} passed, {} not applicable, {} not checked.",
        s.findings,
        if s.findings == 1 { "" } else { "s" },
        parts.join(", "),
        exposures.join(", "),
        s.passed,
        s.not_applicable,
        s.not_checked
    );
    let verdict = if report.fail_on == "never" {
        "--fail-on never: exit 0".to_string()
    } else if s.failed {
        format!(
            "{} (--fail-on {}): exit 1",
            report.failure_reasons(),
            report.fail_on
        )
    } else {
        format!(
            "no {} (--fail-on {}): exit 0",
            super::describe_threshold(&report.fail_on),
            report.fail_on
        )
    };
    let _ = writeln!(out, "{verdict}");
    out.into_bytes()
}

/// The waivers of `--accept`: how many findings they accept, and every expired or unused one.
fn waivers_text(out: &mut String, report: &AuditReport) {
    if report.waivers.is_empty() {
        return;
    }
    let stale: Vec<_> = report.stale_waivers().collect();
    let _ = writeln!(
        out,
        "Waivers: {} finding{} accepted by {} waiver{}; {} expired or unused.",
        report.accepted(),
        if report.accepted() == 1 { "" } else { "s" },
        report.waivers.len() - stale.len(),
        if report.waivers.len() - stale.len() == 1 {
            ""
        } else {
            "s"
        },
        stale.len()
    );
    for w in stale {
        let mut scope = Vec::new();
        for (k, v) in [
            ("netns", &w.netns),
            ("process", &w.process),
            ("sysctl", &w.sysctl),
        ] {
            if let Some(v) = v {
                scope.push(format!("{k} {v}"));
            }
        }
        let what = match w.state {
            crate::rules::accept::WaiverState::Expired => format!(
                "EXPIRED on {}; its {} finding{} count again",
                w.expires,
                w.matched,
                if w.matched == 1 { "" } else { "s" }
            ),
            _ => "UNUSED: matches no finding; remove it or fix what it names".to_string(),
        };
        let _ = writeln!(
            out,
            "  {} {}{}: {what} ({})",
            w.waiver,
            w.rule,
            if scope.is_empty() {
                String::new()
            } else {
                format!(" ({})", scope.join(", "))
            },
            w.reason
        );
    }
    out.push('\n');
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

/// The notes, one line each, except that notes with the same area and message (every key
/// readable by root only, say) share one line that lists their subjects.
fn notes_text(out: &mut String, notes: &[crate::host::Note]) {
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for n in notes {
        let subject = n.subject.as_deref();
        let group = subject.and(groups.iter_mut().find(|(area, message, subjects)| {
            *area == n.area && *message == n.message && !subjects.is_empty()
        }));
        match group {
            Some((_, _, subjects)) => subjects.extend(subject),
            None => groups.push((&n.area, &n.message, subject.into_iter().collect())),
        }
    }
    for (area, message, subjects) in groups {
        match subjects.as_slice() {
            [] => {
                let _ = writeln!(out, "  {area}: {message}");
            }
            [one] => {
                let _ = writeln!(out, "  {area} {one}: {message}");
            }
            many => {
                let _ = writeln!(out, "  {area} ({}): {message}:", many.len());
                let _ = writeln!(out, "{}", indent(&wrap(&many.join(", "), 96), "    "));
            }
        }
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::{notes_text, wrap};
    use crate::host::Note;

    #[test]
    fn notes_sharing_a_message_share_a_line() {
        let denied = "not read: permission denied (readable by root only)";
        let notes = [
            Note::new("sysctls", Some("net.core.bpf_jit_harden".into()), denied),
            Note::new("owners", Some("3 processes".into()), "permission denied"),
            Note::new("sysctls", Some("net.ipv4.tcp_fastopen_key".into()), denied),
            Note::new("sockets", None, "read from /proc/net/tcp"),
            Note::new("sockets", None, "read from /proc/net/tcp"),
            Note::new(
                "sysctls",
                Some("net.ipv6.conf.lo.stable_secret".into()),
                denied,
            ),
        ];
        let mut out = String::new();
        notes_text(&mut out, &notes);
        assert_eq!(
            out,
            "  sysctls (3): not read: permission denied (readable by root only):\n    \
             net.core.bpf_jit_harden, net.ipv4.tcp_fastopen_key, net.ipv6.conf.lo.stable_secret\n  \
             owners 3 processes: permission denied\n  \
             sockets: read from /proc/net/tcp\n  \
             sockets: read from /proc/net/tcp\n"
        );
    }

    #[test]
    fn wraps_at_words_and_keeps_line_breaks() {
        assert_eq!(wrap("aa bb cc\ndd", 5), "aa bb\ncc\ndd");
        assert_eq!(wrap("abcdefghij", 4), "abcd\nefgh\nij");
        assert_eq!(wrap("", 4), "");
    }
}
