use super::*;

/// `events/header_page` on 6.18 (x86_64).
const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;
";

const COMMON: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
";

fn send_6_18() -> String {
    format!(
        "name: tcp_send_reset\nID: 2280\nformat:\n{COMMON}
\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;

print fmt: \"x\", __print_symbolic(REC->reason, {{ 0, \"NOT_SPECIFIED\" }}, {{ 1, \"NO_SOCKET\" }}, {{ 11, \"TCP_ABORT_ON_CLOSE\" }})
"
    )
}

/// tcp_send_reset of 6.1 and tcp_receive_reset of every version: the socket's fields.
fn split(name: &str, id: u16, with_sk_skb: bool) -> String {
    let (head, base) = if with_sk_skb {
        (
            "\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
",
            28,
        )
    } else {
        (
            "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n",
            16,
        )
    };
    let mut s = format!("name: {name}\nID: {id}\nformat:\n{COMMON}\n{head}");
    for (f, o, n) in [
        ("__u16 sport", 0, 2),
        ("__u16 dport", 2, 2),
        ("__u16 family", 4, 2),
        ("__u8 saddr[4]", 6, 4),
        ("__u8 daddr[4]", 10, 4),
        ("__u8 saddr_v6[16]", 14, 16),
        ("__u8 daddr_v6[16]", 30, 16),
    ] {
        s += &format!("\tfield:{f};\toffset:{};\tsize:{n};\tsigned:0;\n", base + o);
    }
    if !with_sk_skb {
        s += "\tfield:__u64 sock_cookie;\toffset:64;\tsize:8;\tsigned:0;\n";
    }
    s
}

const NEWTASK: &str = "name: task_newtask\nID: 205\nformat:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:u64 clone_flags;\toffset:32;\tsize:8;\tsigned:0;
";

const RENAME: &str = "name: task_rename\nID: 204\nformat:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char oldcomm[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:char newcomm[16];\toffset:28;\tsize:16;\tsigned:0;
";

fn decoder(send: &str, receive: &str) -> RawDecoder {
    RawDecoder::new(&RawFormats {
        header_page: HEADER_PAGE,
        send_reset: Some(send),
        receive_reset: Some(receive),
        task_newtask: Some(NEWTASK),
        task_rename: Some(RENAME),
        ..Default::default()
    })
    .unwrap()
}

fn common(id: u16, flags: u8, pid: u32, len: usize) -> Vec<u8> {
    let mut r = vec![0u8; len];
    r[0..2].copy_from_slice(&id.to_le_bytes());
    r[2] = flags;
    r[4..8].copy_from_slice(&pid.to_le_bytes());
    r
}

fn sockaddr_in(r: &mut [u8], at: usize, addr: &str) {
    let a: SocketAddr = addr.parse().unwrap();
    match a {
        SocketAddr::V4(v4) => {
            r[at..at + 2].copy_from_slice(&2u16.to_ne_bytes());
            r[at + 2..at + 4].copy_from_slice(&v4.port().to_be_bytes());
            r[at + 4..at + 8].copy_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            r[at..at + 2].copy_from_slice(&10u16.to_ne_bytes());
            r[at + 2..at + 4].copy_from_slice(&v6.port().to_be_bytes());
            r[at + 8..at + 24].copy_from_slice(&v6.ip().octets());
        }
    }
}

/// A page as `trace_pipe_raw` returns it, records given as (delta, payload, long form).
fn page(ts: u64, records: &[(u32, Vec<u8>, bool)], extend: Option<(usize, u64)>) -> Vec<u8> {
    let mut data = Vec::new();
    for (i, (delta, payload, long)) in records.iter().enumerate() {
        if let Some((before, ext)) = extend
            && before == i
        {
            data.extend_from_slice(&(30 | (((ext & ((1 << 27) - 1)) as u32) << 5)).to_le_bytes());
            data.extend_from_slice(&((ext >> 27) as u32).to_le_bytes());
        }
        let mut p = payload.clone();
        while p.len() % 4 != 0 {
            p.push(0);
        }
        if *long || p.len() > 112 {
            data.extend_from_slice(&(delta << 5).to_le_bytes());
            data.extend_from_slice(&((payload.len() + 4) as u32).to_le_bytes());
        } else {
            data.extend_from_slice(&((p.len() / 4) as u32 | (delta << 5)).to_le_bytes());
        }
        data.extend_from_slice(&p);
    }
    let mut out = vec![0u8; 4096];
    out[0..8].copy_from_slice(&ts.to_le_bytes());
    // The commit's top bits carry flags (missed events); the length is the low 27 bits.
    out[8..16].copy_from_slice(&(data.len() as u64 | (1 << 31)).to_le_bytes());
    out[16..16 + data.len()].copy_from_slice(&data);
    out
}

