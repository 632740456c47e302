//! The binary trace: pages of `per_cpu/cpuN/trace_pipe_raw` decoded into [`TraceEvent`]s with
//! the field offsets of the events' `format` files. Pure decoding, no I/O.
//!
//! The kernel then copies pages instead of formatting every event as text, and nothing is
//! parsed back from text: this is what keeps the live check's cost per reset low under a
//! flood. The page layout (`events/header_page`) and the record header (`events/header_event`)
//! are the ring buffer's: a page starts with its timestamp and its commit (the length of the
//! data, and flags in the top bits), then records, each with a 32-bit header of a 5-bit type
//! and a 27-bit time delta.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::intern;
use super::layout::{Field, Layout, LayoutError, symbol_table};
use super::{NewTask, ReceiveReset, SendReset, TaskContext, TaskRename, TraceEvent};

/// `events/header_page`: where the commit and the data are in a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    pub commit: Field,
    pub data: Field,
}

impl PageLayout {
    /// Parse `events/header_page` (its `field: TYPE NAME; offset:N; size:N;` lines).
    pub fn parse(header_page: &str) -> Result<Self, LayoutError> {
        // The file has no ID line; give it one so the field parser reads it.
        let l = Layout::parse(&format!(
            "ID: 0\n{}",
            header_page.replace("field: ", "field:")
        ))?;
        Ok(Self {
            commit: l.need("commit", &[4, 8], "4 or 8")?,
            data: l.get("data").ok_or(LayoutError::MissingField("data"))?,
        })
    }

    /// Bytes of one page as `trace_pipe_raw` returns it.
    pub fn page_size(&self) -> usize {
        self.data.offset + self.data.size
    }
}

/// Where the addresses of a reset event are.
#[derive(Debug, Clone)]
enum Addrs {
    /// Since 6.10 (`tcp_send_reset`): `saddr`/`daddr` hold a `struct sockaddr_in` or
    /// `sockaddr_in6`.
    Sockaddr { saddr: Field, daddr: Field },
    /// The socket's fields (`tcp_event_sk`, `tcp_event_sk_skb` before 6.10): ports in host
    /// order, the family, and both the IPv4 and the IPv6 (v4-mapped for IPv4) addresses.
    Split {
        sport: Field,
        dport: Field,
        family: Field,
        saddr: Field,
        daddr: Field,
        saddr_v6: Field,
        daddr_v6: Field,
    },
}

impl Addrs {
    fn of(l: &Layout) -> Result<Self, LayoutError> {
        if let (Some(s), Some(d)) = (l.get("saddr"), l.get("daddr"))
            && s.size >= 16
            && d.size >= 16
        {
            return Ok(Self::Sockaddr { saddr: s, daddr: d });
        }
        Ok(Self::Split {
            sport: l.need("sport", &[2], "2")?,
            dport: l.need("dport", &[2], "2")?,
            family: l.need("family", &[2], "2")?,
            saddr: l.need("saddr", &[4], "4")?,
            daddr: l.need("daddr", &[4], "4")?,
            saddr_v6: l.need("saddr_v6", &[16], "16")?,
            daddr_v6: l.need("daddr_v6", &[16], "16")?,
        })
    }

    fn read(&self, rec: &[u8]) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match self {
            Self::Sockaddr { saddr, daddr } => (sockaddr(rec, *saddr), sockaddr(rec, *daddr)),
            Self::Split {
                sport,
                dport,
                family,
                saddr,
                daddr,
                saddr_v6,
                daddr_v6,
            } => {
                let v6 = uint(rec, *family) == Some(AF_INET6);
                let port = |f: Field| uint(rec, f).map(|p| p as u16);
                let ip = |v4: Field, v6f: Field| -> Option<IpAddr> {
                    if v6 {
                        Some(IpAddr::V6(Ipv6Addr::from(bytes::<16>(rec, v6f)?)))
                    } else {
                        Some(IpAddr::V4(Ipv4Addr::from(bytes::<4>(rec, v4)?)))
                    }
                };
                let addr = |a: Option<IpAddr>, p: Option<u16>| Some(SocketAddr::new(a?, p?));
                (
                    addr(ip(*saddr, *saddr_v6), port(*sport)),
                    addr(ip(*daddr, *daddr_v6), port(*dport)),
                )
            }
        }
    }
}

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

