//! Reading the files a user names (rule and profile files, saved snapshots, rollback files)
//! without letting a hostile one hang or exhaust the tool.
//!
//! Three things a parser cannot defend against by itself are refused here, before parsing:
//! a path that is not a regular file (`/dev/zero`, a FIFO that never ends or never opens), a
//! file far larger than any real one, and YAML flow collections nested so deep that the YAML
//! scanner (libyaml, quadratic in the nesting depth) would spin for minutes; the depth is
//! measured by libyaml's own scanner, so quotes and comments are read exactly as the parser
//! will read them. Anchors and aliases ("billion laughs") are already bounded by serde_yaml's
//! repetition limit.
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
    read_checked(path, MAX_CONFIG_BYTES, |_| Syntax::Yaml)
}

/// Read a saved snapshot or rollback file: like [`read_config`] with [`MAX_DATA_BYTES`];
/// nesting is measured as JSON when the text looks like JSON ([`looks_like_json`]), as YAML
/// otherwise.
pub fn read_data(path: &Path) -> io::Result<String> {
    read_checked(path, MAX_DATA_BYTES, |text| {
        if looks_like_json(text) {
            Syntax::Json
        } else {
            Syntax::Yaml
        }
    })
}

/// Open `path` for reading if it is a regular file; a directory, device (`/dev/zero`), FIFO
/// or socket is refused at once, before a byte is read (a FIFO with no writer does not
/// block the open: O_NONBLOCK).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file ({what}); give a file"),
        ));
    }
    Ok(file)
}

