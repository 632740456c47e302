//! The model of one reset as every stage after the matching extends it: where it went, what
//! the kernel said, who sent and got it, why, and the findings it supports.

use std::net::SocketAddr;

use serde::Serialize;

use super::attribute::{Cause, EventOwner};
use crate::trace::capture::PacketDir;

/// One reset seen in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetEvent {
    /// Seconds since the start of the window.
    pub t: f64,
    /// Kernel timestamp of the frame, ms since the Unix epoch.
    pub ts_ms: u64,
    /// `sent` (by this namespace; on `lo` also received here) or `received`.
    pub direction: PacketDir,
    pub interface: std::sync::Arc<str>,
    /// Both ends are in this namespace (captured on `lo`).
    pub loopback: bool,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<u32>,
    /// The kernel's reason (`sk_rst_reason` name), for resets sent here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The sending socket's state as the kernel printed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Whether a local socket took the reset (tcp_receive_reset), when that can be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_by_socket: Option<bool>,
    /// The socket table had seen the sending connection (for a NO_SOCKET reset: a connection
    /// that existed and is gone, rather than a closed port or a stray segment).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub connection_seen: bool,
    /// The local process it is attributed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<EventOwner>,
    /// On loopback, the local process at the other end: the one the reset was sent to (for a
    /// TIME_WAIT answer, the process that wrote late; `owner` is the one that closed first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<EventOwner>,
    pub cause: Cause,
    /// How the cause was found: the kernel's reason, derived from other evidence, or not.
    pub cause_source: super::derive::CauseSource,
    /// For a derived cause: the reason the kernel gives at that call site since 6.10 (never
    /// shown as `reason`, which is only the kernel's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_reason: Option<&'static str>,
    /// Where in the kernel it was sent, when the reset sites were probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<Box<crate::trace::ftrace::ResetSite>>,
    /// What the cause rests on.
    pub basis: std::borrow::Cow<'static, str>,
    /// Audit findings this reset supports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}
