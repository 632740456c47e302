//! Fitting text to a terminal: what the command layer found out about where the text goes
//! ([`Term`]: its width, whether to colour), and the helpers the renderers share to keep
//! within that width. Widths are display widths without escape codes (tabled's own
//! measure, with its `ansi` feature: a colour code is no column, a CJK character two).
//! Nothing here asks the terminal: the command layer does, and passes the answer down.

use std::borrow::Cow;
use std::fmt::Write;

use tabled::Table;
use tabled::grid::util::string::get_line_width;
use tabled::settings::Width;
use tabled::settings::peaker::PriorityMax;

/// Where the text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Term {
    /// The terminal's width in columns; None when the text goes to a file or a pipe (the
    /// renderers then keep their fixed widths, so the bytes do not depend on a terminal).
    pub width: Option<usize>,
    /// Whether to add ANSI colours.
    pub color: bool,
}

impl Term {
    /// A file or a pipe: no width, no colour.
    pub const PLAIN: Term = Term {
        width: None,
        color: false,
    };

    /// The width to fit, never below [`MIN_WIDTH`].
    pub fn columns(&self) -> Option<usize> {
        self.width.map(|w| w.max(MIN_WIDTH))
    }
}

/// Narrower than this, text is laid out as if the terminal had this width (a line may then
/// be wider than the terminal).
pub const MIN_WIDTH: usize = 40;

/// The display width of `line` (escape codes count nothing).
pub fn width(line: &str) -> usize {
    get_line_width(line)
}

/// The ellipsis that marks text cut short.
pub const ELLIPSIS: &str = "…";

