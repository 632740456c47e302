//! Property tests over every parser of outside input: arbitrary bytes never panic, and
//! round-trips hold where there is one. The fuzz targets in fuzz/ explore the same parsers for
//! longer (docs/reliability.md); these run in a few seconds in `cargo test`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Component, Path};
use std::sync::Arc;

use proptest::prelude::*;
use rstaudit::host::counters::{parse_pairs, parse_snmp6};
use rstaudit::host::sockets::{parse_batch, parse_proc_net_tcp};
use rstaudit::host::sysctl::{Scope, SysctlKey, validate_value};
use rstaudit::host::{
    CounterSample, Counters, Family, Kernel, KernelVersion, Linger, NetnsInfo, Note, Owner,
    Snapshot, SockOptions, Socket, SocketsSource, TcpInfo, TcpState, Timer,
};
use rstaudit::input::{MAX_FLOW_DEPTH, Syntax, check_flow_depth};
use rstaudit::trace::capture::{parse_rst, walk_block_bytes};
use rstaudit::trace::ftrace::{TraceEvent, parse_all, parse_line, parse_reason_names};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters that matter to key validation, mixed with anything.
fn key_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_./\\-@:+ \u{0}]{0,40}",
        "(net|kernel|\\.\\.|/|\\.)[.a-z0-9_/]{0,30}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sysctl_key_never_escapes_proc_sys(key in key_like()) {
        for scope in [Scope::NetOnly, Scope::AnyKey] {
            if let Ok(k) = SysctlKey::parse(&key, scope) {
                if scope == Scope::NetOnly {
                    prop_assert!(k.as_str().starts_with("net."));
                }
                let path = k.path(Path::new("/r"));
                let rel = path.strip_prefix("/r/proc/sys").expect("below ROOT/proc/sys");
                for c in rel.components() {
                    prop_assert!(matches!(c, Component::Normal(_)), "{key:?} -> {path:?}");
                }
                prop_assert_eq!(SysctlKey::parse(k.as_str(), scope), Ok(k.clone()));
            }
        }
    }

    #[test]
    fn sysctl_values_never_panic(value in any::<String>(), current in proptest::option::of("[0-9 \t-]{0,30}|[a-z]{0,8}")) {
        let k = SysctlKey::parse("net.ipv4.tcp_rmem", Scope::NetOnly).unwrap();
        if let Ok(v) = validate_value(&k, &value, current.as_deref()) {
            prop_assert!(!v.contains('\n') && !v.contains('\0'));
            prop_assert!(v.len() <= 4096);
        }
    }

    #[test]
    fn packets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_rst(&bytes);
    }

    #[test]
    fn packets_with_ip_headers_never_panic(v6 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut bytes = if v6 { vec![0x60, 0, 0, 0, 0, tail.len() as u8, 6, 64] } else {
            vec![0x45, 0, 0, (20 + tail.len()) as u8, 0, 1, 0x40, 0, 64, 6, 0, 0]
        };
        bytes.extend_from_slice(&tail);
        let _ = parse_rst(&bytes);
    }

    #[test]
    fn built_resets_parse_back(
        v6 in any::<bool>(), sport in any::<u16>(), dport in any::<u16>(),
        seq in any::<u32>(), ack in proptest::option::of(any::<u32>()),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            (Ipv6Addr::LOCALHOST.into(), "fd00::2".parse::<Ipv6Addr>().unwrap().into())
        } else {
            (Ipv4Addr::LOCALHOST.into(), Ipv4Addr::new(10, 0, 0, 2).into())
        };
        let pkt = build_rst(src, dst, sport, dport, seq, ack, &payload);
        let seg = parse_rst(&pkt).expect("a built reset parses");
        prop_assert_eq!(seg.src, SocketAddr::new(src, sport));
        prop_assert_eq!(seg.dst, SocketAddr::new(dst, dport));
        prop_assert_eq!(seg.seq, seq);
        prop_assert_eq!(seg.ack, ack);
        prop_assert_eq!(seg.payload_len as usize, payload.len());
    }

    #[test]
    fn capture_blocks_never_read_outside(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let range = bytes.as_ptr_range();
        walk_block_bytes(&bytes, &mut |f| {
            let ip = f.ip.as_ptr_range();
            assert!(f.ip.is_empty() || (range.start <= ip.start && ip.end <= range.end));
            let _ = parse_rst(f.ip);
        });
    }

    #[test]
    fn capture_blocks_with_corrupt_headers_never_panic(
        seed in any::<bool>(), at in 0usize..352, byte in any::<u8>(), cut in 0usize..400,
    ) {
        let mut block = if seed { TWO_RST_BLOCK.to_vec() } else { ONE_RST_BLOCK.to_vec() };
        let at = at % block.len();
        block[at] = byte;
        block.truncate(cut);
        walk_block_bytes(&block, &mut |f| { let _ = parse_rst(f.ip); });
    }

    #[test]
    fn trace_lines_never_panic(line in any::<String>()) {
        let _ = parse_line(&line);
        let _ = parse_all(line.as_bytes());
    }

    #[test]
    fn trace_line_fields_never_panic(
        comm in "[ -~]{0,20}", tid in any::<u32>(), cpu in any::<u32>(), flags in "[.a-zA-Z0-9]{0,6}",
        event in "tcp_send_reset|tcp_receive_reset|sched_switch|[a-z_]{0,12}",
        fields in "[ -~]{0,120}",
    ) {
        let line = format!("{comm}-{tid} [{cpu:03}] {flags} 12.5: {event}: {fields}");
        let _ = parse_line(&line);
    }

    #[test]
    fn trace_lines_parse_back(
        comm in "[a-zA-Z][a-zA-Z0-9 _.-]{0,14}", tid in 1u32..4_000_000, cpu in 0u32..512,
        sport in any::<u16>(), dport in any::<u16>(),
    ) {
        let line = format!(
            "{comm}-{tid} [{cpu:03}] ..s1. 1918.416065: tcp_send_reset: skbaddr=000000001b5a4c1f \
             skaddr=0000000000000000 src=127.0.0.1:{sport} dest=127.0.0.1:{dport} state=UNKNOWN reason=NO_SOCKET"
        );
        let Some(TraceEvent::SendReset(ev)) = parse_line(&line).unwrap() else {
            panic!("not a send reset: {line}");
        };
        prop_assert_eq!(&*ev.task.comm, comm.trim());
        prop_assert_eq!(ev.task.tid, tid);
        prop_assert_eq!(ev.task.cpu, cpu);
        prop_assert!(ev.task.in_interrupt);
        prop_assert_eq!(ev.src, Some(SocketAddr::from(([127, 0, 0, 1], sport))));
        prop_assert_eq!(ev.dst, Some(SocketAddr::from(([127, 0, 0, 1], dport))));
        prop_assert_eq!(ev.reason, Some("NO_SOCKET"));
        prop_assert!(!ev.has_sock && ev.has_skb);
    }

    #[test]
    fn format_files_never_panic(text in any::<String>()) {
        let _ = parse_reason_names(&text);
    }

    #[test]
    fn format_files_with_a_reason_table_never_panic(table in "[{}(),\" A-Z_0-9]{0,80}") {
        let text = format!(
            "\tfield:enum sk_rst_reason reason;\toffset:28;\n\
             print fmt: \"reason=%s\", __print_symbolic(REC->reason{table}"
        );
        let _ = parse_reason_names(&text);
    }

    #[test]
    fn snapshot_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<Snapshot>(&bytes);
        let _ = serde_yaml::from_slice::<Snapshot>(&bytes);
    }

    /// Error messages quote the user's file: cutting them never panics (multi-byte text,
    /// stray quotes and backslashes) and never leaves a quoted value longer than 60 characters.
    #[test]
    fn parser_messages_never_panic_and_stay_short(
        text in r#"([a-z ]{0,5}("|\\|\\"|é|struct |at line )){0,40}"#,
        long in "[a-zé]{61,200}",
    ) {
        let _ = rstaudit::input::parser_message(&text);
        let m = rstaudit::input::parser_message(&format!("invalid type: string \"{long}\", expected struct RawRule"));
        let start: String = long.chars().take(60).collect();
        prop_assert_eq!(
            m,
            format!("invalid type: string \"{start}...\", expected a rule (a mapping with id, title, severity, ...)")
        );
    }
}

