//! The engine: evaluate rules against one snapshot.
//!
//! Host-level values (sysctls, counters, statistics, parameters) are
//! resolved once per rule; what is left is a small tree over socket fields
//! and options. All socket-level rules are then evaluated in a single pass
//! over the socket table, borrowing each socket (no copies, no regexes),
//! and matches are grouped per process as they are counted.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use crate::host::{Snapshot, Socket, SocketsSource, TcpState};

use super::finding::{
    CounterEvidence, Evidence, Exposure, Finding, FindingProcess, Fix, SysctlFix,
};
use super::raw::{Field, Measure, SockOpt, Stat, Subject};
use super::rule::{Arith, Cond, Expr, Op, Piece, Rule, fmt_num, timer_num};
use super::{AuditOutcome, Skipped};

/// How many example sockets a finding shows.
const EXAMPLES: usize = 3;

/// Host-level facts shared by every rule.
struct HostCtx<'a> {
    snap: &'a Snapshot,
    stats: Option<HashMap<Stat, f64>>,
    two_samples: bool,
    window: Option<f64>,
}

impl<'a> HostCtx<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        let stats = (snap.sockets_source != SocketsSource::None).then(|| stats(&snap.sockets));
        let window = snap.counter_window();
        Self {
            snap,
            stats,
            two_samples: window.is_some(),
            window,
        }
    }

    fn note_for(&self, subject: &str) -> Option<&str> {
        self.snap
            .notes
            .iter()
            .find(|n| n.subject.as_deref() == Some(subject))
            .map(|n| n.message.as_str())
    }

    fn sysctl(&self, key: &str) -> Result<f64, String> {
        match self.snap.sysctl(key) {
            Some(v) => v
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| format!("sysctl {key} is not a number ({v:?})")),
            None => Err(match self.note_for(key) {
                Some(note) => format!("sysctl {key} was not read: {note}"),
                None => format!(
                    "sysctl {key} was not read (absent on this kernel or in this namespace)"
                ),
            }),
        }
    }

    fn counter(&self, name: &str, measure: Measure) -> Result<f64, String> {
        let missing = || match self.note_for(name).or_else(|| self.area_note("counters")) {
            Some(note) => format!("counter {name} was not read: {note}"),
            None => format!("counter {name} was not read"),
        };
        let use_delta = match measure {
            Measure::Auto => self.two_samples,
            Measure::Change => {
                if !self.two_samples {
                    return Err(format!(
                        "the change of {name} needs two samples: run with --interval SECONDS"
                    ));
                }
                true
            }
            Measure::Total => false,
            Measure::Rate => {
                return match (self.two_samples, self.window) {
                    (true, Some(w)) if w > 0.0 => self
                        .snap
                        .counter_delta(name)
                        .map(|(d, _)| d as f64 / w)
                        .ok_or_else(missing),
                    _ => Ok(0.0),
                };
            }
        };
        if use_delta {
            self.snap
                .counter_delta(name)
                .map(|(d, _)| d as f64)
                .ok_or_else(missing)
        } else {
            self.snap
                .counter(name)
                .map(|v| v as f64)
                .ok_or_else(missing)
        }
    }

    fn area_note(&self, area: &str) -> Option<&str> {
        self.snap
            .notes
            .iter()
            .find(|n| n.area == area)
            .map(|n| n.message.as_str())
    }

    fn stat(&self, s: Stat) -> Result<f64, String> {
        match &self.stats {
            Some(map) => Ok(map.get(&s).copied().unwrap_or(0.0)),
            None => Err(self.sockets_missing()),
        }
    }

    fn sockets_missing(&self) -> String {
        match self.area_note("sockets") {
            Some(note) => format!("the socket table was not read: {note}"),
            None => "the socket table was not read".to_string(),
        }
    }
}

