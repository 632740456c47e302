//! Capture TCP resets with an AF_PACKET socket, filtered in the kernel.
//!
//! Why this module exists: the packet check must see every reset in a
//! namespace without paying for the rest of the traffic. A classic BPF
//! program attached with SO_ATTACH_FILTER passes only TCP segments with RST
//! set (IPv4 and IPv6), so bulk traffic never leaves the kernel; a
//! TPACKET_V3 ring (PACKET_RX_RING) absorbs bursts; PACKET_STATISTICS gives
//! the kernel's own drop count.
//!
//! Link layers: the filter reads the IP header through the kernel's
//! network-header offset (SKF_NET_OFF) and the ethertype through
//! SKF_AD_PROTOCOL, so ethernet, loopback (ethernet-framed on Linux), VLAN
//! devices (the kernel strips the tag before taps see received frames) and
//! headerless devices (tun, wireguard) all work. Not handled: a VLAN tag left
//! inside a transmitted frame by software without offload (the filter sees
//! ethertype 0x8100 and drops it), and IPv6 extension headers between the IPv6
//! header and TCP (next header must be TCP).
//!
//! Loopback: a socket bound to all interfaces sees each loopback segment
//! twice, once PACKET_OUTGOING and once PACKET_HOST. With
//! [`CaptureOptions::skip_loopback_copy`] (the default) the filter drops the
//! PACKET_HOST copy on `lo`, so each reset is counted once.
//!
//! What this module must not do: interpret resets (that is `live`), or
//! change anything on the host. The socket is created in the calling
//! thread's network namespace; [`Capture::open_in`] creates it inside
//! another one and the descriptor keeps working from any thread afterwards.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::host::netns::NetnsRef;

/// How to capture.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Capture on this interface only (name in the target namespace); `None` = all.
    pub iface: Option<String>,
    /// Pass only resets to or from this TCP port (checked in the kernel filter).
    pub port: Option<u16>,
    /// Bytes kept per frame, from the link header (resets are small; 256 keeps all headers).
    pub snaplen: u32,
    /// Ring geometry: block size in bytes (a power of two, multiple of the page size).
    pub block_size: u32,
    /// Ring geometry: number of blocks.
    pub block_count: u32,
    /// Drop the PACKET_HOST copy of loopback frames in the filter (count each reset once).
    pub skip_loopback_copy: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            iface: None,
            port: None,
            snaplen: 256,
            block_size: 1 << 20,
            block_count: 16,
            skip_loopback_copy: true,
        }
    }
}

/// Why a capture could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "opening an AF_PACKET socket needs CAP_NET_RAW ({hint}): {0}",
        hint = crate::host::process::privilege_hint("CAP_NET_RAW")
    )]
    Permission(io::Error),
    #[error("interface {0:?} not found in the namespace (list them with `ip link`)")]
    NoSuchInterface(String),
    #[error("{what}: {err}")]
    Io { what: &'static str, err: io::Error },
    /// The namespace to capture in could not be entered.
    #[error(transparent)]
    Enter(#[from] crate::host::netns::EnterError),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> CaptureError {
    move |err| CaptureError::Io { what, err }
}

/// Direction of a captured frame, from the kernel's pkttype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketDir {
    /// PACKET_OUTGOING: sent by this namespace (on `lo`: sent and received here).
    Sent,
    /// PACKET_HOST: received by this namespace.
    Received,
    /// Anything else (broadcast, multicast, another host's frame seen in promiscuous mode).
    Other,
}

impl PacketDir {
    /// From `sll_pkttype`.
    pub fn from_pkttype(pkttype: u8) -> Self {
        match pkttype {
            libc::PACKET_OUTGOING => Self::Sent,
            libc::PACKET_HOST => Self::Received,
            _ => Self::Other,
        }
    }
}

