//! Rule and profile files as the tool reads them: through `input::read_config` (size, UTF-8
//! and the flow-nesting guard), then the rule parser and the profile loader. Never panic,
//! never spin: whatever the guard lets through parses quickly; refusals say why.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rstaudit::input::read_config;
use rstaudit::remedy::profiles::load;
use rstaudit::rules::load::parse_file;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    let path = dir.path().join("fuzz.yaml");
    std::fs::write(&path, data).expect("write");
    match read_config(&path) {
        Ok(text) => {
            if let Err(diags) = parse_file("fuzz.yaml", &text) {
                assert!(!diags.is_empty());
            }
            if let Err(e) = load(path.to_str().expect("utf-8 temp path")) {
                assert!(!e.problems.is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