/// A sock_diag reply with two sockets and an NLMSG_DONE (fuzz/corpus/sock_diag; the first 4
/// bytes are the sequence number, 9).
const SOCK_DIAG_DONE: &[u8] = include_bytes!("../../fuzz/corpus/sock_diag/done");
const NETSTAT: &str = include_str!("../../src/host/testdata/netstat-6.18.txt");
const PROC_NET_TCP: &str = include_str!("../../src/host/testdata/tcp-6.18.txt");

fn yaml_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r"([a-z_]{1,8}: ?(\[|\{|&a |\*a|[0-9a-z\-]{0,6}|\]|\})?\n {0,4}){0,12}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rule_files_never_panic(text in yaml_like()) {
        if let Err(diags) = rstaudit::rules::load::parse_file("prop.yaml", &text) {
            prop_assert!(!diags.is_empty());
        }
    }

    #[test]
    fn counter_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut out = std::collections::BTreeMap::new();
        let _ = parse_pairs(&bytes[..], "netstat", &mut out);
        let _ = parse_snmp6(&bytes[..], "snmp6", &mut out);
    }

    #[test]
    fn truncated_or_damaged_counter_files_never_panic(cut in 0usize..4046, at in 0usize..4046, byte in any::<u8>()) {
        let mut bytes = NETSTAT.as_bytes().to_vec();
        bytes[at % NETSTAT.len()] = byte;
        bytes.truncate(cut);
        let mut out = std::collections::BTreeMap::new();
        let _ = parse_pairs(&bytes[..], "netstat", &mut out);
    }

    #[test]
    fn proc_net_tcp_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_proc_net_tcp(&bytes[..], "tcp");
    }

    #[test]
    fn truncated_or_damaged_proc_net_tcp_never_panics(cut in 0usize..2400, at in 0usize..2400, byte in any::<u8>()) {
        let mut bytes = PROC_NET_TCP.as_bytes().to_vec();
        bytes[at % PROC_NET_TCP.len()] = byte;
        bytes.truncate(cut);
        let _ = parse_proc_net_tcp(&bytes[..], "tcp");
    }

    #[test]
    fn sock_diag_replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        let mut unknown = 0;
        let _ = parse_batch(&bytes, 0, &mut out, &mut unknown);
    }

    #[test]
    fn damaged_sock_diag_replies_never_panic(at in 0usize..600, byte in any::<u8>(), cut in 0usize..600) {
        let mut bytes = SOCK_DIAG_DONE[4..].to_vec();
        let at = at % bytes.len();
        bytes[at] = byte;
        bytes.truncate(cut);
        let mut out = Vec::new();
        let mut unknown = 0;
        let _ = parse_batch(&bytes, 9, &mut out, &mut unknown);
    }
}

