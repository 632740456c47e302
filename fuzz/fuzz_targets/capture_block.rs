//! TPACKET_V3 ring blocks as the kernel fills them: corrupt headers never read out of bounds or
//! panic, and every frame handed over lies inside the block; each frame's IP bytes then go
//! through the reset parser as the live check does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::trace::capture::{parse_rst, walk_block_bytes};

fuzz_target!(|data: &[u8]| {
    let range = data.as_ptr_range();
    walk_block_bytes(data, &mut |frame| {
        let ip = frame.ip.as_ptr_range();
        assert!(frame.ip.is_empty() || (range.start <= ip.start && ip.end <= range.end));
        assert!(frame.link_addr.len() <= 8);
        let _ = parse_rst(frame.ip);
    });
});