fn decode(d: &RawDecoder, p: &[u8]) -> (Vec<TraceEvent>, u64) {
    let mut v = Vec::new();
    let bad = d.page(p, 1, &mut |e| v.push(e));
    (v, bad)
}

#[test]
fn decodes_resets_tasks_and_timestamps_as_6_18_writes_them() {
    let d = decoder(&send_6_18(), &split("tcp_receive_reset", 2282, false));
    assert_eq!(d.page_size(), 4096);
    // A close with unread data: process context, no packet answered.
    let mut close = common(2280, 0x00, 4242, 88);
    close[16..24].copy_from_slice(&0xffff_8881_2345_6780u64.to_le_bytes());
    close[24..28].copy_from_slice(&7i32.to_le_bytes());
    close[28..32].copy_from_slice(&11u32.to_le_bytes());
    sockaddr_in(&mut close, 32, "127.0.0.1:5000");
    sockaddr_in(&mut close, 60, "127.0.0.1:37052");
    // A closed port in softirq, IPv6, state 0.
    let mut closed = common(2280, 0x10 | 0x01, 77, 88);
    closed[8..16].copy_from_slice(&1u64.to_le_bytes());
    closed[28..32].copy_from_slice(&1u32.to_le_bytes());
    sockaddr_in(&mut closed, 32, "[::1]:9");
    sockaddr_in(&mut closed, 60, "[::1]:34436");
    // A reason number this table does not name, with bottom halves off.
    let mut odd = closed.clone();
    odd[2] = 0x80;
    odd[28..32].copy_from_slice(&99u32.to_le_bytes());
    // tcp_receive_reset (long form).
    let mut rcv = common(2282, 0x10, 77, 72);
    rcv[16..18].copy_from_slice(&34436u16.to_le_bytes());
    rcv[18..20].copy_from_slice(&9u16.to_le_bytes());
    rcv[20..22].copy_from_slice(&10u16.to_le_bytes());
    rcv[30..46].copy_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
    rcv[46..62].copy_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
    rcv[64..72].copy_from_slice(&3u64.to_le_bytes());
    // A thread made by 4242, and an exec renaming 4243.
    let mut thread = common(205, 0, 4242, 42);
    thread[8..12].copy_from_slice(&4243u32.to_le_bytes());
    thread[12..19].copy_from_slice(b"worker\0");
    thread[32..40].copy_from_slice(&0x3d0f00u64.to_le_bytes());
    let mut rename = common(204, 0, 4243, 46);
    rename[8..12].copy_from_slice(&4243u32.to_le_bytes());
    rename[28..32].copy_from_slice(b"curl");
    // Another event in the same buffer.
    let other = common(999, 0, 1, 16);
    let p = page(
        1_000_000_000,
        &[
            (100, close, false),
            (5, other, false),
            (10, closed, false),
            (1, odd, false),
            (2, rcv, true),
            (3, thread, false),
            (4, rename, true),
        ],
        Some((2, 1 << 30)),
    );
    let (events, bad) = decode(&d, &p);
    assert_eq!(bad, 0);
    assert_eq!(events.len(), 6, "{events:#?}");
    let TraceEvent::SendReset(s) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(s.task.tid, 4242);
    assert_eq!(&*s.task.comm, UNKNOWN_COMM);
    assert_eq!(s.task.cpu, 1);
    assert!(!s.task.in_interrupt && !s.task.bh_disabled);
    assert!((s.task.ts - 1.0000001).abs() < 1e-9, "{}", s.task.ts);
    assert!(!s.has_skb && s.has_sock);
    assert_eq!(s.src, Some("127.0.0.1:5000".parse().unwrap()));
    assert_eq!(s.dst, Some("127.0.0.1:37052".parse().unwrap()));
    assert_eq!(s.state, Some("TCP_CLOSE"));
    assert_eq!(s.reason, Some("TCP_ABORT_ON_CLOSE"));
    let TraceEvent::SendReset(s) = &events[1] else {
        panic!()
    };
    assert!(s.task.in_interrupt);
    assert!(s.has_skb && !s.has_sock);
    assert_eq!(s.src, Some("[::1]:9".parse().unwrap()));
    assert_eq!(s.dst, Some("[::1]:34436".parse().unwrap()));
    assert_eq!(s.state, Some("UNKNOWN"));
    assert_eq!(s.reason, Some("NO_SOCKET"));
    // 1 s + 100 + 5 ns, then the time extend of 2^30 ns, then 10 ns.
    let expected = (1_000_000_000u64 + 105 + (1 << 30) + 10) as f64 / 1e9;
    assert!(
        (s.task.ts - expected).abs() < 1e-9,
        "{} {expected}",
        s.task.ts
    );
    let TraceEvent::SendReset(s) = &events[2] else {
        panic!()
    };
    assert_eq!(s.reason, Some("0x63"));
    assert!(s.task.bh_disabled && !s.task.in_interrupt);
    let TraceEvent::ReceiveReset(r) = &events[3] else {
        panic!()
    };
    assert_eq!(r.local, Some("[::1]:34436".parse().unwrap()));
    assert_eq!(r.remote, Some("[::1]:9".parse().unwrap()));
    assert_eq!(r.sock_cookie, Some(3));
    assert_eq!(
        events[4],
        TraceEvent::NewTask(NewTask {
            parent_tid: 4242,
            tid: 4243,
            comm: "worker".into(),
            thread: true
        })
    );
    assert_eq!(
        events[5],
        TraceEvent::Rename(TaskRename {
            tid: 4243,
            comm: "curl".into()
        })
    );
}

