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

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

/// Ids waiting under one address pair, oldest first (almost always one).
type Ids = SmallVec<[u64; 2]>;
use std::net::SocketAddr;

use super::super::capture::{PacketDir, RstSegment};
use super::super::ftrace::{ReceiveReset, SendReset};

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

struct PendingPacket {
    m: Matched,
    need_send: bool,
    need_receive: bool,
    deadline: u64,
}

enum PendingTrace {
    Send(SendReset),
    Receive(ReceiveReset),
}

struct PendingEvent {
    ev: PendingTrace,
    deadline: u64,
}

/// Entries in arrival order under increasing ids: found by id with arithmetic (no hashing), and
/// released from the front when their grace period ends (deadlines grow with the ids).
struct Slab<T> {
    /// Id of the front entry.
    base: u64,
    items: VecDeque<Option<T>>,
    live: usize,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Self {
            base: 0,
            items: VecDeque::new(),
            live: 0,
        }
    }

    fn push(&mut self, t: T) -> u64 {
        self.items.push_back(Some(t));
        self.live += 1;
        self.base + self.items.len() as u64 - 1
    }

    fn slot(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.base).map(|i| i as usize)
    }

    fn get(&self, id: u64) -> Option<&T> {
        self.items.get(self.slot(id)?)?.as_ref()
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let i = self.slot(id)?;
        self.items.get_mut(i)?.as_mut()
    }

    fn take(&mut self, id: u64) -> Option<T> {
        let i = self.slot(id)?;
        let t = self.items.get_mut(i)?.take();
        if t.is_some() {
            self.live -= 1;
        }
        t
    }

    /// The front entry: `Some(None)` when it was taken already.
    fn front(&self) -> Option<Option<&T>> {
        self.items.front().map(Option::as_ref)
    }

    fn pop_front(&mut self) -> Option<(u64, Option<T>)> {
        let t = self.items.pop_front()?;
        let id = self.base;
        self.base += 1;
        if t.is_some() {
            self.live -= 1;
        }
        Some((id, t))
    }

    /// Live entries with their ids, oldest first.
    fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.items
            .iter()
            .enumerate()
            .filter_map(move |(i, t)| Some((base + i as u64, t.as_ref()?)))
    }
}

