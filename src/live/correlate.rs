//! Match captured resets with the kernel's trace events.
//!
//! A captured frame is proof that the reset happened in the watched
//! namespace; a `tcp_send_reset` event says why, and a `tcp_receive_reset`
//! event says a local socket took it. The tracepoints are global (all
//! namespaces), and a trace event can arrive before or after its frame, so
//! both wait up to a grace period for their partner. Trace events that never
//! meet a frame are counted, never reported as resets: they belong to
//! another namespace, or to a frame the filter (`--port`, `--iface`) left out.
//!
//! Pure: time is passed in (milliseconds on any monotonic clock).

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

/// Ids waiting under one address pair, oldest first (almost always one).
type Ids = SmallVec<[u64; 2]>;
use std::net::SocketAddr;

use super::slab::Slab;
use super::waits::ReceiveWaits;
pub use super::waits::Ticket;
use crate::trace::capture::{PacketDir, RstSegment};
use crate::trace::ftrace::{ReceiveReset, SendReset};

/// A captured reset, as the correlator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedReset {
    /// Kernel timestamp of the frame, milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub dir: PacketDir,
    pub ifindex: i32,
    /// Captured on the loopback interface: both ends are in this namespace.
    pub loopback: bool,
    pub seg: RstSegment,
}

/// A captured reset with what the trace said about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub packet: CapturedReset,
    pub send: Option<SendReset>,
    pub receive: Option<Box<ReceiveReset>>,
    /// Handed out while its `tcp_receive_reset` may still come (everything else is known):
    /// whether a socket took the reset is told later, by a [`ReceiveOutcome`] with this ticket.
    pub receive_pending: Option<Ticket>,
}

/// Whether a local socket took a reset handed out earlier (see [`Matched::receive_pending`]):
/// the receive event, or `None` when none came within the grace period.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveOutcome {
    pub ticket: Ticket,
    pub receive: Option<ReceiveReset>,
}

/// Counters of the matching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MatchStats {
    /// Send events matched to a captured reset.
    pub send_matched: u64,
    /// Receive events matched to a captured reset.
    pub receive_matched: u64,
    /// Trace events with no captured reset in the grace period (other namespaces, filtered frames).
    pub unmatched_events: u64,
    /// Sent resets for which no send event arrived in time.
    pub sent_without_event: u64,
}

/// A frame waiting for its send event (and maybe its receive event). Events come within
/// milliseconds of their frames, so few wait here, and only for a moment.
struct PendingPacket {
    packet: CapturedReset,
    /// Its receive event, when that came first.
    receive: Option<Box<ReceiveReset>>,
    key: Key,
    need_receive: bool,
    deadline: u64,
}

enum PendingTrace {
    Send(SendReset),
    Receive(ReceiveReset),
}

/// Which queue a waiting trace event is listed in.
#[derive(Clone, Copy)]
enum Queue {
    Sends(Key),
    SendsWild,
    Receives(Key),
}

struct PendingEvent {
    ev: PendingTrace,
    queue: Queue,
    deadline: u64,
}

/// An address pair (source, destination of the reset) as a hash. Whatever is found under a key
/// is compared in full before it is taken: two pairs may share a key.
pub(super) type Key = u64;

