//! The library returns typed errors, never `Result<_, String>` (docs/architecture.md): the
//! command layer, the modules src/main.rs declares, turns errors into messages. No lint says
//! this, so this test reads the library's sources. That the library does not print is
//! clippy's to check (the `deny` in src/lib.rs and clippy.toml).

use std::path::{Path, PathBuf};

/// The library's sources: every `.rs` file under src/ but main.rs and the modules it declares.
fn library_sources(src: &Path) -> Vec<PathBuf> {
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap();
    let binary: Vec<&str> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let is_binary = |rel: &Path| {
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first == "main.rs"
            || binary
                .iter()
                .any(|m| first == *m || first == format!("{m}.rs"))
    };
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if is_binary(path.strip_prefix(src).unwrap()) {
                continue;
            } else if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The lines (1-based) of `text` that hold a `Result<_, String>` or a `type Err = String`,
/// line comments aside. A signature broken over lines is seen whole.
fn string_error_lines(text: &str) -> Vec<usize> {
    // The code as (character, line) with whitespace and line comments left out.
    let code: Vec<(char, usize)> = text
        .lines()
        .enumerate()
        .flat_map(|(n, l)| {
            l.split("//")
                .next()
                .unwrap()
                .chars()
                .map(move |c| (c, n + 1))
        })
        .filter(|(c, _)| !c.is_whitespace())
        .collect();
    let squeezed: String = code.iter().map(|(c, _)| c).collect();
    let chars: Vec<char> = squeezed.chars().collect();
    let mut lines = Vec::new();
    for (at, _) in squeezed.match_indices("Result<") {
        let at = squeezed[..at].chars().count();
        if at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_') {
            continue; // ParseResult<...>
        }
        // The arguments at depth 1, up to the `>` that closes `Result<`.
        let (mut depth, mut args) = (1, vec![String::new()]);
        for (i, &c) in chars.iter().enumerate().skip(at + "Result<".len()) {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' if chars[i - 1] == '-' => {} // `->` in a closure type
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
        args.retain(|a| !a.is_empty()); // a trailing comma
        let string = ["String", "std::string::String", "alloc::string::String"];
        if args.len() == 2 && string.contains(&args[1].as_str()) {
            lines.push(code[at].1);
        }
    }
    for (at, _) in squeezed.match_indices("typeErr=String;") {
        lines.push(code[squeezed[..at].chars().count()].1);
    }
    lines.sort();
    lines.dedup();
    lines
}

#[test]
fn the_library_has_no_string_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = library_sources(&root.join("src"));
    assert!(
        sources.iter().any(|p| p.ends_with("src/lib.rs"))
            && !sources.iter().any(|p| p.ends_with("src/main.rs")),
        "the library's sources were not found: {sources:?}"
    );
    let offending: Vec<String> = sources
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            string_error_lines(&text)
                .into_iter()
                .map(move |n| format!("{rel}:{n}"))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "`Result<_, String>` in the library: return a typed error (a thiserror enum; see \
         docs/architecture.md) and let the command layer add context with anyhow:\n  {}",
        offending.join("\n  ")
    );
}

/// The scanner finds what it looks for, and only that (so an empty answer means something).
#[test]
fn the_scanner_finds_string_errors() {
    let text = concat!(
        "/// Never `Result<(), String>` here.\n",
        "fn a() -> Result<Vec<u8>, String> { todo!() }\n",
        "fn b() -> Result<\n    (u8, u16),\n    std::string::String,\n> { todo!() }\n",
        "fn c() -> Result<String, MyError> { todo!() }\n",
        "fn d() -> ParseResult<u8, String> { todo!() }\n",
        "fn e() -> Result<Box<dyn Fn() -> u8>, String> { todo!() } // Result<u8, String>\n",
        "impl FromStr for X { type Err = String; }\n",
        "type R<T> = io::Result<T>;\n",
        "fn f() -> anyhow::Result<String> { todo!() }\n",
    );
    assert_eq!(string_error_lines(text), vec![2, 3, 9, 10]);
}

/// The files a reader of the product meets (src/, docs/, rules/, profiles/, README.md) point
/// only to files in the repository. Regression (issue 27): 19 places sent the reader to
/// notes kept outside it.
#[test]
fn product_files_point_to_nothing_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut dirs: Vec<PathBuf> = ["src", "docs", "rules", "profiles"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| {
                ["rs", "md", "yaml", "yml", "j2", "txt"].contains(&e.to_str().unwrap_or(""))
            }) {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 100, "only {} files", files.len());
    // The notes the project started from live outside the repository: nothing may name them.
    let outside = [
        "rst-causes",
        "DESIGN.md",
        "../shared",
        "shared/reference",
        "shared/seeds",
    ];
    let mut found = Vec::new();
    for path in &files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if outside.iter().any(|o| line.contains(o)) {
                found.push(format!(
                    "{}:{}: {}",
                    path.strip_prefix(root).unwrap().display(),
                    i + 1,
                    line.trim()
                ));
            }
        }
    }
    // This file's own list is not a reference: it is under tests/, not among the files read.
    assert!(
        found.is_empty(),
        "{} reference(s) outside the repository:\n{}",
        found.len(),
        found.join("\n")
    );
}