/// Host statistics in one pass.
fn stats(sockets: &[Socket]) -> HashMap<Stat, f64> {
    let (mut listeners, mut est, mut tw, mut cw, mut orphans, mut maxb) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u32);
    for s in sockets {
        match s.state {
            TcpState::Listen => {
                listeners += 1;
                maxb = maxb.max(s.backlog.unwrap_or(0));
            }
            TcpState::Established => est += 1,
            TcpState::TimeWait => tw += 1,
            TcpState::CloseWait => cw += 1,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
                if s.inode == 0 =>
            {
                orphans += 1
            }
            _ => {}
        }
    }
    HashMap::from([
        (Stat::Sockets, sockets.len() as f64),
        (Stat::Listeners, listeners as f64),
        (Stat::Established, est as f64),
        (Stat::TimeWait, tw as f64),
        (Stat::CloseWait, cw as f64),
        (Stat::Orphans, orphans as f64),
        (Stat::MaxListenerBacklog, f64::from(maxb)),
    ])
}

/// A rule's parameters with overrides applied.
type Params = BTreeMap<String, f64>;

/// What is left of a condition once host values are known.
#[derive(Debug)]
enum CCond {
    Known(bool),
    Missing(String),
    /// The common case, kept flat for the socket loop: a field or option against constants.
    Leaf {
        left: Leaf,
        op: Op,
        right: Vec<f64>,
    },
    All(Vec<CCond>),
    Any(Vec<CCond>),
    Not(Box<CCond>),
    Cmp {
        left: CExpr,
        op: Op,
        right: Vec<CExpr>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Leaf {
    Field(Field),
    Opt(SockOpt),
}

#[derive(Debug)]
enum CExpr {
    Num(f64),
    Field(Field),
    Opt(SockOpt),
    Arith(Arith, Vec<CExpr>),
}

fn host_value(ctx: &HostCtx<'_>, params: &Params, e: &Expr) -> Result<f64, String> {
    match e {
        Expr::Const(v) => Ok(*v),
        Expr::Text(t) => Err(format!("{t:?} is not a number")),
        Expr::Param(p) => params
            .get(p)
            .copied()
            .ok_or_else(|| format!("parameter {p} has no value")),
        Expr::Sysctl(k) => ctx.sysctl(k),
        Expr::Counter(c, m) => ctx.counter(c, *m),
        Expr::Stat(s) => ctx.stat(*s),
        Expr::Field(_) | Expr::Opt(_) => Err("a socket value outside `match`".to_string()),
        Expr::Arith(op, args) => {
            let vals = args
                .iter()
                .map(|a| host_value(ctx, params, a))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(arith(*op, &vals))
        }
    }
}

fn arith(op: Arith, v: &[f64]) -> f64 {
    match op {
        Arith::Add => v.iter().sum(),
        Arith::Sub => v[0] - v[1],
        Arith::Mul => v.iter().product(),
        Arith::Div => {
            if v[1] == 0.0 {
                f64::INFINITY
            } else {
                v[0] / v[1]
            }
        }
        Arith::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
        Arith::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

fn compare(l: f64, op: Op, right: &[f64]) -> bool {
    match op {
        Op::Eq => l == right[0],
        Op::Ne => l != right[0],
        Op::Lt => l < right[0],
        Op::Le => l <= right[0],
        Op::Gt => l > right[0],
        Op::Ge => l >= right[0],
        Op::In => right.contains(&l),
    }
}

fn compile_expr(ctx: &HostCtx<'_>, params: &Params, e: &Expr) -> Result<CExpr, String> {
    match e {
        Expr::Field(f) => Ok(CExpr::Field(*f)),
        Expr::Opt(o) => Ok(CExpr::Opt(*o)),
        Expr::Arith(op, args) if e.is_socket_level() => Ok(CExpr::Arith(
            *op,
            args.iter()
                .map(|a| compile_expr(ctx, params, a))
                .collect::<Result<_, _>>()?,
        )),
        other => host_value(ctx, params, other).map(CExpr::Num),
    }
}

/// Resolve host values; a value that could not be read becomes [`CCond::Missing`],
/// which matters only where the rest of the condition does not decide alone.
fn compile(ctx: &HostCtx<'_>, params: &Params, c: &Cond) -> CCond {
    match c {
        Cond::All(v) => {
            let parts: Vec<CCond> = v.iter().map(|c| compile(ctx, params, c)).collect();
            if parts.iter().any(|p| matches!(p, CCond::Known(false))) {
                CCond::Known(false)
            } else if parts.iter().all(|p| matches!(p, CCond::Known(true))) {
                CCond::Known(true)
            } else {
                CCond::All(parts)
            }
        }
        Cond::Any(v) => {
            let parts: Vec<CCond> = v.iter().map(|c| compile(ctx, params, c)).collect();
            if parts.iter().any(|p| matches!(p, CCond::Known(true))) {
                CCond::Known(true)
            } else if parts.iter().all(|p| matches!(p, CCond::Known(false))) {
                CCond::Known(false)
            } else {
                CCond::Any(parts)
            }
        }
        Cond::Not(c) => match compile(ctx, params, c) {
            CCond::Known(b) => CCond::Known(!b),
            other => CCond::Not(Box::new(other)),
        },
        Cond::Cmp { left, op, right } if !c.is_socket_level() => {
            let values = host_value(ctx, params, left).and_then(|l| {
                right
                    .iter()
                    .map(|e| host_value(ctx, params, e))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|r| (l, r))
            });
            match values {
                Ok((l, r)) => CCond::Known(compare(l, *op, &r)),
                Err(why) => CCond::Missing(why),
            }
        }
        Cond::Cmp { left, op, right } => {
            let parts = compile_expr(ctx, params, left).and_then(|l| {
                right
                    .iter()
                    .map(|e| compile_expr(ctx, params, e))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|r| (l, r))
            });
            match parts {
                Ok((left, right)) => {
                    let leaf = match left {
                        CExpr::Field(f) => Some(Leaf::Field(f)),
                        CExpr::Opt(o) => Some(Leaf::Opt(o)),
                        _ => None,
                    };
                    let consts: Option<Vec<f64>> = right
                        .iter()
                        .map(|r| match r {
                            CExpr::Num(v) => Some(*v),
                            _ => None,
                        })
                        .collect();
                    match (leaf, consts) {
                        (Some(leaf), Some(consts)) => CCond::Leaf {
                            left: leaf,
                            op: *op,
                            right: consts,
                        },
                        _ => CCond::Cmp {
                            left,
                            op: *op,
                            right,
                        },
                    }
                }
                Err(why) => CCond::Missing(why),
            }
        }
    }
}

/// The first reason a compiled condition cannot be evaluated, if any is left.
fn missing(c: &CCond) -> Option<&str> {
    match c {
        CCond::Missing(why) => Some(why),
        CCond::All(v) | CCond::Any(v) => v.iter().find_map(missing),
        CCond::Not(c) => missing(c),
        CCond::Known(_) | CCond::Cmp { .. } | CCond::Leaf { .. } => None,
    }
}

/// Tri-state: `None` = unknown for this socket (an option or tcp_info not read).
fn eval(c: &CCond, s: &Socket) -> Option<bool> {
    match c {
        CCond::Known(b) => Some(*b),
        CCond::Missing(_) => None,
        CCond::Leaf { left, op, right } => {
            let l = match left {
                Leaf::Field(f) => field(*f, s)?,
                Leaf::Opt(o) => option(*o, s)?,
            };
            Some(compare(l, *op, right))
        }
        CCond::All(v) => {
            let mut unknown = false;
            for c in v {
                match eval(c, s) {
                    Some(false) => return Some(false),
                    None => unknown = true,
                    Some(true) => {}
                }
            }
            if unknown { None } else { Some(true) }
        }
        CCond::Any(v) => {
            let mut unknown = false;
            for c in v {
                match eval(c, s) {
                    Some(true) => return Some(true),
                    None => unknown = true,
                    Some(false) => {}
                }
            }
            if unknown { None } else { Some(false) }
        }
        CCond::Not(c) => eval(c, s).map(|b| !b),
        CCond::Cmp { left, op, right } => {
            let l = value(left, s)?;
            if right.len() == 1 {
                let r = value(&right[0], s)?;
                Some(compare(l, *op, std::slice::from_ref(&r)))
            } else {
                let mut any = false;
                for r in right {
                    any |= value(r, s)? == l;
                }
                Some(any)
            }
        }
    }
}

fn value(e: &CExpr, s: &Socket) -> Option<f64> {
    match e {
        CExpr::Num(v) => Some(*v),
        CExpr::Field(f) => field(*f, s),
        CExpr::Opt(o) => option(*o, s),
        CExpr::Arith(op, args) => {
            let mut vals = [0.0f64; 4];
            let mut n = 0;
            let mut more = Vec::new();
            for a in args {
                let v = value(a, s)?;
                if n < vals.len() {
                    vals[n] = v;
                    n += 1;
                } else {
                    more.push(v);
                }
            }
            if more.is_empty() {
                Some(arith(*op, &vals[..n]))
            } else {
                let mut all = vals.to_vec();
                all.extend(more);
                Some(arith(*op, &all))
            }
        }
    }
}

fn field(f: Field, s: &Socket) -> Option<f64> {
    let info = || s.tcp_info.as_ref();
    Some(match f {
        Field::State => f64::from(state_num(s.state)),
        Field::RxQueue => f64::from(s.rx_queue),
        Field::TxQueue => f64::from(s.tx_queue),
        Field::AcceptQueue => f64::from(s.accept_queue?),
        Field::Backlog => f64::from(s.backlog?),
        Field::LocalPort => f64::from(s.local_port),
        Field::RemotePort => f64::from(s.remote_port),
        Field::Timer => timer_num(s.timer),
        Field::TimerExpiresMs => s.timer_expires_ms? as f64,
        Field::Retransmits => f64::from(s.retransmits),
        Field::Uid => f64::from(s.uid),
        Field::Owned => f64::from(u8::from(s.owner.is_some())),
        Field::LastDataRecvMs => f64::from(info()?.last_data_recv_ms),
        Field::LastDataSentMs => f64::from(info()?.last_data_sent_ms),
        Field::IdleMs => {
            let i = info()?;
            f64::from(i.last_data_recv_ms.min(i.last_data_sent_ms))
        }
        Field::TotalRetrans => f64::from(info()?.total_retrans),
        Field::RttUs => f64::from(info()?.rtt_us),
        Field::Probes => f64::from(info()?.probes),
    })
}

fn option(o: SockOpt, s: &Socket) -> Option<f64> {
    let opts = s.options.as_ref()?;
    Some(match o {
        SockOpt::LingerOn => f64::from(u8::from(opts.linger?.on)),
        SockOpt::LingerSeconds => f64::from(opts.linger?.seconds),
        SockOpt::Keepalive => f64::from(u8::from(opts.keepalive?)),
        SockOpt::Keepidle => f64::from(opts.keepidle?),
        SockOpt::Keepintvl => f64::from(opts.keepintvl?),
        SockOpt::Keepcnt => f64::from(opts.keepcnt?),
        SockOpt::UserTimeout => f64::from(opts.user_timeout?),
        SockOpt::Linger2 => f64::from(opts.linger2?),
    })
}

fn state_num(s: TcpState) -> u8 {
    match s {
        TcpState::Established => 1,
        TcpState::SynSent => 2,
        TcpState::SynRecv => 3,
        TcpState::FinWait1 => 4,
        TcpState::FinWait2 => 5,
        TcpState::TimeWait => 6,
        TcpState::Close => 7,
        TcpState::CloseWait => 8,
        TcpState::LastAck => 9,
        TcpState::Listen => 10,
        TcpState::Closing => 11,
        TcpState::NewSynRecv => 12,
    }
}

/// Matches of one rule, per process.
#[derive(Default)]
struct Group {
    comm: Option<Arc<str>>,
    count: u64,
    examples: Vec<String>,
}

/// A rule that needs the socket pass.
struct Job<'r> {
    rule: &'r Rule,
    params: Params,
    cond: CCond,
    /// Listener rules look at LISTEN sockets; socket and process rules at the others;
    /// suspects of host rules at all sockets.
    on_listeners: bool,
    on_others: bool,
    groups: PidMap<Group>,
    unknown: u64,
}

/// Matches are grouped by pid on the hot path: a multiplicative hash is
/// enough for small integer keys and far cheaper than SipHash.
#[derive(Default)]
struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PidMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<PidHasher>>;

/// Key for sockets without a known owner.
const NO_OWNER: u32 = u32::MAX;

fn fmt_addr(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// `10.0.0.5:443 -> 10.0.0.9:51234 ESTABLISHED`
pub fn describe_socket(s: &Socket) -> String {
    if s.state == TcpState::Listen {
        format!("{} LISTEN", fmt_addr(s.local_addr, s.local_port))
    } else {
        format!(
            "{} -> {} {}",
            fmt_addr(s.local_addr, s.local_port),
            fmt_addr(s.remote_addr, s.remote_port),
            s.state.as_str()
        )
    }
}

/// `1204` -> `1,204`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn uses(cond: Option<&Cond>, pred: &dyn Fn(&Expr) -> bool) -> bool {
    let mut found = false;
    if let Some(c) = cond {
        c.visit(&mut |e| found |= pred(e));
    }
    found
}

fn render(ctx: &HostCtx<'_>, params: &Params, rule: &Rule) -> String {
    let mut out = String::new();
    for p in &rule.message.pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Value(e @ Expr::Counter(name, m)) => match host_value(ctx, params, e) {
                Ok(v) => {
                    let delta = match m {
                        Measure::Auto => ctx.two_samples,
                        Measure::Change => true,
                        Measure::Total | Measure::Rate => false,
                    };
                    let _ = if delta {
                        write!(
                            out,
                            "{} (in {} s)",
                            group_digits(v as u64),
                            fmt_num(ctx.window.unwrap_or(0.0))
                        )
                    } else {
                        write!(out, "{} (since boot)", group_digits(v as u64))
                    };
                }
                Err(_) => {
                    let _ = write!(out, "{name} (not read)");
                }
            },
            Piece::Value(e) => match host_value(ctx, params, e) {
                Ok(v) => out.push_str(&fmt_num(v)),
                Err(_) => out.push_str("(unknown)"),
            },
        }
    }
    out
}

