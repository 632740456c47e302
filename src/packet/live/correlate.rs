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

use super::super::capture::{PacketDir, RstSegment};
use super::super::ftrace::{ReceiveReset, SendReset};
use super::slab::Slab;
use super::waits::ReceiveWaits;
pub use super::waits::Ticket;

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
type Key = u64;

fn key_of(src: SocketAddr, dst: SocketAddr) -> Key {
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

fn addr_matches(trace: SocketAddr, packet: SocketAddr) -> bool {
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

    /// A `tcp_send_reset` event arrived.
    pub fn send_event(&mut self, mut ev: SendReset, now: u64, out: &mut Vec<Matched>) {
        ev.src = ev.src.map(canon);
        ev.dst = ev.dst.map(canon);
        let (Some(src), Some(dst)) = (ev.src, ev.dst) else {
            self.stats.unmatched_events += 1;
            return;
        };
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
        if let Some(id) = found {
            self.stats.send_matched += 1;
            self.finish_with_send(id, ev, out);
            return;
        }
        if wild {
            let id = self.park_event(PendingTrace::Send(ev), Queue::SendsWild, now);
            self.sends_wild.push(id);
        } else {
            let id = self.park_event(PendingTrace::Send(ev), Queue::Sends(key), now);
            self.sends_by_key.entry(key).or_default().push(id);
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
    /// is completed (the oldest, when several wait under the same addresses).
    pub fn receive_event(&mut self, mut ev: ReceiveReset, now: u64) {
        ev.local = ev.local.map(canon);
        ev.remote = ev.remote.map(canon);
        let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
            self.stats.unmatched_events += 1;
            return;
        };
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
        } else if let Some((id, _)) = whole {
            // It still waits for its send event.
            if let Some(p) = self.packets.get_mut(id) {
                p.receive = Some(Box::new(ev));
                p.need_receive = false;
                let key = p.key;
                unlist(&mut self.packets_need_receive, key, id);
            }
            self.stats.receive_matched += 1;
        } else {
            let id = self.park_event(PendingTrace::Receive(ev), Queue::Receives(key), now);
            self.receives_by_key.entry(key).or_default().push(id);
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
mod tests {
    use super::super::super::ftrace::TaskContext;
    use super::*;

    fn seg(src: &str, dst: &str) -> RstSegment {
        RstSegment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq: 1,
            ack: None,
            payload_len: 0,
        }
    }

    fn pkt(src: &str, dst: &str, lo: bool) -> CapturedReset {
        CapturedReset {
            ts_ms: 0,
            dir: PacketDir::Sent,
            ifindex: 1,
            loopback: lo,
            seg: seg(src, dst),
        }
    }

    fn task() -> TaskContext {
        TaskContext {
            comm: "x".into(),
            tid: 7,
            cpu: 0,
            in_interrupt: false,
            bh_disabled: false,
            ts: 0.0,
        }
    }

    fn send(src: &str, dst: &str, reason: &'static str) -> SendReset {
        SendReset {
            task: task(),
            has_skb: true,
            has_sock: false,
            src: Some(src.parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            state: None,
            reason: Some(reason),
        }
    }

    #[test]
    fn event_before_or_after_packet() {
        let mut c = Correlator::new(300, true, false);
        let mut out = Vec::new();
        c.send_event(
            send("10.0.0.1:80", "10.0.0.2:5000", "NO_SOCKET"),
            0,
            &mut out,
        );
        c.packet(pkt("10.0.0.1:80", "10.0.0.2:5000", false), 10, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].send.as_ref().unwrap().reason, Some("NO_SOCKET"));
        c.packet(pkt("10.0.0.1:81", "10.0.0.2:5000", false), 20, &mut out);
        assert_eq!(out.len(), 1, "waits for its event");
        c.send_event(
            send("10.0.0.1:81", "10.0.0.2:5000", "TCP_STATE"),
            30,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        c.expire(10_000, &mut out);
        assert_eq!(c.stats.unmatched_events, 0);
        assert_eq!(c.stats.send_matched, 2);
    }

    #[test]
    fn events_of_other_namespaces_are_counted_not_reported() {
        let mut c = Correlator::new(300, true, false);
        let mut out = Vec::new();
        c.send_event(
            send("127.0.0.1:9", "127.0.0.1:40000", "NO_SOCKET"),
            0,
            &mut out,
        );
        c.expire(1000, &mut out);
        assert!(out.is_empty());
        assert_eq!(c.stats.unmatched_events, 1);
        // A packet whose event never comes is reported without a reason.
        c.packet(pkt("127.0.0.1:9", "127.0.0.1:40001", true), 1000, &mut out);
        c.expire(1200, &mut out);
        assert!(out.is_empty());
        c.expire(1400, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].send.is_none());
        assert_eq!(c.stats.sent_without_event, 1);
    }

    #[test]
    fn listener_events_match_with_wildcard_destination() {
        let mut c = Correlator::new(300, true, false);
        let mut out = Vec::new();
        c.packet(pkt("127.0.0.1:7000", "127.0.0.1:41000", true), 0, &mut out);
        c.send_event(
            send("127.0.0.1:7000", "0.0.0.0:0", "INVALID_SYN"),
            5,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].send.as_ref().unwrap().reason, Some("INVALID_SYN"));
        // And the other way round.
        c.send_event(
            send("127.0.0.1:7000", "0.0.0.0:0", "INVALID_SYN"),
            10,
            &mut out,
        );
        c.packet(pkt("127.0.0.1:7000", "127.0.0.1:41001", true), 11, &mut out);
        assert_eq!(out.len(), 2);
    }

    fn receive(local: &str, remote: &str) -> ReceiveReset {
        ReceiveReset {
            task: task(),
            local: Some(local.parse().unwrap()),
            remote: Some(remote.parse().unwrap()),
            sock_cookie: Some(4),
        }
    }

    fn outcomes(c: &mut Correlator) -> Vec<(Ticket, bool)> {
        let mut o = Vec::new();
        c.receive_outcomes(&mut o);
        o.into_iter()
            .map(|o| (o.ticket, o.receive.is_some()))
            .collect()
    }

    #[test]
    fn loopback_packets_wait_for_the_receive_event_too() {
        let mut c = Correlator::new(300, true, true);
        let mut out = Vec::new();
        // The frame waits for its send event whole; once it has it, it is handed out with a
        // ticket, and the receive event that comes later is told under that ticket.
        c.packet(pkt("127.0.0.1:5000", "127.0.0.1:41000", true), 0, &mut out);
        assert!(out.is_empty(), "waits for its send event");
        c.send_event(
            send("127.0.0.1:5000", "127.0.0.1:41000", "TCP_ABORT_ON_CLOSE"),
            1,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].send.is_some() && out[0].receive.is_none());
        let t0 = out[0]
            .receive_pending
            .expect("handed out waiting for its receive");
        assert!(outcomes(&mut c).is_empty());
        c.receive_event(receive("127.0.0.1:41000", "127.0.0.1:5000"), 2);
        assert_eq!(outcomes(&mut c), vec![(t0, true)]);
        assert_eq!(c.stats.receive_matched, 1);
        // No socket takes a reset to a closed connection: told at the deadline.
        c.packet(pkt("127.0.0.1:9", "127.0.0.1:41001", true), 10, &mut out);
        c.send_event(
            send("127.0.0.1:9", "127.0.0.1:41001", "NO_SOCKET"),
            11,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        let t1 = out[1].receive_pending.expect("handed out waiting");
        c.expire(309, &mut out);
        assert!(outcomes(&mut c).is_empty(), "not before the deadline");
        c.expire(310, &mut out);
        assert_eq!(outcomes(&mut c), vec![(t1, false)]);
        assert_eq!(c.pending(), 0);
        assert_eq!(c.stats.unmatched_events, 0);
    }

    #[test]
    fn a_receive_event_before_its_frame_or_before_its_send_event_completes_it_whole() {
        let mut c = Correlator::new(300, true, true);
        let mut out = Vec::new();
        // Receive and send events before the frame.
        c.receive_event(receive("127.0.0.1:41000", "127.0.0.1:5000"), 0);
        c.send_event(
            send("127.0.0.1:5000", "127.0.0.1:41000", "TCP_ABORT_ON_CLOSE"),
            0,
            &mut out,
        );
        c.packet(pkt("127.0.0.1:5000", "127.0.0.1:41000", true), 1, &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].receive.is_some() && out[0].receive_pending.is_none());
        // Frame, then its receive event, then its send event.
        c.packet(pkt("127.0.0.1:5001", "127.0.0.1:41001", true), 2, &mut out);
        c.receive_event(receive("127.0.0.1:41001", "127.0.0.1:5001"), 3);
        assert_eq!(out.len(), 1, "still waits for its send event");
        c.send_event(
            send("127.0.0.1:5001", "127.0.0.1:41001", "TCP_ABORT_ON_CLOSE"),
            4,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out[1].receive.is_some() && out[1].receive_pending.is_none());
        c.flush(&mut out);
        assert!(outcomes(&mut c).is_empty());
        assert_eq!(c.stats.receive_matched, 2);
        assert_eq!(c.stats.unmatched_events, 0);
    }

    #[test]
    fn a_receive_event_goes_to_the_frame_that_waited_longest() {
        let mut c = Correlator::new(300, true, true);
        let mut out = Vec::new();
        // Two resets on one address pair (a reused port), both handed out waiting.
        for now in [0, 50] {
            c.send_event(
                send("127.0.0.1:80", "127.0.0.1:40000", "NO_SOCKET"),
                now,
                &mut out,
            );
            c.packet(pkt("127.0.0.1:80", "127.0.0.1:40000", true), now, &mut out);
        }
        // A third frame, still waiting for its send event: it waited least.
        c.packet(pkt("127.0.0.1:80", "127.0.0.1:40000", true), 60, &mut out);
        let tickets: Vec<Ticket> = out.iter().filter_map(|m| m.receive_pending).collect();
        assert_eq!(tickets.len(), 2);
        c.receive_event(receive("127.0.0.1:40000", "127.0.0.1:80"), 70);
        assert_eq!(outcomes(&mut c), vec![(tickets[0], true)]);
        c.receive_event(receive("127.0.0.1:40000", "127.0.0.1:80"), 71);
        assert_eq!(outcomes(&mut c), vec![(tickets[1], true)]);
        // The third takes the next one whole, with its send event after it.
        c.receive_event(receive("127.0.0.1:40000", "127.0.0.1:80"), 72);
        c.send_event(
            send("127.0.0.1:80", "127.0.0.1:40000", "NO_SOCKET"),
            73,
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert!(out[2].receive.is_some() && out[2].receive_pending.is_none());
        c.flush(&mut out);
        assert!(outcomes(&mut c).is_empty());
        assert_eq!(c.pending(), 0);
        assert_eq!((c.stats.receive_matched, c.stats.unmatched_events), (3, 0));
    }

    #[test]
    fn a_send_event_finds_its_frame_among_many_waiting_in_any_order() {
        let mut c = Correlator::new(300, true, false);
        let mut out = Vec::new();
        let addr = |i: u16| format!("10.0.0.1:{}", 1000 + i);
        // More frames wait than a send event looks at first; two share an address pair.
        for i in 0..100u16 {
            let mut p = pkt(&addr(i % 60), "10.0.0.2:5000", false);
            p.ts_ms = u64::from(i);
            c.packet(p, 0, &mut out);
        }
        assert!(out.is_empty());
        // The newest, the oldest, one in the middle, then the rest from the newest down.
        let order: Vec<u16> = [99, 0, 50]
            .into_iter()
            .chain((1..99).rev().filter(|i| *i != 50))
            .collect();
        for (n, &i) in order.iter().enumerate() {
            c.send_event(
                send(&addr(i % 60), "10.0.0.2:5000", "NO_SOCKET"),
                1,
                &mut out,
            );
            assert_eq!(out.len(), n + 1);
            let got = &out[n].packet;
            assert_eq!(got.seg.src.port(), 1000 + i % 60);
            if i >= 60 {
                // Its pair's older frame (i - 60) was still waiting: that one takes it.
                let older_waiting = !order[..n].contains(&(i - 60));
                let want = if older_waiting { i - 60 } else { i };
                assert_eq!(got.ts_ms, u64::from(want), "send {n} for frame {i}");
            }
        }
        c.expire(10_000, &mut out);
        assert_eq!(out.len(), 100);
        let mut stamps: Vec<u64> = out.iter().map(|m| m.packet.ts_ms).collect();
        stamps.sort_unstable();
        assert_eq!(stamps, (0..100).collect::<Vec<u64>>(), "every frame once");
        assert_eq!(
            (
                c.stats.send_matched,
                c.stats.sent_without_event,
                c.stats.unmatched_events
            ),
            (100, 0, 0)
        );
        assert_eq!(c.pending(), 0);
    }
}
