//! Every Rust file under tests/ belongs to one of the two test crates, tests/it (this one) and
//! tests/kernel_matrix. A file directly in tests/ would be a crate of its own, linked on its
//! own (what this layout replaced), and a file under a crate's folder that no `mod` declares is
//! never compiled, so its tests would never run. Either fails here, naming the file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The crates of tests/: the folders that hold a main.rs.
const CRATES: &[&str] = &["it", "kernel_matrix"];

/// The `.rs` files under `tests` that no crate of [`CRATES`] reaches through its `mod`
/// declarations (a `#[path]` on the line above a declaration is followed).
fn strays(tests: &Path) -> Vec<PathBuf> {
    let mut reached = BTreeSet::new();
    for name in CRATES {
        reach(&tests.join(name).join("main.rs"), &mut reached);
    }
    let mut out: Vec<PathBuf> = rust_files(tests)
        .into_iter()
        .filter(|f| !reached.contains(f))
        .collect();
    out.sort();
    out
}

/// Add `file` and every module file it declares, recursively, to `reached`.
fn reach(file: &Path, reached: &mut BTreeSet<PathBuf>) {
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let file = normal(file);
    if !reached.insert(file.clone()) {
        return;
    }
    let dir = file.parent().unwrap();
    // main.rs and mod.rs declare modules beside them; NAME.rs declares them in NAME/.
    let children = match file.file_name().and_then(|n| n.to_str()) {
        Some("main.rs" | "mod.rs") => dir.to_path_buf(),
        _ => dir.join(file.file_stem().unwrap()),
    };
    let mut path_attr: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(p) = line
            .strip_prefix("#[path = \"")
            .and_then(|p| p.strip_suffix("\"]"))
        {
            path_attr = Some(p.to_string());
            continue;
        }
        let decl = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(name) = decl.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
            match path_attr.take() {
                Some(p) => reach(&dir.join(p), reached),
                None => {
                    reach(&children.join(format!("{name}.rs")), reached);
                    reach(&children.join(name).join("mod.rs"), reached);
                }
            }
        } else if !line.starts_with("#[") {
            path_attr = None;
        }
    }
}

/// `path` with `..` and `.` resolved (the files exist, so this is what the compiler opens).
fn normal(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, canonical.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(normal(&path));
            }
        }
    }
    out
}

#[test]
fn every_test_file_is_part_of_a_test_crate() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let strays = strays(&tests);
    assert!(
        strays.is_empty(),
        "test files outside the test crates: move each into the folder of its feature under \
         tests/it/ and declare it with `mod NAME;` in that folder's mod.rs (tests/it/main.rs \
         lists the folders):\n  {}",
        strays
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The check finds a crate of its own and an undeclared file, and follows `#[path]`.
#[test]
fn strays_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let tests = dir.path();
    let write = |rel: &str, body: &str| crate::common::write_file(tests, rel, body);
    write("it/main.rs", "//! x\nmod audit;\nmod lab;\n");
    write("it/audit/mod.rs", "mod cli;\n");
    write("it/audit/cli.rs", "");
    write("it/audit/orphan.rs", "");
    write("it/lab.rs", "mod scenarios;\n");
    write("it/lab/scenarios.rs", "");
    write(
        "kernel_matrix/main.rs",
        "#[allow(dead_code)]\n#[path = \"../it/shared.rs\"]\nmod common;\nmod harness;\n",
    );
    write("it/shared.rs", "");
    write("kernel_matrix/harness.rs", "");
    write("own_crate.rs", "");
    let found: Vec<String> = strays(tests)
        .iter()
        .map(|p| p.strip_prefix(normal(tests)).unwrap().display().to_string())
        .collect();
    assert_eq!(found, ["it/audit/orphan.rs", "own_crate.rs"]);
}
