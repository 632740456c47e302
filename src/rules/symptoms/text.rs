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
                // The id and severity keep their columns; the title wraps under itself.
                let lead = format!("     {:<w$}  {:<8}  ", r.id, r.severity);
                let rest = " ".repeat(crate::report::term::width(&lead));
                out.push_str(&crate::report::term::wrap_lines(
                    &format!("{}{lab}", r.title),
                    Some(width),
                    &lead,
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
                out.push_str(&command_lines(
                    &x.command,
                    width,
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

/// A command for the reader to paste, within `width` columns and still the same command:
/// it breaks only between words, each broken line ending in ` \` (the shell joins them), and
/// a `--only` list too long for a line goes on as more `--only` flags (the audit takes them
/// together). Nothing is cut; a single word wider than a line stays whole.
fn command_lines(cmd: &str, width: usize, first: &str, rest: &str) -> String {
    use crate::report::term::width as cols;
    let room = width.saturating_sub(cols(first).max(cols(rest)) + 2).max(1);
    let mut words: Vec<String> = Vec::new();
    let mut it = cmd.split(' ').filter(|w| !w.is_empty()).peekable();
    while let Some(w) = it.next() {
        if w == "--only"
            && let Some(list) = it.next_if(|l| cols(l) + 7 > room)
        {
            let mut group = String::new();
            for id in list.split(',') {
                if !group.is_empty() && cols(&group) + 1 + cols(id) + 7 > room {
                    words.push("--only".into());
                    words.push(std::mem::take(&mut group));
                }
                if !group.is_empty() {
                    group.push(',');
                }
                group.push_str(id);
            }
            words.push("--only".into());
            words.push(group);
            continue;
        }
        words.push(w.to_string());
    }
    let mut lines: Vec<String> = vec![String::new()];
    for (i, w) in words.iter().enumerate() {
        let line = lines.last_mut().expect("one line at least");
        // A flag stays on the line of its value.
        let next = if w.starts_with("--") {
            words
                .get(i + 1)
                .filter(|v| !v.starts_with("--"))
                .map_or(0, |v| cols(v) + 1)
        } else {
            0
        };
        if !line.is_empty() && cols(line) + 1 + cols(w) + next > room {
            lines.push(w.clone());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
    }
    let last = lines.len() - 1;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(if i == 0 { first } else { rest });
        out.push_str(l);
        if i < last {
            out.push_str(" \\");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::command_lines;

    #[test]
    fn a_command_is_broken_only_where_the_shell_joins_it_again() {
        let cmd = "sudo rstaudit audit --only listen-overflows,listener-clamped,somaxconn-low,syn-backlog-small,syncookies-off --set idle_timeout=60";
        let t = command_lines(cmd, 60, "     audit  ", "              ");
        for l in t.lines() {
            assert!(crate::report::term::width(l) <= 60, "{l}\n{t}");
        }
        // Joined as the shell joins it: the same rules, every one once, nothing cut.
        let joined = t.replace(" \\\n", " ");
        let words: Vec<&str> = joined.split_whitespace().collect();
        let mut rules = Vec::new();
        for w in words.windows(2) {
            if w[0] == "--only" {
                rules.extend(w[1].split(','));
            }
        }
        assert_eq!(
            rules,
            [
                "listen-overflows",
                "listener-clamped",
                "somaxconn-low",
                "syn-backlog-small",
                "syncookies-off"
            ]
        );
        assert!(joined.contains("--set idle_timeout=60"), "{t}");
        assert!(!t.contains('…'), "{t}");
        // A short one stays one line.
        let t = command_lines("sudo rstaudit packet-check --duration 60", 80, "  ", "    ");
        assert_eq!(t, "  sudo rstaudit packet-check --duration 60\n");
    }
}