fn evidence(ctx: &HostCtx<'_>, rule: &Rule) -> Evidence {
    Evidence {
        counters: rule
            .evidence_counters
            .iter()
            .map(|name| CounterEvidence {
                name: name.clone(),
                total: ctx.snap.counter(name),
                delta: ctx.snap.counter_delta(name).map(|(d, _)| d),
                window_seconds: ctx.snap.counter_delta(name).map(|(_, w)| w),
            })
            .collect(),
        rst_reasons: rule.rst_reasons.clone(),
    }
}

fn fix(ctx: &HostCtx<'_>, params: &Params, rule: &Rule, notes: &mut Vec<String>) -> Fix {
    let mut sysctls = Vec::new();
    for (key, e) in &rule.fix_sysctls {
        let value = match e {
            Expr::Text(t) => Ok(t.clone()),
            e => host_value(ctx, params, e).map(|v| fmt_num(v.floor())),
        };
        match value {
            Ok(value) => sysctls.push(SysctlFix {
                key: key.clone(),
                value,
                current: ctx.snap.sysctl(key).map(str::to_string),
            }),
            Err(why) => notes.push(format!("no value computed for {key}: {why}")),
        }
    }
    Fix {
        sysctls,
        advice: rule.advice.clone(),
    }
}

fn counter_notes(ctx: &HostCtx<'_>, rule: &Rule, notes: &mut Vec<String>) {
    let uses_counters = !rule.evidence_counters.is_empty()
        || uses(rule.when.as_ref(), &|e| matches!(e, Expr::Counter(..)));
    let uses_rate = [&rule.when, &rule.matches, &rule.suspects].iter().any(|c| {
        uses(c.as_ref(), &|e| {
            matches!(e, Expr::Counter(_, Measure::Rate))
        })
    });
    if uses_rate && !ctx.two_samples {
        notes.push(
            "no --interval window: rates of counters were not judged (taken as 0 per second); run with --interval SECONDS"
                .to_string(),
        );
    }
    if uses_counters && !ctx.two_samples {
        notes.push(
            "counters are totals since boot (or namespace creation); run with --interval SECONDS to judge their change"
                .to_string(),
        );
    }
}

