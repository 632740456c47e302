//! The pipeline of one watched namespace: captured frames and trace events are matched
//! (`correlate`), each match made into a [`ResetEvent`] (`events`: owner, cause), and the
//! finished events handed to a [`Sink`] (the window's tally and events file for
//! `packet-check`; metrics and an event stream for a check that never ends). The stages own
//! no threads and read no files: the caller feeds them and says what time it is.

use rustc_hash::FxHashMap as HashMap;

use super::attribute::{SocketIndex, TaskResolver};
use super::correlate::{CapturedReset, Correlator, MatchStats, Matched, ReceiveOutcome, Ticket};
use super::event::ResetEvent;
use super::events::{Ctx, to_event};
use super::events_file::EventStream;
use super::summary::Tally;
use super::support::supported_rules;
use crate::host::facts::NamespaceFacts;
use crate::host::workload::Workloads;
use crate::rules::Finding;
use crate::trace::ftrace::TraceEvent;

/// Where finished events go.
pub trait Sink {
    /// A reset, complete (whether a socket took it is known, or will not be read).
    fn event(&mut self, e: ResetEvent, findings: &[Finding]);
    /// Whether an event handed out before its receive event could come should wait for it
    /// (with `held` others waiting): only when it will be read whole.
    fn wants_outcome(&self, held: usize) -> bool;
    /// A reset counted without being read whole (its `taken_by_socket` not yet known).
    fn unlisted(&mut self, e: ResetEvent);
}

/// The sink of a `packet-check` window: the tally (everything the report says) and the events
/// file, with the owners labelled by their unit, container and pod.
pub struct WindowSink<'a> {
    pub tally: &'a mut Tally,
    pub file: Option<&'a mut EventStream>,
    pub workloads: &'a mut Workloads,
}

/// Label the owner and the peer of `e` with their workloads (kept per process, so this reads
/// /proc only for a process not seen in the last second).
pub fn label(e: &mut ResetEvent, workloads: &mut Workloads) {
    for o in [e.owner.as_mut(), e.peer.as_mut()].into_iter().flatten() {
        o.workload = workloads.labels(o.pid);
    }
}

impl Sink for WindowSink<'_> {
    fn event(&mut self, mut e: ResetEvent, findings: &[Finding]) {
        label(&mut e, self.workloads);
        if let Some(file) = self.file.as_deref_mut() {
            // The findings known so far (the report lists those of the end).
            e.rules = supported_rules(findings, &e);
            file.write(&e);
        }
        self.tally.add(e);
    }

    fn wants_outcome(&self, held: usize) -> bool {
        self.file.is_some() || self.tally.keeps_more(held)
    }

    fn unlisted(&mut self, mut e: ResetEvent) {
        label(&mut e, self.workloads);
        self.tally.add_unlisted(e);
    }
}

/// What the trace told about this namespace, as counted by the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceCounts {
    /// Reset events taken in.
    pub events: u64,
    /// Of them, those about addresses not configured here (as far as known when they came).
    pub foreign: u64,
}

/// What events are attributed with: the namespace's socket table, the audit's findings (for
/// the events that list the rules they support) and the process-wide knowledge of tasks.
pub struct Attribution<'a> {
    pub index: &'a SocketIndex,
    pub findings: &'a [Finding],
    pub resolver: &'a mut TaskResolver,
}

/// One namespace's pipeline.
pub struct Stream {
    correlator: Correlator,
    ctx: Ctx,
    matched: Vec<Matched>,
    outcomes: Vec<ReceiveOutcome>,
    /// Events handed out before their receive event could come, waiting for it.
    held: HashMap<Ticket, ResetEvent>,
    pub trace: TraceCounts,
}

impl Stream {
    /// `send_traced` / `receive_traced`: which trace events come at all.
    pub fn new(ctx: Ctx, grace_ms: u64, send_traced: bool, receive_traced: bool) -> Self {
        Self {
            correlator: Correlator::new(grace_ms, send_traced, receive_traced),
            ctx,
            matched: Vec::new(),
            outcomes: Vec::new(),
            held: HashMap::default(),
            trace: TraceCounts::default(),
        }
    }

    /// A reset captured in the namespace.
    pub fn frame(&mut self, f: CapturedReset, now_ms: u64) {
        self.correlator.packet(f, now_ms, &mut self.matched);
    }

    /// An event of the kernel's trace (of any namespace: only a captured frame makes it this
    /// one's). Task events are the process-wide resolver's ([`TaskResolver::take_in`]): given
    /// here, they are left alone.
    pub fn trace_event(&mut self, ev: TraceEvent, now_ms: u64) {
        let addresses = &self.ctx.facts.addresses;
        let ours = |a: std::net::SocketAddr, wildcard: bool| {
            let a = super::correlate::canon(a);
            (wildcard && a.ip().is_unspecified()) || addresses.contains(&a.ip())
        };
        match ev {
            // Joined to its site's event by the reader; one left over has none.
            TraceEvent::NewTask(_) | TraceEvent::Rename(_) | TraceEvent::Stack(_) => {}
            TraceEvent::SendReset(s) => {
                self.trace.events += 1;
                if !s.src.is_none_or(|a| ours(a, true)) {
                    self.trace.foreign += 1;
                }
                self.correlator.send_event(s, now_ms, &mut self.matched);
            }
            TraceEvent::ReceiveReset(r) => {
                self.trace.events += 1;
                if !r.local.is_none_or(|a| ours(a, false)) {
                    self.trace.foreign += 1;
                }
                self.correlator.receive_event(r, now_ms);
            }
        }
    }

