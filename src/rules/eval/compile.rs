//! Conditions compiled against one snapshot: host-level values resolved once per rule, a
//! small tree over socket fields and options left for the socket pass.

use super::*;
use crate::rules::retrans;

/// A rule's parameters with overrides applied.
pub(super) type Params = BTreeMap<String, f64>;

/// What is left of a condition once host values are known.
#[derive(Debug)]
pub(super) enum CCond {
    Known(bool),
    Missing(Unknown),
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
pub(super) enum Leaf {
    Field(Field),
    Opt(SockOpt),
}

#[derive(Debug)]
pub(super) enum CExpr {
    Num(f64),
    Field(Field),
    Opt(SockOpt),
    Arith(Arith, Vec<CExpr>),
}

pub(super) fn host_value(ctx: &HostCtx<'_>, params: &Params, e: &Expr) -> Result<f64, Unknown> {
    match e {
        Expr::Const(v) => Ok(*v),
        Expr::Text(t) => Err(Unknown::Text(t.clone())),
        Expr::Param(p) => params
            .get(p)
            .copied()
            .ok_or_else(|| Unknown::NoParam(p.clone())),
        Expr::Sysctl(k, None) => ctx.sysctl(k),
        Expr::Sysctl(k, Some(absent)) => match ctx.sysctl(k) {
            Err(Unknown::SysctlAbsent { .. }) => Ok(*absent),
            other => other,
        },
        Expr::Computed(_, inner) => host_value(ctx, params, inner),
        Expr::Counter(c, m) => ctx.counter(c, *m),
        Expr::CounterOr(c, absent) => match ctx.counter(c, Measure::Auto) {
            Err(Unknown::CounterAbsent { .. }) => Ok(*absent),
            other => other,
        },
        Expr::Stat(s) => ctx.stat(*s),
        Expr::Field(_) | Expr::Opt(_) => Err(Unknown::SocketValue),
        Expr::Arith(op, args) => {
            let vals = args
                .iter()
                .map(|a| host_value(ctx, params, a))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(arith(*op, &vals))
        }
    }
}

pub(super) fn arith(op: Arith, v: &[f64]) -> f64 {
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
        Arith::ModelTimeoutMs => retrans::model_timeout_ms(count(v[0]), v[1], v[2]),
        Arith::ModelRetries => f64::from(retrans::model_retries(v[0], v[1], v[2])),
        Arith::GiveUpMs => retrans::give_up_ms(count(v[0]), v[1], v[2]),
        Arith::SynGiveUpMs => retrans::syn_give_up_ms(count(v[0]), count(v[1]), v[2]),
    }
}

/// A retry count from a value: whole, at least 0, at most what the kernel takes.
fn count(v: f64) -> u32 {
    if v.is_nan() {
        0
    } else {
        v.clamp(0.0, f64::from(retrans::MAX_RETRIES)) as u32
    }
}

pub(super) fn compare(l: f64, op: Op, right: &[f64]) -> bool {
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

pub(super) fn compile_expr(ctx: &HostCtx<'_>, params: &Params, e: &Expr) -> Result<CExpr, Unknown> {
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
pub(super) fn compile(ctx: &HostCtx<'_>, params: &Params, c: &Cond) -> CCond {
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
pub(super) fn missing(c: &CCond) -> Option<&Unknown> {
    match c {
        CCond::Missing(why) => Some(why),
        CCond::All(v) | CCond::Any(v) => v.iter().find_map(missing),
        CCond::Not(c) => missing(c),
        CCond::Known(_) | CCond::Cmp { .. } | CCond::Leaf { .. } => None,
    }
}

/// Tri-state: `None` = unknown for this socket (an option or tcp_info not read).
pub(super) fn eval(c: &CCond, s: &Socket) -> Option<bool> {
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

pub(super) fn value(e: &CExpr, s: &Socket) -> Option<f64> {
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

pub(super) fn field(f: Field, s: &Socket) -> Option<f64> {
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

pub(super) fn option(o: SockOpt, s: &Socket) -> Option<f64> {
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

pub(super) fn state_num(s: TcpState) -> u8 {
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
