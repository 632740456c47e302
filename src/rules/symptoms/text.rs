//! The table (text) form of an [`Explanation`]: a pure function from the answer to text.

use std::fmt::Write;

use super::lookup::{ConfirmKind, Explanation};

/// Wrap `text` at `width` columns, each line starting with `indent` (display widths).
fn wrap(out: &mut String, text: &str, indent: &str, width: usize) {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    out.push_str(&crate::report::term::wrap_lines(
        &text,
        Some(width),
        indent,
        indent,
    ));
}

/// Lines without a terminal are wrapped at this width.
const WIDTH: usize = 92;

/// The answer as text, within `max` columns (the terminal's; 92 without one).
pub fn render(e: &Explanation, max: Option<usize>) -> String {
    let width = max.unwrap_or(WIDTH);
    let mut out = String::new();
    out.push_str(&crate::report::term::wrap_lines(
        &format!("Symptom: {}", e.query.trim()),
        Some(width),
        "",
        "  ",
    ));
    for x in &e.errors {
        let _ = writeln!(
            out,
            "Error: {} (errno {}, \"{}\")",
            x.name, x.number, x.message
        );
    }
    if let Some(s) = e.seconds {
        let _ = writeln!(out, "Time: {s} s");
    }
    if !e.said.is_empty() {
        wrap(&mut out, &format!("Says: {}", e.said.join("; ")), "", width);
    }
    match &e.host {
        Some(h) => {
            wrap(
                &mut out,
                &format!("Ranked by the text and by what {h} shows."),
                "",
                width,
            );
        }
        None => {
            let _ = writeln!(out, "Ranked by the text alone.");
        }
    }
    if e.causes.is_empty() {
        out.push('\n');
        wrap(
            &mut out,
            "No known cause matches this text. Give the error message as the application \
             printed it, an errno name or number, or a cause's name. Examples:",
            "",
            width,
        );
        out.push('\n');
        for x in &e.examples {
            let _ = writeln!(out, "  rstaudit explain '{x}'");
        }
        let _ = writeln!(
            out,
            "\nCauses: {} (the column cause of `rstaudit rules list`; docs/causes.md).",
            crate::rules::known::CAUSES.join(", ")
        );
        return out;
    }
    for (i, c) in e.causes.iter().enumerate() {
        out.push('\n');
        out.push_str(&crate::report::term::wrap_lines(
            &format!("{}. {}: {}", i + 1, c.cause, c.title),
            Some(width),
            "",
            "   ",
        ));
        let _ = writeln!(out, "   score {}, because:", c.score);
        for w in &c.why {
            let mut item = String::new();
            wrap(&mut item, &w.reason, "           ", width);
            let _ = write!(out, "     {:>+4} {}", w.points, item.trim_start());
        }
        wrap(&mut out, &c.summary, "   ", width);
        if !c.rules.is_empty() {
            let _ = writeln!(out, "   Rules that check for it:");
            let w = c.rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
            for r in &c.rules {
                let lab = r
                    .lab
                    .as_deref()
                    .map(|l| format!(" [lab: {l}]"))
                    .unwrap_or_default();
                let line = format!("{:<w$}  {:<8}  {}{lab}", r.id, r.severity, r.title);
                let rest = " ".repeat(5 + w + 2 + 8 + 2);
                out.push_str(&crate::report::term::wrap_lines(
                    &line,
                    Some(width),
                    "     ",
                    &rest,
                ));
            }
        }
        if !c.confirm.is_empty() {
            let _ = writeln!(out, "   Confirm on this host:");
            for x in &c.confirm {
                let kind = match x.kind {
                    ConfirmKind::Audit => "audit",
                    ConfirmKind::Live => "live",
                    ConfirmKind::Lab => "lab",
                };
                out.push_str(&crate::report::term::wrap_lines(
                    &x.command,
                    Some(width),
                    &format!("     {kind:<5}  "),
                    "              ",
                ));
                wrap(&mut out, &x.shows, "            ", width);
            }
        }
        let _ = writeln!(out, "   What the application can do:");
        for a in &c.advice {
            let mut item = String::new();
            wrap(&mut item, a, "       ", width);
            let _ = write!(out, "     - {}", item.trim_start());
        }
    }
    if e.omitted > 0 {
        let _ = writeln!(
            out,
            "\n{} more cause(s) match less well: --limit 0 shows all.",
            e.omitted
        );
    }
    out
}