/// A BTF blob: the header (little-endian, as on this machine), then `types`, then `strings`.
fn btf_blob(types: &[u32], strings: &[u8], header: Option<[u32; 4]>) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xEB9Fu16.to_le_bytes());
    b.extend_from_slice(&[1, 0]);
    let type_len = (types.len() * 4) as u32;
    let [a, c, d, e] = header.unwrap_or([0, type_len, type_len, strings.len() as u32]);
    for v in [24u32, a, c, d, e] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for t in types {
        b.extend_from_slice(&t.to_le_bytes());
    }
    b.extend_from_slice(strings);
    b
}

/// Look up what the socket iterator looks up, in a parsed blob.
fn btf_lookups(data: &[u8]) {
    use rstaudit::host::bpf::btf::Btf;
    let wanted = [
        ("struct", "a"),
        ("enum", "b"),
        ("func", "c"),
        ("struct", "sock"),
    ];
    if let Ok(btf) = Btf::parse(data, &wanted) {
        let _ = btf.member("a", "a");
        let _ = btf.member("a", "a.b.a");
        let _ = btf.member("sock", "__sk_common.skc_net.net");
        let _ = btf.enum_value("b", "a");
        let _ = btf.func("c");
    }
}

proptest! {
    /// Type records of every kind (and unknown ones), names anywhere in the strings, member
    /// types pointing anywhere: an error or an answer, never a panic.
    #[test]
    fn btf_never_panics(
        types in proptest::collection::vec(
            prop_oneof![any::<u32>(), (0u32..21, 0u32..4, any::<bool>()).prop_map(|(k, v, f)| (k << 24) | v | (u32::from(f) << 31)), 0u32..16],
            0..96,
        ),
        strings in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'b'), Just(b'c'), Just(b'.'), any::<u8>()], 0..48),
        header in proptest::option::of(any::<[u32; 4]>()),
    ) {
        btf_lookups(&btf_blob(&types, &strings, header));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// This kernel's own BTF, one byte changed and cut anywhere: still no panic.
    #[test]
    fn damaged_kernel_btf_never_panics(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        static VMLINUX: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            std::fs::read("/sys/kernel/btf/vmlinux")
                .expect("/sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF) is needed by this test")
        });
        let mut data = VMLINUX.clone();
        let at = at.index(data.len());
        data[at] = byte;
        data.truncate(cut.index(data.len() + 1));
        btf_lookups(&data);
    }
}

