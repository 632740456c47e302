//! Tie a reset to a local socket, a process and a cause.
//!
//! Owners come from two places: the task the kernel was running when it sent
//! the reset (exact for resets sent from a system call such as close(); in
//! softirq context it is whoever ran, which on loopback is the local process
//! whose segment triggered the reset), and the socket table with owners and
//! options (host snapshots, refreshed during the window). Causes come from the
//! kernel's reason plus what the snapshot says about the socket.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use serde::Serialize;

use crate::trace::ftrace::{NewTask, TaskRename, TraceEvent};

use crate::host::{Linger, Snapshot, TcpState};

/// What the socket table said about one socket.
#[derive(Debug, Clone, PartialEq)]
pub struct SockInfo {
    pub pid: Option<u32>,
    pub comm: Option<Arc<str>>,
    pub linger: Option<Linger>,
    /// TCP_LINGER2, when the socket table had it.
    pub linger2: Option<i32>,
    pub state: TcpState,
    /// Milliseconds without data in either direction, when tcp_info was read.
    pub idle_ms: Option<u64>,
    /// When the snapshot that saw it was taken (ms since the epoch).
    pub seen_at_ms: u64,
}

#[derive(Default)]
struct Index {
    conns: HashMap<(SocketAddr, SocketAddr), SockInfo>,
    listeners: HashMap<u16, Vec<(IpAddr, SockInfo)>>,
    /// Process names of the socket owners.
    comms: HashMap<u32, Arc<str>>,
}

/// One socket table as it is read, socket by socket, for [`SocketIndex::take`].
pub struct IndexBuilder {
    idx: Index,
    taken_at_ms: u64,
}

impl IndexBuilder {
    /// A table read at `taken_at_ms` (ms since the epoch).
    pub fn new(taken_at_ms: u64) -> Self {
        Self {
            idx: Index::default(),
            taken_at_ms,
        }
    }

    /// One socket of the table.
    pub fn add(&mut self, s: &crate::host::Socket) {
        let info = SockInfo {
            pid: s.owner.as_ref().map(|o| o.pid),
            comm: s.owner.as_ref().map(|o| o.comm.clone()),
            linger: s.options.as_ref().and_then(|o| o.linger),
            linger2: s.options.as_ref().and_then(|o| o.linger2),
            state: s.state,
            idle_ms: s
                .tcp_info
                .as_ref()
                .map(|t| u64::from(t.last_data_recv_ms.min(t.last_data_sent_ms))),
            seen_at_ms: self.taken_at_ms,
        };
        let idx = &mut self.idx;
        if let Some(o) = &s.owner {
            idx.comms.insert(o.pid, o.comm.clone());
        }
        let local = SocketAddr::new(s.local_addr, s.local_port);
        if s.state == TcpState::Listen {
            idx.listeners
                .entry(s.local_port)
                .or_default()
                .push((s.local_addr, info));
        } else {
            let remote = SocketAddr::new(s.remote_addr, s.remote_port);
            idx.conns.insert((canon(local), canon(remote)), info);
        }
    }

    /// Forget what was added (the table is being read again another way).
    pub fn restart(&mut self) {
        self.idx = Index::default();
    }
}

impl crate::host::SocketSink for IndexBuilder {
    fn socket(&mut self, socket: crate::host::Socket) {
        self.add(&socket);
    }

    fn restart(&mut self) {
        IndexBuilder::restart(self);
    }
}

/// The sockets of the latest two snapshots (a connection that closed just after a snapshot
/// is still found).
#[derive(Default)]
pub struct SocketIndex {
    current: Index,
    previous: Index,
    pub snapshots: u64,
}

impl SocketIndex {
    /// Take in a new snapshot.
    pub fn update(&mut self, snap: &Snapshot) {
        let mut table = IndexBuilder::new(snap.taken_at_ms);
        for s in &snap.sockets {
            table.add(s);
        }
        self.take(table);
    }

    /// Take in a table read socket by socket: it becomes the latest, the latest the one before.
    pub fn take(&mut self, table: IndexBuilder) {
        self.previous = std::mem::replace(&mut self.current, table.idx);
        self.snapshots += 1;
    }

