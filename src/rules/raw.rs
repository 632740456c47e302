//! The rule file as written: a plain serde mirror of rules/*.yaml.
//!
//! Every struct rejects unknown keys. Nothing here is checked beyond its
//! shape; [`super::rule`] turns a [`RawRule`] into a validated
//! [`super::rule::Rule`] and says what is wrong, where, and how to fix it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::finding::Severity;

/// One rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub cause: String,
    pub subject: Subject,
    #[serde(default)]
    pub applies: RawApplies,
    #[serde(default)]
    pub params: BTreeMap<String, RawParam>,
    /// Named host-level values (`{computed: NAME}` in values, `{computed:NAME}` in the message).
    #[serde(default)]
    pub computed: BTreeMap<String, RawOperand>,
    /// Host-level condition (sysctls, counters, socket statistics).
    #[serde(default)]
    pub when: Option<RawCond>,
    /// Per-socket condition for listener, socket and process rules.
    #[serde(default, rename = "match")]
    pub matches: Option<RawCond>,
    /// Process rules: how many matching sockets a process needs.
    #[serde(default)]
    pub min_count: Option<RawOperand>,
    /// Host rules: sockets whose owners are named as the likely processes.
    #[serde(default)]
    pub suspects: Option<RawCond>,
    pub message: String,
    #[serde(default)]
    pub evidence: RawEvidence,
    pub fix: RawFix,
    #[serde(default)]
    pub lab: Option<String>,
    pub explanation: String,
    #[serde(default)]
    pub references: Vec<String>,
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Host,
    Listener,
    Socket,
    Process,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Listener => "listener",
            Self::Socket => "socket",
            Self::Process => "process",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplies {
    /// A version range such as `">=4.12, <6.0"`.
    #[serde(default)]
    pub kernel: Option<String>,
    /// Sysctl keys that must exist; when absent the rule is "not applicable".
    #[serde(default)]
    pub requires: Vec<String>,
    /// Why the rule does not apply when a required key is absent.
    #[serde(default)]
    pub absent_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawParam {
    pub default: f64,
    pub description: String,
    #[serde(default)]
    pub unit: Option<String>,
}

/// A condition: exactly one of all / any / not, or one left side with one comparison.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCond {
    pub all: Option<Vec<RawCond>>,
    pub any: Option<Vec<RawCond>>,
    pub not: Option<Box<RawCond>>,
    pub sysctl: Option<String>,
    pub counter: Option<String>,
    pub measure: Option<Measure>,
    pub stat: Option<Stat>,
    pub field: Option<Field>,
    pub option: Option<SockOpt>,
    pub value: Option<RawOperand>,
    pub eq: Option<RawOperand>,
    pub ne: Option<RawOperand>,
    pub lt: Option<RawOperand>,
    pub le: Option<RawOperand>,
    pub gt: Option<RawOperand>,
    pub ge: Option<RawOperand>,
    #[serde(rename = "in")]
    pub one_of: Option<Vec<RawOperand>>,
}

/// A value: a number, a name (TCP state, timer) or a boolean, or a small expression.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawOperand {
    Bool(bool),
    Number(f64),
    Text(String),
    Expr(Box<RawExpr>),
}

/// Exactly one key: a reference or an arithmetic operation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpr {
    pub param: Option<String>,
    pub sysctl: Option<String>,
    /// With `sysctl`: the value the kernel behaves as if it had where the key does not exist
    /// (a kernel older than the key).
    pub absent: Option<f64>,
    /// A value named under `computed:`.
    pub computed: Option<String>,
    pub counter: Option<String>,
    /// A counter's change per second over the `--interval` window (0 with one sample).
    pub rate: Option<String>,
    pub stat: Option<Stat>,
    pub field: Option<Field>,
    pub option: Option<SockOpt>,
    pub add: Option<Vec<RawOperand>>,
    pub sub: Option<Vec<RawOperand>>,
    pub mul: Option<Vec<RawOperand>>,
    pub div: Option<Vec<RawOperand>>,
    pub min: Option<Vec<RawOperand>>,
    pub max: Option<Vec<RawOperand>>,
    /// `[RETRIES, BASE_MS, RTO_MAX_MS]`: tcp_model_timeout's budget in ms (src/rules/retrans.rs).
    pub tcp_model_timeout_ms: Option<Vec<RawOperand>>,
    /// `[BUDGET_MS, BASE_MS, RTO_MAX_MS]`: the smallest retry count whose budget reaches BUDGET_MS.
    pub tcp_model_retries: Option<Vec<RawOperand>>,
    /// `[RETRIES, RTO_MS, RTO_MAX_MS]`: ms from sending to giving up, the timeout doubling from RTO_MS.
    pub tcp_give_up_ms: Option<Vec<RawOperand>>,
    /// `[SYN_RETRIES, LINEAR, RTO_MAX_MS]`: ms from the first SYN to connect() giving up.
    pub tcp_syn_give_up_ms: Option<Vec<RawOperand>>,
}