pub(super) fn key_of(src: SocketAddr, dst: SocketAddr) -> Key {
    use std::hash::Hasher;
    // An address and port in 64 bits (IPv6 folded): equal addresses, equal bits.
    fn bits(a: SocketAddr) -> u64 {
        let a = canon(a);
        let ip = match a.ip() {
            std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
            std::net::IpAddr::V6(v6) => {
                let x = u128::from(v6);
                (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
            }
        };
        (ip << 16) ^ (ip >> 48) ^ u64::from(a.port())
    }
    let mut h = rustc_hash::FxHasher::default();
    h.write_u64(bits(src));
    h.write_u64(bits(dst));
    h.finish()
}

/// How many of the oldest waiting frames a send event looks at before it looks them up by
/// address.
const OLDEST_LOOKED_AT: usize = 32;

/// Take `id` out of the queue of `key`.
fn unlist(map: &mut HashMap<Key, Ids>, key: Key, id: u64) {
    if let std::collections::hash_map::Entry::Occupied(mut q) = map.entry(key) {
        q.get_mut().retain(|x| *x != id);
        if q.get().is_empty() {
            q.remove();
        }
    }
}

/// The matcher.
pub struct Correlator {
    grace_ms: u64,
    expect_send: bool,
    expect_receive: bool,
    packets: Slab<PendingPacket>,
    /// (src, dst) of the reset -> packets waiting for their send event, oldest first: the
    /// packets before `send_listed`. Send events mostly come in the order of their frames and
    /// find them among the oldest waiting, without this list; it is filled only when one does
    /// not.
    packets_need_send: HashMap<Key, Ids>,
    send_listed: u64,
    /// The same for packets waiting for both events, listed for their receive event (those
    /// before `receive_listed`), filled when a receive event looks for one.
    packets_need_receive: HashMap<Key, Ids>,
    receive_listed: u64,
    /// Frames handed out that wait only for their receive event. On loopback every frame
    /// waits for one, which often never comes (nobody held the other end): they wait as a few
    /// bytes here, not whole, and apart from what send events look through.
    receive_waits: ReceiveWaits,
    outcomes: Vec<ReceiveOutcome>,
    events: Slab<PendingEvent>,
    sends_by_key: HashMap<Key, Ids>,
    /// Send events with an unspecified address (listeners print dest 0.0.0.0:0).
    sends_wild: Ids,
    /// (remote, local) of the reset's receiver, that is (src, dst) of the reset.
    receives_by_key: HashMap<Key, Ids>,
    pub stats: MatchStats,
}

/// IPv4-mapped IPv6 (printed for dual-stack sockets) as plain IPv4.
pub fn canon(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(|v4| SocketAddr::new(v4.into(), a.port()))
            .unwrap_or(a),
        _ => a,
    }
}

pub(super) fn addr_matches(trace: SocketAddr, packet: SocketAddr) -> bool {
    if trace == packet {
        return true;
    }
    let (t, p) = (canon(trace), canon(packet));
    if t == p {
        return true;
    }
    t.ip().is_unspecified() && (t.port() == 0 || t.port() == p.port())
}

impl Correlator {
    /// `expect_send` / `expect_receive`: which trace events are being collected at all.
    pub fn new(grace_ms: u64, expect_send: bool, expect_receive: bool) -> Self {
        Self {
            grace_ms,
            expect_send,
            expect_receive,
            packets: Slab::new(),
            packets_need_send: HashMap::default(),
            send_listed: 0,
            packets_need_receive: HashMap::default(),
            receive_listed: 0,
            receive_waits: ReceiveWaits::new(),
            outcomes: Vec::new(),
            events: Slab::new(),
            sends_by_key: HashMap::default(),
            sends_wild: Ids::new(),
            receives_by_key: HashMap::default(),
            stats: MatchStats::default(),
        }
    }

    /// A captured reset arrived (at `now`). Finished matches are appended to `out`.
    pub fn packet(&mut self, p: CapturedReset, now: u64, out: &mut Vec<Matched>) {
        let sent_here = p.dir == PacketDir::Sent;
        let taken_here = p.dir == PacketDir::Received || p.loopback;
        let (src, dst) = (p.seg.src, p.seg.dst);
        let key = key_of(src, dst);
        let mut need_send = self.expect_send && sent_here;
        let mut need_receive = self.expect_receive && taken_here;
        let mut m = Matched {
            packet: p,
            send: None,
            receive: None,
            receive_pending: None,
        };
        if need_send && let Some(ev) = self.take_send(key, src, dst) {
            m.send = Some(ev);
            need_send = false;
            self.stats.send_matched += 1;
        }
        if need_receive && let Some(ev) = self.take_receive(key, src, dst) {
            m.receive = Some(Box::new(ev));
            need_receive = false;
            self.stats.receive_matched += 1;
        }
        if !need_send {
            if need_receive {
                self.hand_out_waiting(&mut m, key, now + self.grace_ms);
            }
            out.push(m);
            return;
        }
        self.packets.push(PendingPacket {
            packet: m.packet,
            receive: m.receive,
            key,
            need_receive,
            deadline: now + self.grace_ms,
        });
    }