/// TCP states (`include/net/tcp_states.h`, part of the ABI), used where this kernel's format
/// prints them by name without numbers.
const TCP_STATES: [&str; 14] = [
    "UNKNOWN",
    "TCP_ESTABLISHED",
    "TCP_SYN_SENT",
    "TCP_SYN_RECV",
    "TCP_FIN_WAIT1",
    "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT",
    "TCP_CLOSE",
    "TCP_CLOSE_WAIT",
    "TCP_LAST_ACK",
    "TCP_LISTEN",
    "TCP_CLOSING",
    "TCP_NEW_SYN_RECV",
    "TCP_BOUND_INACTIVE",
];

#[derive(Debug, Clone)]
struct SendLayout {
    id: u16,
    skbaddr: Field,
    skaddr: Field,
    state: Field,
    reason: Option<(Field, HashMap<u64, &'static str>)>,
    addrs: Addrs,
}

#[derive(Debug, Clone)]
struct ReceiveLayout {
    id: u16,
    addrs: Addrs,
    sock_cookie: Option<Field>,
}

#[derive(Debug, Clone)]
struct NewTaskLayout {
    id: u16,
    pid: Field,
    comm: Field,
    clone_flags: Field,
}

#[derive(Debug, Clone)]
struct RenameLayout {
    id: u16,
    pid: Field,
    newcomm: Field,
}

/// Decodes records of the events it was given formats for.
#[derive(Debug, Clone)]
pub struct RawDecoder {
    page: PageLayout,
    pid: Field,
    flags: Field,
    send: Option<SendLayout>,
    receive: Option<ReceiveLayout>,
    newtask: Option<NewTaskLayout>,
    rename: Option<RenameLayout>,
    /// Shared names: events carry a reference, not a copy.
    states: Vec<&'static str>,
}

/// The `format` files of the events to decode (`None` for an event not enabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFormats<'a> {
    pub header_page: &'a str,
    pub send_reset: Option<&'a str>,
    pub receive_reset: Option<&'a str>,
    pub task_newtask: Option<&'a str>,
    pub task_rename: Option<&'a str>,
}

/// Why the binary trace cannot be decoded (the text pipe is used instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event}: {error}")]
pub struct RawLayoutError {
    pub event: &'static str,
    pub error: LayoutError,
}

fn at(event: &'static str) -> impl Fn(LayoutError) -> RawLayoutError {
    move |error| RawLayoutError { event, error }
}

impl RawDecoder {
    pub fn new(f: &RawFormats) -> Result<Self, RawLayoutError> {
        let page = PageLayout::parse(f.header_page).map_err(at("header_page"))?;
        let mut common = None;
        let mut send = None;
        if let Some(text) = f.send_reset {
            let l = Layout::parse(text).map_err(at("tcp_send_reset"))?;
            let e = at("tcp_send_reset");
            let reason = l.get("reason").map(|field| {
                let table = symbol_table(text, "reason").unwrap_or_default();
                (
                    field,
                    table
                        .into_iter()
                        .map(|(n, s)| (n, intern::name(&s)))
                        .collect(),
                )
            });
            send = Some(SendLayout {
                id: l.id,
                skbaddr: l.need("skbaddr", &[8, 4], "a pointer").map_err(&e)?,
                skaddr: l.need("skaddr", &[8, 4], "a pointer").map_err(&e)?,
                state: l.need("state", &[4], "4").map_err(&e)?,
                reason,
                addrs: Addrs::of(&l).map_err(&e)?,
            });
            common = Some(l);
        }
        let mut receive = None;
        if let Some(text) = f.receive_reset {
            let l = Layout::parse(text).map_err(at("tcp_receive_reset"))?;
            receive = Some(ReceiveLayout {
                id: l.id,
                addrs: Addrs::of(&l).map_err(at("tcp_receive_reset"))?,
                sock_cookie: l.get("sock_cookie").filter(|f| f.size == 8),
            });
            common = common.or(Some(l));
        }
        let mut newtask = None;
        if let Some(text) = f.task_newtask {
            let l = Layout::parse(text).map_err(at("task_newtask"))?;
            let e = at("task_newtask");
            newtask = Some(NewTaskLayout {
                id: l.id,
                pid: l.need("pid", &[4], "4").map_err(&e)?,
                comm: l.need("comm", &[16], "16").map_err(&e)?,
                clone_flags: l.need("clone_flags", &[4, 8], "4 or 8").map_err(&e)?,
            });
        }
        let mut rename = None;
        if let Some(text) = f.task_rename {
            let l = Layout::parse(text).map_err(at("task_rename"))?;
            let e = at("task_rename");
            rename = Some(RenameLayout {
                id: l.id,
                pid: l.need("pid", &[4], "4").map_err(&e)?,
                newcomm: l.need("newcomm", &[16], "16").map_err(&e)?,
            });
        }
        let common = common.ok_or(RawLayoutError {
            event: "tcp_send_reset",
            error: LayoutError::MissingField("common_pid"),
        })?;
        let e = at("common fields");
        Ok(Self {
            page,
            pid: common.need("common_pid", &[4], "4").map_err(&e)?,
            flags: common.need("common_flags", &[1], "1").map_err(&e)?,
            send,
            receive,
            newtask,
            rename,
            states: TCP_STATES.to_vec(),
        })
    }

