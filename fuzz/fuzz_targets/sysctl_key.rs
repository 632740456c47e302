//! Sysctl keys and values from rules, profiles and the command line: never panic, and an
//! accepted key always names a file strictly below ROOT/proc/sys (no `..`, no absolute part).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use rstaudit::host::sysctl::{Scope, SysctlKey, validate_value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: the key; second line: a value; third line: the current value.
    let mut parts = text.splitn(3, '\n');
    let key = parts.next().unwrap_or("");
    let value = parts.next().unwrap_or("");
    let current = parts.next();
    for scope in [Scope::NetOnly, Scope::AnyKey] {
        let Ok(k) = SysctlKey::parse(key, scope) else {
            continue;
        };
        if scope == Scope::NetOnly {
            assert!(k.as_str().starts_with("net."), "{k} accepted as net.*");
        }
        let root = Path::new("/fuzzroot");
        let path = k.path(root);
        let rel = path
            .strip_prefix("/fuzzroot/proc/sys")
            .expect("key path outside ROOT/proc/sys");
        assert!(rel.components().count() >= 1);
        for c in rel.components() {
            assert!(
                matches!(c, Component::Normal(_)),
                "{key:?} -> {path:?} has a non-normal component"
            );
            let s = c.as_os_str().as_encoded_bytes();
            assert!(!s.contains(&0) && !s.contains(&b'/'));
        }
        // Parsing the canonical form gives the same key.
        assert_eq!(SysctlKey::parse(k.as_str(), scope).as_ref(), Ok(&k));
        if let Ok(v) = validate_value(&k, value, current) {
            assert!(!v.contains('\n') && !v.contains('\0'));
        }
    }
});