    /// List the packets that came since the last call for their send event.
    fn list_for_send(&mut self) {
        let end = self.packets.next_id();
        for id in self.send_listed.max(self.packets.front_id())..end {
            if let Some(p) = self.packets.get(id) {
                self.packets_need_send.entry(p.key).or_default().push(id);
            }
        }
        self.send_listed = end;
    }

    /// List the packets that came since the last call and wait for a receive event too.
    fn list_for_receive(&mut self) {
        let end = self.packets.next_id();
        for id in self.receive_listed.max(self.packets.front_id())..end {
            if let Some(p) = self.packets.get(id).filter(|p| p.need_receive) {
                self.packets_need_receive.entry(p.key).or_default().push(id);
            }
        }
        self.receive_listed = end;
    }

    /// Take packet `id` out of the lists it is in.
    fn unlist_packet(&mut self, id: u64, key: Key, need_receive: bool) {
        if id < self.send_listed {
            unlist(&mut self.packets_need_send, key, id);
        }
        if need_receive && id < self.receive_listed {
            unlist(&mut self.packets_need_receive, key, id);
        }
    }

    /// The oldest waiting send event for a reset from `src` to `dst`.
    fn take_send(&mut self, key: Key, src: SocketAddr, dst: SocketAddr) -> Option<SendReset> {
        let events = &mut self.events;
        let mut take_from = |q: &mut Ids| -> Option<SendReset> {
            let pos = q.iter().position(|id| {
                events.get(*id).is_some_and(|e| match &e.ev {
                    PendingTrace::Send(s) => {
                        s.src.is_some_and(|a| addr_matches(a, src))
                            && s.dst.is_some_and(|a| addr_matches(a, dst))
                    }
                    PendingTrace::Receive(_) => false,
                })
            })?;
            match events.take(q.remove(pos)) {
                Some(PendingEvent {
                    ev: PendingTrace::Send(s),
                    ..
                }) => Some(s),
                _ => None,
            }
        };
        if let Some(q) = self.sends_by_key.get_mut(&key) {
            let found = take_from(q);
            if q.is_empty() {
                self.sends_by_key.remove(&key);
            }
            if found.is_some() {
                return found;
            }
        }
        take_from(&mut self.sends_wild)
    }

    /// The oldest waiting receive event for a reset from `src` to `dst`.
    fn take_receive(&mut self, key: Key, src: SocketAddr, dst: SocketAddr) -> Option<ReceiveReset> {
        let q = self.receives_by_key.get_mut(&key)?;
        let events = &mut self.events;
        let pos = q.iter().position(|id| {
            events.get(*id).is_some_and(|e| match &e.ev {
                PendingTrace::Receive(r) => {
                    r.remote.is_some_and(|a| addr_matches(a, src))
                        && r.local.is_some_and(|a| addr_matches(a, dst))
                }
                PendingTrace::Send(_) => false,
            })
        });
        let found = pos.and_then(|pos| match events.take(q.remove(pos)) {
            Some(PendingEvent {
                ev: PendingTrace::Receive(r),
                ..
            }) => Some(r),
            _ => None,
        });
        if q.is_empty() {
            self.receives_by_key.remove(&key);
        }
        found
    }

    /// The oldest packet listed under `key` (every packet, when `None`) that `key_matches`.
    fn pending_packet_for(
        &self,
        list: &HashMap<Key, Ids>,
        key_matches: impl Fn(&PendingPacket) -> bool,
        key: Option<Key>,
    ) -> Option<u64> {
        match key {
            Some(k) => list
                .get(&k)?
                .iter()
                .find(|id| self.packets.get(**id).is_some_and(&key_matches))
                .copied(),
            None => self
                .packets
                .iter()
                .find(|(_, p)| key_matches(p))
                .map(|(id, _)| id),
        }
    }

    /// `m` is handed out waiting for its receive event until `deadline`.
    fn hand_out_waiting(&mut self, m: &mut Matched, key: Key, deadline: u64) {
        let seg = &m.packet.seg;
        m.receive_pending = Some(self.receive_waits.push(key, seg.src, seg.dst, deadline));
    }