fn read_checked(path: &Path, limit: u64, syntax: impl Fn(&str) -> Syntax) -> io::Result<String> {
    let file = open_regular(path)?;
    let text = read_at_most(file, limit)?;
    check_flow_depth(&text, syntax(&text)).map_err(|(line, column)| {
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

/// Read at most `limit` bytes of UTF-8 text; a larger file or other bytes are an error.
pub(crate) fn read_at_most(file: File, limit: u64) -> io::Result<String> {
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

/// How a file will be parsed, which decides how its nesting is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// Parsed by serde_yaml (libyaml's scanner): rule and profile files, YAML snapshots.
    Yaml,
    /// Parsed by serde_json: saved snapshots that start with `{` or `[`, rollback files.
    Json,
}

/// Whether a saved file is read as JSON: it starts (after white space) with `{` or `[`.
/// `host::parse_saved` decides the same way.
pub fn looks_like_json(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

/// Check that flow collections (`[` `{`) never nest deeper than [`MAX_FLOW_DEPTH`], measured
/// the way the parser that will read the text sees them. Returns the 1-based line and column
/// of the first collection too deep.
///
/// YAML: the text goes through libyaml's own scanner (the one serde_yaml runs), counting its
/// flow-collection tokens, and stops at the first one too deep. A hand-written approximation
/// cannot be trusted here: whether a `'` or `"` opens a quoted scalar, and so whether the
/// brackets after it are text, depends on the whole YAML grammar (`description: don't` is a
/// plain scalar, `'tis` inside a block scalar is text, a multi-line plain scalar swallows the
/// quotes of its continuation lines), and every place where an approximation disagrees with
/// libyaml is a way around the guard. With the depth bounded the scan is linear; a scanner
/// error ends it early, and serde_yaml stops at the same error.
///
/// JSON: quotes always delimit strings (with `\` escapes), so counting brackets outside
/// strings is exact.
pub fn check_flow_depth(text: &str, syntax: Syntax) -> Result<(), (usize, usize)> {
    match syntax {
        Syntax::Yaml => yaml_flow_depth(text),
        Syntax::Json => json_flow_depth(text),
    }
}

fn json_flow_depth(text: &str) -> Result<(), (usize, usize)> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err((line, column));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn yaml_flow_depth(text: &str) -> Result<(), (usize, usize)> {
    use std::mem::MaybeUninit;
    use unsafe_libyaml as unsafe_sys;

    /// The parser, deleted (its buffers and queued tokens freed) however the scan ends.
    struct Scanner(Box<MaybeUninit<unsafe_sys::yaml_parser_t>>);
    impl Drop for Scanner {
        fn drop(&mut self) {
            // SAFETY: initialised by `yaml_parser_initialize` before the value is built.
            unsafe { unsafe_sys::yaml_parser_delete(self.0.as_mut_ptr()) }
        }
    }

    let mut scanner = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
    let parser = scanner.as_mut_ptr();
    // SAFETY: `parser` points to memory for a yaml_parser_t that initialize fills in (it
    // cannot fail: the crate's allocator aborts instead); the input pointer stays valid while
    // the scanner lives, since `text` outlives this function. The settings are serde_yaml's
    // (libyaml::parser::Parser::new).
    let _scanner = unsafe {
        let _ = unsafe_sys::yaml_parser_initialize(parser);
        let scanner = Scanner(scanner);
        unsafe_sys::yaml_parser_set_encoding(parser, unsafe_sys::YAML_UTF8_ENCODING);
        unsafe_sys::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        scanner
    };
    let mut depth = 0usize;
    let mut token = MaybeUninit::<unsafe_sys::yaml_token_t>::uninit();
    loop {
        // SAFETY: `yaml_parser_scan` fills the token in (zeroed when it fails or the stream
        // has ended); the token is read, then deleted once.
        let (scanned, kind, mark) = unsafe {
            let scanned = unsafe_sys::yaml_parser_scan(parser, token.as_mut_ptr()).ok;
            let t = token.as_mut_ptr();
            let kind = (*t).type_;
            let mark = (*t).start_mark;
            unsafe_sys::yaml_token_delete(t);
            (scanned, kind, mark)
        };
        if !scanned {
            break;
        }
        match kind {
            unsafe_sys::YAML_FLOW_SEQUENCE_START_TOKEN
            | unsafe_sys::YAML_FLOW_MAPPING_START_TOKEN => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err((mark.line as usize + 1, mark.column as usize + 1));
                }
            }
            unsafe_sys::YAML_FLOW_SEQUENCE_END_TOKEN | unsafe_sys::YAML_FLOW_MAPPING_END_TOKEN => {
                depth = depth.saturating_sub(1);
            }
            unsafe_sys::YAML_STREAM_END_TOKEN | unsafe_sys::YAML_NO_TOKEN => break,
            _ => {}
        }
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
            // No closing quote: the tail, cut all the same.
            cut(rest, &mut out);
            return out;
        };
        cut(&rest[..close], &mut out);
        out.push('"');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Push `s` to `out`, cut to [`MAX_QUOTED`] characters with `...` when longer.
fn cut(s: &str, out: &mut String) {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => {
            out.push_str(&s[..i]);
            out.push_str("...");
        }
        None => out.push_str(s),
    }
}

/// Read at most `limit` bytes of a small file; `Ok(None)` when it holds more.
pub fn read_small(mut file: impl Read, limit: usize) -> io::Result<Option<Vec<u8>>> {
    // One buffer big enough for the whole value, offered to the first read: the kernel's
    // list and bitmap sysctls (ip_local_reserved_ports, ...) answer only the first read of a
    // file and then report its end, so reading in small steps (read_to_end starts with 32
    // bytes) would cut them short.
    let mut bytes = vec![0u8; limit + 1];
    let mut len = 0;
    while len < bytes.len() {
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    Ok((len <= limit).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_messages_are_short_and_speak_of_the_users_file() {
        let passwd = "root:x:0:0:root:/root:/bin/bash daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin bin:x:2:2";
        let e = crate::yaml::from_str::<std::collections::BTreeMap<String, u32>>(&format!(
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

    fn yaml(text: &str) -> Result<(), (usize, usize)> {
        check_flow_depth(text, Syntax::Yaml)
    }

    fn json(text: &str) -> Result<(), (usize, usize)> {
        check_flow_depth(text, Syntax::Json)
    }

    #[test]
    fn flow_depth_counts_only_real_brackets() {
        let deep = format!("a: {}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(yaml(&deep), Err((1, 68)));
        let ok = format!("a: {}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(yaml(&ok), Ok(()));
        let quoted = format!(
            "a: \"{}\"\nb: '{}'\n# {}",
            "[".repeat(99),
            "{".repeat(99),
            "[".repeat(99)
        );
        assert_eq!(yaml(&quoted), Ok(()));
        let escaped = format!("a: \"\\\\\" {}", "[".repeat(65));
        assert!(yaml(&escaped).is_err());
        // Sequential collections do not add up.
        assert_eq!(yaml(&"- [1] {a: 2}\n".repeat(1000)), Ok(()));
        assert_eq!(
            json(&format!("[{}1]", "[1], {\"a\": 2}, ".repeat(1000))),
            Ok(())
        );
    }

    /// A quote opens a quoted scalar only where a scalar starts; anywhere else it is text, and
    /// the brackets after it are real. Each of these used to hide the brackets that follow.
    #[test]
    fn quotes_inside_plain_and_block_scalars_do_not_hide_brackets() {
        let deep = "[".repeat(100_000);
        for (prefix, line) in [
            ("description: don't\nx: ", 2),
            ("description: say \"hi\nx: ", 2),
            ("a: it's\n  still it's\nb: ", 3),
            ("- rock 'n' roll'\n- ", 2),
            ("a: |\n  'tis the season\n  \"open\nb: ", 4),
            ("a: >-\n  'folded\nb: ", 3),
            ("a: plain\n  'continued\nb: ", 3),
            ("a: x # a 'comment\nb: ", 2),
            ("? don't\n: ", 2),
        ] {
            let text = format!("{prefix}{deep}");
            let started = std::time::Instant::now();
            let got = yaml(&text);
            assert!(
                matches!(got, Err((l, _)) if l == line),
                "{prefix:?}: {got:?}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
        // Real quoted scalars still hide what they hold, also over several lines.
        for text in [
            "a: '[[[['\n".repeat(100),
            "a: \"[{[{\\\"[[\"\n".repeat(100),
            "- 'it''s [[[['\n".repeat(100),
            "a: '[[[[\n  [[[['\n".repeat(100),
            "a: \"[[[[\n  \\\n  [[[[\"\n".repeat(100),
            "a: |\n  [[[[ {{{{\n".repeat(100),
            "a: x[[[[\n".repeat(100),
            "[ '[[[[', \"{{{{\", '}}}}' ]\n".repeat(100),
        ] {
            assert_eq!(yaml(&text), Ok(()), "{text:.40?}");
        }
    }

    /// Saved snapshots hold strings the tool does not choose (process names, sysctl values):
    /// brackets in them never make the file unreadable, in either syntax.
    #[test]
    fn brackets_in_saved_strings_are_text() {
        let names: Vec<String> = (0..200)
            .map(|i| ["[[[[", "{{{{", "'[[", "\"[{", "\\[", "]]]]"][i % 6].to_string())
            .collect();
        let json_text = serde_json::to_string_pretty(&names).unwrap();
        assert!(looks_like_json(&json_text));
        assert_eq!(json(&json_text), Ok(()));
        assert_eq!(yaml(&json_text), Ok(()));
        let yaml_text = crate::yaml::to_string(&names).unwrap();
        assert!(!looks_like_json(&yaml_text));
        assert_eq!(yaml(&yaml_text), Ok(()));
        // JSON: an escaped quote does not end a string; an escaped backslash does not escape.
        assert_eq!(json(&format!("[\"\\\"{}\"]", "[".repeat(99))), Ok(()));
        assert!(json(&format!("[\"\\\\\" {}", "[".repeat(65))).is_err());
        assert_eq!(json(&format!("{{\"a\":\n{}", "[".repeat(64))), Err((2, 64)));
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

    #[test]
    fn small_files_are_read_up_to_the_limit() {
        assert_eq!(read_small(&b"abcd"[..], 4).unwrap(), Some(b"abcd".to_vec()));
        assert_eq!(read_small(&b"abcde"[..], 4).unwrap(), None);
        assert_eq!(read_small(std::io::repeat(1), 4096).unwrap(), None);
    }
}
