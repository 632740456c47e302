//! One captured reset and its trace events made into a [`ResetEvent`]: owner, cause, interface;
//! and the `--events-file` stream.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use super::attribute::{
    self, ClassifyInput, EventOwner, OwnerSource, SocketIndex, TaskResolver, classify, task_process,
};
use super::correlate::{Matched, ReceiveOutcome, Ticket};
use super::derive::{self, CauseMode, CauseSource, Derivation};
use super::summary::{self, ResetEvent, Tally};
use crate::host::facts::NamespaceFacts;
use crate::rules::Finding;
use crate::trace::capture::PacketDir;

/// `--events-file`: every event as one JSON line, written as it is seen.
pub(super) struct EventStream {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
    error: Option<String>,
}

impl EventStream {
    pub(super) fn create(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = crate::output::create(path)
            .with_context(|| format!("creating the events file {}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
            written: 0,
            error: None,
        })
    }

    pub(super) fn write(&mut self, e: &ResetEvent) {
        if self.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, e)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        match r {
            Ok(()) => self.written += 1,
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Flush; a note if anything could not be written.
    pub(super) fn finish(mut self) -> Option<String> {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e.to_string());
        }
        self.error.map(|e| {
            format!(
                "writing the events file {} stopped after {} events: {e}",
                self.path.display(),
                self.written
            )
        })
    }
}