    /// Hand out waiting packet `id` with its send event: whole when it waits for nothing more,
    /// with a ticket when it still waits for its receive event.
    fn finish_with_send(&mut self, id: u64, send: SendReset, out: &mut Vec<Matched>) {
        let Some(p) = self.packets.take(id) else {
            return;
        };
        self.unlist_packet(id, p.key, p.need_receive);
        let mut m = Matched {
            packet: p.packet,
            send: Some(send),
            receive: p.receive,
            receive_pending: None,
        };
        if p.need_receive {
            self.hand_out_waiting(&mut m, p.key, p.deadline);
        }
        out.push(m);
    }

    /// A `tcp_send_reset` event arrived: it completes the frame waiting for it, or waits.
    pub fn send_event(&mut self, ev: SendReset, now: u64, out: &mut Vec<Matched>) {
        let Some(ev) = self.offer_send(ev, out) else {
            return;
        };
        let (Some(src), Some(dst)) = (ev.src, ev.dst) else {
            self.stats.unmatched_events += 1;
            return;
        };
        if src.ip().is_unspecified() || dst.ip().is_unspecified() {
            let id = self.park_event(PendingTrace::Send(ev), Queue::SendsWild, now);
            self.sends_wild.push(id);
        } else {
            let key = key_of(src, dst);
            let id = self.park_event(PendingTrace::Send(ev), Queue::Sends(key), now);
            self.sends_by_key.entry(key).or_default().push(id);
        }
    }

    /// Whether frames wait for their send event here.
    pub fn waits_for_send(&self) -> bool {
        self.packets.live > 0
    }

    /// A `tcp_send_reset` event, offered: it completes the frame waiting for it (finished
    /// matches go to `out`), or is handed back without waiting here (a caller routing one
    /// trace among several namespaces keeps it). Its addresses are made canonical either way.
    pub fn offer_send(&mut self, mut ev: SendReset, out: &mut Vec<Matched>) -> Option<SendReset> {
        ev.src = ev.src.map(canon);
        ev.dst = ev.dst.map(canon);
        let (Some(src), Some(dst)) = (ev.src, ev.dst) else {
            return Some(ev);
        };
        if self.packets.live == 0 {
            return Some(ev);
        }
        let wild = src.ip().is_unspecified() || dst.ip().is_unspecified();
        let key = key_of(src, dst);
        let matches = |p: &PendingPacket| {
            addr_matches(src, p.packet.seg.src) && addr_matches(dst, p.packet.seg.dst)
        };
        // Most often the oldest waiting frame of this key is among the oldest of all.
        let mut found = None;
        if !wild {
            found = self
                .packets
                .front_slots(OLDEST_LOOKED_AT)
                .find(|(_, p)| p.key == key && matches(p))
                .map(|(id, _)| id);
        }
        if found.is_none() {
            if !wild {
                self.list_for_send();
            }
            found =
                self.pending_packet_for(&self.packets_need_send, matches, (!wild).then_some(key));
        }
        match found {
            Some(id) => {
                self.stats.send_matched += 1;
                self.finish_with_send(id, ev, out);
                None
            }
            None => Some(ev),
        }
    }

    /// Keep a trace event that matched no frame yet, until its grace period ends.
    fn park_event(&mut self, ev: PendingTrace, queue: Queue, now: u64) -> u64 {
        self.events.push(PendingEvent {
            ev,
            queue,
            deadline: now + self.grace_ms,
        })
    }

