//! The cause of a sent reset where the kernel gives no reason (before 6.10, and for resets
//! from a close or a timer before 6.12), from what it does give: where the reset was sent (the
//! function and its callers, from the reset sites' probes), what the probe read from the socket
//! (its state, unread bytes, TCP_LINGER2), the packet (a reset answering a SYN) and the socket
//! table (a listener on the port).
//!
//! Each answer names the reason that 6.10 and later pass at that call site (so that rules
//! written against the kernel's reasons apply), the cause, and the evidence in words. Where
//! the evidence does not decide, the answer is "cannot tell" with what is missing: a derived
//! cause is never a guess, and never shown as the kernel's own reason.

use std::borrow::Cow;

use serde::Serialize;

use super::attribute::Cause;
use crate::trace::capture::RstSegment;
use crate::trace::ftrace::{Caller, SendReset, SiteFn};

/// How an event's cause was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseSource {
    /// The kernel's own reason (tcp:tcp_send_reset, 6.10 and later).
    KernelReason,
    /// Derived from other evidence (the basis says which).
    Derived,
    /// The evidence does not decide (the basis says what is missing).
    CannotTell,
}

impl CauseSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KernelReason => "kernel reason",
            Self::Derived => "derived",
            Self::CannotTell => "cannot tell",
        }
    }
}

/// Which evidence the live check takes a sent reset's cause from (`--cause-source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CauseMode {
    /// The kernel's reason where it gives one that names a cause, derived otherwise.
    #[default]
    Auto,
    /// Only the kernel's reason.
    Kernel,
    /// Only derived, even where the kernel gives its reason (to cross-check the two).
    Derived,
}

/// A cause found without the kernel's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub cause: Cause,
    /// The reason 6.10 and later give at that call site.
    pub reason: &'static str,
    pub evidence: Cow<'static, str>,
}

/// What the derivation came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Derivation {
    Derived(Derived),
    /// What is missing to decide.
    CannotTell(Cow<'static, str>),
}

/// What the derivation looks at, besides the event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// A listener is bound to the reset's source port (the socket table).
    pub listener_on_port: bool,
    /// net.ipv4.tcp_abort_on_overflow of the namespace.
    pub abort_on_overflow: Option<bool>,
    /// TCP_LINGER2 of the sending socket, when the socket table had it.
    pub sender_linger2: Option<i32>,
}

/// A reset answering a segment to a socket that had shut down its reading side (or that the
/// kernel had just reset for it: state TCP_CLOSE): data after close. On a socket with
/// TCP_LINGER2 < 0 the kernel gives the same reason for an orphan in FIN_WAIT1 destroyed when
/// the peer acknowledged its FIN, without data.
fn data_after_close(how: String, cx: &Context) -> Derivation {
    if cx.sender_linger2.is_some_and(|l| l < 0) {
        derived(
            Cause::Linger2Negative,
            "TCP_ABORT_ON_DATA",
            format!(
                "{how}, on a socket the table showed with TCP_LINGER2 < 0: closed in FIN_WAIT1 \
                 and destroyed when the peer acknowledged the FIN"
            ),
        )
    } else {
        derived(
            Cause::DataAfterClose,
            "TCP_ABORT_ON_DATA",
            format!("{how}: data arrived after close or shutdown"),
        )
    }
}

/// States in which a full socket answers a segment with a reset for data after close.
fn after_close(state: &str) -> bool {
    matches!(
        state,
        "TCP_FIN_WAIT1"
            | "TCP_FIN_WAIT2"
            | "TCP_CLOSING"
            | "TCP_LAST_ACK"
            | "TCP_CLOSE_WAIT"
            | "TCP_CLOSE"
    )
}

fn derived(
    cause: Cause,
    reason: &'static str,
    evidence: impl Into<Cow<'static, str>>,
) -> Derivation {
    Derivation::Derived(Derived {
        cause,
        reason,
        evidence: evidence.into(),
    })
}

fn cannot(why: impl Into<Cow<'static, str>>) -> Derivation {
    Derivation::CannotTell(why.into())
}

/// Whether the captured reset answers a SYN: a reset to a segment without ACK carries ACK
/// (RFC 793), and only a SYN comes without one.
pub fn answers_syn(seg: &RstSegment) -> bool {
    seg.ack.is_some() && seg.seq == 0
}

