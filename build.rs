//! Embeds rules/*.yaml into the binary, so an installed binary works alone.
//! Writes `$OUT_DIR/embedded_rules.rs`: a sorted list of (file name, text).

use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    // An unreadable rules/ (or entry) fails the build: a binary with no rules would audit nothing.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e}: the rule library is embedded",
            dir.display()
        )
    });
    let mut files: Vec<_> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(
        !files.is_empty(),
        "{} holds no rule (*.yaml): the rule library is embedded",
        dir.display()
    );
    files.sort();
    let mut out = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_string_lossy();
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_rules.rs");
    std::fs::write(dest, out).unwrap();
}
