//! The kernel's BTF as the socket iterator reads it: any bytes (a truncated or foreign file)
//! give an error or offsets, never a panic or a read out of bounds, whatever is looked up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstaudit::host::bpf::btf::Btf;

fuzz_target!(|data: &[u8]| {
    let wanted = [("struct", "sock"), ("enum", "sock_flags"), ("func", "f")];
    if let Ok(btf) = Btf::parse(data, &wanted) {
        let _ = btf.member("sock", "sk_flags");
        let _ = btf.member("sock", "__sk_common.skc_net.net");
        let _ = btf.enum_value("sock_flags", "SOCK_LINGER");
        let _ = btf.func("f");
    }
});