    /// Bytes of one page.
    pub fn page_size(&self) -> usize {
        self.page.page_size()
    }

    /// Decode one page read from CPU `cpu`'s `trace_pipe_raw`. Records of other events are
    /// skipped; a page cut short ends the walk (its records so far are kept). Returns the
    /// number of records that were not understood.
    pub fn page(&self, page: &[u8], cpu: u32, out: &mut impl FnMut(TraceEvent)) -> u64 {
        let Some(mut ts) = le(page, 0, 8) else {
            return 1;
        };
        let Some(commit) = le(page, self.page.commit.offset, self.page.commit.size) else {
            return 1;
        };
        let len = (commit & ((1 << 27) - 1)) as usize;
        let start = self.page.data.offset;
        let end = (start + len).min(page.len());
        let mut bad = 0;
        let mut off = start;
        while off + 4 <= end {
            let hdr = le(page, off, 4).unwrap_or(0);
            let type_len = (hdr & 0x1f) as usize;
            let delta = hdr >> 5;
            let array0 = le(page, off + 4, 4);
            match type_len {
                // Padding: the rest of the page when its delta is 0, else a discarded record.
                29 => match (delta, array0) {
                    (0, _) | (_, None) => break,
                    (_, Some(n)) => off += 4 + n as usize,
                },
                30 => {
                    let Some(ext) = array0 else { break };
                    ts = ts.wrapping_add((ext << 27) + delta);
                    off += 8;
                }
                31 => {
                    let Some(ext) = array0 else { break };
                    ts = (ts & !((1u64 << 59) - 1)) | (ext << 27) | delta;
                    off += 8;
                }
                0 => {
                    let Some(n) = array0 else { break };
                    let n = n as usize;
                    if n < 4 {
                        break;
                    }
                    ts = ts.wrapping_add(delta);
                    let from = off + 8;
                    let to = (off + 4 + n).min(end);
                    if from <= to && !self.record(&page[from..to], ts, cpu, out) {
                        bad += 1;
                    }
                    off += 4 + ((n + 3) & !3);
                }
                n => {
                    ts = ts.wrapping_add(delta);
                    let to = (off + 4 + n * 4).min(end);
                    if !self.record(&page[off + 4..to], ts, cpu, out) {
                        bad += 1;
                    }
                    off += 4 + n * 4;
                }
            }
        }
        bad
    }

