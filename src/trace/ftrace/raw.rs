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
use super::{
    KernelStack, NewTask, ReceiveReset, SendReset, SiteFn, SiteValues, TCP_STATES, TaskContext,
    TaskRename, TraceEvent, frame_of_index,
};
use crate::host::kallsyms::Symbols;

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
    /// order, the family (since 5.11; before, the IPv6 field tells: IPv4-mapped for an IPv4
    /// socket), and both the IPv4 and the IPv6 addresses.
    Split {
        sport: Field,
        dport: Field,
        family: Option<Field>,
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
            family: l.get("family").filter(|f| f.size == 2),
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
                let v6 = match family {
                    Some(f) => uint(rec, *f) == Some(AF_INET6),
                    None => bytes::<16>(rec, *saddr_v6)
                        .is_some_and(|a| super::line::is_own_v6(Ipv6Addr::from(a))),
                };
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

/// A reset site's kprobe event: its id and where each value it read lies.
#[derive(Debug, Clone)]
struct SiteLayout {
    id: u16,
    function: SiteFn,
    fields: Vec<(&'static str, Field)>,
}

/// The names of the values each site's kprobe reads (`probes::definition`).
fn site_value_names(function: SiteFn) -> &'static [&'static str] {
    match function {
        SiteFn::V4Reply => &[
            "sk", "state", "th_sport", "th_dport", "ip_vihl", "ip_saddr", "ip_daddr",
        ],
        SiteFn::V6Reply => &[
            "sk",
            "state",
            "th_sport",
            "th_dport",
            "ip_vtc",
            "ip_nexthdr",
            "ip_saddr_hi",
            "ip_saddr_lo",
            "ip_daddr_hi",
            "ip_daddr_lo",
        ],
        SiteFn::Active => &[
            "sk",
            "state",
            "family",
            "sport",
            "dport",
            "saddr",
            "daddr",
            "saddr6_hi",
            "saddr6_lo",
            "daddr6_hi",
            "daddr6_lo",
            "rcv_nxt",
            "copied_seq",
            "linger2",
        ],
    }
}

impl SiteLayout {
    fn values(&self, rec: &[u8]) -> Option<SiteValues> {
        let mut v = SiteValues::default();
        for (name, f) in &self.fields {
            let n = uint(rec, *f)?;
            match *name {
                "sk" => v.sk = n,
                "state" => v.state = n,
                "th_sport" => v.th_sport = n,
                "th_dport" => v.th_dport = n,
                "ip_vihl" | "ip_vtc" => v.ip_first = n,
                "ip_nexthdr" => v.ip_nexthdr = n,
                "ip_saddr" => v.ip_saddr = n,
                "ip_daddr" => v.ip_daddr = n,
                "ip_saddr_hi" => v.ip_saddr6.0 = n,
                "ip_saddr_lo" => v.ip_saddr6.1 = n,
                "ip_daddr_hi" => v.ip_daddr6.0 = n,
                "ip_daddr_lo" => v.ip_daddr6.1 = n,
                "family" => v.family = n,
                "sport" => v.sport = n,
                "dport" => v.dport = n,
                "saddr" => v.saddr = n,
                "daddr" => v.daddr = n,
                "saddr6_hi" => v.saddr6.0 = n,
                "saddr6_lo" => v.saddr6.1 = n,
                "daddr6_hi" => v.daddr6.0 = n,
                "daddr6_lo" => v.daddr6.1 = n,
                "rcv_nxt" => v.rcv_nxt = n,
                "copied_seq" => v.copied_seq = n,
                "linger2" => v.linger2 = i64::from(n as u32 as i32),
                _ => {}
            }
        }
        Some(v)
    }
}

/// `ftrace/kernel_stack`: the number of return addresses, and where they start.
#[derive(Debug, Clone)]
struct StackLayout {
    id: u16,
    size: Field,
    caller: Field,
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
    sites: Vec<SiteLayout>,
    stack: Option<StackLayout>,
    /// Names the functions of a stack's return addresses (none: every frame is unnamed).
    symbols: Option<std::sync::Arc<Symbols>>,
    /// Shared names: events carry a reference, not a copy.
    states: Vec<&'static str>,
}

/// The `format` files of the events to decode (`None` for an event not enabled).
#[derive(Debug, Clone, Default)]
pub struct RawFormats<'a> {
    pub header_page: &'a str,
    pub send_reset: Option<&'a str>,
    pub receive_reset: Option<&'a str>,
    pub task_newtask: Option<&'a str>,
    pub task_rename: Option<&'a str>,
    /// The reset sites' kprobe events, when they are probed.
    pub sites: &'a [(SiteFn, &'a str)],
    /// `ftrace/kernel_stack`, when the sites' stacks are recorded.
    pub kernel_stack: Option<&'a str>,
    /// Function starts for naming the stacks' return addresses ([`frame_names`] asked for).
    pub symbols: Option<std::sync::Arc<Symbols>>,
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
        let mut sites = Vec::new();
        for &(function, text) in f.sites {
            let event = function.event_name();
            let l = Layout::parse(text).map_err(at(event))?;
            let fields = site_value_names(function)
                .iter()
                .map(|n| {
                    l.get(n)
                        .filter(|f| matches!(f.size, 1 | 2 | 4 | 8))
                        .map(|f| (*n, f))
                        .ok_or(RawLayoutError {
                            event,
                            error: LayoutError::MissingField(n),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            sites.push(SiteLayout {
                id: l.id,
                function,
                fields,
            });
            common = common.or(Some(l));
        }
        let stack = match f.kernel_stack {
            None => None,
            Some(text) => {
                let l = Layout::parse(text).map_err(at("kernel_stack"))?;
                let e = at("kernel_stack");
                Some(StackLayout {
                    id: l.id,
                    size: l.need("size", &[4], "4").map_err(&e)?,
                    caller: l
                        .get("caller")
                        .ok_or(LayoutError::MissingField("caller"))
                        .map_err(&e)?,
                })
            }
        };
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
            sites,
            stack,
            symbols: f.symbols.clone(),
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
                    site: None,
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
        if let Some(l) = self.sites.iter().find(|l| l.id == kind) {
            let ev = (|| Some(l.values(rec)?.event(l.function, task()?, &self.states)))();
            return ev.map(|e| out(TraceEvent::SendReset(e))).is_some();
        }
        if let Some(l) = self.stack.as_ref().filter(|l| l.id == kind) {
            let Some(n) = uint(rec, l.size) else {
                return false;
            };
            // The record holds `size` return addresses (the format's `caller[8]` is a minimum).
            let room = rec.len().saturating_sub(l.caller.offset) / 8;
            let frames = (0..(n as usize).min(room))
                .filter_map(|i| le(rec, l.caller.offset + 8 * i, 8))
                .map(|addr| frame_of_index(self.symbols.as_ref().and_then(|s| s.lookup(addr))))
                .collect();
            out(TraceEvent::Stack(KernelStack { cpu, frames }));
            return true;
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
