//! The TCP socket table: NETLINK_SOCK_DIAG (as `ss` reads it), or /proc/net/tcp{,6}.
//!
//! sock_diag gives everything the rules need, including the effective backlog of listeners
//! and `tcp_info`. The request is built with netlink-packet-sock-diag; the replies are
//! decoded here, without allocating per socket beyond the [`Socket`] itself, because the
//! crate's decoder drops the probe count of keepalive timers and the expiry of TIME_WAIT
//! sockets, and rejects a `tcp_info` shorter than the newest layout (older kernels).
//!
//! /proc/net/tcp is the fallback (no netlink, or a copied tree): it lacks the listener
//! backlog and tcp_info, and the snapshot says so in a note.

use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::{Socket as NlSocket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

use super::files::{ParseError, Place, parse_error};
use super::{Family, Note, Socket, SocketSink, SocketsSource, TcpInfo, TcpState, Timer};

/// Read the socket table of the calling thread's namespace (live) or of a copied tree into
/// `sink`, socket by socket as they are decoded.
pub fn read(
    place: Place<'_>,
    notes: &mut Vec<Note>,
    sink: &mut dyn SocketSink,
) -> Result<SocketsSource, ParseError> {
    if let Place::Live = place {
        match dump_sock_diag(notes, sink) {
            Ok(()) => return Ok(SocketsSource::SockDiag),
            Err(e) => {
                sink.restart();
                notes.push(Note::new(
                    "sockets",
                    Some("NETLINK_SOCK_DIAG".to_string()),
                    format!(
                        "sock_diag dump failed ({e}); reading /proc/net/tcp and tcp6 instead \
                         (load the inet_diag and tcp_diag modules for full detail)"
                    ),
                ))
            }
        }
    }
    let mut read_any = false;
    for name in ["tcp", "tcp6"] {
        let path = place.proc_net(name);
        let shown = path.display().to_string();
        match place.open(&path) {
            Ok(file) => {
                let mut reader = BufReader::new(file);
                if super::files::is_empty(&mut reader) {
                    notes.push(Note::new(
                        "sockets",
                        Some(shown),
                        format!(
                            "not read: empty, without the header line /proc/net/{name} always has \
                             (absent on the copied host, or the copy is truncated)"
                        ),
                    ));
                    continue;
                }
                for socket in parse_proc_net_tcp(reader, &shown)? {
                    sink.socket(socket);
                }
                read_any = true;
            }
            Err(e) => notes.push(Note::new("sockets", Some(shown), format!("not read: {e}"))),
        }
    }
    if !read_any {
        return Ok(SocketsSource::None);
    }
    notes.push(Note::new(
        "sockets",
        Some("backlog".to_string()),
        "the socket table was read from /proc/net/tcp{,6}: the backlog of listeners and \
         tcp_info (idle times, RTT) are unknown",
    ));
    Ok(SocketsSource::ProcNet)
}

/// USER_HZ: the unit of `tm->when` in /proc/net/tcp (100 on every architecture Linux
/// exposes through this ABI, except alpha).
const USER_HZ: u64 = 100;

/// Parse /proc/net/tcp or /proc/net/tcp6 (the family follows from the address length).
pub fn parse_proc_net_tcp(reader: impl BufRead, file: &str) -> Result<Vec<Socket>, ParseError> {
    let mut out = Vec::new();
    // Lines are capped, the file is not: a busy host's table runs to hundreds of MB.
    for line in super::files::lines(reader, file, None) {
        let (lineno, line) = line?;
        let trimmed = line.trim_start();
        if trimmed.is_empty() || (lineno == 1 && trimmed.starts_with("sl")) {
            continue;
        }
        out.push(parse_tcp_line(trimmed).map_err(|e| parse_error(file, lineno, e.to_string()))?);
    }
    Ok(out)
}

/// Why one line of /proc/net/tcp{,6} cannot be read (the file and line are added by
/// [`parse_proc_net_tcp`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum TcpLineError {
    #[error(
        "expected at least 10 fields (sl local remote st queues timer retrnsmt uid timeout inode), found {0}"
    )]
    TooFewFields(usize),
    #[error("expected a slot number such as `0:`, found {0:?}")]
    NoSlot(String),
    #[error("local and remote addresses are of different families")]
    MixedFamilies,
    #[error("unknown TCP state {0}")]
    UnknownState(String),
    #[error("{what} {text:?} is not hexadecimal")]
    NotHex { what: &'static str, text: String },
    #[error("expected {what}, found {text:?}")]
    NotAPair { what: &'static str, text: String },
    #[error("{what} {text:?} is not a number")]
    NotANumber { what: &'static str, text: String },
    #[error("expected ADDRESS:PORT, found {0:?}")]
    NotAnEndpoint(String),
    #[error("port {0:?} is not a 16-bit hexadecimal number")]
    BadPort(String),
    #[error("address {0:?} is not hexadecimal")]
    BadAddress(String),
    #[error("address {0:?} has {len} hex digits (expected 8 or 32)", len = .0.len())]
    AddressLength(String),
}

fn parse_tcp_line(line: &str) -> Result<Socket, TcpLineError> {
    let f: Vec<&str> = line.split_whitespace().take(10).collect();
    if f.len() < 10 {
        return Err(TcpLineError::TooFewFields(f.len()));
    }
    if !f[0].ends_with(':') {
        return Err(TcpLineError::NoSlot(f[0].to_string()));
    }
    let (local_addr, local_port) = endpoint(f[1])?;
    let (remote_addr, remote_port) = endpoint(f[2])?;
    if local_addr.is_ipv4() != remote_addr.is_ipv4() {
        return Err(TcpLineError::MixedFamilies);
    }
    let st = hex_u64(f[3], "st")?;
    let state = u8::try_from(st)
        .ok()
        .and_then(TcpState::from_kernel)
        .ok_or_else(|| TcpLineError::UnknownState(f[3].to_string()))?;
    let (tx, rx) = pair(f[4], "tx_queue:rx_queue")?;
    let (tr, when) = pair(f[5], "tr:tm->when")?;
    let retrnsmt = hex_u64(f[6], "retrnsmt")?;
    let not_a_number = |what: &'static str, text: &str| TcpLineError::NotANumber {
        what,
        text: text.to_string(),
    };
    let uid = f[7].parse::<u32>().map_err(|_| not_a_number("uid", f[7]))?;
    f[8].parse::<i64>()
        .map_err(|_| not_a_number("timeout", f[8]))?;
    let inode = f[9]
        .parse::<u64>()
        .map_err(|_| not_a_number("inode", f[9]))?;
    let timer = Timer::from_kernel(u8::try_from(tr).unwrap_or(0));
    let listen = state == TcpState::Listen;
    Ok(Socket {
        family: if local_addr.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        },
        state,
        local_addr,
        local_port,
        remote_addr,
        remote_port,
        rx_queue: clamp_u32(rx),
        tx_queue: clamp_u32(tx),
        accept_queue: listen.then_some(clamp_u32(rx)),
        backlog: None,
        timer,
        timer_expires_ms: (timer != Timer::None).then_some(when.saturating_mul(1000) / USER_HZ),
        retransmits: u8::try_from(retrnsmt).unwrap_or(u8::MAX),
        inode,
        uid,
        tcp_info: None,
        owner: None,
        options: None,
    })
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn hex_u64(text: &str, what: &'static str) -> Result<u64, TcpLineError> {
    u64::from_str_radix(text, 16).map_err(|_| TcpLineError::NotHex {
        what,
        text: text.to_string(),
    })
}

fn pair(text: &str, what: &'static str) -> Result<(u64, u64), TcpLineError> {
    let (a, b) = text.split_once(':').ok_or_else(|| TcpLineError::NotAPair {
        what,
        text: text.to_string(),
    })?;
    Ok((hex_u64(a, what)?, hex_u64(b, what)?))
}

/// `0100007F:1F40` -> 127.0.0.1:8000. The kernel prints each 32-bit word of the
/// (network-order) address as a host-order number, so the bytes come back with to_ne_bytes.
fn endpoint(text: &str) -> Result<(IpAddr, u16), TcpLineError> {
    let (addr, port) = text
        .split_once(':')
        .ok_or_else(|| TcpLineError::NotAnEndpoint(text.to_string()))?;
    let port =
        u16::from_str_radix(port, 16).map_err(|_| TcpLineError::BadPort(port.to_string()))?;
    let word = |i: usize| -> Result<[u8; 4], TcpLineError> {
        addr.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
            .ok_or_else(|| TcpLineError::BadAddress(addr.to_string()))
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return Err(TcpLineError::AddressLength(addr.to_string())),
    };
    Ok((ip, port))
}

// --- sock_diag ---------------------------------------------------------------------------

const NLMSG_HDR: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_DUMP_INTR: u16 = 0x10;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The original inet_diag request (and the type of its replies).
const TCPDIAG_GETSOCK: u16 = 18;
/// sizeof(struct inet_diag_req).
const INET_DIAG_REQ: usize = 60;
/// sizeof(struct inet_diag_msg).
const INET_DIAG_MSG: usize = 72;
const INET_DIAG_INFO: u16 = 2;
/// Bytes of a receive: the kernel fills dump replies up to 32 KiB per message batch.
const RECV_BUF: usize = 64 * 1024;

/// Offsets into `struct tcp_info` (include/uapi/linux/tcp.h; checked against libc in tests).
mod tcpi {
    pub const PROBES: usize = 3;
    pub const LAST_DATA_SENT: usize = 44;
    pub const LAST_DATA_RECV: usize = 52;
    pub const LAST_ACK_RECV: usize = 56;
    pub const RTT: usize = 68;
    pub const TOTAL_RETRANS: usize = 100;
    /// The shortest tcp_info that holds every field above (kernels since 2.6).
    pub const MIN_LEN: usize = 104;
}

/// Dump every TCP socket (IPv4 and IPv6, all states) of the calling thread's namespace into
/// `sink`. On an error, `sink` may have been given part of the table.
///
/// The kernel keeps the TCP sockets of every namespace and both families in one hash table,
/// and a dump walks all of it, socket by socket, whatever it asks for. One request of the
/// original inet_diag kind (`TCPDIAG_GETSOCK`) dumps both families in one walk, where
/// `SOCK_DIAG_BY_FAMILY` asks for one family and walks the table once per family; the
/// sockets come in the table's order, both families mixed. A kernel that refuses it (the
/// refusal comes before any socket) is asked once per family.
pub fn dump_sock_diag(notes: &mut Vec<Note>, sink: &mut dyn SocketSink) -> io::Result<()> {
    let mut socket = NlSocket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut unknown = 0usize;
    let interrupted_note = || {
        Note::new(
            "sockets",
            None,
            "the socket table changed during the dump: a few sockets may be missing or listed twice",
        )
    };
    let mut counted = Counted { sink, given: 0 };
    match dump(
        &socket,
        &both_request(3),
        3,
        &mut buf,
        &mut counted,
        &mut unknown,
    ) {
        Ok(interrupted) => {
            if interrupted {
                notes.push(interrupted_note());
            }
        }
        Err(_) if counted.given == 0 && unknown == 0 => {
            for (seq, family) in [(1u32, AF_INET), (2u32, AF_INET6)] {
                let request = family_request(seq, family);
                match dump(&socket, &request, seq, &mut buf, counted.sink, &mut unknown) {
                    Ok(interrupted) => {
                        if interrupted {
                            notes.push(interrupted_note());
                        }
                    }
                    Err(e) if family == AF_INET6 && e.raw_os_error() == Some(libc::ENOENT) => {
                        notes.push(Note::new(
                            "sockets",
                            Some("IPv6".to_string()),
                            "IPv6 sockets not read: the kernel has no IPv6 sock_diag (IPv6 disabled?)",
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(e) => return Err(e),
    }
    if unknown > 0 {
        notes.push(Note::new(
            "sockets",
            None,
            format!(
                "{unknown} sockets in a state or family this rstaudit does not know were left out"
            ),
        ));
    }
    Ok(())
}

/// A sink that counts what it was given: a dump that fails before its first socket can be
/// asked again another way.
struct Counted<'a> {
    sink: &'a mut dyn SocketSink,
    given: usize,
}

impl SocketSink for Counted<'_> {
    fn socket(&mut self, socket: Socket) {
        self.given += 1;
        self.sink.socket(socket);
    }
    fn restart(&mut self) {
        self.given = 0;
        self.sink.restart();
    }
}

/// The dump of one family: `SOCK_DIAG_BY_FAMILY` with `struct inet_diag_req_v2`.
fn family_request(seq: u32, family: u8) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states: StateFlags::all(),
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    packet.finalize();
    let mut request = vec![0u8; packet.header.length as usize];
    packet.serialize(&mut request[..]);
    request
}

/// The dump of both families: `TCPDIAG_GETSOCK` with `struct inet_diag_req` (family,
/// source and destination lengths, extensions, the 48-byte socket id, states, tables). The
/// kernel dumps every family for it (inet_diag_dump_compat), and its replies carry the
/// request's type.
fn both_request(seq: u32) -> [u8; NLMSG_HDR + INET_DIAG_REQ] {
    let mut r = [0u8; NLMSG_HDR + INET_DIAG_REQ];
    r[0..4].copy_from_slice(&((NLMSG_HDR + INET_DIAG_REQ) as u32).to_ne_bytes());
    r[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    r[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    r[8..12].copy_from_slice(&seq.to_ne_bytes());
    r[NLMSG_HDR] = AF_INET;
    r[NLMSG_HDR + 3] = ExtensionFlags::INFO.bits();
    r[NLMSG_HDR + 52..NLMSG_HDR + 56].copy_from_slice(&StateFlags::all().bits().to_ne_bytes());
    r
}

/// Send one dump request and read its replies into `out`; returns whether the kernel
/// flagged the dump interrupted.
fn dump(
    socket: &NlSocket,
    request: &[u8],
    seq: u32,
    buf: &mut [u8],
    out: &mut dyn SocketSink,
    unknown: &mut usize,
) -> io::Result<bool> {
    socket.send(request, 0)?;
    let mut interrupted = false;
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "sock_diag closed the dump early",
            ));
        }
        match parse_batch(&buf[..n], seq, out, unknown)? {
            Batch::More { intr } => interrupted |= intr,
            Batch::Done { intr } => return Ok(interrupted | intr),
        }
    }
}

/// What one receive of a dump held: more to come, or the end (`intr`: NLM_F_DUMP_INTR seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    More { intr: bool },
    Done { intr: bool },
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed sock_diag reply: {what}"),
    )
}

