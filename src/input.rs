//! Reading the files a user names (rule and profile files, saved snapshots, rollback files)
//! without letting a hostile one hang or exhaust the tool.
//!
//! Three things a parser cannot defend against by itself are refused here, before parsing:
//! a path that is not a regular file (`/dev/zero`, a FIFO that never ends or never opens), a
//! file far larger than any real one, and YAML flow collections nested so deep that the YAML
//! scanner (libyaml, quadratic in the nesting depth) would spin for minutes. Anchors and
//! aliases ("billion laughs") are already bounded by serde_yaml's repetition limit.
//! Nothing here knows what the file holds.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest rule or profile file accepted (the largest built-in one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Largest saved snapshot or rollback file accepted (a snapshot of a host with half a
/// million sockets is about 250 MiB of JSON).
pub const MAX_DATA_BYTES: u64 = 1024 * 1024 * 1024;

/// Deepest nesting of YAML/JSON flow collections (`[` `{`) accepted. Real files nest a few
/// levels; serde_yaml itself stops at 128.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Read a rule or profile file: a regular file, at most [`MAX_CONFIG_BYTES`], UTF-8, flow
/// nesting at most [`MAX_FLOW_DEPTH`]. Errors say which limit was hit.
pub fn read_config(path: &Path) -> io::Result<String> {
    read_checked(path, MAX_CONFIG_BYTES)
}

/// Read a saved snapshot or rollback file: like [`read_config`] with [`MAX_DATA_BYTES`].
pub fn read_data(path: &Path) -> io::Result<String> {
    read_checked(path, MAX_DATA_BYTES)
}

fn read_checked(path: &Path, limit: u64) -> io::Result<String> {
    // O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused just below.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a directory, device, FIFO or socket); give a file",
        ));
    }
    let text = read_at_most(file, limit)?;
    check_flow_depth(&text).map_err(|(line, column)| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "line {line} column {column}: [ ] or {{ }} nested more than {MAX_FLOW_DEPTH} levels deep; \
                 no rstaudit file needs this, the file is damaged or hostile"
            ),
        )
    })?;
    Ok(text)
}

fn read_at_most(file: File, limit: u64) -> io::Result<String> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "larger than {limit} bytes, more than any rstaudit file needs; refusing to read it"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Check that `[` / `{` outside quotes and comments never nest deeper than [`MAX_FLOW_DEPTH`].
/// Returns the 1-based line and column of the first bracket too deep. Conservative: brackets in
/// plain text count too, so a text with 65 unclosed `[` in a row is refused.
pub fn check_flow_depth(text: &str) -> Result<(), (usize, usize)> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            comment = false;
            prev = c;
            continue;
        }
        if comment {
            continue;
        }
        match quote {
            Some(q) => {
                if c == q && !(q == '"' && prev == '\\') {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' if prev.is_whitespace() => comment = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err((line, column));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        // An escaped backslash does not escape the next quote.
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    Ok(())
}

/// Longest quoted value a parser error repeats; the rest is cut (`...`).
const MAX_QUOTED: usize = 60;

/// A serde_yaml or serde_json error as a message for a user, without its position (the
/// caller puts `file:line:col` in front): a value quoted in it is cut to [`MAX_QUOTED`]
/// characters (a whole file given where a rule was expected would otherwise be repeated in
/// full), and the names of internal types become what the user wrote.
pub fn parser_message(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].trim_end_matches(',').to_string(),
        None => text,
    };
    let text = text
        .replace(
            "struct RawRule",
            "a rule (a mapping with id, title, severity, ...)",
        )
        .replace(
            "struct RawProfile",
            "a profile (a mapping with description, sysctls, ...)",
        )
        .replace(
            "struct Snapshot",
            "a snapshot (a mapping with schema, kernel, ...)",
        );
    shorten_quoted(&other_structs_as_mappings(&text))
}

/// `struct Kernel` (any other type name serde mentions) -> `a mapping`.
fn other_structs_as_mappings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("struct ") {
        out.push_str(&rest[..at]);
        let name = &rest[at + 7..];
        let len = name
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(name.len());
        if len == 0 {
            out.push_str("struct ");
        } else {
            out.push_str("a mapping");
        }
        rest = &name[len..];
    }
    out.push_str(rest);
    out
}