/// The cause of a sent reset from its event (a site's probe, or the tracepoint without a
/// reason) and the packet.
pub fn derive(send: Option<&SendReset>, seg: &RstSegment, cx: &Context) -> Derivation {
    let Some(send) = send else {
        return from_packet(seg, cx);
    };
    match send.site.as_deref() {
        Some(site) => match site.function {
            SiteFn::V4Reply | SiteFn::V6Reply => reply(send, site, seg, cx),
            SiteFn::Active => active(send, site),
        },
        None => from_tracepoint(send, seg, cx),
    }
}

/// A closed port's answer, told by the packet and the socket table alone.
fn closed_port(seg: &RstSegment, cx: &Context, what: &str) -> Option<Derivation> {
    (answers_syn(seg) && !cx.listener_on_port).then(|| {
        derived(
            Cause::NoSocket,
            "NO_SOCKET",
            format!(
                "{what}; it answers a SYN to port {} where the socket table has no listener: a \
                 closed port",
                seg.src.port()
            ),
        )
    })
}

/// Without any trace event (kernels before 6.10 trace no reset sent without a full socket).
fn from_packet(seg: &RstSegment, cx: &Context) -> Derivation {
    closed_port(
        seg,
        cx,
        "no trace event (none for a reset sent without a full socket)",
    )
    .unwrap_or_else(|| {
        cannot(
            "no trace event for it (before 6.10 the kernel traces only resets sent for a full \
             socket) and the reset sites are not probed: no socket, a TIME_WAIT entry or a \
             connection in its handshake cannot be told apart",
        )
    })
}

fn reply(
    send: &SendReset,
    site: &crate::trace::ftrace::ResetSite,
    seg: &RstSegment,
    cx: &Context,
) -> Derivation {
    let f = site.function.kernel_name();
    if !send.has_sock {
        return closed_port(
            seg,
            cx,
            &format!("sent by {f} with no socket for the segment"),
        )
        .unwrap_or_else(|| {
            derived(
                Cause::NoSocket,
                "NO_SOCKET",
                format!("sent by {f} with no socket for the segment (no connection had it)"),
            )
        });
    }
    let state = send.state.unwrap_or("UNKNOWN");
    let embryonic = |why: &str| {
        if cx.abort_on_overflow == Some(true) {
            derived(
                Cause::AcceptQueueOverflow,
                "INVALID_SYN",
                format!("{why}, with tcp_abort_on_overflow=1: the accept queue was full"),
            )
        } else {
            derived(Cause::InvalidSyn, "INVALID_SYN", why.to_string())
        }
    };
    match state {
        "TCP_TIME_WAIT" => derived(
            Cause::DataAfterClose,
            "TCP_TIMEWAIT_SOCKET",
            format!(
                "sent by {f} for a TIME_WAIT entry: a segment arrived after this end had closed"
            ),
        ),
        "TCP_NEW_SYN_RECV" => embryonic(&format!(
            "sent by {f} for a connection still in its handshake"
        )),
        "TCP_LISTEN" if site.called_from(Caller::TcpCheckReq) => embryonic(&format!(
            "sent by {f} for the listener from tcp_check_req: the handshake's last segment was \
             refused"
        )),
        "TCP_LISTEN" if site.stack => derived(
            Cause::BadAck,
            "TCP_FLAGS",
            format!(
                "sent by {f} for a listener, not from tcp_check_req: a segment that is not a SYN \
                 (a bare ACK) reached the listener"
            ),
        ),
        "TCP_LISTEN" => cannot(format!(
            "sent by {f} for a listener, without the kernel's stack: an embryonic reset \
             (INVALID_SYN) and the answer to a bare ACK (TCP_FLAGS) look the same"
        )),
        s if after_close(s) => data_after_close(
            format!(
                "sent by {f} for a socket in {state} that had closed or shut down its reading side"
            ),
            cx,
        ),
        "TCP_SYN_RECV" => derived(
            Cause::BadAck,
            "TCP_OLD_ACK",
            format!("sent by {f} for a connection in SYN-RECV: its ACK was not acceptable"),
        ),
        "TCP_SYN_SENT" => cannot(format!(
            "sent by {f} for a connection in SYN-SENT: an unacceptable SYN-ACK (bad ACK) and a \
             failed timestamp check (PAWS, TcpExt.PAWSActive) look the same"
        )),
        other => cannot(format!(
            "sent by {f} for a socket in {other}, which this tool has no cause for"
        )),
    }
}

