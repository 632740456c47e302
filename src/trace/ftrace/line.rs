//! The trace text: one line of `trace_pipe` into a [`TraceEvent`] (with or without a reason,
//! as kernels before and since 6.10 print it). Pure parsing, no I/O.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};

use std::borrow::Cow;

use super::intern;
use super::{NewTask, ReceiveReset, SendReset, TaskContext, TaskRename, TraceEvent};

/// Why a trace line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("no [cpu] field")]
    NoCpu,
    #[error("no comm-pid field")]
    NoTask,
    #[error("bad pid in {0:?}")]
    BadPid(String),
    #[error("bad cpu field")]
    BadCpu,
    #[error("no timestamp")]
    NoTimestamp,
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
    /// A field the event always prints is not there.
    #[error("no {0}")]
    Missing(&'static str),
}

/// Parse one `trace_pipe` line. `Ok(None)` for lines of other events and comments.
pub fn parse_line(line: &str) -> Result<Option<TraceEvent>, LineError> {
    let line = line.trim_end();
    if line.trim_start().starts_with('#') || line.trim().is_empty() {
        return Ok(None);
    }
    // "CPU:N [LOST M EVENTS]": the kernel overwrote events before they were read. They are
    // counted from the instance's per-CPU stats (overrun), not here.
    if line.starts_with("CPU:") && line.contains(" [LOST ") {
        return Ok(None);
    }
    // "<comm>-<tid> [cpu] flags ts: event: fields". The comm may contain spaces and dashes:
    // find the "[NNN]" cpu field and split around it.
    let cpu_open = line.find(" [").ok_or(LineError::NoCpu)?;
    let cpu_close = line[cpu_open..].find(']').ok_or(LineError::NoCpu)? + cpu_open;
    let task = line[..cpu_open].trim();
    let (comm, tid) = task.rsplit_once('-').ok_or(LineError::NoTask)?;
    let tid: u32 = tid
        .trim()
        .parse()
        .map_err(|_| LineError::BadPid(task.to_string()))?;
    let cpu: u32 = line[cpu_open + 2..cpu_close]
        .trim()
        .parse()
        .map_err(|_| LineError::BadCpu)?;
    let rest = line[cpu_close + 1..].trim_start();
    let (head, body) = rest.split_once(": ").ok_or(LineError::NoTimestamp)?;
    let mut head_parts = head.split_whitespace();
    let first = head_parts.next().ok_or(LineError::NoTimestamp)?;
    let (flags, ts) = match head_parts.next() {
        Some(ts) => (first, ts),
        None => ("", first),
    };
    let ts: f64 = ts
        .parse()
        .map_err(|_| LineError::BadTimestamp(ts.to_string()))?;
    // irq-info flags: irqs-off, need-resched, hardirq/softirq, preempt, migrate.
    let in_interrupt = flags
        .chars()
        .nth(2)
        .is_some_and(|c| matches!(c, 'h' | 'H' | 's' | 'z' | 'Z'));
    let bh_disabled = !in_interrupt && flags.chars().next().is_some_and(|c| matches!(c, 'b' | 'D'));
    let (event, fields) = body.split_once(": ").unwrap_or((body, ""));
    let task = TaskContext {
        comm: Cow::Owned(comm.trim().to_owned()),
        tid,
        cpu,
        in_interrupt,
        bh_disabled,
        ts,
    };
    let kv = |key: &str| -> Option<&str> {
        fields
            .split(' ')
            .find_map(|f| f.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    match event.trim() {
        "tcp_send_reset" => {
            // Since 6.10: `src=ADDR:PORT dest=ADDR:PORT ... reason=...`. Before: the fields of
            // the socket (`family= sport= dport= saddr= daddr= saddrv6= daddrv6=`), no reason.
            let (src, dst) = match (kv("src"), kv("dest")) {
                (Some(s), Some(d)) => (parse_sockaddr(s), parse_sockaddr(d)),
                _ => socket_fields(&kv),
            };
            // Every kernel prints both ends: a line without them was cut or changed.
            if src.is_none() || dst.is_none() {
                return Err(LineError::Missing("src/dest"));
            }
            Ok(Some(TraceEvent::SendReset(SendReset {
                task,
                has_skb: kv("skbaddr").is_some_and(|p| !is_null_ptr(p)),
                has_sock: kv("skaddr").is_some_and(|p| !is_null_ptr(p)),
                src,
                dst,
                state: kv("state").map(intern::name),
                reason: kv("reason").map(intern::name),
                site: None,
            })))
        }
        "tcp_receive_reset" => {
            let (local, remote) = socket_fields(&kv);
            if local.is_none() || remote.is_none() {
                return Err(LineError::Missing("saddr/daddr"));
            }
            Ok(Some(TraceEvent::ReceiveReset(ReceiveReset {
                task,
                local,
                remote,
                sock_cookie: kv("sock_cookie").and_then(|c| u64::from_str_radix(c, 16).ok()),
            })))
        }
        "<stack trace>" => Ok(Some(TraceEvent::Stack(super::KernelStack {
            cpu,
            frames: Vec::new(),
        }))),
        name if super::SiteFn::from_event_name(name).is_some() => {
            let function = super::SiteFn::from_event_name(name).expect("checked");
            Ok(Some(TraceEvent::SendReset(
                site_values(&kv, function)?.event(function, task, &super::TCP_STATES),
            )))
        }
        "task_newtask" => {
            // `pid=N comm=NAME clone_flags=HEX oom_score_adj=N`: the name may hold spaces.
            let comm = between(fields, "comm=", " clone_flags=");
            Ok(Some(TraceEvent::NewTask(NewTask {
                parent_tid: tid,
                tid: kv("pid")
                    .and_then(|p| p.parse().ok())
                    .ok_or(LineError::Missing("pid"))?,
                comm: comm.ok_or(LineError::Missing("comm"))?.to_string(),
                thread: kv("clone_flags")
                    .and_then(|f| u64::from_str_radix(f, 16).ok())
                    .ok_or(LineError::Missing("clone_flags"))?
                    & 0x0001_0000
                    != 0,
            })))
        }
        "task_rename" => Ok(Some(TraceEvent::Rename(TaskRename {
            tid: kv("pid")
                .and_then(|p| p.parse().ok())
                .ok_or(LineError::Missing("pid"))?,
            comm: between(fields, "newcomm=", " oom_score_adj=")
                .ok_or(LineError::Missing("newcomm"))?
                .to_string(),
        }))),
        _ => Ok(None),
    }
}

/// The values a reset site's kprobe printed (`sk=0x0 state=0 th_sport=19128 ...`: hexadecimal
/// with `0x`, decimal otherwise).
fn site_values<'a>(
    kv: &impl Fn(&str) -> Option<&'a str>,
    function: super::SiteFn,
) -> Result<super::SiteValues, LineError> {
    let num = |k: &'static str| -> Result<u64, LineError> {
        let v = kv(k).ok_or(LineError::Missing(k))?;
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => v
                .parse::<u64>()
                .or_else(|e| v.parse::<i64>().map(|n| n as u64).map_err(|_| e)),
        }
        .map_err(|_| LineError::Missing(k))
    };
    let pair = |hi: &'static str, lo: &'static str| Ok::<_, LineError>((num(hi)?, num(lo)?));
    let mut v = super::SiteValues {
        sk: num("sk")?,
        state: num("state")?,
        ..Default::default()
    };
    match function {
        super::SiteFn::V4Reply => {
            v.th_sport = num("th_sport")?;
            v.th_dport = num("th_dport")?;
            v.ip_first = num("ip_vihl")?;
            v.ip_saddr = num("ip_saddr")?;
            v.ip_daddr = num("ip_daddr")?;
        }
        super::SiteFn::V6Reply => {
            v.th_sport = num("th_sport")?;
            v.th_dport = num("th_dport")?;
            v.ip_first = num("ip_vtc")?;
            v.ip_nexthdr = num("ip_nexthdr")?;
            v.ip_saddr6 = pair("ip_saddr_hi", "ip_saddr_lo")?;
            v.ip_daddr6 = pair("ip_daddr_hi", "ip_daddr_lo")?;
        }
        super::SiteFn::Active => {
            v.family = num("family")?;
            v.sport = num("sport")?;
            v.dport = num("dport")?;
            v.saddr = num("saddr")?;
            v.daddr = num("daddr")?;
            v.saddr6 = pair("saddr6_hi", "saddr6_lo")?;
            v.daddr6 = pair("daddr6_hi", "daddr6_lo")?;
            v.rcv_nxt = num("rcv_nxt")?;
            v.copied_seq = num("copied_seq")?;
            v.linger2 = num("linger2")? as i64;
        }
    }
    Ok(v)
}

