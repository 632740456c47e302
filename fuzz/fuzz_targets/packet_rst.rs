//! Captured packets: an IP packet (possibly truncated) from the capture ring. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::trace::capture::parse_rst;

fuzz_target!(|data: &[u8]| {
    if let Ok(seg) = parse_rst(data) {
        assert_eq!(seg.src.is_ipv4(), seg.dst.is_ipv4());
    }
});
