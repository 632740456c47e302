//! One trace among several namespaces: the reset tracepoints are global, the captures are
//! per namespace, and a trace event belongs to the namespace whose frame it completes.
//!
//! Offering every event to every namespace's [`Stream`] would cost a flood in one namespace
//! once per namespace watched (and keep each event waiting in each). Instead an event is
//! offered only to the streams whose frames wait for one; when none takes it (the event came
//! before its frame) it is kept here, under its addresses, until the grace period ends, and a
//! frame captured with those addresses in any namespace takes it into its own stream first.
//!
//! Pure: time is passed in (milliseconds on any monotonic clock).

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

use super::correlate::{CapturedReset, Key, addr_matches, canon, key_of};
use super::slab::Slab;
use super::stream::Stream;
use crate::trace::ftrace::TraceEvent;

struct Kept {
    /// A send or receive event.
    ev: TraceEvent,
    /// `None`: a send event with an unspecified address (a listener's), kept in `wild`.
    key: Option<Key>,
    deadline: u64,
}

/// What the router did with the trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RouteStats {
    /// Reset events taken by a namespace's stream.
    pub routed: u64,
    /// Reset events no captured frame took in the grace period (resets of namespaces not
    /// watched, or of frames a filter left out).
    pub unmatched: u64,
}

/// The trace events waiting for their frame, in any namespace.
pub struct Router {
    grace_ms: u64,
    kept: Slab<Kept>,
    by_key: HashMap<Key, SmallVec<[u64; 2]>>,
    wild: SmallVec<[u64; 2]>,
    pub stats: RouteStats,
}

/// The (source, destination) of the reset an event tells about, canonical.
fn ends(ev: &TraceEvent) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    match ev {
        TraceEvent::SendReset(s) => Some((canon(s.src?), canon(s.dst?))),
        // The reset travelled remote -> local.
        TraceEvent::ReceiveReset(r) => Some((canon(r.remote?), canon(r.local?))),
        _ => None,
    }
}

impl Router {
    pub fn new(grace_ms: u64) -> Self {
        Self {
            grace_ms,
            kept: Slab::new(),
            by_key: HashMap::default(),
            wild: SmallVec::new(),
            stats: RouteStats::default(),
        }
    }