/// Decode the netlink messages of one receive (bytes from the kernel, so it can be fuzzed):
/// sockets go to `out`, sockets in states this version does not know are counted in `unknown`.
pub fn parse_batch(
    mut buf: &[u8],
    seq: u32,
    out: &mut dyn SocketSink,
    unknown: &mut usize,
) -> io::Result<Batch> {
    let mut intr = false;
    while buf.len() >= NLMSG_HDR {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDR || len > buf.len() {
            return Err(malformed("message length out of range"));
        }
        let kind = u16_at(buf, 4);
        let flags = u16_at(buf, 6);
        let msg_seq = u32_at(buf, 8);
        let payload = &buf[NLMSG_HDR..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        if msg_seq != seq {
            continue;
        }
        intr |= flags & NLM_F_DUMP_INTR != 0;
        match kind {
            NLMSG_NOOP => {}
            NLMSG_DONE => return Ok(Batch::Done { intr }),
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(malformed("short error message"));
                }
                let code = u32_at(payload, 0) as i32;
                if code != 0 {
                    // The kernel sends -errno; anything else (i32::MIN has no negation) is damage.
                    let errno = code
                        .checked_neg()
                        .filter(|e| *e > 0)
                        .ok_or_else(|| malformed("error code is not a negative errno"))?;
                    return Err(io::Error::from_raw_os_error(errno));
                }
            }
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => match parse_diag_msg(payload)? {
                Some(socket) => out.socket(socket),
                None => *unknown += 1,
            },
            _ => {}
        }
    }
    Ok(Batch::More { intr })
}