/// One frame from the ring. Borrowed: copy what you keep.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Kernel timestamp (time since the Unix epoch).
    pub ts: Duration,
    /// Interface index in the captured namespace.
    pub ifindex: i32,
    /// `sll_pkttype` (PACKET_HOST, PACKET_OUTGOING, ...).
    pub pkttype: u8,
    /// `sll_hatype` (ARPHRD_*).
    pub hatype: u16,
    /// Link-layer address of the frame (sender for received frames), `sll_addr[..sll_halen]`.
    pub link_addr: &'a [u8],
    /// Ethertype (host order), e.g. 0x0800.
    pub protocol: u16,
    /// Bytes from the network (IP) header on, truncated to the snap length.
    pub ip: &'a [u8],
    /// Length of the frame on the wire (from the link header).
    pub orig_len: u32,
    /// Length of the link-layer header that preceded `ip` in the frame.
    pub link_header_len: u32,
}

impl Frame<'_> {
    pub fn dir(&self) -> PacketDir {
        PacketDir::from_pkttype(self.pkttype)
    }
}

/// The TCP reset in a captured IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RstSegment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    /// The acknowledgment number when ACK is set.
    pub ack: Option<u32>,
    /// Payload bytes in the segment (RFC 5961 allows diagnostic text), from the IP length.
    pub payload_len: u32,
}

/// Why bytes were not a TCP reset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an IPv4/IPv6 TCP packet: {0}")]
    Malformed(String),
    #[error("not TCP")]
    NotTcp,
    #[error("TCP segment without RST")]
    NoRst,
}

/// Parse an IP packet (IPv4 or IPv6, starting at the IP header; the payload may be truncated)
/// into the reset it carries. Takes bytes so it can be fuzzed; never panics.
pub fn parse_rst(ip: &[u8]) -> Result<RstSegment, ParseError> {
    use etherparse::{IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, TcpHeaderSlice};
    let malformed = |e: &dyn std::fmt::Display| ParseError::Malformed(e.to_string());
    // The kernel filter passed only IPv4 without fragments and IPv6 with TCP right after its
    // header: the fixed headers are read directly (the full lax walk of extension headers
    // cost an eighth of the CPU per reset under a flood). Anything else is refused here too.
    let (src_ip, dst_ip, ip_payload_len, tcp_at) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let h = Ipv4HeaderSlice::from_slice(ip).map_err(|e| malformed(&e))?;
            if h.protocol() != IpNumber::TCP {
                return Err(ParseError::NotTcp);
            }
            let hlen = h.slice().len();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                u32::from(h.total_len()).saturating_sub(hlen as u32),
                hlen,
            )
        }
        Some(6) => {
            let h = Ipv6HeaderSlice::from_slice(ip).map_err(|e| malformed(&e))?;
            if h.next_header() != IpNumber::TCP {
                return Err(ParseError::NotTcp);
            }
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                u32::from(h.payload_length()),
                h.slice().len(),
            )
        }
        _ => return Err(ParseError::Malformed("no IPv4 or IPv6 header".into())),
    };
    let tcp = TcpHeaderSlice::from_slice(&ip[tcp_at..]).map_err(|e| malformed(&e))?;
    if !tcp.rst() {
        return Err(ParseError::NoRst);
    }
    let header_len = u32::from(tcp.data_offset()) * 4;
    Ok(RstSegment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        payload_len: ip_payload_len.saturating_sub(header_len),
    })
}

/// Counts from PACKET_STATISTICS, summed over the life of the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    /// Frames that passed the filter and reached the socket (including dropped ones).
    pub packets: u64,
    /// Frames that passed the filter but were dropped because the ring was full.
    pub drops: u64,
    /// Times the ring was frozen (TPACKET_V3 queue freezes).
    pub freezes: u64,
}

/// An open capture: AF_PACKET socket, kernel filter, TPACKET_V3 ring.
pub struct Capture {
    fd: OwnedFd,
    ring: NonNull<u8>,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    totals: CaptureStats,
    /// Index of `lo` in the captured namespace, when it has one.
    pub loopback_ifindex: Option<i32>,
    /// The interface the socket is bound to (`None` = all).
    pub ifindex: Option<i32>,
}

// SAFETY: the ring mapping belongs to this value alone; it is only touched through
// `&mut self`, so moving the value to another thread is sound.
unsafe impl Send for Capture {}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("fd", &self.fd.as_raw_fd())
            .field("ring_len", &self.ring_len)
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

