//! What the packet check needs from the process's capabilities (the live capture and the
//! lab's namespaces), checked before anything starts. One place for both modes.

use crate::host::process::{cap, effective_caps, has_cap, privilege_hint};
use crate::trace::ftrace;

const CAP_NET_ADMIN: u32 = cap::NET_ADMIN;
const CAP_NET_RAW: u32 = cap::NET_RAW;
const CAP_SYS_ADMIN: u32 = cap::SYS_ADMIN;

/// What the packet check and `watch` cannot do without the capabilities they name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingCaps {
    /// The capture cannot start: what is missing, and what would give it.
    #[error("packet-check cannot capture: missing {}; {hint}", .missing.join("; "))]
    Capture { missing: Vec<String>, hint: String },
    /// The lab cannot build its namespaces: what is missing, and what would give it.
    #[error(
        "packet-check --lab cannot build its namespaces: missing {}; {hint}; nothing was started",
        .missing.join("; ")
    )]
    Lab { missing: Vec<String>, hint: String },
    /// `watch` cannot enter the namespaces or capture in them: what is missing.
    #[error(
        "watch cannot run: missing {}. Run it as root, or give it these capabilities",
        .missing.join("; ")
    )]
    Watch { missing: Vec<String> },
}

/// Fail with a message naming what is missing when the capture cannot work at all.
/// Returns notes for what is missing but not fatal.
pub fn check_privileges(
    netns: bool,
    tracefs: Option<&std::path::Path>,
) -> Result<Vec<String>, MissingCaps> {
    let Some(caps) = effective_caps() else {
        return Ok(vec![]);
    };
    let has = |c: u32| has_cap(caps, c);
    let mut missing = Vec::new();
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW (to open the AF_PACKET capture socket)");
    }
    let tracefs = tracefs.unwrap_or(std::path::Path::new(ftrace::TRACEFS));
    let tracefs_ok =
        has(CAP_SYS_ADMIN) || nix::unistd::access(tracefs, nix::unistd::AccessFlags::W_OK).is_ok();
    let tracefs_missing = format!(
        "tracefs access (CAP_SYS_ADMIN or write access to {}, for the kernel's reset reasons)",
        tracefs.display()
    );
    if !tracefs_ok {
        missing.push(&tracefs_missing);
    }
    if netns && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN (to enter the network namespace to watch)");
    }
    if !has(CAP_NET_RAW) || (netns && !has(CAP_SYS_ADMIN)) {
        return Err(MissingCaps::Capture {
            missing: missing.iter().map(|m| m.to_string()).collect(),
            hint: privilege_hint("them (sudo rstaudit packet-check ...)"),
        });
    }
    Ok(missing
        .into_iter()
        .map(|m| format!("missing {m}: working from packets and counters only"))
        .collect())
}

/// `watch` enters every namespace (CAP_SYS_ADMIN, which also gives tracefs) and opens a
/// capture in each (CAP_NET_RAW): fail up front, naming what is missing.
pub fn check_watch_privileges() -> Result<(), MissingCaps> {
    let Some(caps) = effective_caps() else {
        return Ok(());
    };
    let missing: Vec<&str> = [
        (
            CAP_SYS_ADMIN,
            "CAP_SYS_ADMIN (to enter the network namespaces and to use tracefs)",
        ),
        (
            CAP_NET_RAW,
            "CAP_NET_RAW (to open the AF_PACKET capture sockets)",
        ),
    ]
    .into_iter()
    .filter(|(c, _)| !has_cap(caps, *c))
    .map(|(_, what)| what)
    .collect();
    if !missing.is_empty() {
        return Err(MissingCaps::Watch {
            missing: missing.iter().map(|m| m.to_string()).collect(),
        });
    }
    Ok(())
}

/// `packet-check --lab` builds namespaces, veth pairs and nftables rules: fail up front, before
/// any trace instance or namespace, when CAP_SYS_ADMIN or CAP_NET_ADMIN is missing.
pub fn check_lab_privileges() -> Result<(), MissingCaps> {
    let Some(caps) = effective_caps() else {
        return Ok(());
    };
    let missing: Vec<&str> = [
        (
            CAP_SYS_ADMIN,
            "CAP_SYS_ADMIN (to create network namespaces)",
        ),
        (
            CAP_NET_ADMIN,
            "CAP_NET_ADMIN (for veth pairs, addresses and nftables inside them)",
        ),
    ]
    .into_iter()
    .filter(|(c, _)| !has_cap(caps, *c))
    .map(|(_, what)| what)
    .collect();
    if !missing.is_empty() {
        return Err(MissingCaps::Lab {
            missing: missing.into_iter().map(str::to_string).collect(),
            hint: privilege_hint("them (sudo rstaudit packet-check --lab ...)"),
        });
    }
    Ok(())
}