/// Decode one `struct inet_diag_msg` and its attributes. `None` for a socket the kernel
/// reports in a state this version does not know.
fn parse_diag_msg(msg: &[u8]) -> io::Result<Option<Socket>> {
    if msg.len() < INET_DIAG_MSG {
        return Err(malformed("inet_diag_msg shorter than 72 bytes"));
    }
    let family = match msg[0] {
        AF_INET => Family::Inet,
        AF_INET6 => Family::Inet6,
        _ => return Ok(None),
    };
    let Some(state) = TcpState::from_kernel(msg[1]) else {
        return Ok(None);
    };
    let timer = Timer::from_kernel(msg[2]);
    let retransmits = msg[3];
    let addr = |at: usize| -> IpAddr {
        match family {
            Family::Inet => IpAddr::V4(Ipv4Addr::new(
                msg[at],
                msg[at + 1],
                msg[at + 2],
                msg[at + 3],
            )),
            Family::Inet6 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&msg[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            }
        }
    };
    let local_port = u16::from_be_bytes([msg[4], msg[5]]);
    let remote_port = u16::from_be_bytes([msg[6], msg[7]]);
    let expires = u32_at(msg, 52);
    let rqueue = u32_at(msg, 56);
    let wqueue = u32_at(msg, 60);
    let uid = u32_at(msg, 64);
    let inode = u32_at(msg, 68);
    let mut tcp_info = None;
    let mut attrs = &msg[INET_DIAG_MSG..];
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0) as usize;
        let kind = u16_at(attrs, 2);
        if len < 4 || len > attrs.len() {
            return Err(malformed("attribute length out of range"));
        }
        if kind == INET_DIAG_INFO {
            tcp_info = parse_tcp_info(&attrs[4..len]);
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    let listen = state == TcpState::Listen;
    Ok(Some(Socket {
        family,
        state,
        local_addr: addr(8),
        local_port,
        remote_addr: addr(24),
        remote_port,
        rx_queue: rqueue,
        tx_queue: wqueue,
        accept_queue: listen.then_some(rqueue),
        backlog: listen.then_some(wqueue),
        timer,
        timer_expires_ms: (timer != Timer::None).then_some(u64::from(expires)),
        retransmits,
        inode: u64::from(inode),
        uid,
        tcp_info,
        owner: None,
        options: None,
    }))
}

