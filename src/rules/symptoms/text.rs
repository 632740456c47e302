//! The table (text) form of an [`Explanation`]: a pure function from the answer to text.

use std::fmt::Write;

use super::lookup::{ConfirmKind, Explanation};

/// Wrap `text` at `width` columns, each line starting with `indent`.
fn wrap(out: &mut String, text: &str, indent: &str, width: usize) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// The answer as text for a terminal.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Symptom: {}", e.query.trim());
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
        let _ = writeln!(out, "Says: {}", e.said.join("; "));
    }
    match &e.host {
        Some(h) => {
            let _ = writeln!(out, "Ranked by the text and by what {h} shows.");
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
            92,
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
        let _ = writeln!(out, "\n{}. {}: {}", i + 1, c.cause, c.title);
        let _ = writeln!(out, "   score {}, because:", c.score);
        for w in &c.why {
            let mut item = String::new();
            wrap(&mut item, &w.reason, "           ", 92);
            let _ = write!(out, "     {:>+4} {}", w.points, item.trim_start());
        }
        wrap(&mut out, &c.summary, "   ", 92);
        if !c.rules.is_empty() {
            let _ = writeln!(out, "   Rules that check for it:");
            let w = c.rules.iter().map(|r| r.id.len()).max().unwrap_or(0);
            for r in &c.rules {
                let lab = r
                    .lab
                    .as_deref()
                    .map(|l| format!(" [lab: {l}]"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "     {:<w$}  {:<8}  {}{lab}",
                    r.id, r.severity, r.title
                );
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
                let _ = writeln!(out, "     {kind:<5}  {}", x.command);
                wrap(&mut out, &x.shows, "            ", 92);
            }
        }
        let _ = writeln!(out, "   What the application can do:");
        for a in &c.advice {
            let mut item = String::new();
            wrap(&mut item, a, "       ", 92);
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