/// `word` cut to at most `max` columns, with an ellipsis when it was longer.
pub fn cut(word: &str, max: usize) -> Cow<'_, str> {
    if width(word) <= max {
        return Cow::Borrowed(word);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    let mut out = String::new();
    let mut used = 0;
    for c in word.chars() {
        let w = tabled::grid::util::string::get_char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push_str(ELLIPSIS);
    Cow::Owned(out)
}

/// Wrap `text` at spaces to `max` columns, keeping its own line breaks; a word wider than a
/// line cannot wrap and is cut with an ellipsis. Plain text only (no escape codes).
pub fn wrap(text: &str, max: usize) -> String {
    text.lines()
        .map(|line| words_in_lines(line, max, max).join("\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The words of one line, greedily in lines of `first` columns (the first) and `rest` (the
/// others); a word wider than its line is cut with an ellipsis.
fn words_in_lines(line: &str, first: usize, rest: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut col = 0;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let room = if out.is_empty() { first } else { rest }.max(1);
        let w = width(word);
        if col > 0 && col + 1 + w > room {
            out.push(std::mem::take(&mut cur));
            col = 0;
        }
        let room = if out.is_empty() { first } else { rest }.max(1);
        if col > 0 {
            cur.push(' ');
            col += 1;
        }
        let word = cut(word, room);
        col += width(&word);
        cur.push_str(&word);
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

/// Each line of `text` wrapped to `max` columns, the first line starting with `first` and
/// the lines it wraps into with `rest` (both counted in the width).
pub fn wrap_lines(text: &str, max: Option<usize>, first: &str, rest: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let Some(max) = max else {
            out.push_str(first);
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let lines = words_in_lines(
            line,
            max.saturating_sub(width(first)),
            max.saturating_sub(width(rest)),
        );
        for (i, l) in lines.iter().enumerate() {
            let lead = if i == 0 { first } else { rest };
            if l.is_empty() {
                out.push_str(lead.trim_end());
            } else {
                out.push_str(lead);
                out.push_str(l);
            }
            out.push('\n');
        }
    }
    out
}

/// Every line of `text` wrapped to `max` columns, continuing under its own indent plus two
/// spaces (for reports written line by line); unchanged without a width.
pub fn wrap_block(text: &str, max: Option<usize>) -> String {
    if max.is_none() {
        return text.to_string();
    }
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let indent = &body[..body.len() - body.trim_start().len()];
        if body.trim().is_empty() {
            out.push_str(line);
            continue;
        }
        out.push_str(&wrap_lines(
            body.trim_start(),
            max,
            indent,
            &format!("{indent}  "),
        ));
        if !line.ends_with('\n') {
            out.pop();
        }
    }
    out
}

/// Rows of cells as left-aligned columns two spaces apart (the last not padded). With a
/// width, the last column wraps under itself; when the columns before it leave it too
/// little room, it goes on lines of its own under its row, indented.
pub fn columns(rows: &[Vec<String>], max: Option<usize>) -> String {
    let mut out = String::new();
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
        }
    }
    let before: usize = widths.iter().take(n.saturating_sub(1)).map(|w| w + 2).sum();
    if let Some(max) = max.filter(|m| before + MIN_LAST > *m && n > 2) {
        return records(rows, max);
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                match max {
                    None => line.push_str(c),
                    Some(max) if max >= before + MIN_LAST => {
                        let pad = " ".repeat(before);
                        let text = wrap(c, max - before);
                        line.push_str(&text.replace('\n', &format!("\n{pad}")));
                    }
                    Some(max) => {
                        let text = wrap_lines(c, Some(max), "    ", "    ");
                        line = format!("{}\n{}", line.trim_end(), text.trim_end());
                    }
                }
            } else {
                let pad = widths[i].saturating_sub(width(c));
                let _ = write!(line, "{c}{}  ", " ".repeat(pad));
            }
        }
        for l in line.lines() {
            out.push_str(l.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Rows too wide for `max` as records: the first two cells on a line, then `header: value`
/// for the others, wrapped under them.
pub fn records(rows: &[Vec<String>], max: usize) -> String {
    let mut out = String::new();
    let Some((head, rows)) = rows.split_first() else {
        return out;
    };
    for r in rows {
        let first = r.iter().take(2).cloned().collect::<Vec<_>>().join("  ");
        out.push_str(&wrap_lines(&first, Some(max), "", "    "));
        let rest: Vec<String> = head
            .iter()
            .zip(r)
            .skip(2)
            .map(|(h, c)| format!("{h}: {c}"))
            .collect();
        out.push_str(&wrap_lines(&rest.join(", "), Some(max), "    ", "    "));
    }
    out
}

/// The least room the last column gets beside the others before it moves under its row.
const MIN_LAST: usize = 16;

/// Make `table` at most `max` columns wide: the widest columns give way first, their cells
/// wrapped at word boundaries (a word too long for its cell is split by the table).
pub fn fit(table: &mut Table, max: Option<usize>) {
    if let Some(max) = max {
        table.with(
            Width::wrap(max)
                .keep_words(true)
                .priority(PriorityMax::right()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_do_not_count_escape_codes_and_count_wide_characters_twice() {
        assert_eq!(width("\x1b[33mexposed\x1b[0m"), 7);
        assert_eq!(width("移动网络"), 8);
    }

    #[test]
    fn wraps_at_words_keeps_line_breaks_and_cuts_what_cannot_wrap() {
        assert_eq!(wrap("aa bb cc\ndd", 5), "aa bb\ncc\ndd");
        assert_eq!(wrap("abcdefghij", 4), "abc…");
        assert_eq!(wrap("", 4), "");
        assert_eq!(wrap("移动网络 ok", 5), "移动…\nok");
        assert_eq!(cut("keepalive", 9), "keepalive");
        assert_eq!(cut("keepalive", 5), "keep…");
    }

    #[test]
    fn wrapped_lines_keep_their_indent_within_the_width() {
        let t = wrap_lines("one two three four", Some(10), "  - ", "    ");
        assert_eq!(t, "  - one\n    two\n    three\n    four\n");
        assert!(t.lines().all(|l| width(l) <= 10), "{t}");
        assert_eq!(wrap_lines("a b", None, "> ", "  "), "> a b\n");
    }

    #[test]
    fn a_block_wraps_each_line_under_its_indent() {
        let t = wrap_block("title\n  one two three\n\nend", Some(9));
        assert_eq!(t, "title\n  one two\n    three\n\nend");
        assert_eq!(wrap_block("a b\n", None), "a b\n");
    }

    #[test]
    fn a_table_fits_the_width_it_is_given() {
        let mut b = tabled::builder::Builder::default();
        b.push_record(["id", "text"]);
        b.push_record([
            "keepalive-above-idle-timeout",
            "a long explanation of what is wrong and what to do about it, in words",
        ]);
        let mut t = b.build();
        fit(&mut t, Some(50));
        let s = t.to_string();
        assert!(s.lines().all(|l| width(l) <= 50), "{s}");
    }
}