/// The matcher.
pub struct Correlator {
    grace_ms: u64,
    expect_send: bool,
    expect_receive: bool,
    packets: Slab<PendingPacket>,
    /// (src, dst) of the reset -> pending packets, oldest first.
    packets_by_key: HashMap<(SocketAddr, SocketAddr), Ids>,
    events: Slab<PendingEvent>,
    sends_by_key: HashMap<(SocketAddr, SocketAddr), Ids>,
    /// Send events with an unspecified address (listeners print dest 0.0.0.0:0).
    sends_wild: Ids,
    receives_by_key: HashMap<(SocketAddr, SocketAddr), Ids>,
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
            packets_by_key: HashMap::default(),
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
        let key = (p.seg.src, p.seg.dst);
        let mut pending = PendingPacket {
            need_send: self.expect_send && sent_here,
            need_receive: self.expect_receive && taken_here,
            m: Matched {
                packet: p,
                send: None,
                receive: None,
            },
            deadline: now + self.grace_ms,
        };
        if pending.need_send
            && let Some(ev) = self.take_send(key)
        {
            pending.m.send = Some(ev);
            pending.need_send = false;
            self.stats.send_matched += 1;
        }
        if pending.need_receive
            && let Some(ev) = self.take_receive((key.1, key.0))
        {
            pending.m.receive = Some(ev);
            pending.need_receive = false;
            self.stats.receive_matched += 1;
        }
        if !pending.need_send && !pending.need_receive {
            out.push(pending.m);
            return;
        }
        let id = self.packets.push(pending);
        self.packets_by_key.entry(key).or_default().push(id);
    }

    fn take_send(&mut self, key: (SocketAddr, SocketAddr)) -> Option<SendReset> {
        let events = &mut self.events;
        let mut take_from = |q: &mut Ids, exact: bool| -> Option<SendReset> {
            while let Some(pos) = q.iter().position(|id| {
                events.get(*id).is_some_and(|e| match &e.ev {
                    PendingTrace::Send(s) => {
                        exact
                            || (s.src.is_some_and(|a| addr_matches(a, key.0))
                                && s.dst.is_some_and(|a| addr_matches(a, key.1)))
                    }
                    PendingTrace::Receive(_) => false,
                })
            }) {
                let id = q.remove(pos);
                if let Some(PendingEvent {
                    ev: PendingTrace::Send(s),
                    ..
                }) = events.take(id)
                {
                    return Some(s);
                }
            }
            None
        };
        if let Some(q) = self.sends_by_key.get_mut(&key) {
            let found = take_from(q, true);
            if q.is_empty() {
                self.sends_by_key.remove(&key);
            }
            if found.is_some() {
                return found;
            }
        }
        take_from(&mut self.sends_wild, false)
    }

    fn take_receive(&mut self, key: (SocketAddr, SocketAddr)) -> Option<ReceiveReset> {
        let q = self.receives_by_key.get_mut(&key)?;
        let mut found = None;
        while !q.is_empty() {
            let id = q.remove(0);
            if let Some(PendingEvent {
                ev: PendingTrace::Receive(r),
                ..
            }) = self.events.take(id)
            {
                found = Some(r);
                break;
            }
        }
        if q.is_empty() {
            self.receives_by_key.remove(&key);
        }
        found
    }

    fn pending_packet_for(
        &self,
        key_matches: impl Fn(&PendingPacket) -> bool,
        key: Option<(SocketAddr, SocketAddr)>,
    ) -> Option<u64> {
        match key {
            Some(k) => self
                .packets_by_key
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

    /// Hand a packet that has all it waited for to `out`; what is left of it in the queues is
    /// skipped when they are next walked.
    fn finish_if_complete(&mut self, id: u64, out: &mut Vec<Matched>) {
        let complete = self
            .packets
            .get(id)
            .is_some_and(|p| !p.need_send && !p.need_receive);
        if !complete {
            return;
        }
        let Some(p) = self.packets.take(id) else {
            return;
        };
        let key = (p.m.packet.seg.src, p.m.packet.seg.dst);
        if let Some(q) = self.packets_by_key.get_mut(&key) {
            q.retain(|x| *x != id);
            if q.is_empty() {
                self.packets_by_key.remove(&key);
            }
        }
        out.push(p.m);
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
        let exact_key = (!wild).then_some((src, dst));
        let found = self.pending_packet_for(
            |p| {
                p.need_send
                    && addr_matches(src, p.m.packet.seg.src)
                    && addr_matches(dst, p.m.packet.seg.dst)
            },
            exact_key,
        );
        if let Some(id) = found {
            if let Some(p) = self.packets.get_mut(id) {
                p.m.send = Some(ev);
                p.need_send = false;
            }
            self.stats.send_matched += 1;
            self.finish_if_complete(id, out);
            return;
        }
        let id = self.park_event(PendingTrace::Send(ev), now);
        if wild {
            self.sends_wild.push(id);
        } else {
            self.sends_by_key.entry((src, dst)).or_default().push(id);
        }
    }

    /// Keep a trace event that matched no frame yet, until its grace period ends.
    fn park_event(&mut self, ev: PendingTrace, now: u64) -> u64 {
        self.events.push(PendingEvent {
            ev,
            deadline: now + self.grace_ms,
        })
    }

    /// A `tcp_receive_reset` event arrived.
    pub fn receive_event(&mut self, mut ev: ReceiveReset, now: u64, out: &mut Vec<Matched>) {
        ev.local = ev.local.map(canon);
        ev.remote = ev.remote.map(canon);
        let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
            self.stats.unmatched_events += 1;
            return;
        };
        // The reset travelled remote -> local.
        let found = self.pending_packet_for(
            |p| {
                p.need_receive
                    && addr_matches(remote, p.m.packet.seg.src)
                    && addr_matches(local, p.m.packet.seg.dst)
            },
            Some((remote, local)),
        );
        if let Some(id) = found {
            if let Some(p) = self.packets.get_mut(id) {
                p.m.receive = Some(ev);
                p.need_receive = false;
            }
            self.stats.receive_matched += 1;
            self.finish_if_complete(id, out);
            return;
        }
        let id = self.park_event(PendingTrace::Receive(ev), now);
        self.receives_by_key
            .entry((local, remote))
            .or_default()
            .push(id);
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
            let key = (p.m.packet.seg.src, p.m.packet.seg.dst);
            if let Some(q) = self.packets_by_key.get_mut(&key) {
                q.retain(|x| *x != id);
                if q.is_empty() {
                    self.packets_by_key.remove(&key);
                }
            }
            if p.need_send {
                self.stats.sent_without_event += 1;
            }
            out.push(p.m);
        }
        while let Some(front) = self.events.front() {
            if front.is_some_and(|e| e.deadline > now) {
                break;
            }
            let Some((id, Some(e))) = self.events.pop_front() else {
                continue;
            };
            self.stats.unmatched_events += 1;
            match &e.ev {
                PendingTrace::Send(s) => {
                    if let (Some(src), Some(dst)) = (s.src, s.dst) {
                        let key = (src, dst);
                        if let Some(q) = self.sends_by_key.get_mut(&key) {
                            q.retain(|x| *x != id);
                            if q.is_empty() {
                                self.sends_by_key.remove(&key);
                            }
                        }
                    }
                    self.sends_wild.retain(|x| *x != id);
                }
                PendingTrace::Receive(r) => {
                    if let (Some(l), Some(rm)) = (r.local, r.remote) {
                        let key = (l, rm);
                        if let Some(q) = self.receives_by_key.get_mut(&key) {
                            q.retain(|x| *x != id);
                            if q.is_empty() {
                                self.receives_by_key.remove(&key);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Release everything (end of the window).
    pub fn flush(&mut self, out: &mut Vec<Matched>) {
        self.expire(u64::MAX, out);
    }

    /// Packets still waiting for their events.
    pub fn pending(&self) -> usize {
        self.packets.live
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

    fn send(src: &str, dst: &str, reason: &str) -> SendReset {
        SendReset {
            task: task(),
            has_skb: true,
            has_sock: false,
            src: Some(src.parse().unwrap()),
            dst: Some(dst.parse().unwrap()),
            state: None,
            reason: Some(reason.into()),
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
        assert_eq!(
            out[0].send.as_ref().unwrap().reason.as_deref(),
            Some("NO_SOCKET")
        );
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
        assert_eq!(
            out[0].send.as_ref().unwrap().reason.as_deref(),
            Some("INVALID_SYN")
        );
        // And the other way round.
        c.send_event(
            send("127.0.0.1:7000", "0.0.0.0:0", "INVALID_SYN"),
            10,
            &mut out,
        );
        c.packet(pkt("127.0.0.1:7000", "127.0.0.1:41001", true), 11, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn loopback_packets_wait_for_the_receive_event_too() {
        let mut c = Correlator::new(300, true, true);
        let mut out = Vec::new();
        c.packet(pkt("127.0.0.1:5000", "127.0.0.1:41000", true), 0, &mut out);
        c.send_event(
            send("127.0.0.1:5000", "127.0.0.1:41000", "TCP_ABORT_ON_CLOSE"),
            1,
            &mut out,
        );
        assert!(out.is_empty());
        c.receive_event(
            ReceiveReset {
                task: task(),
                local: Some("127.0.0.1:41000".parse().unwrap()),
                remote: Some("127.0.0.1:5000".parse().unwrap()),
                sock_cookie: Some(4),
            },
            2,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(out[0].receive.is_some());
        // No socket takes a reset to a closed connection: released at the deadline.
        c.packet(pkt("127.0.0.1:9", "127.0.0.1:41001", true), 10, &mut out);
        c.send_event(
            send("127.0.0.1:9", "127.0.0.1:41001", "NO_SOCKET"),
            11,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        c.flush(&mut out);
        assert_eq!(out.len(), 2);
        assert!(out[1].receive.is_none() && out[1].send.is_some());
        assert_eq!(c.pending(), 0);
    }
}
