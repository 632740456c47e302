//! A small location index over an input file's text (rules, profiles), for semantic errors.
//!
//! serde_yaml reports where a syntax or type error is, but a value that is
//! well formed and still wrong (an unknown sysctl in a fix, a bad version
//! range) is found later, on the parsed value, which carries no position.
//! [`Locator::find`] walks the text along a path of keys and needles, the
//! way a reader would: each step searches forward from the previous one.

/// One step of a path through the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A mapping key (`fix:`, `net.ipv4.tcp_fin_timeout:`), at any indentation.
    Key(&'a str),
    /// Any text on a line (a value such as `net.ipv4.tcp_nope`).
    Text(&'a str),
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// The lines of one file.
pub struct Locator<'t> {
    lines: Vec<&'t str>,
}

impl<'t> Locator<'t> {
    pub fn new(text: &'t str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// Follow `path`; a step that cannot be found is skipped, so the answer is
    /// the deepest position found (at worst 1:1).
    pub fn find(&self, path: &[Step<'_>]) -> Pos {
        let mut pos = Pos { line: 1, col: 1 };
        let mut from_line = 0usize;
        let mut from_col = 0usize;
        for step in path {
            if let Some((line, col)) = self.search(*step, from_line, from_col) {
                pos = Pos {
                    line: line + 1,
                    col: col + 1,
                };
                from_line = line;
                from_col = col + 1;
            }
        }
        pos
    }

    /// Where `key:` is written as a mapping key for the `nth` time (0-based), if it is. A
    /// quoted key (`"net.ipv4/..":`) is placed at its opening quote.
    pub fn key_nth(&self, key: &str, nth: usize) -> Option<Pos> {
        let (mut from_line, mut from_col) = (0, 0);
        let mut found = None;
        for _ in 0..=nth {
            let (line, col) = self.search(Step::Key(key), from_line, from_col)?;
            let quoted = col > 0 && matches!(self.lines[line].as_bytes()[col - 1], b'"' | b'\'');
            found = Some(Pos {
                line: line + 1,
                col: if quoted { col } else { col + 1 },
            });
            (from_line, from_col) = (line, col + 1);
        }
        found
    }

    fn search(&self, step: Step<'_>, from_line: usize, from_col: usize) -> Option<(usize, usize)> {
        for (i, line) in self.lines.iter().enumerate().skip(from_line) {
            let start = if i == from_line { from_col } else { 0 };
            if start > line.len() || !line.is_char_boundary(start) {
                continue;
            }
            let code = strip_comment(line);
            match step {
                Step::Key(key) => {
                    let rest = &code[start.min(code.len())..];
                    for (at, _) in rest.match_indices(key) {
                        let abs = start + at;
                        let before = code[..abs].trim_end_matches(['"', '\'']);
                        let before_ok = before.trim_start_matches([' ', '-']).is_empty()
                            || before.ends_with('{')
                            || before.ends_with(", ")
                            || before.ends_with("{ ");
                        let after = code[abs + key.len()..].trim_start_matches(['"', '\'']);
                        if before_ok && after.starts_with(':') {
                            return Some((i, abs));
                        }
                    }
                }
                Step::Text(text) => {
                    if let Some(at) = code.get(start..).and_then(|r| r.find(text)) {
                        return Some((i, start + at));
                    }
                }
            }
        }
        None
    }
}

fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(at) => &line[..at],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "id: x\nfix:\n  sysctls:\n    net.ipv4.tcp_nope: 1\n    net.ipv4.tcp_fin_timeout: { param: fin }\nwhen:\n  all:\n    - sysctl: net.ipv4.tcp_x\n      eq: 1\n";

    #[test]
    fn follows_keys_and_text() {
        let l = Locator::new(TEXT);
        assert_eq!(
            l.find(&[
                Step::Key("fix"),
                Step::Key("sysctls"),
                Step::Key("net.ipv4.tcp_nope")
            ]),
            Pos { line: 4, col: 5 }
        );
        assert_eq!(
            l.find(&[Step::Key("fix"), Step::Key("param")]),
            Pos { line: 5, col: 33 }
        );
        assert_eq!(
            l.find(&[Step::Key("when"), Step::Text("net.ipv4.tcp_x")]),
            Pos { line: 8, col: 15 }
        );
        assert_eq!(l.find(&[Step::Key("absent")]), Pos { line: 1, col: 1 });
    }

    #[test]
    fn finds_the_nth_writing_of_a_key() {
        let l = Locator::new("a: 1\nsysctls:\n  k: 1\n  # k: 9\n  \"k\": 2\n");
        assert_eq!(l.key_nth("k", 0), Some(Pos { line: 3, col: 3 }));
        assert_eq!(l.key_nth("k", 1), Some(Pos { line: 5, col: 3 }));
        assert_eq!(l.key_nth("k", 2), None);
    }
}
