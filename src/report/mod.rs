//! Renderers: pure functions from findings (and other results) to bytes.
//! Nothing here reads the host.

pub mod html;
pub mod packet_check;
