//! `rstaudit packet-check` (live): the capture and trace building blocks, real resets, and a
//! scripted peer (`crate::peer`) whose resets are checked against the kernel's own trace.

mod capture;
mod live;
mod peer;
mod servers;