fn active(send: &SendReset, site: &crate::trace::ftrace::ResetSite) -> Derivation {
    let state = send.state.unwrap_or("UNKNOWN");
    let unread = site.unread.unwrap_or(0);
    let linger2 = site.linger2.unwrap_or(0);
    let Some(caller) = site.caller() else {
        // Without the stack: only what the probe read.
        if send.task.in_interrupt && matches!(state, "TCP_ESTABLISHED" | "TCP_CLOSE_WAIT") {
            return derived(
                Cause::KeepaliveTimeout,
                "TCP_KEEPALIVE_TIMEOUT",
                format!(
                    "tcp_send_active_reset from a timer on an open connection ({state}): \
                     keepalive probes went unanswered"
                ),
            );
        }
        return cannot(
            "tcp_send_active_reset without the kernel's stack: a close with unread data, \
             SO_LINGER {1, 0} and an abort cannot be told apart",
        );
    };
    match caller {
        Caller::TcpCloseInner => match unread {
            n if n > 1 => derived(
                Cause::UnreadClose,
                "TCP_ABORT_ON_CLOSE",
                format!(
                    "tcp_send_active_reset from __tcp_close with {n} bytes not read by the \
                     application (a FIN counts as one): close() with unread data"
                ),
            ),
            0 if linger2 < 0 => derived(
                Cause::Linger2Negative,
                "TCP_ABORT_ON_LINGER",
                "tcp_send_active_reset from __tcp_close with nothing unread and TCP_LINGER2 < 0: \
                 closed in FIN_WAIT2",
            ),
            0 => derived(
                Cause::OrphansMemory,
                "TCP_ABORT_ON_MEMORY",
                "tcp_send_active_reset from __tcp_close with nothing unread and TCP_LINGER2 >= 0: \
                 too many orphans or TCP memory pressure",
            ),
            _ => cannot(
                "tcp_send_active_reset from __tcp_close with one byte, or only the FIN, unread: \
                 unread data and memory pressure cannot be told apart",
            ),
        },
        Caller::TcpDisconnect => {
            let above = site.callers.get(1).copied();
            match above {
                Some(Caller::TcpCloseInner) => derived(
                    Cause::LingerZero,
                    "TCP_STATE",
                    "tcp_send_active_reset from tcp_disconnect under __tcp_close: close() with \
                     SO_LINGER {1, 0}",
                ),
                Some(Caller::InetChildForget | Caller::InetCskListenStop) => derived(
                    Cause::Abort,
                    "TCP_STATE",
                    "tcp_send_active_reset from tcp_disconnect under inet_child_forget: a \
                     listener closed with this connection still in its accept queue",
                ),
                Some(Caller::InetStreamConnect) => derived(
                    Cause::Abort,
                    "TCP_STATE",
                    "tcp_send_active_reset from tcp_disconnect under connect(): connect() with \
                     AF_UNSPEC on a connected socket",
                ),
                Some(Caller::TcpAbort) => destroyed(),
                _ => derived(
                    Cause::Abort,
                    "TCP_STATE",
                    "tcp_send_active_reset from tcp_disconnect: the connection was aborted",
                ),
            }
        }
        Caller::TcpAbort => destroyed(),
        Caller::TcpKeepaliveTimer if state == "TCP_FIN_WAIT2" => derived(
            Cause::Abort,
            "TCP_STATE",
            "tcp_send_active_reset from the FIN_WAIT2 timer of an orphaned socket",
        ),
        Caller::TcpKeepaliveTimer => derived(
            Cause::KeepaliveTimeout,
            "TCP_KEEPALIVE_TIMEOUT",
            "tcp_send_active_reset from tcp_keepalive_timer: keepalive probes went unanswered",
        ),
        Caller::TcpOutOfResources | Caller::TcpWriteTimeout => derived(
            Cause::OrphansMemory,
            "TCP_ABORT_ON_MEMORY",
            "tcp_send_active_reset from tcp_out_of_resources: too many orphans or TCP memory \
             pressure",
        ),
        Caller::MptcpSubflowReset => derived(
            Cause::MptcpSubflowReset,
            "MPTCP_RST_EUNSPEC",
            "tcp_send_active_reset from mptcp_subflow_reset: an MPTCP subflow was reset",
        ),
        other => cannot(format!(
            "tcp_send_active_reset from {}, which this tool has no cause for",
            other.name()
        )),
    }
}