    /// A reset event of the trace, offered by a caller that routes one trace among several
    /// namespaces (see [`super::router::Router`]): taken when it completes a frame waiting here,
    /// else handed back (it does not wait here). Other events are handed back too.
    pub fn offer(&mut self, ev: TraceEvent) -> Option<TraceEvent> {
        let back = match ev {
            TraceEvent::SendReset(s) => self
                .correlator
                .offer_send(s, &mut self.matched)
                .map(TraceEvent::SendReset),
            TraceEvent::ReceiveReset(r) => self
                .correlator
                .offer_receive(r)
                .map(TraceEvent::ReceiveReset),
            other => return Some(other),
        };
        if back.is_none() {
            self.trace.events += 1;
        }
        back
    }

    /// What the stream attributes with (a check that never ends changes the idle timeout when
    /// its parameters are reloaded).
    pub fn context(&mut self) -> &mut Ctx {
        &mut self.ctx
    }

    /// Whether frames wait here for their send event, and for a receive event.
    pub fn waiting(&self) -> (bool, bool) {
        (
            self.correlator.waits_for_send(),
            self.correlator.waits_for_receive(),
        )
    }

    /// A later reading of the namespace's links, addresses and sysctl.
    pub fn facts(&mut self, later: NamespaceFacts) {
        self.ctx.facts.update(later);
    }

    /// Hand what is finished by `now_ms` to `sink`, attributed with the socket table `index`
    /// and the tasks `resolver` knows.
    pub fn deliver(&mut self, now_ms: u64, with: Attribution<'_>, sink: &mut dyn Sink) {
        self.correlator.expire(now_ms, &mut self.matched);
        self.hand_out(with, sink);
    }

    /// The window is over: everything still waiting is handed out.
    pub fn finish(&mut self, with: Attribution<'_>, sink: &mut dyn Sink) {
        self.correlator.flush(&mut self.matched);
        self.hand_out(with, sink);
        debug_assert!(self.held.is_empty(), "every held event has its outcome");
    }

    /// Whether anything waits to be handed out (the socket table is needed then).
    pub fn ready(&mut self) -> bool {
        self.correlator.receive_outcomes(&mut self.outcomes);
        !self.matched.is_empty() || !self.outcomes.is_empty()
    }

    pub fn match_stats(&self) -> MatchStats {
        self.correlator.stats
    }

    fn hand_out(&mut self, with: Attribution<'_>, sink: &mut dyn Sink) {
        let Attribution {
            index,
            findings,
            resolver,
        } = with;
        self.correlator.receive_outcomes(&mut self.outcomes);
        for m in self.matched.drain(..) {
            let e = to_event(&m, &self.ctx, resolver, index);
            match m.receive_pending {
                Some(ticket) if sink.wants_outcome(self.held.len()) => {
                    self.held.insert(ticket, e);
                }
                // Not read whole: counted now, never listed with a `taken_by_socket` not yet
                // known.
                Some(_) => sink.unlisted(e),
                None => sink.event(e, findings),
            }
        }
        for o in self.outcomes.drain(..) {
            if let Some(mut e) = self.held.remove(&o.ticket) {
                e.taken_by_socket = Some(o.receive.is_some());
                sink.event(e, findings);
            }
        }
    }

    /// Events still held (their outcome not told yet).
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::derive::CauseMode;
    use crate::live::fixtures::{closed_port_frame, closed_port_send};

    fn refused(port: u16, pending: Option<Ticket>) -> Matched {
        Matched {
            packet: closed_port_frame(port, true),
            send: Some(closed_port_send(port, "<...>")),
            receive: None,
            receive_pending: pending,
        }
    }

    #[test]
    fn an_event_waiting_for_its_receive_is_listed_only_with_its_outcome() {
        let ctx = Ctx {
            started_at_ms: 0,
            facts: Default::default(),
            receive_traced: true,
            idle_timeout_s: None,
            bh_flag_known: true,
            cause_mode: CauseMode::Auto,
        };
        let index = SocketIndex::default();
        let mut resolver = TaskResolver::default();
        let mut tally = Tally::new(0, 10.0, 2);
        let mut st = Stream::new(ctx, 300, true, true);
        let mut deliver =
            |st: &mut Stream, m: Option<Matched>, o: Option<ReceiveOutcome>, tally: &mut Tally| {
                st.matched.extend(m);
                st.outcomes.extend(o);
                let with = Attribution {
                    index: &index,
                    findings: &[],
                    resolver: &mut resolver,
                };
                let mut workloads = Workloads::new(Default::default());
                let mut sink = WindowSink {
                    tally,
                    file: None,
                    workloads: &mut workloads,
                };
                st.hand_out(with, &mut sink);
            };
        // Held for its outcome (it may be listed); then one that waits for nothing takes the
        // other place in the list; the third waits too but can no longer be listed.
        deliver(&mut st, Some(refused(1000, Some(0))), None, &mut tally);
        assert_eq!(st.held(), 1);
        deliver(&mut st, Some(refused(1001, None)), None, &mut tally);
        deliver(&mut st, Some(refused(1002, Some(1))), None, &mut tally);
        assert_eq!(st.held(), 1, "the third is counted at once");
        assert_eq!(tally.resets, 2);
        let receive = crate::trace::ftrace::ReceiveReset {
            task: refused(0, None).send.unwrap().task,
            local: None,
            remote: None,
            sock_cookie: None,
        };
        for (ticket, r) in [(1, Some(receive.clone())), (0, Some(receive))] {
            deliver(
                &mut st,
                None,
                Some(ReceiveOutcome { ticket, receive: r }),
                &mut tally,
            );
        }
        assert_eq!(st.held(), 0);
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