const ETH_P_ALL: u16 = 0x0003;

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the given size for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ifindex_of(name: &str) -> Option<i32> {
    nix::net::if_::if_nametoindex(name).ok().map(|i| i as i32)
}

impl Capture {
    /// Open a capture in the calling thread's network namespace.
    pub fn open(opts: &CaptureOptions) -> Result<Self, CaptureError> {
        let ifindex = match &opts.iface {
            None => None,
            Some(name) => {
                Some(ifindex_of(name).ok_or_else(|| CaptureError::NoSuchInterface(name.clone()))?)
            }
        };
        let loopback_ifindex = ifindex_of("lo");
        // Protocol 0: the socket receives nothing until bind() below, so no frame slips in
        // before the filter and the ring are in place.
        // SAFETY: plain socket(2) call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::Permission(err),
                _ => CaptureError::Io {
                    what: "socket(AF_PACKET)",
                    err,
                },
            });
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let prog = filter_program(
            opts.port,
            if opts.skip_loopback_copy {
                loopback_ifindex
            } else {
                None
            },
            opts.snaplen,
        );
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
            .map_err(io_err("SO_ATTACH_FILTER"))?;
        let version: libc::c_int = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(io_err("PACKET_VERSION TPACKET_V3"))?;
        let frame_size: u32 = 2048;
        let req = libc::tpacket_req3 {
            tp_block_size: opts.block_size,
            tp_block_nr: opts.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: opts.block_size / frame_size * opts.block_count,
            tp_retire_blk_tov: 10,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(io_err("PACKET_RX_RING"))?;
        let ring_len = opts.block_size as usize * opts.block_count as usize;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io_err("mmap of the packet ring")(io::Error::last_os_error()));
        }
        let ring = NonNull::new(ptr.cast::<u8>()).expect("mmap returned a non-null mapping");
        let capture = Self {
            fd,
            ring,
            ring_len,
            block_size: opts.block_size as usize,
            block_count: opts.block_count as usize,
            next_block: 0,
            totals: CaptureStats::default(),
            loopback_ifindex,
            ifindex,
        };
        // SAFETY: zeroed sockaddr_ll is a valid value; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ALL.to_be();
        sll.sll_ifindex = ifindex.unwrap_or(0);
        // SAFETY: sll is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err("bind(AF_PACKET)")(io::Error::last_os_error()));
        }
        Ok(capture)
    }

    /// Open a capture inside the network namespace `ns` (the socket is created by a thread that
    /// entered it; the descriptor then works from any thread).
    pub fn open_in(ns: &NetnsRef, opts: &CaptureOptions) -> Result<Self, CaptureError> {
        let opts = opts.clone();
        crate::host::netns::run_in(ns, move || Self::open(&opts))?
    }

    /// Open a capture inside the network namespace of `file` (already open: a namespace watched
    /// for long is kept by its descriptor, not looked up again by a path that may name another
    /// by then); `name` is for messages.
    pub fn open_in_file(
        file: &std::fs::File,
        name: &str,
        opts: &CaptureOptions,
    ) -> Result<Self, CaptureError> {
        let opts = opts.clone();
        crate::host::netns::run_in_file(file, name, move || Self::open(&opts))?
    }

    /// Whether frames are ready to be handed over now (no system call: the ring's next block
    /// belongs to user space). A caller polling several captures polls their descriptors
    /// itself and calls [`Capture::poll`] only on those that are ready.
    pub fn ready(&self) -> bool {
        self.block_status(self.next_block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    fn block_status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: every block starts with a tpacket_block_desc; block_status is the first u32 of
        // its header, at offset 8, 4-byte aligned, inside the mapping. The kernel writes it
        // concurrently, hence the atomic view.
        unsafe {
            &*(self
                .ring
                .as_ptr()
                .add(block * self.block_size + 8)
                .cast::<AtomicU32>())
        }
    }

    /// Wait up to `timeout` for frames, then hand every frame of the ready blocks to `each`.
    /// Returns the number of frames handed over (0 on timeout).
    pub fn poll(
        &mut self,
        timeout: Duration,
        each: &mut dyn FnMut(&Frame<'_>),
    ) -> io::Result<usize> {
        if self.block_status(self.next_block).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    return Ok(0);
                }
                return Err(err);
            }
        }
        let mut handed = 0;
        for _ in 0..self.block_count {
            let status = self.block_status(self.next_block);
            if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            handed += self.walk_block(self.next_block, each);
            status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.next_block = (self.next_block + 1) % self.block_count;
        }
        Ok(handed)
    }

    fn walk_block(&self, block: usize, each: &mut dyn FnMut(&Frame<'_>)) -> usize {
        let base = block * self.block_size;
        // SAFETY: the block is ours (TP_STATUS_USER) until we hand it back; walk_block_bytes
        // bounds-checks every offset it reads against the block.
        let block_bytes =
            unsafe { std::slice::from_raw_parts(self.ring.as_ptr().add(base), self.block_size) };
        walk_block_bytes(block_bytes, each)
    }

    /// The kernel's counters for this socket, summed since it was opened.
    pub fn stats(&mut self) -> io::Result<CaptureStats> {
        // SAFETY: zeroed tpacket_stats_v3 is valid; getsockopt fills at most `len` bytes.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // The kernel resets the counters on every read: accumulate.
        self.totals.packets += u64::from(st.tp_packets);
        self.totals.drops += u64::from(st.tp_drops);
        self.totals.freezes += u64::from(st.tp_freeze_q_cnt);
        Ok(self.totals)
    }
}