    /// A reset event of the trace (task events go to the resolver, not here): to the first of
    /// `streams` whose waiting frame it completes, else kept for the frame to come.
    pub fn event<'a>(
        &mut self,
        ev: TraceEvent,
        now: u64,
        streams: impl Iterator<Item = &'a mut Stream>,
    ) {
        let send = matches!(ev, TraceEvent::SendReset(_));
        if !send && !matches!(ev, TraceEvent::ReceiveReset(_)) {
            return;
        }
        let mut ev = ev;
        for stream in streams {
            let (sends, receives) = stream.waiting();
            if !(if send { sends } else { receives }) {
                continue;
            }
            match stream.offer(ev) {
                None => {
                    self.stats.routed += 1;
                    return;
                }
                Some(back) => ev = back,
            }
        }
        let Some((src, dst)) = ends(&ev) else {
            self.stats.unmatched += 1;
            return;
        };
        let wild = src.ip().is_unspecified() || dst.ip().is_unspecified();
        let key = (!wild).then(|| key_of(src, dst));
        let id = self.kept.push(Kept {
            ev,
            key,
            deadline: now + self.grace_ms,
        });
        match key {
            Some(k) => self.by_key.entry(k).or_default().push(id),
            None => self.wild.push(id),
        }
    }

    /// A frame captured in `stream`'s namespace: the kept events of its addresses (the oldest
    /// send and the oldest receive event) go to that stream first, then the frame.
    pub fn frame(&mut self, f: CapturedReset, now: u64, stream: &mut Stream) {
        if self.kept.live > 0 {
            let (src, dst) = (f.seg.src, f.seg.dst);
            let key = key_of(src, dst);
            let fits = |k: &Kept, send: bool| match &k.ev {
                TraceEvent::SendReset(s) if send => s
                    .src
                    .zip(s.dst)
                    .is_some_and(|(a, b)| addr_matches(a, src) && addr_matches(b, dst)),
                TraceEvent::ReceiveReset(r) if !send => r
                    .remote
                    .zip(r.local)
                    .is_some_and(|(a, b)| addr_matches(a, src) && addr_matches(b, dst)),
                _ => false,
            };
            for send in [true, false] {
                let kept = &self.kept;
                let found = self
                    .by_key
                    .get(&key)
                    .and_then(|ids| {
                        ids.iter()
                            .copied()
                            .find(|id| kept.get(*id).is_some_and(|k| fits(k, send)))
                    })
                    .or_else(|| {
                        send.then(|| {
                            self.wild
                                .iter()
                                .copied()
                                .find(|id| kept.get(*id).is_some_and(|k| fits(k, true)))
                        })
                        .flatten()
                    });
                if let Some(id) = found
                    && let Some(k) = self.take(id)
                {
                    self.stats.routed += 1;
                    stream.trace_event(k.ev, now);
                }
            }
        }
        stream.frame(f, now);
    }

    fn take(&mut self, id: u64) -> Option<Kept> {
        let k = self.kept.take(id)?;
        let list = match k.key {
            Some(key) => self.by_key.get_mut(&key),
            None => Some(&mut self.wild),
        };
        if let Some(list) = list {
            list.retain(|x| *x != id);
            if list.is_empty()
                && let Some(key) = k.key
            {
                self.by_key.remove(&key);
            }
        }
        Some(k)
    }

    /// Drop what waited past its grace period (counted as unmatched).
    pub fn expire(&mut self, now: u64) {
        while let Some(front) = self.kept.front() {
            if front.is_some_and(|k| k.deadline > now) {
                break;
            }
            let Some((id, Some(k))) = self.kept.pop_front() else {
                continue;
            };
            self.stats.unmatched += 1;
            match k.key {
                Some(key) => {
                    if let Some(list) = self.by_key.get_mut(&key) {
                        list.retain(|x| *x != id);
                        if list.is_empty() {
                            self.by_key.remove(&key);
                        }
                    }
                }
                None => self.wild.retain(|x| *x != id),
            }
        }
    }

    /// Events kept now.
    pub fn kept(&self) -> usize {
        self.kept.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::attribute::{SocketIndex, TaskResolver};
    use crate::live::derive::CauseMode;
    use crate::live::event::ResetEvent;
    use crate::live::events::Ctx;
    use crate::live::fixtures::{closed_port_frame, closed_port_send};
    use crate::live::stream::{Attribution, Sink};
    use crate::rules::Finding;

    fn stream() -> Stream {
        let ctx = Ctx {
            started_at_ms: 0,
            facts: Default::default(),
            receive_traced: false,
            idle_timeout_s: None,
            bh_flag_known: true,
            cause_mode: CauseMode::Auto,
        };
        Stream::new(ctx, 300, true, false)
    }

    fn frame(port: u16) -> CapturedReset {
        closed_port_frame(port, false)
    }

    fn send(port: u16) -> TraceEvent {
        TraceEvent::SendReset(closed_port_send(port, "<idle>"))
    }

    #[derive(Default)]
    struct Got(Vec<ResetEvent>);

    impl Sink for Got {
        fn event(&mut self, e: ResetEvent, _: &[Finding]) {
            self.0.push(e);
        }
        fn wants_outcome(&self, _: usize) -> bool {
            false
        }
        fn unlisted(&mut self, e: ResetEvent) {
            self.0.push(e);
        }
    }

    fn finish(s: &mut Stream) -> Vec<(u16, Option<&'static str>)> {
        let mut got = Got::default();
        let index = SocketIndex::default();
        let mut resolver = TaskResolver::default();
        s.finish(
            Attribution {
                index: &index,
                findings: &[],
                resolver: &mut resolver,
            },
            &mut got,
        );
        got.0.iter().map(|e| (e.dst.port(), e.reason)).collect()
    }

    #[test]
    fn each_event_reaches_the_namespace_of_its_frame_in_either_order() {
        let mut r = Router::new(300);
        let (mut one, mut two) = (stream(), stream());
        // Frame first, in namespace two: the event goes to two, not to one.
        r.frame(frame(1000), 0, &mut two);
        r.event(send(1000), 1, [&mut one, &mut two].into_iter());
        assert_eq!(r.kept(), 0);
        // Event first: kept here, then taken by the frame's namespace (one).
        r.event(send(2000), 2, [&mut one, &mut two].into_iter());
        assert_eq!(r.kept(), 1);
        r.frame(frame(2000), 3, &mut one);
        assert_eq!(r.kept(), 0);
        // An event no frame takes goes when its grace period is over.
        r.event(send(3000), 4, [&mut one, &mut two].into_iter());
        r.expire(303);
        assert_eq!(r.kept(), 1, "not before its deadline");
        r.expire(304);
        assert_eq!(r.kept(), 0);
        assert_eq!(
            r.stats,
            RouteStats {
                routed: 2,
                unmatched: 1
            }
        );
        assert_eq!(finish(&mut one), [(2000, Some("NO_SOCKET"))]);
        assert_eq!(finish(&mut two), [(1000, Some("NO_SOCKET"))]);
    }
}
