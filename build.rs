//! Embeds rules/*.yaml (the rules) and rules/causes/*.yaml (the seed's causes, for
//! `rstaudit explain`) into the binary, so an installed binary works alone.
//! Writes `$OUT_DIR/embedded_rules.rs` and `$OUT_DIR/embedded_causes.rs`: each a sorted list
//! of (file name, text).

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    embed(&root, "embedded_rules.rs", "the rule library");
    embed(
        &root.join("causes"),
        "embedded_causes.rs",
        "the seed's causes (rstaudit explain)",
    );
}

/// Write the `*.yaml` files directly in `dir` (not in its subdirectories) as a list.
fn embed(dir: &Path, dest: &str, what: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    // An unreadable directory (or entry) fails the build: a binary with no rules would audit
    // nothing.
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}: {what} is embedded", dir.display()));
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
        "{} holds no *.yaml: {what} is embedded",
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
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join(dest);
    std::fs::write(dest, out).unwrap();
}
