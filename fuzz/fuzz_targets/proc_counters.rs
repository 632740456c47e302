//! /proc/net/netstat, /proc/net/snmp (header/value pairs) and /proc/net/snmp6: never panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rstaudit::host::counters::{parse_pairs, parse_snmp6};

fuzz_target!(|data: &[u8]| {
    let mut out = BTreeMap::new();
    let _ = parse_pairs(data, "netstat", &mut out);
    let mut out = BTreeMap::new();
    let _ = parse_snmp6(data, "snmp6", &mut out);
});
