//! tracefs `format` files of the reset tracepoints (the reason enum). Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::trace::ftrace::parse_reason_names;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_reason_names(text);
    }
});