/// Evaluate `rules` (already selected) with parameter overrides against `snap`.
pub fn evaluate(
    rules: &[&Rule],
    overrides: &BTreeMap<String, f64>,
    snap: &Snapshot,
) -> AuditOutcome {
    let ctx = HostCtx::new(snap);
    let netns = snap.netns.name.clone();
    let mut out = AuditOutcome {
        netns: netns.clone(),
        findings: Vec::new(),
        not_applicable: Vec::new(),
        not_checked: Vec::new(),
        passed: Vec::new(),
    };
    let mut host_findings: Vec<(Finding, Option<usize>)> = Vec::new();
    let mut jobs: Vec<Job<'_>> = Vec::new();
    // Options can only be read from sockets a process holds: with no such socket
    // there is nothing to judge, with some and no options at all they were not read.
    // When owners could not be read (not root), unowned sockets may be held by the
    // processes that were denied: their options are unread, not absent.
    let options_unread = !snap.sockets.iter().any(|s| s.options.is_some())
        && (snap.sockets.iter().any(|s| s.owner.is_some())
            || ctx.area_note("options").is_some()
            || ctx.area_note("owners").is_some());
    let have_info = snap.sockets.iter().any(|s| s.tcp_info.is_some());
    let skip = |rule: &Rule, reason: String| Skipped {
        rule: rule.id.clone(),
        reason,
    };

    for rule in rules {
        if let Some(range) = &rule.kernel {
            match snap.kernel.version {
                Some(v) if !range.contains(v) => {
                    out.not_applicable.push(skip(
                        rule,
                        format!(
                            "kernel {} is outside {}",
                            snap.kernel.describe(),
                            range.text
                        ),
                    ));
                    continue;
                }
                None => {
                    out.not_checked.push(skip(
                        rule,
                        format!(
                            "kernel version of {:?} unknown; the rule applies to {}",
                            snap.kernel.release, range.text
                        ),
                    ));
                    continue;
                }
                _ => {}
            }
        }
        if let Some(key) = rule.requires.iter().find(|k| snap.sysctl(k).is_none()) {
            match ctx.note_for(key) {
                Some(note) if !note.contains("does not exist") && !note.contains("absent") => {
                    out.not_checked
                        .push(skip(rule, format!("sysctl {key} was not read: {note}")));
                }
                _ => out.not_applicable.push(skip(
                    rule,
                    rule.absent_reason.clone().unwrap_or_else(|| {
                        format!("{key} does not exist on this kernel or in this namespace")
                    }),
                )),
            }
            continue;
        }
        let mut params: Params = rule
            .params
            .iter()
            .map(|(k, p)| (k.clone(), p.default))
            .collect();
        for (k, v) in overrides {
            if let Some(slot) = params.get_mut(k) {
                *slot = *v;
            }
        }
        if let Some(when) = &rule.when {
            match eval_host(&compile(&ctx, &params, when)) {
                Err(why) => {
                    out.not_checked.push(skip(rule, why));
                    continue;
                }
                Ok(false) => continue,
                Ok(true) => {}
            }
        }
        let socket_cond = if rule.subject == Subject::Host {
            rule.suspects.as_ref()
        } else {
            rule.matches.as_ref()
        };
        if let Some(cond) = socket_cond {
            let needs_sockets = rule.subject != Subject::Host;
            if snap.sockets_source == SocketsSource::None && needs_sockets {
                out.not_checked.push(skip(rule, ctx.sockets_missing()));
                continue;
            }
            if needs_sockets && uses(Some(cond), &|e| matches!(e, Expr::Opt(_))) && options_unread {
                let why = match ctx.area_note("options").or(ctx.area_note("owners")) {
                    Some(n) => format!("socket options were not read: {n}"),
                    None => "socket options were not read (needs root or CAP_SYS_PTRACE and kernel 5.6+)".to_string(),
                };
                out.not_checked.push(skip(rule, why));
                continue;
            }
            if needs_sockets
                && uses(
                    Some(cond),
                    &|e| matches!(e, Expr::Field(f) if f.needs_tcp_info()),
                )
                && !have_info
                && !snap.sockets.is_empty()
            {
                out.not_checked.push(skip(rule, "tcp_info was not read (the socket table came from /proc/net/tcp or was not read)".to_string()));
                continue;
            }
            let compiled = compile(&ctx, &params, cond);
            if let Some(why) = missing(&compiled) {
                out.not_checked.push(skip(rule, why.to_string()));
                continue;
            }
            if rule.subject == Subject::Host {
                host_findings.push((host_finding(&ctx, &params, rule, &netns), Some(jobs.len())));
            }
            jobs.push(Job {
                rule,
                on_listeners: matches!(rule.subject, Subject::Listener | Subject::Host),
                on_others: rule.subject != Subject::Listener,
                params,
                cond: compiled,
                groups: PidMap::default(),
                unknown: 0,
            });
        } else {
            host_findings.push((host_finding(&ctx, &params, rule, &netns), None));
        }
    }

    // The one pass over the socket table.
    // A socket no process holds (TIME_WAIT, an orphan) has no options to read: when every
    // owner could be read, not knowing its options is not a gap in the audit.
    let owners_partial = ctx.area_note("owners").is_some() || ctx.area_note("options").is_some();
    if !jobs.is_empty() {
        for s in &snap.sockets {
            let listening = s.state == TcpState::Listen;
            for job in jobs.iter_mut() {
                if (listening && !job.on_listeners) || (!listening && !job.on_others) {
                    continue;
                }
                match eval(&job.cond, s) {
                    Some(true) => {
                        let pid = s.owner.as_ref().map_or(NO_OWNER, |o| o.pid);
                        let g = job.groups.entry(pid).or_default();
                        if g.comm.is_none() {
                            g.comm = s.owner.as_ref().map(|o| o.comm.clone());
                        }
                        g.count += 1;
                        if g.examples.len() < EXAMPLES {
                            g.examples.push(describe_socket(s));
                        }
                    }
                    None if s.owner.is_some() || owners_partial => job.unknown += 1,
                    None => {}
                    Some(false) => {}
                }
            }
        }
    }

    let mut jobs: Vec<Option<Job<'_>>> = jobs.into_iter().map(Some).collect();
    for (mut finding, job_index) in host_findings {
        if let Some(job) = job_index.and_then(|i| jobs[i].take()) {
            let mut groups = sorted_groups(job.groups);
            if let Some((pid, g)) = groups.first()
                && *pid != NO_OWNER
            {
                finding.process = Some(FindingProcess {
                    pid: *pid,
                    comm: g.comm.as_deref().unwrap_or("?").to_string(),
                });
            }
            if groups.is_empty() && job.unknown > 0 {
                finding.notes.push(format!(
                    "the processes behind this could not be looked for: {} sockets could not \
                     be judged (socket options or tcp_info not read; run as root)",
                    group_digits(job.unknown)
                ));
            } else if groups.is_empty() {
                finding.notes.push(
                    "no process holds sockets of the kind that would cause this now".to_string(),
                );
            } else {
                if job.unknown > 0 {
                    finding.notes.push(format!(
                        "{} more sockets could not be judged (socket options or tcp_info not read)",
                        group_digits(job.unknown)
                    ));
                }
                let names: Vec<String> =
                    groups.iter().take(5).map(|(pid, g)| who(*pid, g)).collect();
                let _ = write!(finding.message, "; likely: {}", names.join(", "));
                finding.count = Some(groups.iter().map(|(_, g)| g.count).sum());
                for (pid, g) in groups.iter_mut().take(EXAMPLES) {
                    if let Some(e) = g.examples.first() {
                        finding.examples.push(format!("{}: {e}", who(*pid, g)));
                    }
                }
            }
            out.findings.push(finding);
        } else {
            out.findings.push(finding);
        }
    }
    for job in jobs.into_iter().flatten() {
        let rule = job.rule;
        let min = match &rule.min_count {
            Some(e) => host_value(&ctx, &job.params, e).unwrap_or(1.0),
            None => 1.0,
        };
        let noun = if rule.subject == Subject::Listener {
            "listener"
        } else {
            "socket"
        };
        let unknown = job.unknown;
        for (pid, g) in sorted_groups(job.groups) {
            if (g.count as f64) < min {
                continue;
            }
            let mut notes = Vec::new();
            counter_notes(&ctx, rule, &mut notes);
            if unknown > 0 {
                notes.push(format!(
                    "{} sockets on this host could not be judged (socket options or tcp_info not read)",
                    group_digits(unknown)
                ));
            }
            let message = format!(
                "{}: {} {}{} {}, e.g. {}",
                who(pid, &g),
                group_digits(g.count),
                noun,
                if g.count == 1 { "" } else { "s" },
                render(&ctx, &job.params, rule),
                g.examples.first().map_or("", String::as_str)
            );
            out.findings.push(Finding {
                rule: rule.id.clone(),
                title: rule.title.clone(),
                severity: rule.severity,
                exposure: Exposure::Latent,
                exposure_reason: String::new(),
                cause: rule.cause.clone(),
                subject: rule.subject.as_str().to_string(),
                netns: netns.clone(),
                message,
                process: (pid != NO_OWNER).then(|| FindingProcess {
                    pid,
                    comm: g.comm.as_deref().unwrap_or("?").to_string(),
                }),
                count: Some(g.count),
                examples: g.examples,
                evidence: evidence(&ctx, rule),
                fix: fix(&ctx, &job.params, rule, &mut notes),
                lab: rule.lab.clone(),
                notes,
            });
        }
    }
    for rule in rules {
        let id = rule.id.as_str();
        let decided = out.findings.iter().any(|f| f.rule == id)
            || out.not_applicable.iter().any(|s| s.rule == id)
            || out.not_checked.iter().any(|s| s.rule == id);
        if !decided {
            out.passed.push(rule.id.clone());
        }
    }
    for f in &mut out.findings {
        if let Some(rule) = rules.iter().find(|r| r.id == f.rule) {
            let mut params: Params = rule
                .params
                .iter()
                .map(|(k, p)| (k.clone(), p.default))
                .collect();
            params.extend(
                overrides
                    .iter()
                    .filter(|(k, _)| rule.params.contains_key(*k))
                    .map(|(k, v)| (k.clone(), *v)),
            );
            super::exposure::grade(rule, snap, f, &|c| {
                eval_host(&compile(&ctx, &params, c)).ok()
            });
        }
    }
    super::converge::converge(rules, overrides, snap, &mut out.findings);
    out.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| {
                a.process
                    .as_ref()
                    .map(|p| p.pid)
                    .cmp(&b.process.as_ref().map(|p| p.pid))
            })
    });
    out
}

