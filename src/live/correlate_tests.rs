//! Tests of the matcher.

use super::*;
use crate::trace::ftrace::TaskContext;

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
        site: None,
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