/// Which reading of a counter a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// The change between two samples when there are two, else the total since boot.
    #[default]
    Auto,
    /// The change between two samples (not checked with one sample).
    Change,
    /// The total since boot (or namespace creation).
    Total,
    /// The change per second between two samples; 0 with one sample, and the finding
    /// says the rate was not judged.
    Rate,
}

/// Host-level statistics computed in one pass over the socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    Sockets,
    Listeners,
    Established,
    TimeWait,
    CloseWait,
    /// Sockets no process holds (FIN_WAIT1/2, CLOSING, LAST_ACK without an inode).
    Orphans,
    /// The largest effective backlog of any listener.
    MaxListenerBacklog,
}

impl Stat {
    pub const ALL: [Stat; 7] = [
        Stat::Sockets,
        Stat::Listeners,
        Stat::Established,
        Stat::TimeWait,
        Stat::CloseWait,
        Stat::Orphans,
        Stat::MaxListenerBacklog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sockets => "sockets",
            Self::Listeners => "listeners",
            Self::Established => "established",
            Self::TimeWait => "time_wait",
            Self::CloseWait => "close_wait",
            Self::Orphans => "orphans",
            Self::MaxListenerBacklog => "max_listener_backlog",
        }
    }
}

/// A field of a socket from the socket table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Compared with TCP state names (`ESTABLISHED`, `CLOSE_WAIT`, ...).
    State,
    RxQueue,
    TxQueue,
    AcceptQueue,
    Backlog,
    LocalPort,
    RemotePort,
    /// Compared with timer names (`none`, `retransmit`, `keepalive`, `time_wait`, `zero_window_probe`).
    Timer,
    TimerExpiresMs,
    Retransmits,
    Uid,
    /// Whether a process holding the socket was found (true/false).
    Owned,
    LastDataRecvMs,
    LastDataSentMs,
    /// Milliseconds since data last moved either way: min(last_data_recv, last_data_sent).
    IdleMs,
    TotalRetrans,
    RttUs,
    Probes,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::RxQueue => "rx_queue",
            Self::TxQueue => "tx_queue",
            Self::AcceptQueue => "accept_queue",
            Self::Backlog => "backlog",
            Self::LocalPort => "local_port",
            Self::RemotePort => "remote_port",
            Self::Timer => "timer",
            Self::TimerExpiresMs => "timer_expires_ms",
            Self::Retransmits => "retransmits",
            Self::Uid => "uid",
            Self::Owned => "owned",
            Self::LastDataRecvMs => "last_data_recv_ms",
            Self::LastDataSentMs => "last_data_sent_ms",
            Self::IdleMs => "idle_ms",
            Self::TotalRetrans => "total_retrans",
            Self::RttUs => "rtt_us",
            Self::Probes => "probes",
        }
    }

    /// Whether the field comes from tcp_info (sock_diag only).
    pub fn needs_tcp_info(self) -> bool {
        matches!(
            self,
            Self::LastDataRecvMs
                | Self::LastDataSentMs
                | Self::IdleMs
                | Self::TotalRetrans
                | Self::RttUs
                | Self::Probes
        )
    }
}

/// A socket option read from the owning process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SockOpt {
    /// SO_LINGER on (true/false).
    LingerOn,
    /// SO_LINGER seconds.
    LingerSeconds,
    /// SO_KEEPALIVE (true/false).
    Keepalive,
    Keepidle,
    Keepintvl,
    Keepcnt,
    /// TCP_USER_TIMEOUT, milliseconds.
    UserTimeout,
    Linger2,
}

impl SockOpt {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LingerOn => "linger_on",
            Self::LingerSeconds => "linger_seconds",
            Self::Keepalive => "keepalive",
            Self::Keepidle => "keepidle",
            Self::Keepintvl => "keepintvl",
            Self::Keepcnt => "keepcnt",
            Self::UserTimeout => "user_timeout",
            Self::Linger2 => "linger2",
        }
    }

    pub fn is_bool(self) -> bool {
        matches!(self, Self::LingerOn | Self::Keepalive)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvidence {
    #[serde(default)]
    pub counters: Vec<String>,
    #[serde(default)]
    pub rst_reasons: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFix {
    /// key -> value (a number, text, or an expression over parameters and sysctls).
    #[serde(default)]
    pub sysctls: BTreeMap<String, RawOperand>,
    #[serde(default)]
    pub advice: Option<String>,
}