/// The trace text, line by line: [`parse_line`] for each line, and the frames of a
/// `<stack trace>` entry (the ` => function` lines after it) gathered into its
/// [`TraceEvent::Stack`], which comes out when the next entry begins (or at [`TextParser::finish`]).
#[derive(Debug, Default)]
pub struct TextParser {
    stack: Option<super::KernelStack>,
}

impl TextParser {
    /// One line (without its newline).
    pub fn line(&mut self, line: &str, out: &mut impl FnMut(Result<TraceEvent, LineError>)) {
        if let Some(frame) = line.trim_start().strip_prefix("=> ") {
            if let Some(stack) = self.stack.as_mut() {
                stack.frames.push(super::Frame::from_name(frame));
            }
            return;
        }
        self.finish(out);
        match parse_line(line) {
            Ok(Some(TraceEvent::Stack(s))) => self.stack = Some(s),
            Ok(Some(ev)) => out(Ok(ev)),
            Ok(None) => {}
            Err(e) => out(Err(e)),
        }
    }

    /// Hand out the stack being gathered, if any.
    pub fn finish(&mut self, out: &mut impl FnMut(Result<TraceEvent, LineError>)) {
        if let Some(s) = self.stack.take() {
            out(Ok(TraceEvent::Stack(s)));
        }
    }
}