/// Found by the btf fuzz target: member offsets of nested anonymous members that add up past
/// u32::MAX overflowed (a panic in debug builds). Now an error.
#[test]
fn btf_member_offsets_past_4_gib_are_an_error_not_a_panic() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/corpus/btf/regression-offset-overflow"
    ))
    .unwrap();
    btf_lookups(&data);
}

/// Found by the sock_diag fuzz target: an NLMSG_ERROR carrying i32::MIN as its code made
/// `-code` overflow (a panic in debug builds). Now a "malformed reply" error.
#[test]
fn sock_diag_error_code_i32_min_is_malformed_not_a_panic() {
    let crash = include_bytes!("../../fuzz/corpus/sock_diag/regression-error-code-i32-min");
    let mut out = Vec::new();
    let mut unknown = 0;
    let err = parse_batch(&crash[4..], 9, &mut out, &mut unknown).unwrap_err();
    assert!(err.to_string().contains("not a negative errno"), "{err}");
    // A positive code is damage too; a real -errno is that errno.
    let mut msg = crash[4..].to_vec();
    msg[16..20].copy_from_slice(&5i32.to_ne_bytes());
    assert!(parse_batch(&msg, 9, &mut out, &mut unknown).is_err());
    msg[16..20].copy_from_slice(&(-libc_enoent()).to_ne_bytes());
    let err = parse_batch(&msg, 9, &mut out, &mut unknown).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

fn libc_enoent() -> i32 {
    2
}

#[test]
fn sock_diag_seed_holds_two_sockets_and_the_end() {
    let mut out = Vec::new();
    let mut unknown = 0;
    let batch = parse_batch(&SOCK_DIAG_DONE[4..], 9, &mut out, &mut unknown).unwrap();
    assert_eq!(batch, rstaudit::host::sockets::Batch::Done { intr: true });
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].local_port, 8000);
    assert_eq!(out[0].tcp_info.as_ref().map(|t| t.rtt_us), Some(77));
    assert_eq!(out[1].local_addr, "::1".parse::<IpAddr>().unwrap());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn profile_files_never_panic(text in yaml_like()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prop.yaml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = rstaudit::remedy::profiles::load(path.to_str().unwrap()) {
            prop_assert!(!e.problems.is_empty());
        }
    }

    #[test]
    fn saved_snapshots_load_back_through_the_real_loader(snaps in proptest::collection::vec(snapshot(), 1..3)) {
        let json = serde_json::to_string(&snaps).unwrap();
        prop_assert_eq!(&rstaudit::host::parse_saved(&json, Path::new("p.json")).unwrap(), &snaps);
        let yaml = serde_yaml::to_string(&snaps[0]).unwrap();
        prop_assert_eq!(&rstaudit::host::parse_saved(&yaml, Path::new("p.yaml")).unwrap(), &snaps[..1]);
    }

    #[test]
    fn snapshots_round_trip_through_json_and_yaml(snap in snapshot()) {
        let json = serde_json::to_vec(&snap).unwrap();
        prop_assert_eq!(&serde_json::from_slice::<Snapshot>(&json).unwrap(), &snap);
        let yaml = serde_yaml::to_string(&snap).unwrap();
        prop_assert_eq!(&serde_yaml::from_str::<Snapshot>(&yaml).unwrap(), &snap);
    }
}

