//! The attribution stage: one captured reset and its trace events made into a
//! [`ResetEvent`]: owner, peer, cause (the kernel's reason or derived), interface.

use std::sync::Arc;

use super::attribute::{
    self, ClassifyInput, EventOwner, OwnerSource, SocketIndex, TaskResolver, classify, task_process,
};
use super::correlate::Matched;
use super::derive::{self, CauseMode, CauseSource, Derivation};
use super::event::ResetEvent;
use crate::host::facts::NamespaceFacts;
use crate::trace::capture::PacketDir;

pub struct Ctx {
    pub started_at_ms: u64,
    pub facts: NamespaceFacts,
    pub receive_traced: bool,
    pub idle_timeout_s: Option<f64>,
    /// The trace marks bottom-half-disabled sections (see `TraceSession::bh_flag`).
    pub bh_flag_known: bool,
    /// Where sent resets' causes come from.
    pub cause_mode: CauseMode,
}

/// A sent or received reset's cause, what it rests on and how it was found.
struct Found {
    cause: attribute::Cause,
    basis: std::borrow::Cow<'static, str>,
    source: CauseSource,
    derived_reason: Option<&'static str>,
}

/// The cause of one reset: the kernel's reason where `mode` takes it, else derived.
fn find_cause(
    m: &Matched,
    ctx: &Ctx,
    index: &SocketIndex,
    sender: Option<&attribute::SockInfo>,
    idle_ms: Option<u64>,
) -> Found {
    let p = &m.packet;
    let sent = p.dir == PacketDir::Sent;
    let send = m.send.as_ref();
    let kernel_reason = send.and_then(|s| s.reason);
    let classified = |reason: Option<&str>| {
        classify(&ClassifyInput {
            sent,
            reason,
            state: send.and_then(|s| s.state),
            process_context: send.is_some_and(|s| !s.task.in_interrupt),
            bh_disabled: send.is_some_and(|s| s.task.bh_disabled),
            answers_packet: send.is_some_and(|s| s.has_skb),
            bh_flag_known: ctx.bh_flag_known,
            sender_linger: sender.and_then(|s| s.linger),
            sender_linger2: sender.and_then(|s| s.linger2),
            sender_unowned: sender.is_some_and(|s| s.pid.is_none()),
            source_port_listens: sent && index.listener(p.seg.src).is_some(),
            abort_on_overflow: ctx.facts.abort_on_overflow,
            idle_ms,
            idle_timeout_s: ctx.idle_timeout_s,
        })
    };
    if !sent {
        let (cause, basis) = classified(None);
        let source = match cause {
            attribute::Cause::MiddleboxIdle => CauseSource::Derived,
            _ => CauseSource::CannotTell,
        };
        return Found {
            cause,
            basis,
            source,
            derived_reason: None,
        };
    }
    let take_kernel = match ctx.cause_mode {
        CauseMode::Kernel => true,
        CauseMode::Derived => false,
        CauseMode::Auto => kernel_reason.is_some_and(|r| r != "NOT_SPECIFIED"),
    };
    if take_kernel {
        let (cause, basis) = classified(kernel_reason);
        let source = if kernel_reason.is_some() {
            CauseSource::KernelReason
        } else {
            CauseSource::CannotTell
        };
        return Found {
            cause,
            basis,
            source,
            derived_reason: None,
        };
    }
    let cx = derive::Context {
        listener_on_port: index.listener(p.seg.src).is_some(),
        abort_on_overflow: ctx.facts.abort_on_overflow,
        sender_linger2: sender.and_then(|s| s.linger2),
    };
    match derive::derive(send, &p.seg, &cx) {
        Derivation::Derived(d) => Found {
            cause: d.cause,
            basis: format!("derived: {}", d.evidence).into(),
            source: CauseSource::Derived,
            derived_reason: Some(d.reason),
        },
        Derivation::CannotTell(why) => Found {
            cause: attribute::Cause::SentUnknown,
            basis: format!("cannot tell: {why}").into(),
            source: CauseSource::CannotTell,
            derived_reason: None,
        },
    }
}

/// The sockets of the table a reset is between: the connection that sent it, the listener
/// whose queue holds it (when that connection has no process), the connection it was sent to.
struct Ends<'i> {
    sender: Option<&'i attribute::SockInfo>,
    listener: Option<&'i attribute::SockInfo>,
    receiver: Option<&'i attribute::SockInfo>,
}

impl<'i> Ends<'i> {
    fn of(m: &Matched, index: &'i SocketIndex) -> Self {
        let p = &m.packet;
        let seg = p.seg;
        let sent = p.dir == PacketDir::Sent;
        let sender = if sent {
            index.conn(seg.src, seg.dst)
        } else {
            None
        };
        // A listener is the owner of what its queue holds: an un-accepted connection or a
        // SYN-RECV entry has no process of its own in the table.
        let listener = if sent && sender.is_none_or(|s| s.pid.is_none()) {
            index.listener(seg.src)
        } else {
            None
        };
        let receiver = if !sent || p.loopback {
            index.conn(seg.dst, seg.src)
        } else {
            None
        };
        Self {
            sender,
            listener,
            receiver,
        }
    }
}