/// The verdict of a host-level condition (after [`compile`] folded what it could).
fn eval_host(c: &CCond) -> Result<bool, String> {
    match c {
        CCond::Known(b) => Ok(*b),
        CCond::Missing(why) => Err(why.clone()),
        CCond::All(v) => {
            let r: Vec<_> = v.iter().map(eval_host).collect();
            if r.iter().any(|x| matches!(x, Ok(false))) {
                Ok(false)
            } else {
                r.into_iter().find(Result::is_err).unwrap_or(Ok(true))
            }
        }
        CCond::Any(v) => {
            let r: Vec<_> = v.iter().map(eval_host).collect();
            if r.iter().any(|x| matches!(x, Ok(true))) {
                Ok(true)
            } else {
                r.into_iter().find(Result::is_err).unwrap_or(Ok(false))
            }
        }
        CCond::Not(c) => eval_host(c).map(|b| !b),
        CCond::Cmp { .. } | CCond::Leaf { .. } => {
            Err("a socket condition outside `match`".to_string())
        }
    }
}

fn who(pid: u32, g: &Group) -> String {
    if pid == NO_OWNER {
        "(no process found)".to_string()
    } else {
        format!("{} (pid {pid})", g.comm.as_deref().unwrap_or("?"))
    }
}

fn sorted_groups(groups: PidMap<Group>) -> Vec<(u32, Group)> {
    let mut v: Vec<(u32, Group)> = groups.into_iter().collect();
    v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    v
}

fn host_finding(ctx: &HostCtx<'_>, params: &Params, rule: &Rule, netns: &str) -> Finding {
    let mut notes = Vec::new();
    counter_notes(ctx, rule, &mut notes);
    let fix = fix(ctx, params, rule, &mut notes);
    Finding {
        rule: rule.id.clone(),
        title: rule.title.clone(),
        severity: rule.severity,
        exposure: Exposure::Latent,
        exposure_reason: String::new(),
        cause: rule.cause.clone(),
        subject: rule.subject.as_str().to_string(),
        netns: netns.to_string(),
        message: render(ctx, params, rule),
        process: None,
        count: None,
        examples: Vec::new(),
        evidence: evidence(ctx, rule),
        fix,
        lab: rule.lab.clone(),
        notes,
    }
}