    /// Sockets held (both tables).
    pub fn len(&self) -> usize {
        let n = |i: &Index| i.conns.len() + i.listeners.values().map(Vec::len).sum::<usize>();
        n(&self.current) + n(&self.previous)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The connection with this local and remote end. When the latest table lists it without
    /// an owner (TIME_WAIT, an orphan) and the one before had its process, that one: the
    /// socket seen before names who held it.
    pub fn conn(&self, local: SocketAddr, remote: SocketAddr) -> Option<&SockInfo> {
        let key = (canon(local), canon(remote));
        let now = self.current.conns.get(&key);
        let before = self.previous.conns.get(&key);
        match (now, before) {
            (Some(n), Some(b)) if n.pid.is_none() && b.pid.is_some() => Some(b),
            (Some(n), _) => Some(n),
            (None, b) => b,
        }
    }

    /// The name of process `pid` when it owned a socket in one of the latest two snapshots
    /// (it may have exited since).
    pub fn comm_of(&self, pid: u32) -> Option<&Arc<str>> {
        self.current
            .comms
            .get(&pid)
            .or_else(|| self.previous.comms.get(&pid))
    }

    /// A listener that accepts on `local` (bound to its address or to the wildcard).
    pub fn listener(&self, local: SocketAddr) -> Option<&SockInfo> {
        let local = canon(local);
        listener_in(&self.current, local).or_else(|| listener_in(&self.previous, local))
    }
}

fn listener_in(idx: &Index, local: SocketAddr) -> Option<&SockInfo> {
    let list = idx.listeners.get(&local.port())?;
    // Bound to the address, else bound to the wildcard of the same family (0.0.0.0 does not
    // take IPv6), else an IPv6 wildcard for an IPv4 address (a dual-stack listener).
    list.iter()
        .find(|(ip, _)| canon(SocketAddr::new(*ip, 0)).ip() == local.ip())
        .or_else(|| {
            list.iter()
                .find(|(ip, _)| ip.is_unspecified() && ip.is_ipv4() == local.is_ipv4())
        })
        .or_else(|| {
            list.iter()
                .find(|(ip, _)| ip.is_unspecified() && ip.is_ipv6())
        })
        .map(|(_, i)| i)
}

fn canon(a: SocketAddr) -> SocketAddr {
    super::correlate::canon(a)
}

/// Where an owner came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerSource {
    /// The task that sent the reset from a system call (close, shutdown, connect).
    Task,
    /// The socket that sent it, from the socket table.
    Socket,
    /// The listener that sent it, from the socket table.
    Listener,
    /// The local socket that received it (both ends in this namespace).
    PeerSocket,
    /// The task running when the kernel sent the reset in softirq context on loopback: the local
    /// process whose segment the reset answers.
    SoftirqTask,
}

/// The process a reset is attributed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventOwner {
    pub pid: u32,
    pub comm: Arc<str>,
    pub source: OwnerSource,
    /// Its systemd unit, container and pod, from its cgroup (when it has any of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Arc<crate::host::workload::Workload>>,
}

/// Thread id -> (process id, name): from the task events of the trace (a task made or renamed
/// while watching, told by the kernel itself), else from /proc at first sight, cached.
#[derive(Default)]
pub struct TaskResolver {
    /// Thread id -> process id.
    threads: HashMap<u32, u32>,
    /// Process id -> name, and whether it is only the creator's (a new process, named as its
    /// creator until it execs).
    names: HashMap<u32, (Arc<str>, Inherited)>,
}

/// A process's name taken from its creator at fork: its exec renames it, and that rename may
/// come after the process's resets when the trace is read per CPU (each CPU's events in order,
/// the CPUs' not with each other's). Such a name is checked against /proc once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inherited(bool);

/// Entries kept before the caches start again (a host making tasks for a week).
const MAX_TASKS: usize = 200_000;