/// The text between `from` and the last `to` (a task name that may hold spaces).
fn between<'a>(fields: &'a str, from: &str, to: &str) -> Option<&'a str> {
    let start = fields.find(from)? + from.len();
    let end = fields.rfind(to).filter(|&e| e >= start)?;
    Some(&fields[start..end])
}

/// Local and remote end from the socket fields (`tcp_receive_reset` on every kernel,
/// `tcp_send_reset` before 6.10): `family=AF_INET sport=80 dport=5000 saddr=... daddr=...
/// saddrv6=... daddrv6=...`. The IPv6 pair for AF_INET6 (an IPv4-mapped one is kept as printed
/// and made plain by the matcher), the IPv4 pair otherwise. Kernels before 5.11 print no
/// `family`: the IPv6 pair of an IPv4 socket is then IPv4-mapped, of an IPv6 socket its own.
pub(super) fn socket_fields<'a>(
    kv: &impl Fn(&str) -> Option<&'a str>,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let port = |k: &str| kv(k).and_then(|p| p.parse::<u16>().ok());
    let v6 = match kv("family") {
        Some(family) => family == "AF_INET6",
        None => match kv("saddrv6").and_then(|a| a.parse::<std::net::Ipv6Addr>().ok()) {
            Some(a) => is_own_v6(a),
            None => kv("saddr").is_none(),
        },
    };
    let (sa, da) = if v6 {
        (kv("saddrv6"), kv("daddrv6"))
    } else {
        (kv("saddr"), kv("daddr"))
    };
    let addr = |a: Option<&str>, p: Option<u16>| -> Option<SocketAddr> {
        Some(SocketAddr::new(a?.parse::<IpAddr>().ok()?, p?))
    };
    (addr(sa, port("sport")), addr(da, port("dport")))
}

/// Whether the IPv6 field of a trace event without a family holds an IPv6 socket's own address:
/// not IPv4-mapped (an IPv4 socket) and not all zero.
pub(super) fn is_own_v6(a: std::net::Ipv6Addr) -> bool {
    a.to_ipv4_mapped().is_none() && !a.is_unspecified()
}

pub(super) fn is_null_ptr(p: &str) -> bool {
    p.trim_start_matches("0x").chars().all(|c| c == '0') || p == "(nil)"
}

/// `127.0.0.1:9`, `[::1]:443` as printed by `%pISpc`.
pub(super) fn parse_sockaddr(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// Parse every event in a trace text (for tests and offline use). Bad lines are returned as
/// `(line number, message)`.
pub fn parse_all(reader: impl BufRead) -> (Vec<TraceEvent>, Vec<(usize, LineError)>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut parser = TextParser::default();
    for (i, line) in reader.split(b'\n').enumerate() {
        let Ok(line) = line else { break };
        let n = i + 1;
        let line = String::from_utf8_lossy(&line);
        parser.line(&line, &mut |r| match r {
            Ok(ev) => events.push(ev),
            Err(e) => errors.push((n, e)),
        });
    }
    parser.finish(&mut |r| {
        if let Ok(ev) = r {
            events.push(ev)
        }
    });
    (events, errors)
}
