//! The audit as a terminal report: findings grouped by severity, the fix
//! beside each, then a summary (by severity, not applicable, not checked).
//! On a terminal everything fits its width ([`Term`]): a wide one gets four columns
//! (rule, exposure, finding, fix), a narrow one two (exposure; the rule, the finding and
//! the fix one under the other); without a terminal the columns keep fixed widths.

use std::fmt::Write;

use tabled::builder::Builder;
use tabled::settings::Style;

use super::term::{self, Term, wrap};
use super::{AuditReport, NamespaceReport, SEVERITIES};
use crate::rules::{Exposure, Finding, Severity};

/// Fixed widths of the finding and fix columns without a terminal.
const FINDING_WIDTH: usize = 64;
const FIX_WIDTH: usize = 44;
/// Below this many columns for finding and fix together, the narrow layout is used.
const FOUR_COLUMNS_FROM: usize = 70;
/// The widest exposure (`observed`).
const EXPOSURE_WIDTH: usize = 8;

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
    if let Some(p) = &f.process
        && let Some(at) = p.workload.as_ref().and_then(|w| w.placement())
    {
        let _ = write!(out, "\n{} (pid {}) runs in {at}", p.comm, p.pid);
    }
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

/// How the findings of one severity are laid out.
enum Columns {
    /// rule | exposure | finding | fix, at these widths of finding and fix.
    Four(usize, usize),
    /// exposure | the rule, the finding and the fix, at this width.
    Two(usize),
}

impl Columns {
    fn of(width: Option<usize>, rule_width: usize) -> Self {
        let Some(w) = width else {
            return Columns::Four(FINDING_WIDTH, FIX_WIDTH);
        };
        // Four columns: 4 * 3 + 1 columns of borders and padding.
        let avail = w.saturating_sub(13 + rule_width + EXPOSURE_WIDTH);
        if avail >= FOUR_COLUMNS_FROM {
            let finding = (avail * 3 / 5).min(FINDING_WIDTH + 20);
            let fix = (avail - finding).min(FIX_WIDTH + 20);
            Columns::Four(finding, fix)
        } else {
            // Two columns: 2 * 3 + 1.
            Columns::Two(w.saturating_sub(7 + EXPOSURE_WIDTH).max(10))
        }
    }
}

/// Render the report as text for `term` (its width, whether to colour).
pub fn table(report: &AuditReport, term: Term) -> Vec<u8> {
    let color = term.color;
    let width = term.columns();
    let mut out = String::new();
    let many = report.namespaces.len() > 1;
    for ns in &report.namespaces {
        namespace_text(&mut out, ns, color, width);
        if many {
            out.push('\n');
        }
    }
    waivers_text(&mut out, report, width);
    summary_text(&mut out, report, width);
    out.into_bytes()
}

/// One namespace: its head, its findings by severity, the rules not applicable or not
/// checked, what could not be read.
fn namespace_text(out: &mut String, ns: &NamespaceReport, color: bool, width: Option<usize>) {
    let head = format!(
        "rstaudit audit of network namespace {} (kernel {}, {}; counters {})",
        ns.netns,
        ns.kernel,
        ns.source,
        match ns.window_seconds {
            Some(w) => format!("compared over {w} s"),
            None => "are totals since boot".to_string(),
        }
    );
    let head = term::wrap_lines(&head, width, "", "  ");
    let bold = format!("rstaudit audit of network namespace {}", ns.netns);
    out.push_str(&match head.strip_prefix(&bold) {
        Some(rest) if color => format!("{}{rest}", paint(true, "1", &bold)),
        _ => head,
    });
    out.push('\n');
    if ns.findings.is_empty() {
        let _ = writeln!(out, "No findings.\n");
    }
    for sev in SEVERITIES {
        let group: Vec<&Finding> = ns.findings.iter().filter(|f| f.severity == sev).collect();
        if !group.is_empty() {
            severity_group(out, sev, &group, color, width);
        }
    }
    not_applicable_text(out, ns, width);
    not_checked_text(out, ns, width);
    if !ns.notes.is_empty() {
        let _ = writeln!(out, "Not read ({}):", ns.notes.len());
        notes_text(out, &ns.notes, width);
        out.push('\n');
    }
}

