//! Packet check: watch real resets (live) or reproduce findings in
//! throwaway network namespaces (lab).
//!
//! Building blocks shared by both modes: [`caps`] (the capabilities each needs),
//! [`capture`] (AF_PACKET socket with a
//! kernel filter that passes only TCP resets, TPACKET_V3 ring, pcap output)
//! and [`ftrace`] (a private tracefs instance with the kernel's reset
//! tracepoints and their reasons).

pub mod caps;
pub mod capture;
pub mod ftrace;
pub mod lab;
pub mod live;
pub mod pcap;