/// YAML lines that put a quote where it is text (a plain or block scalar, a comment), open a
/// quoted scalar over several lines, or leave a flow collection open: what a nesting guard
/// that tracks quotes by itself gets wrong.
fn yaml_prefix() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("description: don't".to_string()),
        Just("a: say \"hi".to_string()),
        Just("a: |".to_string()),
        Just("a: >-".to_string()),
        Just("  'tis the season".to_string()),
        Just("  \"open".to_string()),
        Just("- rock 'n' roll'".to_string()),
        Just("a: 'closed [['".to_string()),
        Just("a: 'open [[".to_string()),
        Just("  still open'".to_string()),
        Just("# comment 'x [[".to_string()),
        Just("b: x # 'y".to_string()),
        Just("? key's".to_string()),
        Just(": value".to_string()),
        Just("a: \"esc \\\" q [[\"".to_string()),
        Just("a: [1, '2".to_string()),
        Just("a: {k: \"v".to_string()),
        Just("a: plain".to_string()),
        Just("  continued 'x".to_string()),
        r#"[ a-z'"\[\]{}#:|>\-\\]{0,12}"#,
    ];
    proptest::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
}

fn yaml_depth(v: &serde_yaml::Value) -> usize {
    use serde_yaml::Value;
    match v {
        Value::Sequence(s) => 1 + s.iter().map(yaml_depth).max().unwrap_or(0),
        Value::Mapping(m) => {
            1 + m
                .iter()
                .map(|(k, v)| yaml_depth(k).max(yaml_depth(v)))
                .max()
                .unwrap_or(0)
        }
        Value::Tagged(t) => yaml_depth(&t.value),
        _ => 0,
    }
}

/// Text a nesting guard must read right: brackets, both quotes, backslashes, `#`, `:`.
fn tricky_text() -> impl Strategy<Value = String> {
    r#"[\[\]{}'"\\a-z :#,é-]{0,8}"#
}

/// A JSON value nested exactly `depth` deep, with tricky strings at every level.
fn nested_json() -> impl Strategy<Value = (usize, serde_json::Value)> {
    (
        0usize..80,
        proptest::collection::vec((any::<bool>(), tricky_text(), tricky_text()), 80),
    )
        .prop_map(|(depth, layers)| {
            let mut v = serde_json::Value::String(layers[0].2.clone());
            for (object, a, b) in layers.into_iter().take(depth) {
                v = if object {
                    let mut m = serde_json::Map::new();
                    m.insert(format!("k{a}"), v);
                    m.insert("z".to_string(), serde_json::Value::String(b));
                    serde_json::Value::Object(m)
                } else {
                    serde_json::Value::Array(vec![
                        serde_json::Value::String(a),
                        v,
                        serde_json::Value::String(b),
                    ])
                };
            }
            (depth, v)
        })
}