pub(super) struct Ctx {
    pub started_at_ms: u64,
    pub facts: NamespaceFacts,
    pub resolver: TaskResolver,
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

pub(super) fn to_event(m: &Matched, ctx: &mut Ctx, index: &SocketIndex) -> ResetEvent {
    let p = &m.packet;
    let seg = p.seg;
    let sent = p.dir == PacketDir::Sent;
    let send = m.send.as_ref();
    let sender = if sent {
        index.conn(seg.src, seg.dst)
    } else {
        None
    };
    // A listener is the owner of what its queue holds: an un-accepted connection or a SYN-RECV
    // entry has no process of its own in the table.
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
    let known = |pid| index.comm_of(pid).cloned();
    // The process of the task the send event ran in: looked up once, when first needed.
    let mut task_cache: Option<Option<(u32, Arc<str>)>> = None;
    macro_rules! task {
        () => {
            task_cache
                .get_or_insert_with(|| {
                    send.and_then(|s| {
                        task_process(&mut ctx.resolver, s.task.tid, &s.task.comm, known)
                    })
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
            });
        }
    }
    let from_sock = |info: Option<&attribute::SockInfo>, source| {
        info.and_then(|i| {
            Some(EventOwner {
                pid: i.pid?,
                comm: i.comm.clone().unwrap_or_else(|| "?".into()),
                source,
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
                })
            })
            .filter(|peer| owner.as_ref().is_none_or(|o| o.pid != peer.pid))
    } else {
        None
    };
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

/// Where finished matches go: the tally and the events file. A match handed out before its
/// receive event could come ([`Matched::receive_pending`]) is held until the correlator tells
/// whether a socket took the reset, but only when that will be read: the events file is
/// written, or the report still keeps events whole. Otherwise it is counted at once (the
/// tally's counts do not depend on it).
#[derive(Default)]
pub(super) struct Delivery {
    held: rustc_hash::FxHashMap<Ticket, ResetEvent>,
}

impl Delivery {
    pub(super) fn matched(
        &mut self,
        m: &Matched,
        ctx: &mut Ctx,
        index: &SocketIndex,
        tally: &mut Tally,
        stream: Option<&mut EventStream>,
        findings: &[Finding],
    ) {
        let pending = m.receive_pending;
        let e = to_event(m, ctx, index);
        match pending {
            Some(ticket) if stream.is_some() || tally.keeps_more(self.held.len()) => {
                self.held.insert(ticket, e);
            }
            // Not written anywhere and past what the report lists (with the events held for
            // their outcome): counted now, never listed with a `taken_by_socket` not yet known.
            Some(_) => tally.add_unlisted(e),
            None => record(tally, stream, findings, e),
        }
    }

    pub(super) fn outcome(
        &mut self,
        o: ReceiveOutcome,
        tally: &mut Tally,
        stream: Option<&mut EventStream>,
        findings: &[Finding],
    ) {
        if self.held.is_empty() {
            return;
        }
        if let Some(mut e) = self.held.remove(&o.ticket) {
            e.taken_by_socket = Some(o.receive.is_some());
            record(tally, stream, findings, e);
        }
    }

    /// Events still held (their outcome not told yet).
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }
}

/// Count one event, and write it to the events file (listing the findings known so far).
pub(super) fn record(
    tally: &mut Tally,
    stream: Option<&mut EventStream>,
    findings: &[Finding],
    mut e: ResetEvent,
) {
    if let Some(stream) = stream {
        e.rules = summary::supported_rules(findings, &e);
        stream.write(&e);
    }
    tally.add(e);
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::live::correlate::CapturedReset;
    use crate::trace::capture::RstSegment;
    use crate::trace::ftrace::{SendReset, TaskContext};

    fn refused(port: u16, pending: Option<Ticket>) -> Matched {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Matched {
            packet: CapturedReset {
                ts_ms: 0,
                dir: PacketDir::Sent,
                ifindex: 1,
                loopback: true,
                seg: RstSegment {
                    src: a(9),
                    dst: a(port),
                    seq: 0,
                    ack: Some(1),
                    payload_len: 0,
                },
            },
            send: Some(SendReset {
                task: TaskContext {
                    comm: "<...>".into(),
                    tid: 0,
                    cpu: 0,
                    in_interrupt: true,
                    bh_disabled: false,
                    ts: 0.0,
                },
                has_skb: true,
                has_sock: false,
                src: Some(a(9)),
                dst: Some(a(port)),
                state: Some("TCP_CLOSE"),
                reason: Some("NO_SOCKET"),
                site: None,
            }),
            receive: None,
            receive_pending: pending,
        }
    }

    #[test]
    fn an_event_waiting_for_its_receive_is_listed_only_with_its_outcome() {
        let mut ctx = Ctx {
            started_at_ms: 0,
            facts: Default::default(),
            resolver: TaskResolver::default(),
            receive_traced: true,
            idle_timeout_s: None,
            bh_flag_known: true,
            cause_mode: CauseMode::Auto,
        };
        let index = SocketIndex::default();
        let mut tally = Tally::new(0, 10.0, 2);
        let mut d = Delivery::default();
        let mut deliver = |m: Matched, tally: &mut Tally, d: &mut Delivery| {
            d.matched(&m, &mut ctx, &index, tally, None, &[]);
        };
        // Held for its outcome (it may be listed); then one that waits for nothing takes the
        // other place in the list; the third waits too but can no longer be listed.
        deliver(refused(1000, Some(0)), &mut tally, &mut d);
        assert_eq!(d.held(), 1);
        deliver(refused(1001, None), &mut tally, &mut d);
        deliver(refused(1002, Some(1)), &mut tally, &mut d);
        assert_eq!(d.held(), 1, "the third is counted at once");
        assert_eq!(tally.resets, 2);
        let receive = crate::trace::ftrace::ReceiveReset {
            task: refused(0, None).send.unwrap().task,
            local: None,
            remote: None,
            sock_cookie: None,
        };
        for (ticket, r) in [(1, Some(receive.clone())), (0, Some(receive))] {
            d.outcome(ReceiveOutcome { ticket, receive: r }, &mut tally, None, &[]);
        }
        assert_eq!(d.held(), 0);
        assert_eq!((tally.resets, tally.omitted), (3, 1));
        let listed = tally.take_events(&[]);
        let by_port: Vec<(u16, Option<bool>)> = listed
            .iter()
            .map(|e| (e.dst.port(), e.taken_by_socket))
            .collect();
        // The one that waited for nothing says whether it was taken from the start (no receive
        // event came with it: false); the held one says what its outcome told.
        assert_eq!(by_port, [(1001, Some(false)), (1000, Some(true))]);
    }
}