/// Hand every frame of one TPACKET_V3 block (its bytes, as the kernel filled them) to `each`;
/// returns the number of frames handed over. Every offset is checked against the block, so a
/// corrupt header ends the walk instead of reading out of bounds. Takes bytes so it can be fuzzed.
pub fn walk_block_bytes(block_bytes: &[u8], each: &mut dyn FnMut(&Frame<'_>)) -> usize {
    let u32_at = |off: usize| -> Option<u32> {
        block_bytes
            .get(off..off + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    let u16_at = |off: usize| -> Option<u16> {
        block_bytes
            .get(off..off + 2)
            .map(|b| u16::from_ne_bytes(b.try_into().expect("2 bytes")))
    };
    // tpacket_block_desc: version(4) offset_to_priv(4) then tpacket_hdr_v1:
    // block_status(4) num_pkts(4) offset_to_first_pkt(4) blk_len(4) ...
    let num_pkts = u32_at(12).unwrap_or(0) as usize;
    let mut off = u32_at(16).unwrap_or(0) as usize;
    let mut handed = 0;
    for _ in 0..num_pkts {
        // tpacket3_hdr: next_offset sec nsec snaplen len status (u32 each), mac net (u16),
        // hv1 (12 bytes), padding (8): 48 bytes; sockaddr_ll follows at TPACKET_ALIGN(48).
        let (Some(next), Some(sec), Some(nsec), Some(snaplen), Some(len), Some(mac), Some(net)) = (
            u32_at(off),
            u32_at(off + 4),
            u32_at(off + 8),
            u32_at(off + 12),
            u32_at(off + 16),
            u16_at(off + 24),
            u16_at(off + 26),
        ) else {
            break;
        };
        let sll = off + 48;
        let ifindex = u32_at(sll + 4).unwrap_or(0) as i32;
        let hatype = u16_at(sll + 8).unwrap_or(0);
        let pkttype = block_bytes.get(sll + 10).copied().unwrap_or(0);
        let halen = block_bytes.get(sll + 11).copied().unwrap_or(0).min(8) as usize;
        let link_addr = block_bytes.get(sll + 12..sll + 12 + halen).unwrap_or(&[]);
        let protocol = u16::from_be(u16_at(sll + 2).unwrap_or(0));
        let mac_start = off + mac as usize;
        let net_start = off + net as usize;
        let end = mac_start + snaplen as usize;
        if let Some(ip) = block_bytes.get(net_start..end.max(net_start)) {
            each(&Frame {
                ts: Duration::new(u64::from(sec), nsec),
                ifindex,
                pkttype,
                hatype,
                link_addr,
                protocol,
                ip,
                orig_len: len,
                link_header_len: (net as u32).saturating_sub(mac as u32),
            });
            handed += 1;
        }
        if next == 0 {
            break;
        }
        off += next as usize;
    }
    handed
}

impl AsRawFd for Capture {
    fn as_raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `open`; no borrow of it outlives `&mut self`.
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_len);
        }
    }
}

