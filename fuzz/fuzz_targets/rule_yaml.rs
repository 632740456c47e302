//! Rule files (`--rules DIR`, `rules lint`): never panic, however hostile the YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::rules::load::parse_file;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(diags) = parse_file("fuzz.yaml", text)
    {
        assert!(!diags.is_empty());
    }
});
