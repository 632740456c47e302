//! The Snapshot model: what the collectors produce and every later layer reads (serde,
//! versioned by [`SCHEMA_VERSION`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The version of the snapshot format. Bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One network namespace of one host at one moment (docs/snapshot.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// When collection started, milliseconds since the Unix epoch.
    pub taken_at_ms: u64,
    /// Where the facts came from: `live` or `root:DIR` (a saved snapshot keeps what it
    /// was saved with; the audit of it says `file:PATH (SOURCE)`).
    pub source: String,
    pub kernel: Kernel,
    pub netns: NetnsInfo,
    /// Which host: hostname and machine id (absent in snapshots written before it was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<super::identity::HostIdentity>,
    /// Every readable key under /proc/sys/net, `net.ipv4.tcp_fin_timeout` -> raw text (trimmed).
    /// Global keys read outside the net tree that rules need (none today) would go here too.
    pub sysctls: BTreeMap<String, String>,
    pub counters: Counters,
    pub sockets: Vec<Socket>,
    /// How the socket table was read (after the table: it is known once it is read).
    pub sockets_source: SocketsSource,
    /// Everything that could not be read, and why.
    pub notes: Vec<Note>,
}

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// `uname -r`, e.g. `6.18.44-fc-v445`.
    pub release: String,
    /// Parsed (major, minor, patch), when the release parses.
    pub version: Option<KernelVersion>,
}

/// A parsed kernel version, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Which network namespace the snapshot describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsInfo {
    /// Inode of the namespace (`ls -L -i /proc/self/ns/net`), when known.
    pub inode: Option<u64>,
    /// A friendly name: `host`, the /run/netns name, or `pid 812 (nginx)`.
    pub name: String,
}

/// MIB counters (TcpExt.*, Tcp.*, Ip6.*, ...), one or two samples.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// The sample taken with the rest of the snapshot.
    pub first: Option<CounterSample>,
    /// With `--interval`: a second sample, later.
    pub second: Option<CounterSample>,
}

/// One reading of /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSample {
    /// When it was read, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `Group.Name` -> value, e.g. `TcpExt.ListenOverflows`.
    pub values: BTreeMap<String, u64>,
}

/// How the socket table was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketsSource {
    /// NETLINK_SOCK_DIAG: full detail, including listener backlog and tcp_info.
    SockDiag,
    /// /proc/net/tcp{,6}: no backlog for listeners, no tcp_info.
    ProcNet,
    /// Not read at all (see notes).
    None,
}

/// Address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

/// TCP state, named as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

impl TcpState {
    /// From the kernel's numeric state (include/net/tcp_states.h).
    pub fn from_kernel(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            _ => return None,
        })
    }

    /// The name as `ss` and the kernel print it, e.g. `ESTABLISHED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait1 => "FIN_WAIT1",
            Self::FinWait2 => "FIN_WAIT2",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW_SYN_RECV",
        }
    }
}

/// Which timer is pending on a socket (idiag_timer / the `tr` column of /proc/net/tcp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    None,
    /// Retransmit or probe (1).
    Retransmit,
    /// Keepalive, also the orphan FIN_WAIT2 timer (2).
    Keepalive,
    /// TIME_WAIT (3).
    TimeWait,
    /// Zero-window probe (4).
    ZeroWindowProbe,
}

impl Timer {
    /// From the kernel's timer code.
    pub fn from_kernel(n: u8) -> Self {
        match n {
            1 => Self::Retransmit,
            2 => Self::Keepalive,
            3 => Self::TimeWait,
            4 => Self::ZeroWindowProbe,
            _ => Self::None,
        }
    }
}

/// One TCP socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Socket {
    pub family: Family,
    pub state: TcpState,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// Bytes not yet read by the application (for listeners: the accept-queue length).
    pub rx_queue: u32,
    /// Bytes not yet acknowledged by the peer (for listeners: the effective backlog).
    pub tx_queue: u32,
    /// Listeners: connections waiting in the accept queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_queue: Option<u32>,
    /// Listeners: the effective backlog, min(listen() argument, somaxconn). Unknown from /proc/net/tcp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    pub timer: Timer,
    /// Milliseconds until the timer fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_expires_ms: Option<u64>,
    /// Retransmits (or unanswered probes) of the pending timer.
    pub retransmits: u8,
    pub inode: u64,
    pub uid: u32,
    /// Selected fields of tcp_info (sock_diag only, not for TIME_WAIT / SYN_RECV minisockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfo>,
    /// The process holding the socket, when found in /proc/*/fd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Socket options read from the owner's descriptor (pidfd_getfd + getsockopt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<SockOptions>,
}

