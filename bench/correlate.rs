//! Benchmark of the live check's matcher alone: `Correlator` fed the arrival pattern of
//! bench/packet-check-flood.sh on loopback (a NO_SOCKET reset per segment, each trace event
//! handed over in batches every 2 ms, each captured frame in blocks every 10 ms, every frame
//! also waiting the grace period for a `tcp_receive_reset` that does not come).
//!
//!   cargo run --release --example correlate [RESETS_PER_SECOND] [SECONDS] [REPS]
//!
//! ORDER=frames: frames handed over every 2 ms and trace events every 3 ms (by default events
//! every 2 ms, frames every 10 ms).
//! Defaults 150000 resets/s for 5 simulated seconds, 5 repetitions. Prints, per repetition, the
//! thread CPU time per reset in nanoseconds, and the median: `correlate_ns_per_reset MEDIAN MIN
//! MAX RESETS`. Every reset must come out matched with its send event (checked).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rstaudit::live::GRACE_MS;
use rstaudit::live::correlate::{CapturedReset, Correlator, Matched, ReceiveOutcome};
use rstaudit::trace::capture::{PacketDir, RstSegment};
use rstaudit::trace::ftrace::{SendReset, TaskContext};

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `t`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "thread CPU clock");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn one_run(rate: u64, seconds: u64, ev_every: u64, pkt_every: u64) -> (u64, u64) {
    let mut c = Correlator::new(GRACE_MS, true, true);
    let mut out: Vec<Matched> = Vec::new();
    let mut outcomes: Vec<ReceiveOutcome> = Vec::new();
    let mut decided = 0u64;
    let total = rate * seconds;
    let per_ms = rate / 1000;
    let (mut sent_ev, mut sent_pkt, mut done, mut with_send) = (0u64, 0u64, 0u64, 0u64);
    let key = |i: u64| {
        (
            addr(10_000 + (i % 50_000) as u16),
            addr(1 + (i / 50_000 % 60_000) as u16),
        )
    };
    let start = thread_cpu_ns();
    let mut now = 0u64;
    while done < total {
        now += 1;
        // Trace events every `ev_every` ms, frames every `pkt_every` ms (both up to the resets
        // made so far).
        let made = (now * per_ms).min(total);
        if now.is_multiple_of(ev_every) {
            while sent_ev < made {
                let (src, dst) = key(sent_ev);
                c.send_event(
                    SendReset {
                        task: TaskContext {
                            comm: Cow::Borrowed("<...>"),
                            tid: 4242,
                            cpu: 0,
                            in_interrupt: false,
                            bh_disabled: false,
                            ts: now as f64 / 1000.0,
                        },
                        has_skb: true,
                        has_sock: false,
                        src: Some(src),
                        dst: Some(dst),
                        state: Some("TCP_CLOSE"),
                        reason: Some("NO_SOCKET"),
                        site: None,
                    },
                    now,
                    &mut out,
                );
                sent_ev += 1;
            }
        }
        if now.is_multiple_of(pkt_every) {
            while sent_pkt < made {
                let (src, dst) = key(sent_pkt);
                c.packet(
                    CapturedReset {
                        ts_ms: now,
                        dir: PacketDir::Sent,
                        ifindex: 1,
                        loopback: true,
                        seg: RstSegment {
                            src,
                            dst,
                            seq: 0,
                            ack: Some(1),
                            payload_len: 0,
                        },
                    },
                    now,
                    &mut out,
                );
                sent_pkt += 1;
            }
        }
        c.expire(now, &mut out);
        for m in out.drain(..) {
            done += 1;
            with_send += u64::from(m.send.is_some());
        }
        c.receive_outcomes(&mut outcomes);
        decided += outcomes.drain(..).filter(|o| o.receive.is_none()).count() as u64;
    }
    c.flush(&mut out);
    c.receive_outcomes(&mut outcomes);
    decided += outcomes.drain(..).filter(|o| o.receive.is_none()).count() as u64;
    let cpu = thread_cpu_ns() - start;
    assert_eq!(with_send, total, "every reset matched with its send event");
    assert_eq!(decided, total, "every reset told that no socket took it");
    (cpu, total)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args
        .next()
        .map_or(150_000, |a| a.parse().expect("RESETS_PER_SECOND"));
    let seconds: u64 = args.next().map_or(5, |a| a.parse().expect("SECONDS"));
    let reps: usize = args.next().map_or(5, |a| a.parse().expect("REPS"));
    // ORDER=frames: frames come first (every 2 ms), their events after (every 3 ms).
    let (ev_every, pkt_every) = match std::env::var("ORDER").as_deref() {
        Ok("frames") => (3, 2),
        _ => (2, 10),
    };
    let mut per: Vec<f64> = Vec::new();
    let mut resets = 0;
    for _ in 0..reps {
        let (cpu, n) = one_run(rate, seconds, ev_every, pkt_every);
        resets = n;
        let ns = cpu as f64 / n as f64;
        println!("run: {ns:.0} ns per reset");
        per.push(ns);
    }
    per.sort_by(f64::total_cmp);
    println!(
        "correlate_ns_per_reset {:.0} {:.0} {:.0} {resets}",
        per[per.len() / 2],
        per[0],
        per[per.len() - 1]
    );
}
