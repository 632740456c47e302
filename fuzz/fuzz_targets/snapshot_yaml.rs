//! Saved snapshots (`--snapshot FILE`, YAML): never panic, no runaway memory on aliases;
//! what parses serialises and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::host::Snapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = serde_yaml::from_slice::<Snapshot>(data) {
        let text = serde_yaml::to_string(&snap).expect("serialise");
        let back: Snapshot = serde_yaml::from_str(&text).expect("parse back");
        assert_eq!(snap, back);
    }
});