/// Takes the sockets of one namespace's table as they are read. A caller that only folds
/// them (the audit) then never holds the table; a `Vec` keeps it.
pub trait SocketSink {
    /// One socket, with its owner and options when they were read.
    fn socket(&mut self, socket: Socket);
    /// Several sockets, in the order they were read, leaving `batch` empty: the same as
    /// giving each to [`SocketSink::socket`], which is all it does unless a sink does better
    /// with several at once.
    fn sockets(&mut self, batch: &mut Vec<Socket>) {
        for socket in batch.drain(..) {
            self.socket(socket);
        }
    }
    /// Forget the sockets given so far: the table is being read again another way (the
    /// sock_diag dump failed part way, and /proc/net/tcp is read instead).
    fn restart(&mut self);
    /// A whole table, read before the sink was made.
    fn table(&mut self, sockets: Vec<Socket>) {
        for socket in sockets {
            self.socket(socket);
        }
    }
}

impl SocketSink for Vec<Socket> {
    fn socket(&mut self, socket: Socket) {
        self.push(socket);
    }
    fn table(&mut self, sockets: Vec<Socket>) {
        if self.is_empty() {
            *self = sockets;
        } else {
            self.extend(sockets);
        }
    }
    fn restart(&mut self) {
        self.clear();
    }
}

/// The parts of `struct tcp_info` the rules use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpInfo {
    /// Milliseconds since the last data was received.
    pub last_data_recv_ms: u32,
    /// Milliseconds since the last data was sent.
    pub last_data_sent_ms: u32,
    /// Milliseconds since the last ACK was received.
    pub last_ack_recv_ms: u32,
    /// Smoothed RTT, microseconds.
    pub rtt_us: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Unanswered keepalive / zero-window probes now.
    pub probes: u8,
}

/// The process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub pid: u32,
    /// Process name (/proc/PID/comm); shared between the sockets of one process.
    pub comm: Arc<str>,
    pub fd: u32,
}

/// Options read from a duplicate of the owner's socket. `None` = not read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SockOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger: Option<Linger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<bool>,
    /// TCP_KEEPIDLE, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepidle: Option<u32>,
    /// TCP_KEEPINTVL, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepintvl: Option<u32>,
    /// TCP_KEEPCNT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepcnt: Option<u32>,
    /// TCP_USER_TIMEOUT, milliseconds (0 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_timeout: Option<u32>,
    /// TCP_LINGER2, seconds (-1 = reset at close in FIN_WAIT2, 0 = tcp_fin_timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger2: Option<i32>,
}

/// SO_LINGER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linger {
    pub on: bool,
    pub seconds: i32,
}

/// Something that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// What part of the picture is affected: `sysctls`, `counters`, `sockets`, `owners`, `options`, `changed`, `scan`, `netns`, `kernel`.
    pub area: String,
    /// The key, file, process or socket concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What happened and what to do about it.
    pub message: String,
}

impl Note {
    pub fn new(area: &str, subject: Option<String>, message: impl Into<String>) -> Self {
        Self {
            area: area.to_string(),
            subject,
            message: message.into(),
        }
    }
}

impl Snapshot {
    /// A sysctl's raw value, when it was read.
    pub fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctls.get(key).map(String::as_str)
    }

    /// A counter from the latest sample.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let sample = self
            .counters
            .second
            .as_ref()
            .or(self.counters.first.as_ref())?;
        sample.values.get(name).copied()
    }

    /// The seconds between the two counter samples, when there are two.
    pub fn counter_window(&self) -> Option<f64> {
        let a = self.counters.first.as_ref()?;
        let b = self.counters.second.as_ref()?;
        Some(b.at_ms.saturating_sub(a.at_ms) as f64 / 1000.0)
    }

    /// The change of a counter between the two samples, and the window in seconds.
    pub fn counter_delta(&self, name: &str) -> Option<(u64, f64)> {
        let a = self.counters.first.as_ref()?;
        let b = self.counters.second.as_ref()?;
        let delta = super::counters::change(&a.values, &b.values, name)?;
        Some((delta, self.counter_window()?))
    }
}
