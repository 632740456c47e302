//! The library keeps to its layer (docs/architecture.md): its errors are typed, never
//! `Result<_, String>`, and it never prints; the command layer (src/cli.rs, src/commands/,
//! src/main.rs) turns errors into messages and prints warnings. These tests read the source
//! text of the library, so a String error or a print macro that comes back fails here with
//! the file and line.

use std::path::{Path, PathBuf};

/// The library's source files: everything under src/ but the command layer of the binary.
fn library_sources() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let skipped = |p: &Path| {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        first == "commands" || rel == Path::new("main.rs") || {
            let name = rel.to_string_lossy();
            name.starts_with("cli")
        }
    };
    let mut out = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if skipped(&path) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(
        out.len() > 50,
        "found only {} library sources under {}",
        out.len(),
        src.display()
    );
    out
}

/// The text of a source file with comments blanked out (kept line for line), so that doc
/// comments may talk about what the code must not do. String literals are kept as they are.
fn code_of(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            // A string literal, escapes included.
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
            out.push_str(&text[start..i]);
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i = (i + 2).min(b.len());
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\n' (not a lifetime).
            let end = text[i + 1..].find('\'').map_or(b.len(), |e| i + 1 + e + 1);
            let end = if b[i + 1] == b'\\' && b.get(i + 2) == Some(&b'\'') {
                i + 4
            } else {
                end
            };
            out.push_str(&text[i..end.min(b.len())]);
            i = end.min(b.len());
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// The generic arguments of every `Result<...>` in `code`, split at top-level commas, with
/// the offset where each `Result<` starts. Signatures broken over lines are seen whole.
fn results(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("Result<") {
        let start = from + pos;
        from = start + "Result<".len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // ParseResult<, SomeResult<
        }
        let mut depth = 1;
        let mut args = vec![String::new()];
        for c in code[from..].chars() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' => depth -= 1,
                ',' if depth == 1 => {
                    args.push(String::new());
                    continue;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
            args.last_mut().unwrap().push(c);
        }
        let args = args
            .into_iter()
            .map(|a| a.split_whitespace().collect::<String>())
            .filter(|a| !a.is_empty()) // a trailing comma
            .collect();
        found.push((start, args));
    }
    found
}

fn shown(offending: &[String]) -> String {
    offending.join("\n  ")
}

/// The lines (1-based) of `code` that hold a `Result<_, String>` or a `type Err = String`.
fn string_error_lines(code: &str) -> Vec<usize> {
    let mut lines: Vec<usize> = results(code)
        .into_iter()
        .filter(|(_, args)| {
            args.len() == 2 && (args[1] == "String" || args[1] == "std::string::String")
        })
        .map(|(at, _)| line_of(code, at))
        .collect();
    for (n, line) in code.lines().enumerate() {
        let squeezed: String = line.split_whitespace().collect();
        if squeezed.contains("typeErr=String;") {
            lines.push(n + 1);
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

/// The lines (1-based) of `code` that call a print macro or take the process's stdout or
/// stderr.
fn print_lines(code: &str) -> Vec<usize> {
    let macros = [
        "print!",
        "println!",
        "eprint!",
        "eprintln!",
        "dbg!",
        "stdout()",
        "stderr()",
    ];
    code.lines()
        .enumerate()
        .filter(|(_, line)| {
            macros.iter().any(|m| {
                line.match_indices(m).any(|(at, _)| {
                    let before = line[..at].chars().next_back();
                    // `eprintln!` is not `println!` too; `writeln!` is not a print.
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && !in_string(line, at)
                })
            })
        })
        .map(|(n, _)| n + 1)
        .collect()
}

/// Whether byte `at` of one line of code lies inside a string literal.
fn in_string(line: &str, at: usize) -> bool {
    let b = line.as_bytes();
    let mut inside = false;
    let mut i = 0;
    while i < at {
        match b[i] {
            b'\\' if inside => i += 1,
            b'"' => inside = !inside,
            // A char literal ('"', '\'') outside a string; a lifetime has no closing quote.
            b'\'' if !inside && b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if !inside && b.get(i + 1) == Some(&b'\\') => i += 3,
            _ => {}
        }
        i += 1;
    }
    inside
}

/// `file:line: code` for every line `find` picks in every library source.
fn offending(find: fn(&str) -> Vec<usize>) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for path in library_sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let code = code_of(&text);
        let rel = path.strip_prefix(root).unwrap().display();
        let lines: Vec<&str> = code.lines().collect();
        for n in find(&code) {
            out.push(format!("{rel}:{n}: {}", lines[n - 1].trim()));
        }
    }
    out
}

#[test]
fn the_library_has_no_string_errors() {
    let offending = offending(string_error_lines);
    assert!(
        offending.is_empty(),
        "`Result<_, String>` in the library: return a typed error (a thiserror enum; see \
         docs/architecture.md) and let the command layer add context with anyhow:\n  {}",
        shown(&offending)
    );
}

#[test]
fn the_library_does_not_print() {
    let offending = offending(print_lines);
    assert!(
        offending.is_empty(),
        "the library prints: return the warning or note to the caller, and let the command \
         layer (src/commands/) print it:\n  {}",
        shown(&offending)
    );
}

/// The scanners find what they look for, and only that (so an empty answer means something).
#[test]
fn the_scanners_find_string_errors_and_prints() {
    let code = code_of(concat!(
        "/// Never `Result<(), String>` here, nor println!.\n",
        "fn a() -> Result<Vec<u8>, String> { todo!() }\n",
        "fn b() -> Result<\n    (u8, u16),\n    String,\n> { todo!() }\n",
        "fn c() -> Result<String, MyError> { todo!() }\n",
        "fn d() -> ParseResult<u8, String> { todo!() }\n",
        "fn e() { eprintln!(\"x\"); let s = \"println!(\"; writeln!(f, \"y\"); }\n",
        "fn f() { let c = '\"'; println!(\"{c}\"); }\n",
        "impl FromStr for X { type Err = String; }\n",
        "/* print!(\"block\") */ fn g() {}\n",
        "fn h() { let _ = writeln!(std::io::stderr().lock(), \"z\"); }\n",
    ));
    assert_eq!(string_error_lines(&code), vec![2, 3, 11], "{code}");
    assert_eq!(print_lines(&code), vec![9, 10, 13], "{code}");
}
