//! NETLINK_SOCK_DIAG dump replies (netlink headers, inet_diag_msg, attributes, tcp_info):
//! never panic or read outside the receive. The first 4 bytes pick the sequence number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::host::sockets::parse_batch;

fuzz_target!(|data: &[u8]| {
    let (seq, buf) = match data.split_first_chunk::<4>() {
        Some((seq, rest)) => (u32::from_ne_bytes(*seq), rest),
        None => (0, data),
    };
    let mut out = Vec::new();
    let mut unknown = 0;
    let _ = parse_batch(buf, seq, &mut out, &mut unknown);
});
