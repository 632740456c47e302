//! Profile files (`--profile FILE`) through the real loader (it takes a path, and resolves
//! `extends:` against the file's directory): never panic; problems are reported, never empty.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rstaudit::remedy::profiles::load;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let path = dir.path().join("fuzz.yaml");
    std::fs::write(&path, data).expect("write");
    if let Err(e) = load(path.to_str().expect("utf-8 temp path")) {
        assert!(!e.problems.is_empty());
    }
});