proptest! {
    #![proptest_config(config())]

    /// Whatever comes before it, 100 nested brackets either reach the guard or never reach
    /// the parser as brackets: what the guard lets through, serde_yaml never parses deeper
    /// than the limit.
    #[test]
    fn nesting_guard_lets_nothing_deep_through(prefix in yaml_prefix()) {
        let text = format!("{prefix}\nx: {}1{}\n", "[".repeat(100), "]".repeat(100));
        if check_flow_depth(&text, Syntax::Yaml).is_ok()
            && let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&text)
        {
            prop_assert!(yaml_depth(&v) <= MAX_FLOW_DEPTH, "{text:.200?}");
        }
    }

    /// Against a reference: JSON text (compact and pretty) of a value nested N deep is
    /// accepted exactly when N <= 64, read as JSON and read as YAML (libyaml reads JSON too);
    /// brackets and quotes inside strings never count.
    #[test]
    fn nesting_guard_measures_the_real_depth((depth, value) in nested_json()) {
        for text in [serde_json::to_string(&value).unwrap(), serde_json::to_string_pretty(&value).unwrap()] {
            prop_assert_eq!(check_flow_depth(&text, Syntax::Json).is_ok(), depth <= MAX_FLOW_DEPTH, "{}", text);
            prop_assert_eq!(check_flow_depth(&text, Syntax::Yaml).is_ok(), depth <= MAX_FLOW_DEPTH, "{}", text);
            if depth <= MAX_FLOW_DEPTH {
                let back: serde_json::Value = serde_yaml::from_str(&text).unwrap();
                prop_assert_eq!(&back, &value);
            }
        }
    }
}

/// A TPACKET_V3 block holding one IPv4 reset (fuzz/corpus/capture_block; layout of
/// tpacket_block_desc + tpacket3_hdr + sockaddr_ll on x86_64).
const ONE_RST_BLOCK: &[u8] = include_bytes!("../../fuzz/corpus/capture_block/one_rst");
/// Two frames: an IPv4 and an IPv6 reset.
const TWO_RST_BLOCK: &[u8] = include_bytes!("../../fuzz/corpus/capture_block/two_rst");

#[test]
fn capture_block_seeds_hold_the_resets_they_claim() {
    let mut seen = Vec::new();
    let n = walk_block_bytes(TWO_RST_BLOCK, &mut |f| {
        seen.push((f.protocol, f.link_header_len, parse_rst(f.ip).unwrap().src))
    });
    assert_eq!(n, 2);
    assert_eq!(seen[0], (0x0800, 14, "127.0.0.1:9".parse().unwrap()));
    assert_eq!(seen[1].2, "[::1]:9".parse().unwrap());
    assert_eq!(walk_block_bytes(ONE_RST_BLOCK, &mut |_| {}), 1);
    assert_eq!(walk_block_bytes(&ONE_RST_BLOCK[..60], &mut |_| {}), 0);
}

fn build_rst(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&sport.to_be_bytes());
    tcp.extend_from_slice(&dport.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.unwrap_or(0).to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(if ack.is_some() { 0x14 } else { 0x04 });
    tcp.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    tcp.extend_from_slice(payload);
    let mut pkt = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + tcp.len()) as u16;
            pkt.extend_from_slice(&[0x45, 0]);
            pkt.extend_from_slice(&total.to_be_bytes());
            pkt.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0]);
            pkt.extend_from_slice(&s.octets());
            pkt.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pkt.extend_from_slice(&[0x60, 0, 0, 0]);
            pkt.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            pkt.extend_from_slice(&[6, 64]);
            pkt.extend_from_slice(&s.octets());
            pkt.extend_from_slice(&d.octets());
        }
        _ => unreachable!("same family"),
    }
    pkt.extend_from_slice(&tcp);
    pkt
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_.]{0,12}", any::<String>()]
}