    /// A `tcp_receive_reset` event arrived. A frame waiting for it, whole or handed out,
    /// is completed (the oldest, when several wait under the same addresses); else it waits.
    pub fn receive_event(&mut self, ev: ReceiveReset, now: u64) {
        let Some(ev) = self.offer_receive(ev) else {
            return;
        };
        let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
            self.stats.unmatched_events += 1;
            return;
        };
        let key = key_of(remote, local);
        let id = self.park_event(PendingTrace::Receive(ev), Queue::Receives(key), now);
        self.receives_by_key.entry(key).or_default().push(id);
    }

    /// Whether frames wait for a receive event here (whole, or handed out with a ticket).
    pub fn waits_for_receive(&self) -> bool {
        self.packets.live > 0 || self.receive_waits.len() > 0
    }

    /// A `tcp_receive_reset` event, offered: it completes the frame waiting for it, or is
    /// handed back without waiting here (see [`Correlator::offer_send`]).
    pub fn offer_receive(&mut self, mut ev: ReceiveReset) -> Option<ReceiveReset> {
        ev.local = ev.local.map(canon);
        ev.remote = ev.remote.map(canon);
        let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
            return Some(ev);
        };
        if !self.waits_for_receive() {
            return Some(ev);
        }
        // The reset travelled remote -> local.
        let key = key_of(remote, local);
        self.list_for_receive();
        let whole = self
            .pending_packet_for(
                &self.packets_need_receive,
                |p| {
                    p.need_receive
                        && addr_matches(remote, p.packet.seg.src)
                        && addr_matches(local, p.packet.seg.dst)
                },
                Some(key),
            )
            .and_then(|id| Some((id, self.packets.get(id)?.deadline)));
        let handed_out = self.receive_waits.find(key, |src, dst| {
            addr_matches(remote, src) && addr_matches(local, dst)
        });
        // The one that has waited longer (the earlier deadline) takes it.
        let handed_out = handed_out.filter(|(_, dh)| whole.is_none_or(|(_, dw)| *dh <= dw));
        if let Some((ticket, _)) = handed_out {
            self.receive_waits.take(ticket);
            self.outcomes.push(ReceiveOutcome {
                ticket,
                receive: Some(ev),
            });
            self.stats.receive_matched += 1;
            None
        } else if let Some((id, _)) = whole {
            // It still waits for its send event.
            if let Some(p) = self.packets.get_mut(id) {
                p.receive = Some(Box::new(ev));
                p.need_receive = false;
                let key = p.key;
                unlist(&mut self.packets_need_receive, key, id);
            }
            self.stats.receive_matched += 1;
            None
        } else {
            Some(ev)
        }
    }

    /// Release what waited past its grace period (packets without their events are reported
    /// as they are; events without packets are counted and dropped).
    pub fn expire(&mut self, now: u64, out: &mut Vec<Matched>) {
        while let Some(front) = self.packets.front() {
            if front.is_some_and(|p| p.deadline > now) {
                break;
            }
            let Some((id, Some(p))) = self.packets.pop_front() else {
                continue;
            };
            self.unlist_packet(id, p.key, p.need_receive);
            self.stats.sent_without_event += 1;
            out.push(Matched {
                packet: p.packet,
                send: None,
                receive: p.receive,
                receive_pending: None,
            });
        }
        while let Some(ticket) = self.receive_waits.pop_expired(now) {
            self.outcomes.push(ReceiveOutcome {
                ticket,
                receive: None,
            });
        }
        while let Some(front) = self.events.front() {
            if front.is_some_and(|e| e.deadline > now) {
                break;
            }
            let Some((id, Some(e))) = self.events.pop_front() else {
                continue;
            };
            self.stats.unmatched_events += 1;
            match e.queue {
                Queue::SendsWild => self.sends_wild.retain(|x| *x != id),
                Queue::Sends(key) => unlist(&mut self.sends_by_key, key, id),
                Queue::Receives(key) => unlist(&mut self.receives_by_key, key, id),
            }
        }
    }

    /// Release everything (end of the window).
    pub fn flush(&mut self, out: &mut Vec<Matched>) {
        self.expire(u64::MAX, out);
    }

    /// Packets still waiting for their events (whole, or handed out with a ticket).
    pub fn pending(&self) -> usize {
        self.packets.live + self.receive_waits.len()
    }

    /// Move the outcomes of handed-out matches decided since the last call to `out`, in the
    /// order they were decided (always after the match they belong to was handed out).
    pub fn receive_outcomes(&mut self, out: &mut Vec<ReceiveOutcome>) {
        out.append(&mut self.outcomes);
    }
}

#[cfg(test)]
#[path = "correlate_tests.rs"]
mod tests;