    /// One record; false when it is one of ours but too short to read.
    fn record(&self, rec: &[u8], ts_ns: u64, cpu: u32, out: &mut impl FnMut(TraceEvent)) -> bool {
        let Some(kind) = le(rec, 0, 2).map(|t| t as u16) else {
            return false;
        };
        let task = || -> Option<TaskContext> {
            let flags = uint(rec, self.flags)?;
            let in_interrupt = flags & (FLAG_HARDIRQ | FLAG_SOFTIRQ | FLAG_NMI) != 0;
            Some(TaskContext {
                comm: Cow::Borrowed(UNKNOWN_COMM),
                tid: uint(rec, self.pid)? as u32,
                cpu,
                in_interrupt,
                bh_disabled: !in_interrupt && flags & FLAG_BH_OFF != 0,
                ts: ts_ns as f64 / 1e9,
            })
        };
        if let Some(s) = self.send.as_ref().filter(|s| s.id == kind) {
            let ev = (|| {
                let (src, dst) = s.addrs.read(rec);
                let state = uint(rec, s.state)? as usize;
                Some(SendReset {
                    task: task()?,
                    has_skb: uint(rec, s.skbaddr)? != 0,
                    has_sock: uint(rec, s.skaddr)? != 0,
                    src,
                    dst,
                    state: Some(
                        self.states
                            .get(state)
                            .copied()
                            .unwrap_or_else(|| intern::name(&format!("0x{state:x}"))),
                    ),
                    reason: match &s.reason {
                        None => None,
                        Some((f, table)) => {
                            let n = uint(rec, *f)?;
                            Some(
                                table
                                    .get(&n)
                                    .copied()
                                    .unwrap_or_else(|| intern::name(&format!("0x{n:x}"))),
                            )
                        }
                    },
                })
            })();
            return ev.map(|e| out(TraceEvent::SendReset(e))).is_some();
        }
        if let Some(r) = self.receive.as_ref().filter(|r| r.id == kind) {
            let ev = (|| {
                let (local, remote) = r.addrs.read(rec);
                Some(ReceiveReset {
                    task: task()?,
                    local,
                    remote,
                    sock_cookie: r.sock_cookie.and_then(|f| uint(rec, f)),
                })
            })();
            return ev.map(|e| out(TraceEvent::ReceiveReset(e))).is_some();
        }
        if let Some(t) = self.newtask.as_ref().filter(|t| t.id == kind) {
            let ev = (|| {
                Some(NewTask {
                    parent_tid: uint(rec, self.pid)? as u32,
                    tid: uint(rec, t.pid)? as u32,
                    comm: comm(rec, t.comm)?,
                    thread: uint(rec, t.clone_flags)? & CLONE_THREAD != 0,
                })
            })();
            return ev.map(|e| out(TraceEvent::NewTask(e))).is_some();
        }
        if let Some(t) = self.rename.as_ref().filter(|t| t.id == kind) {
            let ev = (|| {
                Some(TaskRename {
                    tid: uint(rec, t.pid)? as u32,
                    comm: comm(rec, t.newcomm)?,
                })
            })();
            return ev.map(|e| out(TraceEvent::Rename(e))).is_some();
        }
        true
    }
}

/// The name given to a task when the trace has none (as ftrace prints it).
pub const UNKNOWN_COMM: &str = "<...>";

const FLAG_HARDIRQ: u64 = 0x08;
const FLAG_SOFTIRQ: u64 = 0x10;
const FLAG_NMI: u64 = 0x40;
const FLAG_BH_OFF: u64 = 0x80;
const CLONE_THREAD: u64 = 0x0001_0000;

/// A little-endian unsigned value of `size` bytes at `off`.
fn le(b: &[u8], off: usize, size: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(size)?)?;
    Some(
        s.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

fn uint(rec: &[u8], f: Field) -> Option<u64> {
    le(rec, f.offset, f.size)
}

fn bytes<const N: usize>(rec: &[u8], f: Field) -> Option<[u8; N]> {
    rec.get(f.offset..f.offset + N)?.try_into().ok()
}

fn comm(rec: &[u8], f: Field) -> Option<String> {
    let raw = rec.get(f.offset..f.offset + f.size)?;
    let n = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    Some(String::from_utf8_lossy(&raw[..n]).into_owned())
}

/// A `struct sockaddr_in` / `sockaddr_in6` as the kernel stores it in the event (family in
/// host order, port in network order); `None` for an empty one.
fn sockaddr(rec: &[u8], f: Field) -> Option<SocketAddr> {
    let b = rec.get(f.offset..f.offset + f.size)?;
    let family = u64::from(u16::from_ne_bytes([b[0], b[1]]));
    let port = u16::from_be_bytes([b[2], b[3]]);
    match family {
        AF_INET => {
            let a: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(a.into()), port))
        }
        AF_INET6 => {
            let a: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(a.into()), port))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
