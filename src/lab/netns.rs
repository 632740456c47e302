//! Anonymous network namespaces for the lab.
//!
//! A lab namespace has no name and no file under /run/netns: a short-lived
//! thread calls unshare(CLONE_NEWNET) and the lab keeps only a descriptor of
//! /proc/thread-self/ns/net. Work happens in threads that setns(2) into it;
//! the host's namespaces (and every other thread) are never changed. When the
//! last descriptor and thread go, the kernel destroys the namespace with its
//! sockets, veth pairs and nftables tables, so nothing is left behind even
//! when the process is killed (SIGINT, SIGTERM, SIGKILL, panic).
//!
//! This module must not touch any namespace it did not create.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};

use super::LabError;
use super::error::Step;
use crate::host::sysctl::{self, Scope, SysctlKey};

/// One throwaway network namespace, alive while this value (and any thread in it) lives.
#[derive(Debug)]
pub struct LabNs {
    fd: OwnedFd,
    /// A role name for messages (`client`, `middlebox`, `server`, `lab`).
    pub role: &'static str,
}

impl LabNs {
    /// Create a namespace with its loopback interface up.
    pub fn new(role: &'static str) -> Result<Self, LabError> {
        let fd = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<OwnedFd, LabError> {
                    unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| {
                        if errno == nix::errno::Errno::EPERM {
                            LabError::NeedsRoot
                        } else {
                            LabError::Unshare(errno)
                        }
                    })?;
                    let file = crate::host::netns::open_current()
                        .step("opening /proc/thread-self/ns/net of the new namespace")?;
                    super::rtnl::set_up(1).map_err(LabError::Loopback)?;
                    Ok(OwnedFd::from(file))
                })
                .join()
                .map_err(|_| LabError::Panicked("the thread creating a lab namespace"))?
        })?;
        Ok(Self { fd, role })
    }

    /// The namespace descriptor (to place a veth peer in it).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Move the calling thread into this namespace. Call it only in a thread
    /// made for the purpose (inside [`LabNs::run`] or a scoped thread of a scenario).
    pub fn enter(&self) -> Result<(), LabError> {
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .step(format!("entering the lab's {} namespace", self.role))
    }

    /// Run `work` in a new thread inside this namespace and wait for it.
    pub fn run<T, F>(&self, work: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> Result<T, LabError> + Send,
    {
        crate::host::netns::run_in_file(self.fd.as_fd(), &format!("the lab's {}", self.role), work)?
    }

    /// Set a sysctl inside this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), LabError> {
        let key = SysctlKey::parse(key, Scope::NetOnly)?;
        self.run(|| {
            sysctl::write(Path::new("/"), &key, value).step(format!(
                "setting {key}={value} in the lab's {} namespace",
                self.role
            ))
        })
    }

    /// Read a sysctl inside this namespace.
    pub fn read_sysctl(&self, key: &str) -> Result<String, LabError> {
        let key = SysctlKey::parse(key, Scope::NetOnly)?;
        self.run(|| Ok(sysctl::read(Path::new("/"), &key)?))
    }

    /// The TCP counters of this namespace (Tcp.* and TcpExt.*).
    pub fn counters(&self) -> Result<BTreeMap<String, u64>, LabError> {
        self.run(|| Ok(crate::host::counters::read_tcp_counters()?))
    }
}