// ---- the classic BPF program ----

mod bpf {
    pub const LD: u16 = 0x00;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const JEQ: u16 = 0x10;
    pub const JSET: u16 = 0x40;
    pub const K: u16 = 0x00;
    pub const TAX: u16 = 0x00;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    Label(&'static str),
}

/// A tiny assembler: forward jumps to named labels, resolved at the end.
struct Asm {
    ins: Vec<(u16, u32, Target, Target)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    fn new() -> Self {
        Self {
            ins: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.ins.push((code, k, Target::Next, Target::Next));
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.ins.push((code, k, jt, jf));
    }
    fn goto(&mut self, label: &'static str) {
        self.jump(
            bpf::JMP | bpf::JEQ | bpf::K,
            0,
            Target::Label(label),
            Target::Label(label),
        );
    }
    fn label(&mut self, name: &'static str) {
        self.labels.push((name, self.ins.len()));
    }
    fn finish(self) -> Vec<libc::sock_filter> {
        let resolve = |at: usize, t: Target| -> u8 {
            match t {
                Target::Next => 0,
                Target::Label(name) => {
                    let dest = self
                        .labels
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, i)| *i)
                        .unwrap_or_else(|| panic!("bpf label {name} undefined"));
                    u8::try_from(dest - at - 1).expect("bpf jump fits in u8")
                }
            }
        };
        self.ins
            .iter()
            .enumerate()
            .map(|(i, &(code, k, jt, jf))| libc::sock_filter {
                code,
                jt: resolve(i, jt),
                jf: resolve(i, jf),
                k,
            })
            .collect()
    }
}