impl TaskResolver {
    /// The process of thread `tid` (falls back to the tid and the traced name when the thread is
    /// gone and was not seen being made).
    pub fn resolve(&mut self, tid: u32, traced_comm: &str) -> (u32, Arc<str>) {
        let pid = match self.threads.get(&tid) {
            Some(&pid) => pid,
            None => {
                let pid = crate::host::process::process_of_thread(tid).unwrap_or(tid);
                self.remember(tid, pid);
                pid
            }
        };
        let fallback = match self.names.get(&pid) {
            Some((name, Inherited(false))) => return (pid, name.clone()),
            Some((name, Inherited(true))) => name.clone(),
            None => traced_comm.into(),
        };
        match crate::host::process::name_of(pid) {
            Some(name) => {
                let name = Arc::<str>::from(name);
                self.names.insert(pid, (name.clone(), Inherited(false)));
                (pid, name)
            }
            // Gone: the name it was last known by.
            None => (pid, fallback),
        }
    }

    fn remember(&mut self, tid: u32, pid: u32) {
        if self.threads.len() > MAX_TASKS || self.names.len() > MAX_TASKS {
            self.threads.clear();
            self.names.clear();
        }
        self.threads.insert(tid, pid);
    }

    /// `task:task_newtask`: a thread belongs to its creator's process; any other new task is a
    /// process of its own, named as its creator until it execs. A tid the kernel hands out
    /// again replaces what was known under it.
    pub fn new_task(&mut self, t: &NewTask) {
        if t.thread {
            let (pid, _) = self.resolve(t.parent_tid, &t.comm);
            self.remember(t.tid, pid);
        } else {
            self.remember(t.tid, t.tid);
            self.names
                .insert(t.tid, (t.comm.as_str().into(), Inherited(true)));
        }
    }

    /// Take in a task event of the trace; any other event is handed back.
    pub fn take_in(&mut self, ev: TraceEvent) -> Option<TraceEvent> {
        match ev {
            TraceEvent::NewTask(t) => self.new_task(&t),
            TraceEvent::Rename(r) => self.rename(&r),
            other => return Some(other),
        }
        None
    }

    /// `task:task_rename`: the name of a process is its main thread's (exec renames the main
    /// thread; a thread naming itself does not rename its process).
    pub fn rename(&mut self, r: &TaskRename) {
        let (pid, _) = self.resolve(r.tid, &r.comm);
        if pid == r.tid {
            self.names
                .insert(pid, (r.comm.as_str().into(), Inherited(false)));
        }
    }
}

/// The process of the task a trace event ran in, unless it is a kernel thread.
///
/// A traced name of `<...>` only means ftrace had no name cached for that pid (a process that
/// started before tracing and has not been scheduled out since): the pid is still right, so
/// the decision is made on the name /proc gives for it. When the task has exited too, the name
/// comes from `known` (the socket owners seen while it lived) or stays unknown (`?`): a process
/// that exits right after its reset keeps its pid.
pub fn task_process(
    resolver: &mut TaskResolver,
    tid: u32,
    traced_comm: &str,
    known: impl Fn(u32) -> Option<Arc<str>>,
) -> Option<(u32, Arc<str>)> {
    if tid == 0 || (traced_comm != "<...>" && is_kernel_task(traced_comm)) {
        return None;
    }
    let (pid, comm) = resolver.resolve(tid, traced_comm);
    if &*comm == "<...>" {
        return Some((pid, known(pid).unwrap_or_else(|| "?".into())));
    }
    (!is_kernel_task(&comm)).then_some((pid, comm))
}

/// Tasks that run softirqs on behalf of nobody in particular.
pub fn is_kernel_task(comm: &str) -> bool {
    comm.starts_with("ksoftirqd")
        || comm.starts_with("swapper")
        || comm.starts_with("kworker")
        || comm == "<idle>"
        || comm == "<...>"
}

/// Why a reset happened, as far as the tool can tell. Serialized as its [`Cause::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    UnreadClose,
    LingerZero,
    Abort,
    NoSocket,
    AcceptQueueOverflow,
    InvalidSyn,
    DataAfterClose,
    Linger2Negative,
    OrphansMemory,
    KeepaliveTimeout,
    Paws,
    BadAck,
    DisconnectWithData,
    MptcpSubflowReset,
    KernelError,
    NotSpecified,
    OtherReason,
    MiddleboxIdle,
    Received,
    SentUnknown,
}

