//! The events of the kernel's trace as rstaudit reads them, whichever way they were read
//! (the text of `trace_pipe`: `line.rs`; binary records: `raw.rs`).

use std::borrow::Cow;
use std::net::SocketAddr;

use serde::Serialize;

/// Who was running when the event fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskContext {
    /// The task name as ftrace printed it (`<...>` when not cached).
    pub comm: Cow<'static, str>,
    /// Thread id (global pid namespace).
    pub tid: u32,
    pub cpu: u32,
    /// True when the event fired in hard or soft interrupt context: the task is then whoever
    /// happened to run, not necessarily the socket's owner.
    pub in_interrupt: bool,
    /// True when bottom halves were disabled in process context (first flag `b`, or `D` with
    /// interrupts off too, on kernels that print it): the kernel was not running the task's own
    /// system call on its own socket but a section like a listener's close or `ss -K`, or receive
    /// processing run in the task's context (a write into a tun device).
    pub bh_disabled: bool,
    /// Trace timestamp, seconds (trace clock of the instance).
    pub ts: f64,
}

/// `tcp:tcp_send_reset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendReset {
    pub task: TaskContext,
    /// The reset answers a packet (skbaddr != 0); false for active resets (close, abort).
    pub has_skb: bool,
    /// A socket was involved (skaddr != 0); false for NO_SOCKET.
    pub has_sock: bool,
    /// Source of the reset (the local end). `0.0.0.0:0`-style addresses are kept as printed.
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    /// `TCP_CLOSE`, ... or `UNKNOWN`.
    pub state: Option<&'static str>,
    /// `NO_SOCKET`, ... when the kernel reports reasons.
    pub reason: Option<&'static str>,
    /// Where in the kernel it was sent, when the reset sites are probed (the event then comes
    /// from a kprobe, not from the tracepoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<Box<super::ResetSite>>,
}

/// `tcp:tcp_receive_reset`: a local socket accepted a reset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiveReset {
    pub task: TaskContext,
    /// Local end of the socket that was reset.
    pub local: Option<SocketAddr>,
    /// Remote end (the sender of the reset).
    pub remote: Option<SocketAddr>,
    pub sock_cookie: Option<u64>,
}

/// `task:task_newtask`: a task was created (by `parent_tid`, the task the event ran in).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTask {
    pub parent_tid: u32,
    pub tid: u32,
    /// The name it starts with (its creator's).
    pub comm: String,
    /// CLONE_THREAD: a thread of its creator's process, not a process of its own.
    pub thread: bool,
}

/// `task:task_rename`: a task took a new name (exec, prctl(PR_SET_NAME)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRename {
    pub tid: u32,
    pub comm: String,
}

/// One parsed trace line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    SendReset(SendReset),
    ReceiveReset(ReceiveReset),
    NewTask(NewTask),
    Rename(TaskRename),
    /// The kernel's stack recorded after a reset site's event (joined to it by the reader).
    Stack(super::KernelStack),
}

/// TCP states (`include/net/tcp_states.h`, part of the ABI), used where this kernel's format
/// prints them by name without numbers.
pub const TCP_STATES: [&str; 14] = [
    "UNKNOWN",
    "TCP_ESTABLISHED",
    "TCP_SYN_SENT",
    "TCP_SYN_RECV",
    "TCP_FIN_WAIT1",
    "TCP_FIN_WAIT2",
    "TCP_TIME_WAIT",
    "TCP_CLOSE",
    "TCP_CLOSE_WAIT",
    "TCP_LAST_ACK",
    "TCP_LISTEN",
    "TCP_CLOSING",
    "TCP_NEW_SYN_RECV",
    "TCP_BOUND_INACTIVE",
];
