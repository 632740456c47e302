//! What `watch`'s metrics cost: CPU per `Metrics::record_reset` (a known series, and a mix
//! of 2,000 series over 200 processes in 50 containers), CPU per `EventSink::send`, and the
//! time and size of one scrape's encoding of 2,000 and 10,000 series.
//!
//! Usage: `cargo run --release --example metrics`. Prints one line per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rstaudit::watch::events::{Event, EventSink, ResetEvent};
use rstaudit::watch::metrics::{Direction, Format, Limits, Metrics, MetricsOptions, Reset};

fn cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the rusage it is given.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    Duration::from_micros(
        (ru.ru_utime.tv_sec * 1_000_000
            + ru.ru_utime.tv_usec
            + ru.ru_stime.tv_sec * 1_000_000
            + ru.ru_stime.tv_usec) as u64,
    )
}

fn metrics() -> Metrics {
    Metrics::new(MetricsOptions {
        limits: Limits {
            values_per_label: 1000,
            max_series: 20_000,
            ..Limits::default()
        },
        events: Arc::default(),
    })
}

fn main() {
    const N: u64 = 2_000_000;
    let comms: Vec<String> = (0..200).map(|i| format!("worker-{i}")).collect();
    let containers: Vec<String> = (0..50).map(|i| format!("shop-{i}")).collect();
    let causes = [
        "no-socket",
        "linger-zero",
        "unread-close",
        "accept-queue-overflow",
        "keepalive",
        "timewait",
        "middlebox",
        "window",
    ];
    let m = metrics();
    let now = Instant::now();
    let one = Reset {
        direction: Some(Direction::Sent),
        cause: "no-socket",
        reason: "NO_SOCKET",
        netns: "host",
        container: "shop-1",
        unit: "",
        comm: "nginx",
    };
    let t = cpu();
    for _ in 0..N {
        m.record_reset(&one, 1, now);
    }
    println!(
        "record_reset, one series: {:.0} ns CPU per call",
        (cpu() - t).as_nanos() as f64 / N as f64
    );

    let m = metrics();
    let t = cpu();
    for i in 0..N as usize {
        let p = i % 2000;
        let reset = Reset {
            direction: Some(if i % 2 == 0 {
                Direction::Sent
            } else {
                Direction::Received
            }),
            cause: causes[p % causes.len()],
            reason: "NOT_SPECIFIED",
            netns: "host",
            container: &containers[(p / 4) % 50],
            unit: "",
            comm: &comms[p / 10],
        };
        m.record_reset(&reset, 1, now);
    }
    println!(
        "record_reset, 2000-series mix: {:.0} ns CPU per call",
        (cpu() - t).as_nanos() as f64 / N as f64
    );
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let t = Instant::now();
        let text = m.encode(format);
        println!(
            "encode {format:?}, {} series: {:.2} ms, {} bytes",
            2000,
            t.elapsed().as_secs_f64() * 1e3,
            text.len()
        );
    }

    let m = Metrics::new(MetricsOptions {
        limits: Limits {
            values_per_label: 20_000,
            max_series: 20_000,
            ..Limits::default()
        },
        events: Arc::default(),
    });
    for i in 0..10_000usize {
        let comm = format!("p{i}");
        let reset = Reset {
            cause: causes[i % 8],
            netns: "host",
            container: &containers[i % 50],
            comm: &comm,
            ..Reset::default()
        };
        m.record_reset(&reset, 1, now);
    }
    let t = Instant::now();
    let text = m.encode(Format::Prometheus);
    println!(
        "encode Prometheus, 10000 series: {:.2} ms, {} bytes",
        t.elapsed().as_secs_f64() * 1e3,
        text.len()
    );

    let sink = EventSink::start(
        rstaudit::watch::events::append_to("/dev/null"),
        65_536,
        Arc::default(),
    )
    .unwrap();
    let event = ResetEvent {
        time_ms: 1,
        direction: Some(Direction::Sent),
        netns: "host".into(),
        cause: "no-socket".into(),
        reason: None,
        local: Some("127.0.0.1:80".into()),
        remote: Some("127.0.0.1:4000".into()),
        pid: Some(1),
        comm: Some("nginx".into()),
        workload: None,
        rule: None,
    };
    const E: u64 = 500_000;
    let t = cpu();
    let mut dropped = 0;
    for _ in 0..E {
        if !sink.send(Event::Reset(event.clone())) {
            dropped += 1;
        }
    }
    println!(
        "EventSink::send (clone included): {:.0} ns CPU per call on the producer, {dropped} of {E} dropped",
        (cpu() - t).as_nanos() as f64 / E as f64
    );
    sink.close();
}