impl Serialize for Cause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl Cause {
    /// Every cause, in order.
    pub const ALL: [Cause; 20] = [
        Self::UnreadClose,
        Self::LingerZero,
        Self::Abort,
        Self::NoSocket,
        Self::AcceptQueueOverflow,
        Self::InvalidSyn,
        Self::DataAfterClose,
        Self::Linger2Negative,
        Self::OrphansMemory,
        Self::KeepaliveTimeout,
        Self::Paws,
        Self::BadAck,
        Self::DisconnectWithData,
        Self::MptcpSubflowReset,
        Self::KernelError,
        Self::NotSpecified,
        Self::OtherReason,
        Self::MiddleboxIdle,
        Self::Received,
        Self::SentUnknown,
    ];

    /// Stable id (used in JSON and in the table).
    pub fn id(self) -> &'static str {
        match self {
            Self::UnreadClose => "unread-close",
            Self::LingerZero => "linger-zero",
            Self::Abort => "abort",
            Self::NoSocket => "no-socket",
            Self::AcceptQueueOverflow => "accept-queue-overflow",
            Self::InvalidSyn => "invalid-syn",
            Self::DataAfterClose => "data-after-close",
            Self::Linger2Negative => "linger2-negative",
            Self::OrphansMemory => "orphans-or-memory",
            Self::KeepaliveTimeout => "keepalive-timeout",
            Self::Paws => "paws",
            Self::BadAck => "bad-ack",
            Self::DisconnectWithData => "disconnect-with-data",
            Self::MptcpSubflowReset => "mptcp-subflow-reset",
            Self::KernelError => "kernel-error",
            Self::NotSpecified => "not-specified",
            Self::OtherReason => "other-reason",
            Self::MiddleboxIdle => "middlebox-forgot-idle-flow",
            Self::Received => "received",
            Self::SentUnknown => "sent-reason-unknown",
        }
    }

    /// One line for the table.
    pub fn title(self) -> &'static str {
        match self {
            Self::UnreadClose => "closed with unread data",
            Self::LingerZero => "closed with SO_LINGER 0",
            Self::Abort => {
                "aborted (disconnect, SOCK_DESTROY, listener closed with pending children)"
            }
            Self::NoSocket => "no listener / connection already gone",
            Self::AcceptQueueOverflow => "accept queue full with tcp_abort_on_overflow=1",
            Self::InvalidSyn => "embryonic connection reset",
            Self::DataAfterClose => "data arrived after close/shutdown",
            Self::Linger2Negative => "closed in FIN_WAIT2 with TCP_LINGER2 < 0",
            Self::OrphansMemory => "too many orphans or TCP memory pressure",
            Self::KeepaliveTimeout => "keepalive probes unanswered",
            Self::Paws => "PAWS (timestamp) check failed",
            Self::BadAck => "unacceptable ACK or flags",
            Self::DisconnectWithData => "disconnect with unsent data",
            Self::MptcpSubflowReset => "an MPTCP subflow was reset",
            Self::KernelError => "the kernel hit an error sending on the connection",
            Self::NotSpecified => "reason not specified by the kernel",
            Self::OtherReason => "other kernel reason",
            Self::MiddleboxIdle => "received on a connection idle longer than the idle timeout",
            Self::Received => "received from the peer",
            Self::SentUnknown => "sent; reason unknown",
        }
    }
}

