//! Saved snapshots (`audit --snapshot FILE`, JSON or YAML, one or a list) through the real
//! loader: never panic; what loads serialises and loads back to the same value.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rstaudit::host::{Snapshot, parse_saved};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(snaps) = parse_saved(text, Path::new("fuzz.json")) else {
        return;
    };
    assert!(!snaps.is_empty());
    let json = serde_json::to_string(&snaps).expect("serialise");
    assert_eq!(
        parse_saved(&json, Path::new("back.json")).expect("JSON back"),
        snaps
    );
    let yaml = rstaudit::yaml::to_string(&snaps).expect("serialise");
    assert_eq!(
        parse_saved(&yaml, Path::new("back.yaml")).expect("YAML back"),
        snaps
    );
    let one: Vec<Snapshot> = snaps.into_iter().take(1).collect();
    let _ = serde_json::to_string(&one[0]);
});