fn socket() -> impl Strategy<Value = Socket> {
    let addrs = (ip(), any::<u16>(), ip(), any::<u16>());
    let queues = (
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
    );
    let misc = (
        proptest::option::of(any::<u64>()),
        any::<u8>(),
        any::<u64>(),
        any::<u32>(),
        proptest::option::of((any::<u32>(), any::<u32>(), any::<u8>())),
        proptest::option::of((any::<u32>(), "[ -~]{0,16}", any::<u32>())),
        proptest::option::of((
            proptest::option::of((any::<bool>(), any::<i32>())),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<i32>()),
        )),
    );
    let enums = (0u8..2, 1u8..13, 0u8..5);
    (addrs, queues, misc, enums).prop_map(|(a, q, m, e)| Socket {
        family: if e.0 == 0 {
            Family::Inet
        } else {
            Family::Inet6
        },
        state: TcpState::from_kernel(e.1).unwrap_or(TcpState::Established),
        local_addr: a.0,
        local_port: a.1,
        remote_addr: a.2,
        remote_port: a.3,
        rx_queue: q.0,
        tx_queue: q.1,
        accept_queue: q.2,
        backlog: q.3,
        timer: Timer::from_kernel(e.2),
        timer_expires_ms: m.0,
        retransmits: m.1,
        inode: m.2,
        uid: m.3,
        tcp_info: m.4.map(|(a, b, p)| TcpInfo {
            last_data_recv_ms: a,
            last_data_sent_ms: b,
            last_ack_recv_ms: a ^ b,
            rtt_us: b,
            total_retrans: a,
            probes: p,
        }),
        owner: m.5.map(|(pid, comm, fd)| Owner {
            pid,
            comm: Arc::from(comm.as_str()),
            fd,
        }),
        options: m.6.map(|(linger, keepalive, n, linger2)| SockOptions {
            linger: linger.map(|(on, seconds)| Linger { on, seconds }),
            keepalive,
            keepidle: n,
            keepintvl: n,
            keepcnt: None,
            user_timeout: n,
            linger2,
        }),
    })
}

fn sample() -> impl Strategy<Value = CounterSample> {
    (
        any::<u64>(),
        proptest::collection::btree_map("[A-Za-z0-9]{1,8}\\.[A-Za-z0-9]{1,12}", any::<u64>(), 0..6),
    )
        .prop_map(|(at_ms, values)| CounterSample { at_ms, values })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    let head = (
        any::<u64>(),
        text(),
        text(),
        proptest::option::of((any::<u32>(), any::<u32>(), any::<u32>())),
        proptest::option::of(any::<u64>()),
        text(),
    );
    let body = (
        proptest::collection::btree_map("net\\.[a-z0-9_.]{1,20}", text(), 0..8),
        proptest::option::of(sample()),
        proptest::option::of(sample()),
        0u8..3,
        proptest::collection::vec(socket(), 0..4),
        proptest::collection::vec((text(), proptest::option::of(text()), text()), 0..3),
    );
    (head, body).prop_map(|(h, b)| Snapshot {
        schema: 1,
        taken_at_ms: h.0,
        source: h.1,
        kernel: Kernel {
            release: h.2,
            version: h.3.map(|(major, minor, patch)| KernelVersion {
                major,
                minor,
                patch,
            }),
        },
        netns: NetnsInfo {
            inode: h.4,
            name: h.5,
        },
        host: None,
        sysctls: b.0,
        counters: Counters {
            first: b.1,
            second: b.2,
        },
        sockets_source: match b.3 {
            0 => SocketsSource::SockDiag,
            1 => SocketsSource::ProcNet,
            _ => SocketsSource::None,
        },
        sockets: b.4,
        notes: b
            .5
            .into_iter()
            .map(|(area, subject, message)| Note {
                area,
                subject,
                message,
            })
            .collect(),
    })
}