/// The findings of one severity, as a table of four columns or, when narrow, of two.
fn severity_group(
    out: &mut String,
    sev: Severity,
    group: &[&Finding],
    color: bool,
    width: Option<usize>,
) {
    let _ = writeln!(
        out,
        "{}",
        paint(
            color,
            severity_color(sev),
            &format!("{} ({})", sev.as_str().to_uppercase(), group.len())
        )
    );
    let rule_width = group
        .iter()
        .map(|f| term::width(&f.rule))
        .max()
        .unwrap_or(4);
    let mut b = Builder::default();
    match Columns::of(width, rule_width) {
        Columns::Four(finding, fix) => {
            b.push_record(["rule", "exposure", "finding", "fix"]);
            for f in group {
                b.push_record([
                    // Never break an id: it is what users paste into --only / --skip.
                    f.rule.clone(),
                    paint(color, exposure_color(f.exposure), f.exposure.as_str()),
                    wrap(&finding_text(f), finding),
                    wrap(&fix_text(f), fix),
                ]);
            }
        }
        Columns::Two(text) => {
            b.push_record(["exposure", "rule, finding, fix"]);
            for f in group {
                let fix = fix_text(f)
                    .lines()
                    .map(|l| format!("fix: {l}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                b.push_record([
                    paint(color, exposure_color(f.exposure), f.exposure.as_str()),
                    format!(
                        "{}\n{}\n{}",
                        // An id that does not fit is cut, never broken over lines.
                        paint(color, "1", &term::cut(&f.rule, text)),
                        wrap(&finding_text(f), text),
                        wrap(&fix, text)
                    ),
                ]);
            }
        }
    }
    let mut t = b.build();
    t.with(Style::sharp());
    let _ = writeln!(out, "{t}\n");
}

/// The rules that do not apply to this host, and why.
fn not_applicable_text(out: &mut String, ns: &NamespaceReport, width: Option<usize>) {
    if !ns.not_applicable.is_empty() {
        let _ = writeln!(out, "Not applicable here ({}):", ns.not_applicable.len());
        for s in &ns.not_applicable {
            out.push_str(&term::wrap_lines(
                &format!("{}: {}", s.rule, s.reason),
                width,
                "  ",
                "    ",
            ));
        }
        out.push('\n');
    }
}

/// The rules that could not be checked, those of one reason on one line.
fn not_checked_text(out: &mut String, ns: &NamespaceReport, width: Option<usize>) {
    if !ns.not_checked.is_empty() {
        let _ = writeln!(out, "Could not be checked ({}):", ns.not_checked.len());
        // Rules stopped by the same reason share one line: the reason is said once.
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in &ns.not_checked {
            match reasons.iter_mut().find(|(r, _)| *r == s.reason) {
                Some((_, rules)) => rules.push(&s.rule),
                None => reasons.push((&s.reason, vec![&s.rule])),
            }
        }
        for (reason, rules) in reasons {
            out.push_str(&term::wrap_lines(
                &format!("{}: {reason}", rules.join(", ")),
                width.or(Some(WIDE)),
                "  ",
                "    ",
            ));
        }
        out.push('\n');
    }
}

/// The last lines: the findings by severity and exposure, the rules passed, not applicable
/// and not checked, and the exit code the threshold gives.
fn summary_text(out: &mut String, report: &AuditReport, width: Option<usize>) {
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
    out.push_str(&term::wrap_lines(
        &format!(
            "Summary: {} finding{} ({}; {}); {} passed, {} not applicable, {} not checked.",
            s.findings,
            if s.findings == 1 { "" } else { "s" },
            parts.join(", "),
            exposures.join(", "),
            s.passed,
            s.not_applicable,
            s.not_checked
        ),
        width,
        "",
        "  ",
    ));
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
    out.push_str(&term::wrap_lines(&verdict, width, "", "  "));
}

/// The width lists of rules and notes wrap at without a terminal.
const WIDE: usize = 100;

/// The waivers of `--accept`: how many findings they accept, and every expired or unused one.
fn waivers_text(out: &mut String, report: &AuditReport, width: Option<usize>) {
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
        let line = format!(
            "{} {}{}: {what} ({})",
            w.waiver,
            w.rule,
            if scope.is_empty() {
                String::new()
            } else {
                format!(" ({})", scope.join(", "))
            },
            w.reason
        );
        out.push_str(&term::wrap_lines(&line, width, "  ", "    "));
    }
    out.push('\n');
}

/// The notes, one line each, except that notes with the same area and message (every key
/// readable by root only, say) share one line that lists their subjects.
fn notes_text(out: &mut String, notes: &[crate::host::Note], width: Option<usize>) {
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
            [] => out.push_str(&term::wrap_lines(
                &format!("{area}: {message}"),
                width,
                "  ",
                "    ",
            )),
            [one] => out.push_str(&term::wrap_lines(
                &format!("{area} {one}: {message}"),
                width,
                "  ",
                "    ",
            )),
            many => {
                out.push_str(&term::wrap_lines(
                    &format!("{area} ({}): {message}:", many.len()),
                    width,
                    "  ",
                    "    ",
                ));
                let list = wrap(&many.join(", "), width.unwrap_or(WIDE).saturating_sub(4));
                out.push_str(&term::wrap_lines(&list, None, "    ", "    "));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::notes_text;
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
        notes_text(&mut out, &notes, None);
        assert_eq!(
            out,
            "  sysctls (3): not read: permission denied (readable by root only):\n    \
             net.core.bpf_jit_harden, net.ipv4.tcp_fastopen_key, net.ipv6.conf.lo.stable_secret\n  \
             owners 3 processes: permission denied\n  \
             sockets: read from /proc/net/tcp\n  \
             sockets: read from /proc/net/tcp\n"
        );
    }
}