#[test]
fn decodes_the_socket_fields_of_kernels_before_6_10() {
    let d = decoder(
        &split("tcp_send_reset", 1524, true),
        &split("tcp_receive_reset", 1526, false),
    );
    let mut v4 = common(1524, 0, 10, 74);
    v4[16..24].copy_from_slice(&5u64.to_le_bytes());
    v4[24..28].copy_from_slice(&7i32.to_le_bytes());
    v4[28..30].copy_from_slice(&5000u16.to_le_bytes());
    v4[30..32].copy_from_slice(&37052u16.to_le_bytes());
    v4[32..34].copy_from_slice(&2u16.to_le_bytes());
    v4[34..38].copy_from_slice(&[127, 0, 0, 1]);
    v4[38..42].copy_from_slice(&[127, 0, 0, 2]);
    let mut v6 = v4.clone();
    v6[32..34].copy_from_slice(&10u16.to_le_bytes());
    v6[42..58].copy_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    v6[58..74].copy_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
    let (events, bad) = decode(&d, &page(0, &[(0, v4, false), (0, v6, false)], None));
    assert_eq!(bad, 0);
    let [TraceEvent::SendReset(a), TraceEvent::SendReset(b)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(a.src, Some("127.0.0.1:5000".parse().unwrap()));
    assert_eq!(a.dst, Some("127.0.0.2:37052".parse().unwrap()));
    assert_eq!(a.reason, None);
    assert_eq!(a.state, Some("TCP_CLOSE"));
    assert_eq!(b.src, Some("[fd00::1]:5000".parse().unwrap()));
    assert_eq!(b.dst, Some("[fd00::2]:37052".parse().unwrap()));
}

#[test]
fn short_pages_and_records_never_panic() {
    let d = decoder(&send_6_18(), &split("tcp_receive_reset", 2282, false));
    let mut close = common(2280, 0, 1, 88);
    close[24..28].copy_from_slice(&7i32.to_le_bytes());
    let full = page(5, &[(1, close.clone(), false), (1, close, true)], None);
    assert_eq!(decode(&d, &full).0.len(), 2);
    // Every truncation of the page, and a commit that claims more than the page holds.
    for n in 0..200 {
        let _ = decode(&d, &full[..n]);
    }
    let mut lying = full.clone();
    lying[8..16].copy_from_slice(&5000u64.to_le_bytes());
    assert_eq!(decode(&d, &lying).0.len(), 2);
    // A record of ours cut short is counted, not decoded.
    let short = page(5, &[(1, common(2280, 0, 1, 20), false)], None);
    assert_eq!(decode(&d, &short), (vec![], 1));
    // Noise.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut p = vec![0u8; 512];
        for b in p.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        p[8..16].copy_from_slice(&496u64.to_le_bytes());
        let _ = decode(&d, &p);
    }
}

#[test]
fn layouts_the_decoder_cannot_use_are_refused_with_the_reason() {
    let no_state = send_6_18().replace("int state;", "int statex;");
    let e = RawDecoder::new(&RawFormats {
        header_page: HEADER_PAGE,
        send_reset: Some(&no_state),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "tcp_send_reset: no field \"state\"");
    let e = RawDecoder::new(&RawFormats {
        header_page: "nothing",
        send_reset: Some(&send_6_18()),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(e.event, "header_page");
}
