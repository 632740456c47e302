//! The capture and ftrace building blocks on the real kernel, in namespaces the tests create.

use crate::common;

use std::time::{Duration, Instant};

use rstaudit::host::netns;
use rstaudit::trace::capture::{Capture, CaptureOptions, PacketDir, parse_rst};
use rstaudit::trace::ftrace::{TraceEvent, TraceOptions, TraceSession, Tracefs};

fn drain(
    cap: &mut Capture,
    for_how_long: Duration,
) -> Vec<(PacketDir, rstaudit::trace::capture::RstSegment)> {
    let mut seen = Vec::new();
    let until = Instant::now() + for_how_long;
    while Instant::now() < until {
        cap.poll(Duration::from_millis(50), &mut |f| {
            seen.push((
                f.dir(),
                parse_rst(f.ip).expect("the filter passes only resets"),
            ));
        })
        .unwrap();
    }
    seen
}

#[test]
fn capture_passes_only_resets_and_counts_loopback_once() {
    common::require_root();
    let ns = common::Netns::new("cap");
    let nsref = netns::resolve(&ns.name).unwrap();
    let mut cap = Capture::open_in(&nsref, &CaptureOptions::default()).unwrap();
    // Plain traffic (handshakes, data, FINs) and one refused connect to port 9, v4 only.
    let helper = ns.helper(&["listen:7000:8", "connect:7000", "connect:7000", "refused:9"]);
    let seen = drain(&mut cap, Duration::from_millis(600));
    drop(helper);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (dir, seg) = seen[0];
    assert_eq!(dir, PacketDir::Sent);
    assert_eq!(seg.src, "127.0.0.1:9".parse().unwrap());
    let stats = cap.stats().unwrap();
    assert_eq!(stats.drops, 0);
    assert!(stats.packets >= 1);
}

#[test]
fn capture_port_filter_and_other_namespaces() {
    common::require_root();
    let ns = common::Netns::new("capport");
    let other = common::Netns::new("capother");
    let nsref = netns::resolve(&ns.name).unwrap();
    let opts = CaptureOptions {
        port: Some(9),
        ..Default::default()
    };
    let mut cap = Capture::open_in(&nsref, &opts).unwrap();
    let h1 = ns.helper(&["refused:9", "refused:10"]);
    let h2 = other.helper(&["refused:9"]);
    let seen = drain(&mut cap, Duration::from_millis(500));
    drop((h1, h2));
    assert_eq!(seen.len(), 1, "only port 9 in our namespace: {seen:?}");
    assert_eq!(seen[0].1.src.port(), 9);
}

#[test]
fn ftrace_session_reports_reasons_and_removes_its_instance() {
    common::require_root();
    let tracefs = Tracefs::find_or_mount().unwrap();
    let opts = TraceOptions {
        name: format!("rstaudit-{}", std::process::id()),
        ..Default::default()
    };
    let (session, mut rx) = TraceSession::start(&tracefs, &opts).unwrap();
    let instance = session.instance().to_path_buf();
    assert!(instance.is_dir());
    assert!(
        session.bh_flag,
        "this kernel's trace header names irqs-off/BH-disabled"
    );
    assert!(
        session
            .support
            .reasons
            .as_ref()
            .unwrap()
            .contains("NO_SOCKET")
    );
    let ns = common::Netns::new("ftr");
    let helper = ns.helper(&["refused:9"]);
    let until = Instant::now() + Duration::from_secs(3);
    let mut found = None;
    while Instant::now() < until && found.is_none() {
        if let Ok(TraceEvent::SendReset(ev)) = rx.recv_timeout(Duration::from_millis(100))
            && ev.dst.is_some_and(|d| d.port() != 9)
            && ev.src.is_some_and(|s| s.port() == 9)
            && ev.task.tid == helper.pid
        {
            found = Some(ev);
        }
    }
    drop(helper);
    let ev = found.expect("tcp_send_reset for the refused connect");
    assert_eq!(ev.reason, Some("NO_SOCKET"));
    session.finish().unwrap();
    assert!(
        !instance.exists(),
        "instance {} left behind",
        instance.display()
    );
}