/// The kernel filter: pass TCP segments with RST set (IPv4 non-fragments, IPv6 with TCP as the
/// next header), optionally to/from `port`, optionally dropping the PACKET_HOST copy on the
/// loopback interface `lo_ifindex`; keep `snaplen` bytes.
pub fn filter_program(
    port: Option<u16>,
    lo_ifindex: Option<i32>,
    snaplen: u32,
) -> Vec<libc::sock_filter> {
    use Target::{Label as L, Next};
    use bpf::*;
    let net = |k: i32| (libc::SKF_NET_OFF + k) as u32;
    let ad = |k: i32| (libc::SKF_AD_OFF + k) as u32;
    let mut a = Asm::new();
    a.stmt(LD | W | ABS, ad(libc::SKF_AD_PROTOCOL));
    a.jump(JMP | JEQ | K, 0x0800, L("v4"), Next);
    a.jump(JMP | JEQ | K, 0x86dd, L("v6"), L("drop"));
    // IPv4: protocol TCP, not a later fragment, RST in the TCP flags.
    a.label("v4");
    a.stmt(LD | B | ABS, net(9));
    a.jump(JMP | JEQ | K, 6, Next, L("drop"));
    a.stmt(LD | H | ABS, net(6));
    a.jump(JMP | JSET | K, 0x1fff, L("drop"), Next);
    a.stmt(LD | B | ABS, net(0));
    a.stmt(ALU | AND | K, 0x0f);
    a.stmt(ALU | LSH | K, 2);
    a.stmt(MISC | TAX, 0);
    a.stmt(LD | B | IND, net(13));
    a.jump(JMP | JSET | K, 0x04, Next, L("drop"));
    if let Some(p) = port {
        a.stmt(LD | H | IND, net(0));
        a.jump(JMP | JEQ | K, u32::from(p), L("dedup"), Next);
        a.stmt(LD | H | IND, net(2));
        a.jump(JMP | JEQ | K, u32::from(p), L("dedup"), L("drop"));
    } else {
        a.goto("dedup");
    }
    // IPv6: next header TCP, RST in the TCP flags (no extension headers).
    a.label("v6");
    a.stmt(LD | B | ABS, net(6));
    a.jump(JMP | JEQ | K, 6, Next, L("drop"));
    a.stmt(LD | B | ABS, net(40 + 13));
    a.jump(JMP | JSET | K, 0x04, Next, L("drop"));
    if let Some(p) = port {
        a.stmt(LD | H | ABS, net(40));
        a.jump(JMP | JEQ | K, u32::from(p), L("dedup"), Next);
        a.stmt(LD | H | ABS, net(42));
        a.jump(JMP | JEQ | K, u32::from(p), L("dedup"), L("drop"));
    }
    a.label("dedup");
    if let Some(lo) = lo_ifindex {
        a.stmt(LD | W | ABS, ad(libc::SKF_AD_PKTTYPE));
        a.jump(
            JMP | JEQ | K,
            u32::from(libc::PACKET_HOST),
            Next,
            L("accept"),
        );
        a.stmt(LD | W | ABS, ad(libc::SKF_AD_IFINDEX));
        a.jump(JMP | JEQ | K, lo as u32, L("drop"), L("accept"));
    }
    a.label("accept");
    a.stmt(RET | K, snaplen);
    a.label("drop");
    a.stmt(RET | K, 0);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reset captured on 6.18 (`lo`, connect to a closed port): 127.0.0.1:9 -> 127.0.0.1:57844.
    const V4_RST: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xce, 127, 0, 0, 1, 127,
        0, 0, 1, 0x00, 0x09, 0xe1, 0xf4, 0x00, 0x00, 0x00, 0x00, 0x5e, 0x4f, 0x36, 0x2a, 0x50,
        0x14, 0x00, 0x00, 0xfe, 0x1c, 0x00, 0x00,
    ];

    #[test]
    fn parses_ipv4_reset() {
        let seg = parse_rst(&V4_RST).unwrap();
        assert_eq!(seg.src, "127.0.0.1:9".parse().unwrap());
        assert_eq!(seg.dst, "127.0.0.1:57844".parse().unwrap());
        assert_eq!(seg.seq, 0);
        assert_eq!(seg.ack, Some(0x5e4f362a));
        assert_eq!(seg.payload_len, 0);
    }

    #[test]
    fn parses_ipv6_reset() {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        p.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        p.extend_from_slice(&[
            0x01, 0xbb, 0x86, 0x84, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x04, 0, 0, 0, 0, 0, 0,
        ]);
        let seg = parse_rst(&p).unwrap();
        assert_eq!(seg.src, "[::1]:443".parse().unwrap());
        assert_eq!(seg.dst, "[::1]:34436".parse().unwrap());
        assert_eq!(seg.seq, 7);
        assert_eq!(seg.ack, None);
    }

    #[test]
    fn rejects_non_resets_and_garbage() {
        let mut syn = V4_RST;
        syn[33] = 0x02;
        assert_eq!(parse_rst(&syn), Err(ParseError::NoRst));
        let mut udp = V4_RST;
        udp[9] = 17;
        assert!(parse_rst(&udp).is_err());
        for n in 0..V4_RST.len() {
            let _ = parse_rst(&V4_RST[..n]);
        }
        assert!(parse_rst(&[]).is_err());
        assert!(parse_rst(&[0xff; 64]).is_err());
    }

    #[test]
    fn filter_jumps_resolve() {
        for port in [None, Some(80)] {
            for lo in [None, Some(1)] {
                let prog = filter_program(port, lo, 256);
                assert!(prog.len() < 64);
                let last = prog.last().unwrap();
                assert_eq!((last.code, last.k), (bpf::RET | bpf::K, 0));
                for (i, ins) in prog.iter().enumerate() {
                    if ins.code & 0x07 != bpf::JMP {
                        continue;
                    }
                    assert!(i + 1 + usize::from(ins.jt) < prog.len());
                    assert!(i + 1 + usize::from(ins.jf) < prog.len());
                }
            }
        }
    }
}
