//! /proc/net/tcp and /proc/net/tcp6 (the fallback socket table, and --root trees): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::host::sockets::parse_proc_net_tcp;

fuzz_target!(|data: &[u8]| {
    let _ = parse_proc_net_tcp(data, "tcp");
});