/// The fields of `struct tcp_info` the rules use; `None` when the attribute is too short.
fn parse_tcp_info(b: &[u8]) -> Option<TcpInfo> {
    if b.len() < tcpi::MIN_LEN {
        return None;
    }
    Some(TcpInfo {
        last_data_recv_ms: u32_at(b, tcpi::LAST_DATA_RECV),
        last_data_sent_ms: u32_at(b, tcpi::LAST_DATA_SENT),
        last_ack_recv_ms: u32_at(b, tcpi::LAST_ACK_RECV),
        rtt_us: u32_at(b, tcpi::RTT),
        total_retrans: u32_at(b, tcpi::TOTAL_RETRANS),
        probes: b[tcpi::PROBES],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from kernel 6.18.44 (`cat /proc/net/tcp{,6}`) in a network namespace created
    // for the purpose: a listener on 127.0.0.1:8000 (backlog 7, three queued connections,
    // one with SO_KEEPALIVE and TCP_KEEPIDLE 33), two connections closed into FIN_WAIT2 /
    // TIME_WAIT, a listener on 8001 with backlog 0 and three SYN_SENT clients retransmitting,
    // and an IPv6 listener on [::1]:9000 with one connection that sent 5 unread bytes.
    const TCP: &str = include_str!("testdata/tcp-6.18.txt");
    const TCP6: &str = include_str!("testdata/tcp6-6.18.txt");

    fn find(sockets: &[Socket], local: u16, remote: u16) -> &Socket {
        sockets
            .iter()
            .find(|s| s.local_port == local && s.remote_port == remote)
            .unwrap_or_else(|| panic!("no socket {local} -> {remote}"))
    }

    #[test]
    fn parses_captured_ipv4_lines() {
        let sockets = parse_proc_net_tcp(TCP.as_bytes(), "tcp").unwrap();
        assert_eq!(sockets.len(), 15);
        let l = find(&sockets, 8000, 0);
        assert_eq!(l.state, TcpState::Listen);
        assert_eq!(l.family, Family::Inet);
        assert_eq!(l.local_addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(l.remote_addr, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(l.accept_queue, Some(3));
        assert_eq!(l.backlog, None);
        assert_eq!(l.inode, 23769);
        assert_eq!(l.timer, Timer::None);
        assert_eq!(l.timer_expires_ms, None);

        // Keepalive timer pending: tr 02, tm->when 0x7C0 ticks = 19.84 s.
        let k = find(&sockets, 0xC5DE, 8000);
        assert_eq!(k.state, TcpState::Established);
        assert_eq!(k.timer, Timer::Keepalive);
        assert_eq!(k.timer_expires_ms, Some(19_840));
        assert_eq!(k.inode, 23772);

        // SYN_SENT retransmitting: tr 01, retrnsmt 5, one byte (the SYN) unacknowledged.
        let s = find(&sockets, 0x897C, 8001);
        assert_eq!(s.state, TcpState::SynSent);
        assert_eq!(s.timer, Timer::Retransmit);
        assert_eq!(s.retransmits, 5);
        assert_eq!(s.tx_queue, 1);
        assert_eq!(s.timer_expires_ms, Some(840));

        // A FIN_WAIT2 time-wait socket: timer 3, no inode.
        let t = find(&sockets, 8000, 0xC5D0);
        assert_eq!(t.state, TcpState::FinWait2);
        assert_eq!(t.timer, Timer::TimeWait);
        assert_eq!(t.inode, 0);

        let c = find(&sockets, 0xC5D0, 8000);
        assert_eq!(c.state, TcpState::CloseWait);
        assert_eq!(c.rx_queue, 1);
        assert_eq!(c.accept_queue, None);
    }

    #[test]
    fn parses_captured_ipv6_lines() {
        let sockets = parse_proc_net_tcp(TCP6.as_bytes(), "tcp6").unwrap();
        assert_eq!(sockets.len(), 3);
        let l = find(&sockets, 9000, 0);
        assert_eq!(l.family, Family::Inet6);
        assert_eq!(l.local_addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(l.remote_addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(l.accept_queue, Some(1));
        let e = find(&sockets, 9000, 0xC41A);
        assert_eq!(e.rx_queue, 5);
        assert_eq!(e.remote_addr, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_names_file_and_line() {
        let header = TCP.lines().next().unwrap();
        let good = TCP.lines().nth(1).unwrap();
        for (bad, needle) in [
            ("   1: 0100007F:1F40 00000000:0000 0A", "at least 10 fields"),
            (
                "   1: 0100007G:1F40 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0 0 1",
                "not hexadecimal",
            ),
            (
                "   1: 0100007F:1F40 00000000:0000 2A 00000000:00000003 00:00000000 00000000 0 0 1",
                "unknown TCP state",
            ),
            (
                "   1: 0100007F:1F40 00000000000000000000000000000000:0000 0A 0:3 00:0 0 0 0 1",
                "different families",
            ),
            (
                "   1: 0100007F:11F40 00000000:0000 0A 00000000:00000003 00:00000000 00000000 0 0 1",
                "16-bit",
            ),
        ] {
            let text = format!("{header}\n{good}\n{bad}\n");
            let err = parse_proc_net_tcp(text.as_bytes(), "/r/proc/net/tcp").unwrap_err();
            assert_eq!(err.line, 3, "{err}");
            assert!(err.to_string().starts_with("/r/proc/net/tcp:3: "), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        // A file cut in the middle of a line.
        let cut = TCP.find("0100007F:C5E8 0100007F:1F40").unwrap() + 18;
        let err = parse_proc_net_tcp(&TCP.as_bytes()[..cut], "tcp").unwrap_err();
        assert_eq!(err.line, 16, "{err}");
    }

    /// Every reason a line is refused, word for word as users read it after `FILE:LINE: `.
    #[test]
    fn line_errors_read_as_documented() {
        let lines = [
            "1: 0100007F:1F40",
            "1 0100007F:1F40 00000000:0000 0A 0:3 0:0 0 0 0 1",
            "1: 0100007F 00000000:0000 0A 0:3 0:0 0 0 0 1",
            "1: 0100007F:XY 00000000:0000 0A 0:3 0:0 0 0 0 1",
            "1: 0100007Z:1F40 00000000:0000 0A 0:3 0:0 0 0 0 1",
            "1: 0100007:1F40 00000000:0000 0A 0:3 0:0 0 0 0 1",
            "1: 0100007F:1F40 00000000:0000 0Z 0:3 0:0 0 0 0 1",
            "1: 0100007F:1F40 00000000:0000 0A 03 0:0 0 0 0 1",
            "1: 0100007F:1F40 00000000:0000 0A 0:3 0:0 0 x 0 1",
            "1: 0100007F:1F40 00000000:0000 0A 0:3 0:0 0 0 - 1",
            "1: 0100007F:1F40 00000000:0000 0A 0:3 0:0 0 0 0 -1",
        ];
        let messages = [
            "expected at least 10 fields (sl local remote st queues timer retrnsmt uid timeout inode), found 2",
            "expected a slot number such as `0:`, found \"1\"",
            "expected ADDRESS:PORT, found \"0100007F\"",
            "port \"XY\" is not a 16-bit hexadecimal number",
            "address \"0100007Z\" is not hexadecimal",
            "address \"0100007\" has 7 hex digits (expected 8 or 32)",
            "st \"0Z\" is not hexadecimal",
            "expected tx_queue:rx_queue, found \"03\"",
            "uid \"x\" is not a number",
            "timeout \"-\" is not a number",
            "inode \"-1\" is not a number",
        ];
        for (line, message) in lines.into_iter().zip(messages) {
            let err = parse_proc_net_tcp(format!("{line}\n").as_bytes(), "t").unwrap_err();
            assert_eq!(err.message, message, "{line}");
        }
    }

    /// A small deterministic generator, enough to shake the parsers.
    fn noise(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn damaged_input_never_panics() {
        let mut seed = 7;
        for _ in 0..2000 {
            let mut bytes = TCP.as_bytes().to_vec();
            for _ in 0..1 + noise(&mut seed) % 4 {
                let at = (noise(&mut seed) as usize) % bytes.len();
                bytes[at] = noise(&mut seed) as u8;
            }
            let cut = (noise(&mut seed) as usize) % (bytes.len() + 1);
            let _ = parse_proc_net_tcp(&bytes[..cut], "tcp");
            let mut batch: Vec<u8> = (0..noise(&mut seed) % 400)
                .map(|_| noise(&mut seed) as u8)
                .collect();
            if batch.len() >= NLMSG_HDR {
                let len = (noise(&mut seed) as usize % (batch.len() + 8)) as u32;
                batch[..4].copy_from_slice(&len.to_ne_bytes());
                batch[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
                batch[8..12].copy_from_slice(&1u32.to_ne_bytes());
            }
            let (mut out, mut unknown) = (Vec::new(), 0);
            let _ = parse_batch(&batch, 1, &mut out, &mut unknown);
        }
    }

    #[test]
    fn the_live_dump_sees_a_listener_and_its_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let client_port = client.local_addr().unwrap().port();
        let mut notes = Vec::new();
        let mut sockets = Vec::new();
        dump_sock_diag(&mut notes, &mut sockets).expect("sock_diag");
        let l = sockets
            .iter()
            .find(|s| s.state == TcpState::Listen && s.local_port == port)
            .expect("our listener");
        assert_eq!(l.accept_queue, Some(1));
        assert!(l.backlog.is_some_and(|b| b > 0));
        assert_ne!(l.inode, 0);
        let c = sockets
            .iter()
            .find(|s| s.local_port == client_port && s.remote_port == port)
            .expect("our client");
        assert_eq!(c.state, TcpState::Established);
        assert!(c.tcp_info.is_some());
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn tcp_info_offsets_match_the_kernel_header() {
        use std::mem::offset_of;
        assert_eq!(offset_of!(libc::tcp_info, tcpi_probes), tcpi::PROBES);
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_last_data_sent),
            tcpi::LAST_DATA_SENT
        );
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_last_data_recv),
            tcpi::LAST_DATA_RECV
        );
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_last_ack_recv),
            tcpi::LAST_ACK_RECV
        );
        assert_eq!(offset_of!(libc::tcp_info, tcpi_rtt), tcpi::RTT);
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_total_retrans),
            tcpi::TOTAL_RETRANS
        );
        assert!(std::mem::size_of::<libc::tcp_info>() >= tcpi::MIN_LEN);
    }

    #[test]
    fn decodes_a_diag_message_and_rejects_bad_lengths() {
        let mut msg = vec![0u8; INET_DIAG_MSG];
        msg[0] = AF_INET;
        msg[1] = 10; // LISTEN
        msg[4..6].copy_from_slice(&8000u16.to_be_bytes());
        msg[8..12].copy_from_slice(&[127, 0, 0, 1]);
        msg[56..60].copy_from_slice(&2u32.to_ne_bytes());
        msg[60..64].copy_from_slice(&7u32.to_ne_bytes());
        msg[68..72].copy_from_slice(&4242u32.to_ne_bytes());
        let mut info = vec![0u8; 232];
        info[tcpi::RTT..tcpi::RTT + 4].copy_from_slice(&77u32.to_ne_bytes());
        msg.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
        msg.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        msg.extend_from_slice(&info);
        let s = parse_diag_msg(&msg).unwrap().unwrap();
        assert_eq!(s.local_addr, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.local_port, 8000);
        assert_eq!((s.accept_queue, s.backlog), (Some(2), Some(7)));
        assert_eq!(s.inode, 4242);
        assert_eq!(s.tcp_info.unwrap().rtt_us, 77);

        let mut bad = msg.clone();
        bad[72..74].copy_from_slice(&1000u16.to_ne_bytes());
        assert!(parse_diag_msg(&bad).is_err());
        assert!(parse_diag_msg(&msg[..40]).is_err());
        // A short tcp_info (an old kernel) leaves tcp_info unknown rather than failing.
        let mut short = msg[..INET_DIAG_MSG].to_vec();
        short.extend_from_slice(&8u16.to_ne_bytes());
        short.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        short.extend_from_slice(&[0; 4]);
        assert_eq!(parse_diag_msg(&short).unwrap().unwrap().tcp_info, None);

        let mut batch = Vec::new();
        batch.extend_from_slice(&((NLMSG_HDR + msg.len()) as u32).to_ne_bytes());
        batch.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        batch.extend_from_slice(&0u16.to_ne_bytes());
        batch.extend_from_slice(&9u32.to_ne_bytes());
        batch.extend_from_slice(&0u32.to_ne_bytes());
        batch.extend_from_slice(&msg);
        let mut out = Vec::new();
        let mut unknown = 0;
        assert!(matches!(
            parse_batch(&batch, 9, &mut out, &mut unknown).unwrap(),
            Batch::More { intr: false }
        ));
        assert_eq!((out.len(), unknown), (1, 0));
        // A state from a newer kernel is counted, not guessed.
        batch[NLMSG_HDR + 1] = 99;
        parse_batch(&batch, 9, &mut out, &mut unknown).unwrap();
        assert_eq!((out.len(), unknown), (1, 1));
        batch[0] = 200;
        assert!(parse_batch(&batch, 9, &mut out, &mut unknown).is_err());
    }

    /// The one request of both families gives every socket the two requests of one family
    /// each give, once, with the same fields: here the test's own IPv4 and IPv6 listeners and
    /// connections (other tests open and close sockets meanwhile, so only these are compared).
    #[test]
    fn one_dump_of_both_families_gives_what_one_per_family_gives() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback");
        let c4 = std::net::TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        let c6 = std::net::TcpStream::connect(v6.local_addr().unwrap()).unwrap();
        // By both ends: a TIME_WAIT entry of an earlier test may hold one of these ports.
        let unspecified = |a: std::net::SocketAddr| match a {
            std::net::SocketAddr::V4(_) => std::net::SocketAddr::from(([0u8; 4], 0)),
            std::net::SocketAddr::V6(_) => std::net::SocketAddr::from(([0u16; 8], 0)),
        };
        let mut ours: Vec<(std::net::SocketAddr, std::net::SocketAddr)> = [&v4, &v6]
            .iter()
            .map(|l| l.local_addr().unwrap())
            .map(|a| (a, unspecified(a)))
            .collect();
        for c in [&c4, &c6] {
            let (local, peer) = (c.local_addr().unwrap(), c.peer_addr().unwrap());
            ours.extend([(local, peer), (peer, local)]);
        }
        let pick = |sockets: Vec<Socket>| {
            let mut mine: Vec<Socket> = sockets
                .into_iter()
                .filter(|s| {
                    let local = std::net::SocketAddr::new(s.local_addr, s.local_port);
                    let remote = std::net::SocketAddr::new(s.remote_addr, s.remote_port);
                    ours.contains(&(local, remote))
                })
                .map(|mut s| {
                    // What moves between two dumps of a live socket.
                    s.tcp_info = None;
                    s.timer_expires_ms = None;
                    s
                })
                .collect();
            mine.sort_by_key(|s| (s.local_port, s.remote_port));
            mine
        };
        let mut both = Vec::new();
        dump_sock_diag(&mut Vec::new(), &mut both).expect("a sock_diag dump");
        let mut socket = NlSocket::new(NETLINK_SOCK_DIAG).unwrap();
        socket.bind_auto().unwrap();
        socket.connect(&SocketAddr::new(0, 0)).unwrap();
        let mut per_family = Vec::new();
        let mut buf = vec![0u8; RECV_BUF];
        for (seq, family) in [(1u32, AF_INET), (2u32, AF_INET6)] {
            let request = family_request(seq, family);
            dump(&socket, &request, seq, &mut buf, &mut per_family, &mut 0).unwrap();
        }
        let (both, per_family) = (pick(both), pick(per_family));
        assert_eq!(both.len(), 6, "{both:?}");
        assert_eq!(both, per_family);
    }
}
