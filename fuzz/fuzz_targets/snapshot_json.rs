//! Saved snapshots (`--snapshot FILE`, JSON): never panic; what parses serialises and parses back
//! to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::host::Snapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = serde_json::from_slice::<Snapshot>(data) {
        let text = serde_json::to_vec(&snap).expect("serialise");
        let back: Snapshot = serde_json::from_slice(&text).expect("parse back");
        assert_eq!(snap, back);
    }
    let _ = serde_json::from_slice::<Vec<Snapshot>>(data);
});