/// Everything classification looks at.
#[derive(Debug, Clone, Default)]
pub struct ClassifyInput<'a> {
    /// Sent by this namespace (rather than received from outside).
    pub sent: bool,
    pub reason: Option<&'a str>,
    pub state: Option<&'a str>,
    /// The send event fired in process context (a system call).
    pub process_context: bool,
    /// ... with bottom halves disabled (a listener's close resetting its queued children,
    /// SOCK_DESTROY from `ss -K`), on kernels that print that flag.
    pub bh_disabled: bool,
    /// The reset answers a packet (the event's skbaddr is not 0).
    pub answers_packet: bool,
    /// The kernel prints the bottom-half flag in its trace lines (since 5.x; seen as `b`/`D`
    /// in the first flag column), so its absence means bottom halves were enabled.
    pub bh_flag_known: bool,
    /// SO_LINGER of the sending socket, when the socket table had it.
    pub sender_linger: Option<Linger>,
    /// TCP_LINGER2 of the sending socket, when the socket table had it.
    pub sender_linger2: Option<i32>,
    /// The sending socket was in the socket table without an owning process (an un-accepted
    /// connection in a listener's queue, or an orphan).
    pub sender_unowned: bool,
    /// A listener is bound to the reset's source port (the sender may be a queued child).
    pub source_port_listens: bool,
    /// net.ipv4.tcp_abort_on_overflow in the namespace.
    pub abort_on_overflow: Option<bool>,
    /// Milliseconds the receiving local connection had been idle, when known.
    pub idle_ms: Option<u64>,
    pub idle_timeout_s: Option<f64>,
}

/// The cause, and what it rests on.
/// "kernel reason NAME", made once per known reason (`rules::known::RST_REASONS`), not formatted
/// again for every reset.
fn reason_basis(reason: &str) -> Cow<'static, str> {
    static KNOWN: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
        crate::rules::known::RST_REASONS
            .iter()
            .map(|r| (*r, format!("kernel reason {r}")))
            .collect()
    });
    match KNOWN.get(reason) {
        Some(basis) => Cow::Borrowed(basis.as_str()),
        None => Cow::Owned(format!("kernel reason {reason}")),
    }
}

