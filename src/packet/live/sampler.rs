//! Facts read inside the watched namespace during the window: the
//! reset-related MIB counters every second, and once at the start the
//! interface names, the namespace's own addresses and the one sysctl the
//! classification needs.
//!
//! Runs in a thread that entered the namespace (`host::netns::run_in`), so
//! /proc/thread-self/net and /proc/sys/net are the namespace's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::host::CounterSample;

/// The counters of rst-causes.md section 2 that the packet check follows.
pub const RESET_COUNTERS: &[&str] = &[
    "Tcp.OutRsts",
    "Tcp.EstabResets",
    "Tcp.AttemptFails",
    "TcpExt.TCPAbortOnClose",
    "TcpExt.TCPAbortOnData",
    "TcpExt.TCPAbortOnLinger",
    "TcpExt.TCPAbortOnMemory",
    "TcpExt.TCPAbortOnTimeout",
    "TcpExt.TCPAbortFailed",
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.SyncookiesSent",
    "TcpExt.SyncookiesRecv",
    "TcpExt.SyncookiesFailed",
    "TcpExt.EmbryonicRsts",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.TW",
    "TcpExt.TWKilled",
    "TcpExt.TWRecycled",
    "TcpExt.PAWSActive",
    "TcpExt.PAWSEstab",
    "TcpExt.TCPBacklogDrop",
];

/// What the namespace looks like at the start.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFacts {
    /// ifindex -> name.
    pub interfaces: HashMap<i32, String>,
    /// Addresses configured on the namespace's interfaces.
    pub addresses: HashSet<IpAddr>,
    /// net.ipv4.tcp_abort_on_overflow, when readable.
    pub abort_on_overflow: Option<bool>,
    /// What could not be read.
    pub notes: Vec<String>,
}

/// Read interface names, addresses and the sysctl in the calling thread's namespace.
pub fn namespace_facts() -> NamespaceFacts {
    let mut facts = NamespaceFacts::default();
    match nix::net::if_::if_nameindex() {
        Ok(list) => {
            for i in list.iter() {
                facts
                    .interfaces
                    .insert(i.index() as i32, i.name().to_string_lossy().into_owned());
            }
        }
        Err(e) => facts.notes.push(format!("listing interfaces: {e}")),
    }
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for a in addrs {
                let Some(addr) = a.address else { continue };
                if let Some(v4) = addr.as_sockaddr_in() {
                    facts.addresses.insert(IpAddr::V4(v4.ip()));
                } else if let Some(v6) = addr.as_sockaddr_in6() {
                    facts.addresses.insert(IpAddr::V6(v6.ip()));
                }
            }
        }
        Err(e) => facts.notes.push(format!("listing addresses: {e}")),
    }
    let key = "/proc/sys/net/ipv4/tcp_abort_on_overflow";
    match std::fs::read_to_string(key) {
        Ok(v) => facts.abort_on_overflow = Some(v.trim() != "0"),
        Err(e) => facts.notes.push(format!("{key}: {e}")),
    }
    facts
}

/// Read the MIB counters of the calling thread's namespace (all of them; the report keeps
/// [`RESET_COUNTERS`]).
pub fn read_counters() -> anyhow::Result<CounterSample> {
    let mut notes = Vec::new();
    let sample = crate::host::counters::read_sample(crate::host::files::Place::Live, &mut notes)?;
    match sample {
        Some(mut s) => {
            s.values.retain(|k, _| RESET_COUNTERS.contains(&k.as_str()));
            Ok(s)
        }
        None => anyhow::bail!(
            "the MIB counters could not be read: {}",
            notes
                .iter()
                .map(|n| n.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// Tcp.OutRsts alone, read from the calling thread's /proc/thread-self/net/snmp with one
/// read, and the wall-clock time right after it: the baseline that the captured frames are
/// cut against (a full counter read takes long enough for resets to fall between its files).
pub fn read_out_rsts() -> Option<(u64, std::time::Duration)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let i = names.split_whitespace().position(|n| n == "OutRsts")?;
    let v = values.split_whitespace().nth(i)?.parse().ok()?;
    Some((v, at))
}

pub use crate::host::files::now_ms;

/// Sample the counters now, then every `period` until `stop`, then once more; send each sample.
pub fn sample_loop(
    period: Duration,
    stop: Arc<AtomicBool>,
    tx: Sender<anyhow::Result<CounterSample>>,
) {
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        if tx.send(read_counters()).is_err() {
            return;
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        n += 1;
        let next = start + period * n;
        while Instant::now() < next {
            if stop.load(Ordering::SeqCst) {
                let _ = tx.send(read_counters());
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(next - Instant::now()));
        }
    }
}
