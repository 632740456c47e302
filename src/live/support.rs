//! Which resets support which finding: a reset confirms a finding only by the rule's own
//! mechanism (its reasons, the kernel's or derived; for idle flows, a reset received on a
//! connection idle past the timeout), and a finding about one process only by resets that
//! process sent or received.

use super::attribute::Cause;
use super::event::ResetEvent;
use crate::rules::{Finding, FindingProcess};

/// What decides whether a reset supports a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SupportKey {
    pub cause: Cause,
    /// The kernel's reason, or the one derived for it.
    pub reason: Option<&'static str>,
    /// `reason` was derived, not the kernel's.
    pub derived: bool,
    /// The process it is attributed to.
    pub owner: Option<u32>,
    /// On loopback, the process at the other end (the one it was sent to).
    pub peer: Option<u32>,
    /// The socket table had seen its connection.
    pub seen: bool,
}

impl SupportKey {
    pub fn of(e: &ResetEvent) -> Self {
        use super::derive::CauseSource;
        Self {
            cause: e.cause,
            reason: match e.cause_source {
                CauseSource::KernelReason => e.reason,
                CauseSource::Derived => e.derived_reason,
                CauseSource::CannotTell => None,
            },
            derived: e.cause_source == CauseSource::Derived,
            owner: e.owner.as_ref().map(|o| o.pid),
            peer: e.peer.as_ref().map(|p| p.pid),
            seen: e.connection_seen,
        }
    }
}

/// The rules of `findings` that reset `e` supports.
pub fn supported_rules(findings: &[Finding], e: &ResetEvent) -> Vec<String> {
    let key = SupportKey::of(e);
    let mut rules: Vec<String> = findings
        .iter()
        .filter(|f| supports_key(f, &key))
        .map(|f| f.rule.clone())
        .collect();
    rules.dedup();
    rules
}

/// Causes confirmed by resets received on idle connections rather than by a kernel reason
/// (docs/causes.md; a number is read as the alias it is).
pub(super) fn is_middlebox_cause(cause: &str) -> bool {
    matches!(
        crate::rules::known::cause(cause),
        Some("mobile-idle" | "middlebox-idle" | "half-open")
    )
}

/// Does this reset support this finding?
pub fn supports(f: &Finding, e: &ResetEvent) -> bool {
    supports_key(f, &SupportKey::of(e))
}

/// For findings whose NO_SOCKET resets are the late answers to connections the kernel already
/// destroyed (retransmit-timeout and keepalive-timeout: a retransmission or keepalive
/// timeout; time-wait: TIME_WAIT overflow): the counter that moves when that happens. A
/// NO_SOCKET reset alone does not show it: a closed port, a port scan or a late SYN-ACK give
/// the same reset.
pub(super) fn no_socket_mechanism(cause: &str) -> Option<&'static str> {
    match crate::rules::known::cause(cause)? {
        "retransmit-timeout" | "keepalive-timeout" => Some("TcpExt.TCPAbortOnTimeout"),
        "time-wait" => Some("TcpExt.TCPTimeWaitOverflow"),
        _ => None,
    }
}

/// middlebox-idle: conntrack forgetting flows this host forwards for others.
pub(super) fn is_forwarding_cause(cause: &str) -> bool {
    crate::rules::known::cause(cause) == Some("middlebox-idle")
}

/// The process a finding is about, if it is about one. A host finding names processes only as
/// suspects (those holding sockets of the kind when the audit ran): it is about the host, and
/// any process's resets can confirm it.
pub fn scoped_process(f: &Finding) -> Option<&FindingProcess> {
    f.process.as_ref().filter(|_| f.subject != "host")
}

/// [`supports`] on what it looks at.
pub(super) fn supports_key(f: &Finding, k: &SupportKey) -> bool {
    let mechanism = if is_middlebox_cause(&f.cause) {
        k.cause == Cause::MiddleboxIdle
    } else {
        match k.reason {
            None => false,
            Some(reason) => {
                f.evidence.rst_reasons.iter().any(|r| r == reason)
                    && !(reason == "NO_SOCKET"
                        && no_socket_mechanism(&f.cause).is_some()
                        && !k.seen)
            }
        }
    };
    // A finding about one process is confirmed by the resets that process sent or received,
    // and by no other (nor by resets whose process is unknown).
    mechanism && scoped_process(f).is_none_or(|p| k.owner == Some(p.pid) || k.peer == Some(p.pid))
}
