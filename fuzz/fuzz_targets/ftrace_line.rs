//! Lines of trace_pipe from the reset tracepoints. Never panics, line by line or as a stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::trace::ftrace::{parse_all, parse_line};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for line in text.lines() {
            let _ = parse_line(line);
        }
    }
    let _ = parse_all(data);
});
