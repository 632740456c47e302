//! What the live check must know about the namespace it watches, beside its sockets: the
//! interface names, the namespace's own addresses and the one sysctl the classification needs,
//! at the start and again on every link or address change (netlink) and every second.
//!
//! Runs in a thread that entered the namespace (`host::netns::run_in`), so
//! /proc/sys/net and the netlink socket are the namespace's.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// What the namespace looks like at the start.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFacts {
    /// ifindex -> name.
    pub interfaces: HashMap<i32, std::sync::Arc<str>>,
    /// Addresses configured on the namespace's interfaces.
    pub addresses: HashSet<IpAddr>,
    /// net.ipv4.tcp_abort_on_overflow, when readable.
    pub abort_on_overflow: Option<bool>,
    /// What could not be read.
    pub notes: Vec<String>,
}

/// net.ipv4.tcp_abort_on_overflow of the calling thread's namespace.
fn abort_on_overflow() -> Result<bool, crate::host::sysctl::SysctlError> {
    use crate::host::sysctl::{self, Scope, SysctlKey};
    let key = SysctlKey::parse("net.ipv4.tcp_abort_on_overflow", Scope::NetOnly)?;
    Ok(sysctl::read(std::path::Path::new("/"), &key)?.trim() != "0")
}

/// Read interface names, addresses and the sysctl in the calling thread's namespace.
pub fn namespace_facts() -> NamespaceFacts {
    let mut facts = NamespaceFacts::default();
    match nix::net::if_::if_nameindex() {
        Ok(list) => {
            for i in list.iter() {
                facts
                    .interfaces
                    .insert(i.index() as i32, i.name().to_string_lossy().into());
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
    match abort_on_overflow() {
        Ok(v) => facts.abort_on_overflow = Some(v),
        Err(e) => facts.notes.push(e.to_string()),
    }
    facts
}

impl NamespaceFacts {
    /// Take in a later reading: names of new interfaces, new addresses (addresses seen once
    /// stay: a reset may still be in flight after its address went away), the sysctl's latest
    /// value.
    pub fn update(&mut self, later: NamespaceFacts) {
        // Bounded for a check that never ends: past the limit, only the latest reading stays.
        if self.interfaces.len() + later.interfaces.len() > MAX_KEPT {
            self.interfaces.clear();
        }
        if self.addresses.len() + later.addresses.len() > MAX_KEPT {
            self.addresses.clear();
        }
        self.interfaces.extend(later.interfaces);
        self.addresses.extend(later.addresses);
        if later.abort_on_overflow.is_some() {
            self.abort_on_overflow = later.abort_on_overflow;
        }
    }
}

/// Interfaces or addresses kept from earlier readings, at most.
pub const MAX_KEPT: usize = 4096;

/// Netlink groups whose messages mean the namespace's links or addresses changed.
const GROUPS: u32 =
    (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;

/// A netlink socket bound to the link and address groups of the namespace it was opened in:
/// readable when a link or an address changed. Opened in a thread that entered the namespace,
/// it works from any thread.
pub struct LinkEvents {
    sock: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

impl LinkEvents {
    /// Open it in the calling thread's namespace.
    pub fn open() -> std::io::Result<Self> {
        // SAFETY: plain socket(2) and bind(2) with a zeroed, filled sockaddr_nl.
        let fd = unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            );
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            sa.nl_groups = GROUPS;
            if fd >= 0
                && libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                ) != 0
            {
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(err);
            }
            fd
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor we own from here on.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Self {
            sock,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Read every message waiting (without blocking): whether any said something changed
    /// (or some were lost, which may hide a change).
    pub fn drain(&mut self) -> bool {
        use std::os::fd::AsRawFd;
        let mut changed = false;
        loop {
            // SAFETY: reading into our buffer.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n > 0 {
                changed = true;
                continue;
            }
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                // Messages were lost: read everything again.
                changed = true;
                continue;
            }
            return changed;
        }
    }
}

impl std::os::fd::AsRawFd for LinkEvents {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

/// Follow the calling thread's namespace until `stop`: read its facts again as soon as a link
/// or address changes (RTM_NEWLINK/DELLINK, RTM_NEWADDR/DELADDR, from a netlink socket bound
/// to those groups) and at least every `period` (for the sysctl, which has no event), and send
/// each reading. Without the netlink socket it reads every `period` and says so once.
pub fn follow_facts(period: Duration, stop: Arc<AtomicBool>, tx: Sender<NamespaceFacts>) {
    let mut events = match LinkEvents::open() {
        Ok(e) => Some(e),
        Err(e) => {
            let mut f = NamespaceFacts::default();
            f.notes.push(format!(
                "address and link changes are read once a second only: no netlink socket ({e})"
            ));
            if tx.send(f).is_err() {
                return;
            }
            None
        }
    };
    let mut last = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let mut changed = false;
        if let Some(events) = events.as_mut() {
            use std::os::fd::AsRawFd;
            let mut pfd = libc::pollfd {
                fd: events.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 50) };
            changed = events.drain();
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if changed || last.elapsed() >= period {
            last = Instant::now();
            if tx.send(namespace_facts()).is_err() {
                return;
            }
        }
    }
}
