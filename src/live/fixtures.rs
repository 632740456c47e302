//! Test fixtures shared by the live check's unit tests: a closed port's reset, as the capture
//! and the trace give it.

use std::net::SocketAddr;

use crate::live::correlate::CapturedReset;
use crate::trace::capture::{PacketDir, RstSegment};
use crate::trace::ftrace::{SendReset, TaskContext};

/// 127.0.0.1:`p`.
pub fn loopback(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

/// The frame of a reset sent from port 9 to `port` (answering a connect to a closed port).
pub fn closed_port_frame(port: u16, loopback_frame: bool) -> CapturedReset {
    CapturedReset {
        ts_ms: 0,
        dir: PacketDir::Sent,
        ifindex: 1,
        loopback: loopback_frame,
        seg: RstSegment {
            src: loopback(9),
            dst: loopback(port),
            seq: 0,
            ack: Some(1),
            payload_len: 0,
        },
    }
}

/// The trace event of that reset (NO_SOCKET, in a softirq of task `comm`).
pub fn closed_port_send(port: u16, comm: &'static str) -> SendReset {
    SendReset {
        task: TaskContext {
            comm: comm.into(),
            tid: 0,
            cpu: 0,
            in_interrupt: true,
            bh_disabled: false,
            ts: 0.0,
        },
        has_skb: true,
        has_sock: false,
        src: Some(loopback(9)),
        dst: Some(loopback(port)),
        state: Some("TCP_CLOSE"),
        reason: Some("NO_SOCKET"),
        site: None,
    }
}