/// Cut every `"..."` (with `\"` escapes) longer than [`MAX_QUOTED`] characters.
fn shorten_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(512));
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let mut escaped = false;
        let close = rest.char_indices().find_map(|(i, c)| {
            let end = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            end.then_some(i)
        });
        let Some(close) = close else {
            // No closing quote: the tail as it is, cut all the same.
            rest = cut(rest, &mut out);
            out.push_str(rest);
            return out;
        };
        let inner = &rest[..close];
        let _ = cut(inner, &mut out);
        out.push('"');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Push `s` to `out`, cut to [`MAX_QUOTED`] characters with `...` when longer; returns "".
fn cut<'a>(s: &'a str, out: &mut String) -> &'a str {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => {
            out.push_str(&s[..i]);
            out.push_str("...");
        }
        None => out.push_str(s),
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_messages_are_short_and_speak_of_the_users_file() {
        let passwd = "root:x:0:0:root:/root:/bin/bash daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin bin:x:2:2";
        let e = serde_yaml::from_str::<std::collections::BTreeMap<String, u32>>(&format!(
            "\"{passwd}\""
        ))
        .unwrap_err();
        let m = parser_message(&e);
        assert!(!m.contains("at line"), "{m}");
        assert!(
            m.contains(
                "string \"root:x:0:0:root:/root:/bin/bash daemon:x:1:1:daemon:/usr/sbi...\""
            ),
            "{m}"
        );
        assert!(m.contains(", expected a map"), "{m}");
        assert_eq!(
            parser_message(
                &"invalid type: string \"vm\", expected struct RawProfile at line 1 column 1"
            ),
            "invalid type: string \"vm\", expected a profile (a mapping with description, sysctls, ...)"
        );
        // Escaped quotes, several quoted values, multi-byte text, an unclosed quote.
        let long = "é".repeat(70);
        assert_eq!(
            shorten_quoted(&format!("a \"x\\\"y\" b \"{long}\" c \"{long}")),
            format!(
                "a \"x\\\"y\" b \"{}...\" c \"{}...",
                "é".repeat(60),
                "é".repeat(60)
            )
        );
        assert_eq!(
            parser_message(&"kernel: invalid type: string \"x\", expected struct Kernel"),
            "kernel: invalid type: string \"x\", expected a mapping"
        );
        assert_eq!(
            other_structs_as_mappings("a struct , struct"),
            "a struct , struct"
        );
        assert_eq!(
            other_structs_as_mappings("struct A_1 struct B"),
            "a mapping a mapping"
        );
        assert_eq!(shorten_quoted("no quotes"), "no quotes");
        assert_eq!(shorten_quoted("\""), "\"");
        assert_eq!(shorten_quoted("\"\\"), "\"\\");
    }

    #[test]
    fn flow_depth_counts_only_real_brackets() {
        let deep = format!("a: {}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(check_flow_depth(&deep), Err((1, 68)));
        let ok = format!("a: {}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(check_flow_depth(&ok), Ok(()));
        let quoted = format!(
            "a: \"{}\"\nb: '{}'\n# {}",
            "[".repeat(99),
            "{".repeat(99),
            "[".repeat(99)
        );
        assert_eq!(check_flow_depth(&quoted), Ok(()));
        let escaped = format!("a: \"\\\\\" {}", "[".repeat(65));
        assert!(check_flow_depth(&escaped).is_err());
        // Sequential collections do not add up.
        assert_eq!(check_flow_depth(&"[1] {a: 2}\n".repeat(1000)), Ok(()));
    }

    #[test]
    fn refuses_devices_fifos_and_huge_files() {
        let err = read_config(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_config(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'x'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let err = read_config(&big).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert_eq!(
            read_data(&big).unwrap().len(),
            MAX_CONFIG_BYTES as usize + 1
        );
        std::fs::write(&big, b"\xff\xfe").unwrap();
        assert!(read_config(&big).unwrap_err().to_string().contains("UTF-8"));
    }
}