pub fn classify(i: &ClassifyInput<'_>) -> (Cause, Cow<'static, str>) {
    if !i.sent {
        if let (Some(idle), Some(limit)) = (i.idle_ms, i.idle_timeout_s)
            && idle as f64 / 1000.0 > limit
        {
            return (
                Cause::MiddleboxIdle,
                format!(
                    "the connection had been idle {:.0} s, longer than the idle timeout {limit} s",
                    idle as f64 / 1000.0
                )
                .into(),
            );
        }
        return (Cause::Received, "received from the peer".into());
    }
    let Some(reason) = i.reason else {
        // An event that matched without a reason is one of a kernel before 6.10.
        let why = if i.state.is_some() {
            "no kernel reason (this kernel's trace event has none: before 6.10)"
        } else {
            "no kernel reason (no tracepoint event matched)"
        };
        return (Cause::SentUnknown, why.into());
    };
    let by_reason = |c: Cause| (c, reason_basis(reason));
    match reason {
        "TCP_ABORT_ON_CLOSE" => by_reason(Cause::UnreadClose),
        "TCP_STATE" => {
            let own_close = i.process_context && !i.answers_packet && i.state == Some("TCP_CLOSE");
            // The trace tells the three apart, and wins over a socket table read earlier (an
            // application may set SO_LINGER just before close()).
            if own_close && i.bh_disabled {
                return (
                    Cause::Abort,
                    "kernel reason TCP_STATE in TCP_CLOSE with bottom halves disabled: a listener \
                     closed with this connection still in its accept queue"
                        .into(),
                );
            }
            if i.process_context && !i.answers_packet && i.bh_disabled {
                return (
                    Cause::Abort,
                    format!(
                        "kernel reason TCP_STATE in {} with bottom halves disabled: the socket was \
                         destroyed from outside (SOCK_DESTROY, `ss -K`)",
                        i.state.unwrap_or("an open state")
                    )
                    .into(),
                );
            }
            if own_close && i.bh_flag_known {
                return (
                    Cause::LingerZero,
                    "kernel reason TCP_STATE in TCP_CLOSE from the process's own close(), no packet \
                     answered: SO_LINGER {1, 0}"
                        .into(),
                );
            }
            let linger0 = i.sender_linger.map(|l| l.on && l.seconds == 0);
            match linger0 {
                Some(true) => (
                    Cause::LingerZero,
                    "kernel reason TCP_STATE on a socket with SO_LINGER {1, 0}".into(),
                ),
                Some(false) => (
                    Cause::Abort,
                    "kernel reason TCP_STATE on a socket without SO_LINGER 0".into(),
                ),
                None if i.sender_unowned || i.source_port_listens => (
                    Cause::Abort,
                    "kernel reason TCP_STATE on a connection no process held, on a listening port \
                     (a listener closed with connections still in its accept queue)"
                        .into(),
                ),
                None if own_close => (
                    Cause::LingerZero,
                    "kernel reason TCP_STATE from close() in state TCP_CLOSE (SO_LINGER 0 likely; \
                     the socket was not in a snapshot)"
                        .into(),
                ),
                None => by_reason(Cause::Abort),
            }
        }
        "NO_SOCKET" => by_reason(Cause::NoSocket),
        "INVALID_SYN" => {
            if i.state == Some("TCP_LISTEN") && i.abort_on_overflow == Some(true) {
                (
                    Cause::AcceptQueueOverflow,
                    "kernel reason INVALID_SYN from a listener, tcp_abort_on_overflow=1".into(),
                )
            } else {
                by_reason(Cause::InvalidSyn)
            }
        }
        // An orphan in FIN_WAIT1 with TCP_LINGER2 < 0 is destroyed when the peer ACKs its FIN,
        // and the kernel gives the reason TCP_ABORT_ON_DATA although no data came.
        "TCP_ABORT_ON_DATA" if i.sender_linger2.is_some_and(|l| l < 0) => (
            Cause::Linger2Negative,
            "kernel reason TCP_ABORT_ON_DATA on a socket with TCP_LINGER2 < 0 (socket table): \
             closed in FIN_WAIT1, destroyed when the peer acknowledged the FIN"
                .into(),
        ),
        "TCP_TIMEWAIT_SOCKET" | "TCP_ABORT_ON_DATA" => by_reason(Cause::DataAfterClose),
        "TCP_ABORT_ON_LINGER" => by_reason(Cause::Linger2Negative),
        "TCP_ABORT_ON_MEMORY" => by_reason(Cause::OrphansMemory),
        "TCP_KEEPALIVE_TIMEOUT" => by_reason(Cause::KeepaliveTimeout),
        "TCP_RFC7323_PAWS" => by_reason(Cause::Paws),
        "TCP_INVALID_ACK_SEQUENCE"
        | "TCP_TOO_OLD_ACK"
        | "TCP_ACK_UNSENT_DATA"
        | "TCP_OLD_ACK"
        | "TCP_FLAGS" => by_reason(Cause::BadAck),
        "TCP_DISCONNECT_WITH_DATA" => by_reason(Cause::DisconnectWithData),
        r if r.starts_with("MPTCP_RST_") => by_reason(Cause::MptcpSubflowReset),
        "ERROR" => by_reason(Cause::KernelError),
        "NOT_SPECIFIED" => by_reason(Cause::NotSpecified),
        _ => by_reason(Cause::OtherReason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basis_of_a_known_reason_is_made_once_and_any_other_is_still_named() {
        for r in crate::rules::known::RST_REASONS {
            let b = reason_basis(r);
            assert!(matches!(b, Cow::Borrowed(_)), "{r}");
            assert_eq!(b, format!("kernel reason {r}"));
        }
        let other = reason_basis("TCP_SOMETHING_NEW");
        assert!(matches!(other, Cow::Owned(_)));
        assert_eq!(other, "kernel reason TCP_SOMETHING_NEW");
    }

    #[test]
    fn causes_are_written_by_their_id_everywhere() {
        // Regression: JSON said `sent-unknown`, `orphans-memory` and `middlebox-idle` where the
        // table and the docs say `sent-reason-unknown`, `orphans-or-memory` and
        // `middlebox-forgot-idle-flow`.
        let docs = include_str!("../../docs/packet-check.md");
        let mut ids = std::collections::HashSet::new();
        for c in Cause::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.id());
            let key: std::collections::BTreeMap<Cause, u8> = [(c, 1)].into();
            assert_eq!(serde_json::to_value(key).unwrap()[c.id()], 1);
            assert!(
                docs.contains(&format!("`{}`", c.id())),
                "{} not in docs",
                c.id()
            );
            assert!(ids.insert(c.id()));
        }
    }

    #[test]
    fn an_uncached_trace_name_still_resolves_to_the_process() {
        // Regression: `<...>` (ftrace had no name cached for the pid) was taken for a kernel
        // thread, and a loopback NO_SOCKET reset lost its owner.
        let me = std::process::id();
        let mut r = TaskResolver::default();
        let none = |_| None;
        let (pid, comm) = task_process(&mut r, me, "<...>", none).expect("our own process");
        assert_eq!(pid, me);
        assert_ne!(&*comm, "<...>");
        assert_eq!(task_process(&mut r, me, "ksoftirqd/0", none), None);
        assert_eq!(task_process(&mut r, 0, "<idle>", none), None);
    }

    #[test]
    fn a_task_that_exited_keeps_its_pid_and_the_name_it_had() {
        // Regression: a process that exited before the lookup, traced as `<...>`, was taken for
        // a kernel thread and its reset lost its owner.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let gone = c.id();
        c.wait().unwrap();
        let mut r = TaskResolver::default();
        assert_eq!(
            task_process(&mut r, gone, "<...>", |_| None),
            Some((gone, "?".into()))
        );
        let mut r = TaskResolver::default();
        let known = |pid| (pid == gone).then(|| "curl".into());
        assert_eq!(
            task_process(&mut r, gone, "<...>", known),
            Some((gone, "curl".into()))
        );
        let mut r = TaskResolver::default();
        assert_eq!(
            task_process(&mut r, gone, "curl", |_| None),
            Some((gone, "curl".into())),
            "the traced name is kept"
        );
    }

    #[test]
    fn a_name_inherited_at_fork_is_checked_against_proc_as_its_exec_may_be_read_later() {
        let me = std::process::id();
        let mine = crate::host::process::name_of(me).unwrap();
        let fork = |r: &mut TaskResolver, tid: u32, comm: &str| {
            r.new_task(&NewTask {
                parent_tid: 1,
                tid,
                comm: comm.into(),
                thread: false,
            })
        };
        // This process "forked" as `sh`; its rename at exec is not read yet: /proc names it.
        let mut r = TaskResolver::default();
        fork(&mut r, me, "sh");
        assert_eq!(r.resolve(me, "sh").1, mine.as_str().into());
        // A renamed process keeps the kernel's name for it.
        r.rename(&TaskRename {
            tid: me,
            comm: "renamed".into(),
        });
        assert_eq!(r.resolve(me, "x").1, "renamed".into());
        // A process gone before the lookup keeps the name it inherited.
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let gone = c.id();
        c.wait().unwrap();
        fork(&mut r, gone, "sh");
        assert_eq!(r.resolve(gone, "<...>"), (gone, "sh".into()));
    }

    fn sent(reason: &str) -> ClassifyInput<'_> {
        ClassifyInput {
            sent: true,
            reason: Some(reason),
            ..Default::default()
        }
    }

    #[test]
    fn causes_from_reasons() {
        assert_eq!(classify(&sent("TCP_ABORT_ON_CLOSE")).0, Cause::UnreadClose);
        assert_eq!(classify(&sent("NO_SOCKET")).0, Cause::NoSocket);
        assert_eq!(
            classify(&sent("TCP_TIMEWAIT_SOCKET")).0,
            Cause::DataAfterClose
        );
        assert_eq!(
            classify(&sent("MPTCP_RST_EUNSPEC")).0,
            Cause::MptcpSubflowReset
        );
        assert_eq!(
            classify(&sent("MPTCP_RST_EMIDDLEBOX")).0,
            Cause::MptcpSubflowReset
        );
        assert_eq!(classify(&sent("ERROR")).0, Cause::KernelError);
        assert_eq!(classify(&sent("TCP_SOMETHING_NEW")).0, Cause::OtherReason);
        let mut i = sent("INVALID_SYN");
        assert_eq!(classify(&i).0, Cause::InvalidSyn);
        i.state = Some("TCP_LISTEN");
        i.abort_on_overflow = Some(true);
        assert_eq!(classify(&i).0, Cause::AcceptQueueOverflow);
        let none = ClassifyInput {
            sent: true,
            ..Default::default()
        };
        assert_eq!(classify(&none).0, Cause::SentUnknown);
        assert!(classify(&none).1.contains("no tracepoint event matched"));
    }

    #[test]
    fn an_event_without_a_reason_is_not_called_unmatched() {
        // Regression (seen on Debian's 6.1 in the kernel matrix): a reset whose trace event
        // matched, on a kernel whose events have no reason, said "no tracepoint event matched".
        let old_kernel = ClassifyInput {
            sent: true,
            state: Some("TCP_CLOSE"),
            ..Default::default()
        };
        let (cause, basis) = classify(&old_kernel);
        assert_eq!(cause, Cause::SentUnknown);
        assert!(basis.contains("before 6.10"), "{basis}");
        assert!(!basis.contains("no tracepoint event matched"), "{basis}");
    }

    #[test]
    fn tcp_state_needs_linger_zero() {
        let mut i = sent("TCP_STATE");
        assert_eq!(classify(&i).0, Cause::Abort);
        i.sender_linger = Some(Linger {
            on: true,
            seconds: 0,
        });
        assert_eq!(classify(&i).0, Cause::LingerZero);
        i.sender_linger = Some(Linger {
            on: false,
            seconds: 0,
        });
        assert_eq!(classify(&i).0, Cause::Abort);
        i.sender_linger = None;
        i.process_context = true;
        i.state = Some("TCP_CLOSE");
        let (c, basis) = classify(&i);
        assert_eq!(c, Cause::LingerZero);
        assert!(basis.contains("likely"));
        // Regression: closing a listener resets its queued children with TCP_STATE from close().
        i.source_port_listens = true;
        assert_eq!(classify(&i).0, Cause::Abort);
    }

    #[test]
    fn the_trace_tells_linger_zero_from_a_closed_listener_and_ss_k() {
        // What 6.18 prints for each (flags column, state, skbaddr): the process's own close()
        // with SO_LINGER {1, 0}; a listener closed with a child queued; `ss -K`.
        let close = ClassifyInput {
            process_context: true,
            state: Some("TCP_CLOSE"),
            bh_flag_known: true,
            ..sent("TCP_STATE")
        };
        // A table read before SO_LINGER was set, a long-lived listener on the port: the event wins.
        let linger0 = ClassifyInput {
            sender_linger: Some(Linger {
                on: false,
                seconds: 0,
            }),
            source_port_listens: true,
            ..close.clone()
        };
        let (c, basis) = classify(&linger0);
        assert_eq!(c, Cause::LingerZero, "{basis}");
        assert!(!basis.contains("likely"), "{basis}");
        let listener_closed = ClassifyInput {
            bh_disabled: true,
            ..close.clone()
        };
        let (c, basis) = classify(&listener_closed);
        assert_eq!(c, Cause::Abort);
        assert!(basis.contains("listener closed"), "{basis}");
        let killed = ClassifyInput {
            bh_disabled: true,
            state: Some("TCP_ESTABLISHED"),
            ..close.clone()
        };
        let (c, basis) = classify(&killed);
        assert_eq!(c, Cause::Abort);
        assert!(basis.contains("ss -K"), "{basis}");
        // A reset answering a packet is not a close.
        let answer = ClassifyInput {
            answers_packet: true,
            ..close
        };
        assert_eq!(classify(&answer).0, Cause::Abort);
    }

    #[test]
    fn abort_on_data_with_linger2_negative_is_linger2() {
        let mut i = sent("TCP_ABORT_ON_DATA");
        assert_eq!(classify(&i).0, Cause::DataAfterClose);
        i.sender_linger2 = Some(-1);
        let (c, basis) = classify(&i);
        assert_eq!(c, Cause::Linger2Negative, "{basis}");
        i.sender_linger2 = Some(60);
        assert_eq!(classify(&i).0, Cause::DataAfterClose);
    }

    #[test]
    fn received_on_idle_connection() {
        let mut i = ClassifyInput {
            sent: false,
            idle_ms: Some(400_000),
            idle_timeout_s: Some(350.0),
            ..Default::default()
        };
        assert_eq!(classify(&i).0, Cause::MiddleboxIdle);
        i.idle_ms = Some(1000);
        assert_eq!(classify(&i).0, Cause::Received);
    }
}