/// The process that owns the reset (the task that sent it, else the sockets' processes) and,
/// on loopback, the one it was sent to.
fn owner_and_peer(
    m: &Matched,
    ends: &Ends<'_>,
    resolver: &mut TaskResolver,
    index: &SocketIndex,
) -> (Option<EventOwner>, Option<EventOwner>) {
    let p = &m.packet;
    let sent = p.dir == PacketDir::Sent;
    let send = m.send.as_ref();
    let Ends {
        sender,
        listener,
        receiver,
    } = *ends;
    let known = |pid| index.comm_of(pid).cloned();
    // The process of the task the send event ran in: looked up once, when first needed.
    let mut task_cache: Option<Option<(u32, Arc<str>)>> = None;
    macro_rules! task {
        () => {
            task_cache
                .get_or_insert_with(|| {
                    send.and_then(|s| task_process(resolver, s.task.tid, &s.task.comm, known))
                })
                .clone()
        };
    }
    let mut owner = None;
    // The running task is the sender only for a reset it made from a system call on its own
    // socket: an active reset (close(), shutdown(), no packet answered), or one answering a
    // packet on a socket the task holds. A reset answering a packet in process context is
    // receive processing run on the task's time (a write into a tun device, a userspace VPN,
    // slirp4netns/pasta): the socket says whose it is.
    if let Some(s) = send
        && !s.task.in_interrupt
        && let Some((pid, comm)) = task!()
    {
        let holds = |i: Option<&attribute::SockInfo>| i.is_some_and(|i| i.pid == Some(pid));
        if !s.has_skb || holds(sender) || holds(listener) {
            owner = Some(EventOwner {
                pid,
                comm,
                source: OwnerSource::Task,
                workload: None,
            });
        }
    }
    let from_sock = |info: Option<&attribute::SockInfo>, source| {
        info.and_then(|i| {
            Some(EventOwner {
                pid: i.pid?,
                comm: i.comm.clone().unwrap_or_else(|| "?".into()),
                source,
                workload: None,
            })
        })
    };
    if owner.is_none() {
        owner = from_sock(
            sender,
            if sent {
                OwnerSource::Socket
            } else {
                OwnerSource::PeerSocket
            },
        )
        .or_else(|| from_sock(listener, OwnerSource::Listener))
        .or_else(|| {
            from_sock(
                receiver,
                if sent {
                    OwnerSource::PeerSocket
                } else {
                    OwnerSource::Socket
                },
            )
        });
    }
    if owner.is_none()
        && p.loopback
        && send.is_some()
        && let Some((pid, comm)) = task!()
    {
        owner = Some(EventOwner {
            pid,
            comm,
            source: OwnerSource::SoftirqTask,
            workload: None,
        });
    }
    // On loopback both ends are here: the process the reset was sent to, when it is not the
    // owner itself.
    // A reset answering a packet on loopback runs on the time of the process whose segment it
    // answers.
    let peer = if sent && p.loopback {
        from_sock(receiver, OwnerSource::PeerSocket)
            .or_else(|| {
                send.filter(|s| s.has_skb)?;
                let (pid, comm) = task!()?;
                Some(EventOwner {
                    pid,
                    comm,
                    source: OwnerSource::SoftirqTask,
                    workload: None,
                })
            })
            .filter(|peer| owner.as_ref().is_none_or(|o| o.pid != peer.pid))
    } else {
        None
    };
    (owner, peer)
}

/// The reset event of a match, attributed with the socket table `index` and the process-wide
/// knowledge of tasks `resolver`.
pub fn to_event(
    m: &Matched,
    ctx: &Ctx,
    resolver: &mut TaskResolver,
    index: &SocketIndex,
) -> ResetEvent {
    let p = &m.packet;
    let seg = p.seg;
    let sent = p.dir == PacketDir::Sent;
    let send = m.send.as_ref();
    let ends = Ends::of(m, index);
    let (sender, receiver) = (ends.sender, ends.receiver);
    let (owner, peer) = owner_and_peer(m, &ends, resolver, index);
    let idle_ms = if sent {
        None
    } else {
        receiver
            .and_then(|r| Some(r.idle_ms? + crate::clock::now_ms().saturating_sub(r.seen_at_ms)))
    };
    let found = find_cause(m, ctx, index, sender, idle_ms);
    let reason = found.derived_reason.or(send.and_then(|s| s.reason));
    let basis = match (reason, &owner, &peer) {
        (Some("TCP_TIMEWAIT_SOCKET"), Some(o), Some(w)) => format!(
            "{}: {} (pid {}) closed first, {} (pid {}) wrote after that",
            found.basis, o.comm, o.pid, w.comm, w.pid
        )
        .into(),
        _ => found.basis,
    };
    ResetEvent {
        t: p.ts_ms.saturating_sub(ctx.started_at_ms) as f64 / 1000.0,
        ts_ms: p.ts_ms,
        direction: p.dir,
        interface: ctx
            .facts
            .interfaces
            .get(&p.ifindex)
            .cloned()
            .unwrap_or_else(|| format!("if{}", p.ifindex).into()),
        loopback: p.loopback,
        src: seg.src,
        dst: seg.dst,
        seq: seg.seq,
        ack: seg.ack,
        reason: send.and_then(|s| s.reason),
        state: send.and_then(|s| s.state),
        taken_by_socket: (ctx.receive_traced && (!sent || p.loopback))
            .then_some(m.receive.is_some()),
        connection_seen: sent && sender.is_some(),
        owner,
        peer,
        cause: found.cause,
        cause_source: found.source,
        derived_reason: found.derived_reason,
        site: send.and_then(|s| s.site.clone()),
        basis,
        rules: Vec::new(),
    }
}