fn destroyed() -> Derivation {
    derived(
        Cause::Abort,
        "TCP_STATE",
        "tcp_send_active_reset from tcp_abort: the socket was destroyed from outside \
         (SOCK_DESTROY, `ss -K`)",
    )
}

/// From `tcp:tcp_send_reset` without a reason (or with its reason set aside): its socket, state
/// and context.
fn from_tracepoint(send: &SendReset, seg: &RstSegment, cx: &Context) -> Derivation {
    let state = send.state.unwrap_or("UNKNOWN");
    if !send.has_sock {
        return closed_port(seg, cx, "the kernel's event has no socket").unwrap_or_else(|| {
            derived(
                Cause::NoSocket,
                "NO_SOCKET",
                "the kernel's event has no socket: no connection had the segment",
            )
        });
    }
    if state == "TCP_TIME_WAIT" {
        return derived(
            Cause::DataAfterClose,
            "TCP_TIMEWAIT_SOCKET",
            "the kernel's event is for a TIME_WAIT entry: a segment arrived after this end had \
             closed",
        );
    }
    if send.has_skb {
        return match state {
            s if after_close(s) => data_after_close(
                format!("the kernel's event answers a segment to a socket in {state}"),
                cx,
            ),
            _ => cannot(format!(
                "the kernel's event answers a segment to a socket in {state}; without where it \
                 was sent (the reset sites are not probed), its reason is not known"
            )),
        };
    }
    if send.task.in_interrupt && matches!(state, "TCP_ESTABLISHED" | "TCP_CLOSE_WAIT") {
        return derived(
            Cause::KeepaliveTimeout,
            "TCP_KEEPALIVE_TIMEOUT",
            format!(
                "the kernel's event is an active reset from a timer on an open connection \
                 ({state}): keepalive probes went unanswered"
            ),
        );
    }
    if !send.task.in_interrupt && send.task.bh_disabled {
        return derived(
            Cause::Abort,
            "TCP_STATE",
            "the kernel's event is an active reset with bottom halves disabled: a listener \
             closed with queued connections, or a socket destroyed from outside (SOCK_DESTROY)",
        );
    }
    cannot(format!(
        "an active reset in {state} from the process's own close(): unread data \
         (TCP_ABORT_ON_CLOSE) and SO_LINGER {{1, 0}} (TCP_STATE) look the same without where it \
         was sent (the reset sites are not probed here)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::ftrace::{Frame, KernelStack, ResetSite, TaskContext};

    fn task(in_interrupt: bool) -> TaskContext {
        TaskContext {
            comm: "app".into(),
            tid: 7,
            cpu: 0,
            in_interrupt,
            bh_disabled: false,
            ts: 0.0,
        }
    }

    fn seg(syn: bool) -> RstSegment {
        RstSegment {
            src: "127.0.0.1:9".parse().unwrap(),
            dst: "127.0.0.1:40000".parse().unwrap(),
            seq: if syn { 0 } else { 1234 },
            ack: syn.then_some(99),
            payload_len: 0,
        }
    }

    /// A site's event with the stack seen on 5.10.223 for each kind of reset.
    fn site(function: SiteFn, sk: bool, state: &'static str, stack: &[&str]) -> SendReset {
        let mut s = ResetSite {
            function,
            callers: Default::default(),
            stack: false,
            unread: (function == SiteFn::Active).then_some(0),
            linger2: (function == SiteFn::Active).then_some(0),
        };
        if !stack.is_empty() {
            s.take_stack(&KernelStack {
                cpu: 0,
                frames: stack.iter().map(|n| Frame::from_name(n)).collect(),
            });
        }
        SendReset {
            task: task(function != SiteFn::Active),
            has_skb: function != SiteFn::Active,
            has_sock: sk,
            src: None,
            dst: None,
            state: Some(state),
            reason: None,
            site: Some(Box::new(s)),
        }
    }

    fn cause(d: &Derivation) -> Option<(Cause, &'static str)> {
        match d {
            Derivation::Derived(d) => Some((d.cause, d.reason)),
            Derivation::CannotTell(_) => None,
        }
    }

    const KPROBE: [&str; 5] = [
        "kprobe_trace_func",
        "kprobe_dispatcher",
        "kprobe_ftrace_handler",
        "ftrace_ops_list_func",
        "ftrace_regs_call",
    ];

    fn stack(rest: &[&'static str]) -> Vec<&'static str> {
        KPROBE.iter().chain(rest).copied().collect()
    }

    #[test]
    fn the_four_kinds_seen_on_5_10() {
        let none = Context::default();
        // Connect to a closed port.
        let refused = site(
            SiteFn::V4Reply,
            false,
            "UNKNOWN",
            &stack(&["tcp_v4_send_reset", "tcp_v4_rcv", "ip_protocol_deliver_rcu"]),
        );
        let d = derive(Some(&refused), &seg(true), &none);
        assert_eq!(cause(&d), Some((Cause::NoSocket, "NO_SOCKET")), "{d:?}");
        let Derivation::Derived(d) = d else { panic!() };
        assert!(d.evidence.contains("closed port"), "{}", d.evidence);
        // Close with unread bytes: 6 bytes and no FIN (rcv_nxt - copied_seq = 6).
        let mut unread = site(
            SiteFn::Active,
            true,
            "TCP_CLOSE",
            &stack(&["tcp_send_active_reset", "__tcp_close", "tcp_close"]),
        );
        unread.site.as_mut().unwrap().unread = Some(6);
        let d = derive(Some(&unread), &seg(false), &none);
        assert_eq!(
            cause(&d),
            Some((Cause::UnreadClose, "TCP_ABORT_ON_CLOSE")),
            "{d:?}"
        );
        // SO_LINGER {1, 0}.
        let linger0 = site(
            SiteFn::Active,
            true,
            "TCP_CLOSE",
            &stack(&[
                "tcp_send_active_reset",
                "tcp_disconnect",
                "__tcp_close",
                "tcp_close",
            ]),
        );
        let d = derive(Some(&linger0), &seg(false), &none);
        assert_eq!(cause(&d), Some((Cause::LingerZero, "TCP_STATE")), "{d:?}");
        // A write after the peer closed: a TIME_WAIT entry answers.
        let tw = site(
            SiteFn::V4Reply,
            true,
            "TCP_TIME_WAIT",
            &stack(&["tcp_v4_send_reset", "tcp_v4_rcv"]),
        );
        let d = derive(Some(&tw), &seg(false), &none);
        assert_eq!(
            cause(&d),
            Some((Cause::DataAfterClose, "TCP_TIMEWAIT_SOCKET")),
            "{d:?}"
        );
    }

    #[test]
    fn what_the_evidence_does_not_decide_stays_cannot_tell() {
        let none = Context::default();
        // An active reset from close() without the stack.
        let bare = site(SiteFn::Active, true, "TCP_CLOSE", &[]);
        assert!(matches!(
            derive(Some(&bare), &seg(false), &none),
            Derivation::CannotTell(why) if why.contains("without the kernel's stack")
        ));
        // One byte or only the FIN unread.
        let mut one = site(
            SiteFn::Active,
            true,
            "TCP_CLOSE",
            &stack(&["tcp_send_active_reset", "__tcp_close"]),
        );
        one.site.as_mut().unwrap().unread = Some(1);
        assert!(cause(&derive(Some(&one), &seg(false), &none)).is_none());
        // A listener's reset without the stack.
        let listener = site(SiteFn::V4Reply, true, "TCP_LISTEN", &[]);
        assert!(cause(&derive(Some(&listener), &seg(false), &none)).is_none());
        // No event at all, and not a SYN's answer.
        assert!(cause(&derive(None, &seg(false), &none)).is_none());
        // The tracepoint of a process's own close, without a reason.
        let mut close = site(SiteFn::Active, true, "TCP_CLOSE", &[]);
        close.site = None;
        let d = derive(Some(&close), &seg(false), &none);
        assert!(
            matches!(&d, Derivation::CannotTell(why) if why.contains("SO_LINGER {1, 0}")),
            "{d:?}"
        );
    }

    #[test]
    fn listeners_and_timers() {
        let overflow = Context {
            abort_on_overflow: Some(true),
            listener_on_port: true,
            sender_linger2: None,
        };
        let embryonic = site(
            SiteFn::V4Reply,
            true,
            "TCP_LISTEN",
            &stack(&["tcp_v4_send_reset", "tcp_check_req", "tcp_v4_rcv"]),
        );
        assert_eq!(
            cause(&derive(Some(&embryonic), &seg(false), &overflow)),
            Some((Cause::AcceptQueueOverflow, "INVALID_SYN"))
        );
        assert_eq!(
            cause(&derive(Some(&embryonic), &seg(false), &Context::default())),
            Some((Cause::InvalidSyn, "INVALID_SYN"))
        );
        let bare_ack = site(
            SiteFn::V4Reply,
            true,
            "TCP_LISTEN",
            &stack(&["tcp_v4_send_reset", "tcp_v4_do_rcv", "tcp_v4_rcv"]),
        );
        assert_eq!(
            cause(&derive(Some(&bare_ack), &seg(false), &overflow)),
            Some((Cause::BadAck, "TCP_FLAGS"))
        );
        let keepalive = site(
            SiteFn::Active,
            true,
            "TCP_ESTABLISHED",
            &stack(&[
                "tcp_send_active_reset",
                "tcp_keepalive_timer",
                "call_timer_fn",
            ]),
        );
        assert_eq!(
            cause(&derive(Some(&keepalive), &seg(false), &overflow)),
            Some((Cause::KeepaliveTimeout, "TCP_KEEPALIVE_TIMEOUT"))
        );
        let listener_closed = site(
            SiteFn::Active,
            true,
            "TCP_CLOSE",
            &stack(&[
                "tcp_send_active_reset",
                "tcp_disconnect",
                "inet_child_forget",
                "inet_csk_listen_stop",
            ]),
        );
        assert_eq!(
            cause(&derive(Some(&listener_closed), &seg(false), &overflow)),
            Some((Cause::Abort, "TCP_STATE"))
        );
        let mut linger2 = site(
            SiteFn::Active,
            true,
            "TCP_CLOSE",
            &stack(&["tcp_send_active_reset", "__tcp_close"]),
        );
        linger2.site.as_mut().unwrap().linger2 = Some(-1);
        assert_eq!(
            cause(&derive(Some(&linger2), &seg(false), &overflow)),
            Some((Cause::Linger2Negative, "TCP_ABORT_ON_LINGER"))
        );
    }

    #[test]
    fn data_to_a_socket_the_kernel_just_reset_is_data_after_close() {
        // What 6.18 showed for a write to an orphan in FIN_WAIT2 (reason TCP_ABORT_ON_DATA):
        // the event's socket is already in TCP_CLOSE, and it answers the data.
        let mut tp = site(SiteFn::V4Reply, true, "TCP_CLOSE", &[]);
        tp.site = None;
        let d = derive(Some(&tp), &seg(false), &Context::default());
        assert_eq!(
            cause(&d),
            Some((Cause::DataAfterClose, "TCP_ABORT_ON_DATA")),
            "{d:?}"
        );
        let probed = site(
            SiteFn::V4Reply,
            true,
            "TCP_FIN_WAIT2",
            &stack(&["tcp_v4_send_reset", "tcp_v4_do_rcv"]),
        );
        let linger2 = Context {
            sender_linger2: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            cause(&derive(Some(&probed), &seg(false), &linger2)),
            Some((Cause::Linger2Negative, "TCP_ABORT_ON_DATA"))
        );
    }

    #[test]
    fn a_syn_answered_on_a_listening_port_is_not_called_a_closed_port() {
        let listening = Context {
            listener_on_port: true,
            ..Default::default()
        };
        assert!(cause(&derive(None, &seg(true), &listening)).is_none());
        assert_eq!(
            cause(&derive(None, &seg(true), &Context::default())),
            Some((Cause::NoSocket, "NO_SOCKET"))
        );
    }
}
