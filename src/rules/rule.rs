//! The validated rule: what the engine runs.
//!
//! [`Rule::from_raw`] checks a [`RawRule`] against the names the tool knows
//! (sysctl keys, counters, RST reasons, causes, lab scenarios), the declared
//! parameters and the types of each comparison, and returns every problem
//! with its position in the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::host::sysctl::{Scope, SysctlKey};
use crate::host::{KernelVersion, TcpState, Timer};

use super::finding::Severity;
use super::known;
use super::raw::{Field, Measure, RawCond, RawExpr, RawOperand, RawRule, SockOpt, Stat, Subject};
use crate::diag::{Code, Diagnostic, Locator, Step};

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub cause: String,
    pub subject: Subject,
    pub kernel: Option<VersionRange>,
    pub requires: Vec<String>,
    pub absent_reason: Option<String>,
    pub params: BTreeMap<String, Param>,
    pub when: Option<Cond>,
    pub matches: Option<Cond>,
    pub min_count: Option<Expr>,
    pub suspects: Option<Cond>,
    pub message: Template,
    pub evidence_counters: Vec<String>,
    pub rst_reasons: Vec<String>,
    pub fix_sysctls: Vec<(String, Expr)>,
    pub advice: Option<String>,
    pub lab: Option<String>,
    pub explanation: String,
    pub references: Vec<String>,
    /// Where the rule came from: `built-in:NAME.yaml` or a path.
    pub origin: String,
}

/// A rule parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub default: f64,
    pub description: String,
    pub unit: Option<String>,
}

/// A condition, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        left: Expr,
        op: Op,
        right: Vec<Expr>,
    },
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::In => "in",
        }
    }
}

/// Arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
}

impl Arith {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Sub => "sub",
            Self::Mul => "mul",
            Self::Div => "div",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// A value. Names (TCP states, timers, booleans) are compiled to numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(f64),
    Text(String),
    Param(String),
    Sysctl(String),
    Counter(String, Measure),
    Stat(Stat),
    Field(Field),
    Opt(SockOpt),
    Arith(Arith, Vec<Expr>),
}

impl Expr {
    /// Whether the value depends on the socket being looked at.
    pub fn is_socket_level(&self) -> bool {
        match self {
            Self::Field(_) | Self::Opt(_) => true,
            Self::Arith(_, args) => args.iter().any(Expr::is_socket_level),
            _ => false,
        }
    }
}

impl Cond {
    pub fn is_socket_level(&self) -> bool {
        match self {
            Self::All(c) | Self::Any(c) => c.iter().any(Cond::is_socket_level),
            Self::Not(c) => c.is_socket_level(),
            Self::Cmp { left, right, .. } => {
                left.is_socket_level() || right.iter().any(Expr::is_socket_level)
            }
        }
    }

    /// Visit every expression (left and right sides, recursively).
    pub fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        match self {
            Self::All(c) | Self::Any(c) => c.iter().for_each(|c| c.visit(f)),
            Self::Not(c) => c.visit(f),
            Self::Cmp { left, right, .. } => {
                visit_expr(left, f);
                right.iter().for_each(|e| visit_expr(e, f));
            }
        }
    }
}

/// Visit an expression and its arguments.
pub fn visit_expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    if let Expr::Arith(_, args) = e {
        args.iter().for_each(|a| visit_expr(a, f));
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Const(v) => write!(f, "{}", fmt_num(*v)),
            Self::Text(t) => f.write_str(t),
            Self::Param(p) => write!(f, "param {p}"),
            Self::Sysctl(k) => f.write_str(k),
            Self::Counter(c, m) => match m {
                Measure::Auto => write!(f, "{c}"),
                Measure::Change => write!(f, "change of {c}"),
                Measure::Total => write!(f, "total {c}"),
                Measure::Rate => write!(f, "{c} per second"),
            },
            Self::Stat(s) => write!(f, "{} sockets", s.as_str()),
            Self::Field(x) => write!(f, "socket {}", x.as_str()),
            Self::Opt(o) => write!(f, "option {}", o.as_str()),
            Self::Arith(op, args) => {
                let sym = match op {
                    Arith::Add => " + ",
                    Arith::Sub => " - ",
                    Arith::Mul => " * ",
                    Arith::Div => " / ",
                    Arith::Min | Arith::Max => ", ",
                };
                let inner: Vec<String> = args.iter().map(ToString::to_string).collect();
                match op {
                    Arith::Min | Arith::Max => write!(f, "{}({})", op.as_str(), inner.join(sym)),
                    _ => write!(f, "({})", inner.join(sym)),
                }
            }
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All(c) => {
                let parts: Vec<String> = c.iter().map(ToString::to_string).collect();
                write!(f, "({})", parts.join(" and "))
            }
            Self::Any(c) => {
                let parts: Vec<String> = c.iter().map(ToString::to_string).collect();
                write!(f, "({})", parts.join(" or "))
            }
            Self::Not(c) => write!(f, "not {c}"),
            Self::Cmp { left, op, right } => {
                let r: Vec<String> = right.iter().map(|e| named(left, e)).collect();
                if *op == Op::In {
                    write!(f, "{left} in [{}]", r.join(", "))
                } else {
                    write!(f, "{left} {} {}", op.as_str(), r.join(""))
                }
            }
        }
    }
}

/// A constant compared with `left`, by the name the rule file uses for it: TCP states,
/// timers and booleans are compiled to numbers but printed as names.
fn named(left: &Expr, e: &Expr) -> String {
    let Expr::Const(v) = e else {
        return e.to_string();
    };
    let name = match left {
        Expr::Field(Field::State) => (1u8..=12)
            .find(|n| f64::from(*n) == *v)
            .and_then(TcpState::from_kernel)
            .map(TcpState::as_str),
        Expr::Field(Field::Timer) => TIMER_NAMES
            .iter()
            .find(|(_, t)| timer_num(*t) == *v)
            .map(|(n, _)| *n),
        Expr::Field(Field::Owned) => Some(if *v == 0.0 { "false" } else { "true" }),
        Expr::Opt(o) if o.is_bool() => Some(if *v == 0.0 { "false" } else { "true" }),
        _ => None,
    };
    name.map_or_else(|| e.to_string(), str::to_string)
}

/// A number as people write it: `300`, `0.8`.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A kernel version range: every bound must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    pub text: String,
    pub bounds: Vec<(Op, KernelVersion)>,
}

impl VersionRange {
    /// Parse `">=4.12, <6.0"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bounds = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err("an empty bound".into());
            }
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                (">", Op::Gt),
                ("<", Op::Lt),
                ("=", Op::Eq),
            ]
            .iter()
            .find_map(|(p, op)| part.strip_prefix(p).map(|r| (*op, r.trim())))
            .ok_or_else(|| format!("bound {part:?} must start with >=, >, <=, < or ="))?;
            let nums: Vec<&str> = rest.split('.').collect();
            if !(2..=3).contains(&nums.len()) {
                return Err(format!("version {rest:?} must look like 4.12 or 5.10.3"));
            }
            let mut parsed = [0u32; 3];
            for (i, n) in nums.iter().enumerate() {
                parsed[i] = n
                    .parse()
                    .map_err(|_| format!("version {rest:?} must look like 4.12 or 5.10.3"))?;
            }
            bounds.push((
                op,
                KernelVersion {
                    major: parsed[0],
                    minor: parsed[1],
                    patch: parsed[2],
                },
            ));
        }
        // An empty range (">=6.0, <5.0") is a mistake, not a rule that never applies.
        let lower = bounds
            .iter()
            .filter(|(op, _)| matches!(op, Op::Ge | Op::Gt | Op::Eq))
            .map(|(_, v)| *v)
            .max();
        let upper = bounds
            .iter()
            .filter(|(op, _)| matches!(op, Op::Le | Op::Lt | Op::Eq))
            .map(|(_, v)| *v)
            .min();
        if let (Some(lo), Some(hi)) = (lower, upper)
            && lo > hi
        {
            return Err(format!("{text:?} contains no kernel version"));
        }
        Ok(Self {
            text: text.to_string(),
            bounds,
        })
    }

    pub fn contains(&self, v: KernelVersion) -> bool {
        self.bounds.iter().all(|(op, b)| match op {
            Op::Ge => v >= *b,
            Op::Gt => v > *b,
            Op::Le => v <= *b,
            Op::Lt => v < *b,
            Op::Eq => v == *b,
            Op::Ne | Op::In => true,
        })
    }
}

/// A message with placeholders (`{sysctl:KEY}`, `{param:NAME}`, `{counter:NAME}`, `{stat:NAME}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Value(Expr),
}

struct Checker<'a> {
    file: &'a str,
    loc: Locator<'a>,
    params: BTreeSet<String>,
    problems: Vec<Diagnostic>,
}

/// What kind of value the left side of a comparison is, so constants can be checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Bool,
    State,
    Timer,
}

/// Where an expression may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `when`, `min_count`, fixes: no socket fields.
    Host,
    /// `match`, `suspects`: socket fields allowed.
    Socket,
}

impl Checker<'_> {
    fn problem(
        &mut self,
        code: Code,
        path: &[Step<'_>],
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let pos = self.loc.find(path);
        self.problems.push(Diagnostic {
            code,
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
            hint: hint.into(),
        });
    }

    fn sysctl(&mut self, section: &str, key: &str) -> Option<String> {
        match SysctlKey::parse(key, Scope::NetOnly) {
            Err(e) => {
                self.problem(
                    Code::BadSysctlKey,
                    &[Step::Key(section), Step::Text(key)],
                    e.to_string(),
                    "write a net.* key such as net.ipv4.tcp_fin_timeout",
                );
                None
            }
            Ok(k) if !known::is_known_sysctl(k.as_str()) => {
                let hint = suggest(k.as_str(), known::SYSCTLS);
                self.problem(
                    Code::UnknownSysctl,
                    &[Step::Key(section), Step::Text(key)],
                    format!("unknown sysctl {key:?}"),
                    hint,
                );
                None
            }
            Ok(k) => Some(k.as_str().to_string()),
        }
    }

    fn counter(&mut self, section: &str, name: &str) -> Option<String> {
        if known::COUNTERS.contains(&name) {
            Some(name.to_string())
        } else {
            let hint = suggest(name, known::COUNTERS);
            self.problem(
                Code::UnknownCounter,
                &[Step::Key(section), Step::Text(name)],
                format!("unknown counter {name:?}"),
                hint,
            );
            None
        }
    }

    fn param(&mut self, section: &str, name: &str) -> Option<String> {
        if self.params.contains(name) {
            Some(name.to_string())
        } else {
            let declared: Vec<&str> = self.params.iter().map(String::as_str).collect();
            self.problem(
                Code::UnknownParam,
                &[Step::Key(section), Step::Text(name)],
                format!("unknown parameter {name:?}"),
                if declared.is_empty() {
                    "declare it under `params:` with a default and a description".to_string()
                } else {
                    format!(
                        "declare it under `params:`; declared here: {}",
                        declared.join(", ")
                    )
                },
            );
            None
        }
    }

    fn expr(&mut self, section: &str, e: &RawExpr, level: Level) -> Option<Expr> {
        let mut found: Vec<Expr> = Vec::new();
        let mut bad = false;
        if let Some(p) = &e.param {
            match self.param(section, p) {
                Some(p) => found.push(Expr::Param(p)),
                None => bad = true,
            }
        }
        if let Some(k) = &e.sysctl {
            match self.sysctl(section, k) {
                Some(k) => found.push(Expr::Sysctl(k)),
                None => bad = true,
            }
        }
        if let Some(c) = &e.counter {
            match self.counter(section, c) {
                Some(c) => found.push(Expr::Counter(c, Measure::Auto)),
                None => bad = true,
            }
        }
        if let Some(c) = &e.rate {
            match self.counter(section, c) {
                Some(c) => found.push(Expr::Counter(c, Measure::Rate)),
                None => bad = true,
            }
        }
        if let Some(s) = e.stat {
            found.push(Expr::Stat(s));
        }
        if let Some(f) = e.field {
            found.push(Expr::Field(f));
        }
        if let Some(o) = e.option {
            found.push(Expr::Opt(o));
        }
        for (op, args) in [
            (Arith::Add, &e.add),
            (Arith::Sub, &e.sub),
            (Arith::Mul, &e.mul),
            (Arith::Div, &e.div),
            (Arith::Min, &e.min),
            (Arith::Max, &e.max),
        ] {
            if let Some(args) = args {
                let name = op.as_str();
                if args.len() < 2 || (matches!(op, Arith::Sub | Arith::Div) && args.len() != 2) {
                    self.problem(
                        Code::BadOperands,
                        &[Step::Key(section), Step::Key(name)],
                        format!(
                            "`{name}` needs {} operands",
                            if matches!(op, Arith::Sub | Arith::Div) {
                                "exactly 2"
                            } else {
                                "at least 2"
                            }
                        ),
                        format!("write `{name}: [A, B]`"),
                    );
                    bad = true;
                    continue;
                }
                let mut out = Vec::new();
                for a in args {
                    match self.operand(section, a, Kind::Number, level) {
                        Some(x) => out.push(x),
                        None => bad = true,
                    }
                }
                found.push(Expr::Arith(op, out));
            }
        }
        if bad {
            return None;
        }
        if found.len() != 1 {
            self.problem(Code::BadOperands,
                &[Step::Key(section)],
                format!("a value must have exactly one key, found {}", found.len()),
                "write one of param, sysctl, counter, rate, stat, field, option, add, sub, mul, div, min, max",
            );
            return None;
        }
        let x = found.pop()?;
        if level == Level::Host && x.is_socket_level() {
            self.problem(
                Code::MisplacedSocketField,
                &[Step::Key(section), Step::Key("field"), Step::Key("option")],
                "socket fields and options can only be used in `match` or `suspects`",
                "move the comparison into `match:` (listener, socket or process rules)",
            );
            return None;
        }
        Some(x)
    }

    fn operand(&mut self, section: &str, o: &RawOperand, kind: Kind, level: Level) -> Option<Expr> {
        match (o, kind) {
            (RawOperand::Expr(e), Kind::Number) => self.expr(section, e, level),
            (RawOperand::Number(n), Kind::Number) => Some(Expr::Const(*n)),
            (RawOperand::Bool(b), Kind::Bool) => Some(Expr::Const(f64::from(u8::from(*b)))),
            (RawOperand::Text(t), Kind::State) => match state_code(t) {
                Some(c) => Some(Expr::Const(c)),
                None => {
                    self.problem(
                        Code::UnknownState,
                        &[Step::Key(section), Step::Text(t)],
                        format!("{t:?} is not a TCP state"),
                        "use a name such as ESTABLISHED, CLOSE_WAIT, TIME_WAIT, LISTEN, FIN_WAIT2",
                    );
                    None
                }
            },
            (RawOperand::Text(t), Kind::Timer) => match timer_code(t) {
                Some(c) => Some(Expr::Const(c)),
                None => {
                    self.problem(
                        Code::UnknownTimer,
                        &[Step::Key(section), Step::Text(t)],
                        format!("{t:?} is not a timer name"),
                        "use none, retransmit, keepalive, time_wait or zero_window_probe",
                    );
                    None
                }
            },
            (other, _) => {
                let what = match other {
                    RawOperand::Bool(b) => format!("the boolean {b}"),
                    RawOperand::Number(n) => format!("the number {}", fmt_num(*n)),
                    RawOperand::Text(t) => format!("the text {t:?}"),
                    RawOperand::Expr(_) => "an expression".to_string(),
                };
                let needle = match other {
                    RawOperand::Bool(b) => b.to_string(),
                    RawOperand::Number(n) => fmt_num(*n),
                    RawOperand::Text(t) => t.clone(),
                    RawOperand::Expr(_) => "{".to_string(),
                };
                let expected = match kind {
                    Kind::Number => {
                        "a number, or {param|sysctl|counter|stat|field|option: ...}, or add/sub/mul/div/min/max"
                    }
                    Kind::Bool => "true or false",
                    Kind::State => "a TCP state name such as CLOSE_WAIT",
                    Kind::Timer => "a timer name such as keepalive",
                };
                self.problem(
                    Code::TypeMismatch,
                    &[Step::Key(section), Step::Text(&needle)],
                    format!("wrong type: {what} cannot be compared here"),
                    format!("expected {expected}"),
                );
                None
            }
        }
    }

    fn cond(&mut self, section: &str, c: &RawCond, level: Level) -> Option<Cond> {
        let groups = [c.all.is_some(), c.any.is_some(), c.not.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        let lefts = [
            c.sysctl.is_some(),
            c.counter.is_some(),
            c.stat.is_some(),
            c.field.is_some(),
            c.option.is_some(),
            c.value.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let cmps: Vec<(Op, &RawOperand)> = [
            (Op::Eq, &c.eq),
            (Op::Ne, &c.ne),
            (Op::Lt, &c.lt),
            (Op::Le, &c.le),
            (Op::Gt, &c.gt),
            (Op::Ge, &c.ge),
        ]
        .into_iter()
        .filter_map(|(op, v)| v.as_ref().map(|v| (op, v)))
        .collect();
        let n_cmp = cmps.len() + usize::from(c.one_of.is_some());
        if groups + lefts != 1 || (groups == 1 && n_cmp > 0) || (lefts == 1 && n_cmp != 1) {
            self.problem(Code::BadCondition,
                &[Step::Key(section)],
                "a condition must be one of all / any / not, or one left side (sysctl, counter, stat, field, option, value) with one comparison (eq, ne, lt, le, gt, ge, in)",
                "e.g. `{ sysctl: net.ipv4.tcp_syncookies, eq: 0 }`",
            );
            return None;
        }
        if c.measure.is_some() && c.counter.is_none() {
            self.problem(
                Code::BadCondition,
                &[Step::Key(section), Step::Key("measure")],
                "`measure` only applies to `counter`",
                "remove it, or compare a counter",
            );
        }
        if let Some(list) = &c.all {
            let v: Vec<Cond> = list
                .iter()
                .filter_map(|c| self.cond(section, c, level))
                .collect();
            return (v.len() == list.len() && !v.is_empty()).then_some(Cond::All(v));
        }
        if let Some(list) = &c.any {
            let v: Vec<Cond> = list
                .iter()
                .filter_map(|c| self.cond(section, c, level))
                .collect();
            return (v.len() == list.len() && !v.is_empty()).then_some(Cond::Any(v));
        }
        if let Some(inner) = &c.not {
            return self
                .cond(section, inner, level)
                .map(|c| Cond::Not(Box::new(c)));
        }
        let (left, kind) = if let Some(k) = &c.sysctl {
            (self.sysctl(section, k).map(Expr::Sysctl), Kind::Number)
        } else if let Some(n) = &c.counter {
            (
                self.counter(section, n)
                    .map(|n| Expr::Counter(n, c.measure.unwrap_or_default())),
                Kind::Number,
            )
        } else if let Some(s) = c.stat {
            (Some(Expr::Stat(s)), Kind::Number)
        } else if let Some(f) = c.field {
            let kind = match f {
                Field::State => Kind::State,
                Field::Timer => Kind::Timer,
                Field::Owned => Kind::Bool,
                _ => Kind::Number,
            };
            if level == Level::Host {
                self.problem(
                    Code::MisplacedSocketField,
                    &[Step::Key(section), Step::Key("field")],
                    "socket fields can only be used in `match` or `suspects`",
                    "move the comparison into `match:` (listener, socket or process rules)",
                );
                return None;
            }
            (Some(Expr::Field(f)), kind)
        } else if let Some(o) = c.option {
            if level == Level::Host {
                self.problem(
                    Code::MisplacedSocketField,
                    &[Step::Key(section), Step::Key("option")],
                    "socket options can only be used in `match` or `suspects`",
                    "move the comparison into `match:` (listener, socket or process rules)",
                );
                return None;
            }
            (
                Some(Expr::Opt(o)),
                if o.is_bool() {
                    Kind::Bool
                } else {
                    Kind::Number
                },
            )
        } else {
            let v = c.value.as_ref()?;
            (self.operand(section, v, Kind::Number, level), Kind::Number)
        };
        let (op, right) = if let Some(list) = &c.one_of {
            let r: Vec<Option<Expr>> = list
                .iter()
                .map(|o| self.operand(section, o, kind, level))
                .collect();
            if list.is_empty() {
                self.problem(
                    Code::BadCondition,
                    &[Step::Key(section), Step::Key("in")],
                    "`in` needs at least one value",
                    "e.g. `in: [CLOSE_WAIT, LAST_ACK]`",
                );
                return None;
            }
            (Op::In, r.into_iter().collect::<Option<Vec<_>>>())
        } else {
            let (op, v) = cmps[0];
            if matches!(kind, Kind::Bool | Kind::State | Kind::Timer)
                && !matches!(op, Op::Eq | Op::Ne)
            {
                self.problem(
                    Code::TypeMismatch,
                    &[Step::Key(section), Step::Key(op_key(op))],
                    format!(
                        "names and booleans can only be compared with eq, ne or in, not {}",
                        op_key(op)
                    ),
                    "use eq, ne or in",
                );
                return None;
            }
            (op, self.operand(section, v, kind, level).map(|e| vec![e]))
        };
        Some(Cond::Cmp {
            left: left?,
            op,
            right: right?,
        })
    }

    fn template(&mut self, text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                self.problem(Code::BadMessage, &[Step::Key("message")], "unclosed `{` in the message", "placeholders look like {sysctl:KEY}, {param:NAME}, {counter:NAME}, {stat:NAME}");
                pieces.push(Piece::Text(rest[open..].to_string()));
                rest = "";
                break;
            };
            let inner = &rest[open + 1..open + close];
            // `{1, 0}` is text; `{word:...}` is a placeholder.
            let is_placeholder = inner.split_once(':').is_some_and(|(kind, _)| {
                !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase())
            });
            if !is_placeholder {
                pieces.push(Piece::Text(rest[open..open + close + 1].to_string()));
                rest = &rest[open + close + 1..];
                continue;
            }
            let expr = match inner.split_once(':') {
                Some(("sysctl", k)) => self.sysctl("message", k).map(Expr::Sysctl),
                Some(("param", p)) => self.param("message", p).map(Expr::Param),
                Some(("counter", c)) => self
                    .counter("message", c)
                    .map(|c| Expr::Counter(c, Measure::Auto)),
                Some(("stat", s)) => match Stat::ALL.iter().find(|x| x.as_str() == s) {
                    Some(s) => Some(Expr::Stat(*s)),
                    None => {
                        self.problem(
                            Code::UnknownStatistic,
                            &[Step::Key("message"), Step::Text(inner)],
                            format!("unknown statistic {s:?}"),
                            format!("use one of {}", Stat::ALL.map(Stat::as_str).join(", ")),
                        );
                        None
                    }
                },
                _ => {
                    self.problem(Code::BadMessage, &[Step::Key("message"), Step::Text(inner)], format!("unknown placeholder {{{inner}}}"), "placeholders look like {sysctl:KEY}, {param:NAME}, {counter:NAME}, {stat:NAME}");
                    None
                }
            };
            if let Some(e) = expr {
                pieces.push(Piece::Value(e));
            }
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Template { pieces }
    }
}

fn op_key(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Lt => "lt",
        Op::Le => "le",
        Op::Gt => "gt",
        Op::Ge => "ge",
        Op::In => "in",
    }
}

/// The numeric code of a TCP state name.
pub fn state_code(name: &str) -> Option<f64> {
    (1u8..=12)
        .find(|n| TcpState::from_kernel(*n).is_some_and(|s| s.as_str() == name))
        .map(f64::from)
}

/// Timer names as rules write them.
const TIMER_NAMES: [(&str, Timer); 5] = [
    ("none", Timer::None),
    ("retransmit", Timer::Retransmit),
    ("keepalive", Timer::Keepalive),
    ("time_wait", Timer::TimeWait),
    ("zero_window_probe", Timer::ZeroWindowProbe),
];

/// The numeric code of a timer name.
pub fn timer_code(name: &str) -> Option<f64> {
    TIMER_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| timer_num(*t))
}

/// A timer as a number.
pub fn timer_num(t: Timer) -> f64 {
    match t {
        Timer::None => 0.0,
        Timer::Retransmit => 1.0,
        Timer::Keepalive => 2.0,
        Timer::TimeWait => 3.0,
        Timer::ZeroWindowProbe => 4.0,
    }
}

/// "did you mean" for a misspelt name.
fn suggest(name: &str, known: &[&str]) -> String {
    let tail = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    let wanted = tail(name);
    let close: Vec<&str> = known
        .iter()
        .filter(|k| {
            let t = tail(k);
            t.contains(&wanted) || wanted.contains(&t) || common_prefix(&t, &wanted) >= 8
        })
        .copied()
        .take(3)
        .collect();
    if close.is_empty() {
        "see `rstaudit rules doc` or src/rules/known.rs for the names rules may use".to_string()
    } else {
        format!("did you mean {}?", close.join(" or "))
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Rule {
    /// Check a parsed rule file. `text` is the file's text (for positions).
    pub fn from_raw(raw: &RawRule, text: &str, origin: &str) -> Result<Rule, Vec<Diagnostic>> {
        let mut ck = Checker {
            file: origin,
            loc: Locator::new(text),
            params: raw.params.keys().cloned().collect(),
            problems: Vec::new(),
        };
        if !valid_id(&raw.id) {
            ck.problem(
                Code::BadId,
                &[Step::Key("id")],
                format!("rule id {:?} is not valid", raw.id),
                "use lowercase letters, digits and -, e.g. linger-zero",
            );
        }
        if raw.title.trim().is_empty() {
            ck.problem(
                Code::EmptyText,
                &[Step::Key("title")],
                "the title is empty",
                "say in a few words what is wrong",
            );
        }
        if !known::CAUSES.contains(&raw.cause.as_str()) {
            ck.problem(
                Code::UnknownCause,
                &[Step::Key("cause")],
                format!("unknown cause {:?}", raw.cause),
                format!(
                    "use a seed cause from rst-causes.md section 6: {}",
                    known::CAUSES.join(", ")
                ),
            );
        }
        let kernel = match &raw.applies.kernel {
            None => None,
            Some(text) => match VersionRange::parse(text) {
                Ok(r) => Some(r),
                Err(why) => {
                    ck.problem(
                        Code::BadKernelRange,
                        &[Step::Key("applies"), Step::Key("kernel")],
                        format!("bad kernel version range {text:?}: {why}"),
                        "write bounds such as \">=4.12, <6.0\"",
                    );
                    None
                }
            },
        };
        let requires: Vec<String> = raw
            .applies
            .requires
            .iter()
            .filter_map(|k| ck.sysctl("requires", k))
            .collect();
        let mut params = BTreeMap::new();
        for (name, p) in &raw.params {
            if !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                || name.is_empty()
            {
                ck.problem(
                    Code::BadParam,
                    &[Step::Key("params"), Step::Key(name)],
                    format!("parameter name {name:?} is not valid"),
                    "use lowercase letters, digits and _",
                );
            }
            if !p.default.is_finite() {
                ck.problem(
                    Code::BadParam,
                    &[Step::Key("params"), Step::Key(name)],
                    "the default must be a finite number",
                    "e.g. `default: 300`",
                );
            }
            params.insert(
                name.clone(),
                Param {
                    default: p.default,
                    description: p.description.clone(),
                    unit: p.unit.clone(),
                },
            );
        }
        let when = raw
            .when
            .as_ref()
            .and_then(|c| ck.cond("when", c, Level::Host));
        let matches = raw
            .matches
            .as_ref()
            .and_then(|c| ck.cond("match", c, Level::Socket));
        let suspects = raw
            .suspects
            .as_ref()
            .and_then(|c| ck.cond("suspects", c, Level::Socket));
        let min_count = raw
            .min_count
            .as_ref()
            .and_then(|o| ck.operand("min_count", o, Kind::Number, Level::Host));
        match raw.subject {
            Subject::Host => {
                if raw.when.is_none() {
                    ck.problem(
                        Code::MissingSection,
                        &[Step::Key("subject")],
                        "a host rule needs `when:`",
                        "add a condition on sysctls, counters or statistics",
                    );
                }
                if raw.matches.is_some() {
                    ck.problem(
                        Code::MisplacedSection,
                        &[Step::Key("match")],
                        "`match` is for listener, socket and process rules",
                        "use `when:` (and `suspects:` to name likely processes)",
                    );
                }
            }
            _ => {
                if raw.matches.is_none() {
                    ck.problem(
                        Code::MissingSection,
                        &[Step::Key("subject")],
                        format!("a {} rule needs `match:`", raw.subject.as_str()),
                        "add a condition on socket fields or options",
                    );
                }
                if raw.suspects.is_some() {
                    ck.problem(
                        Code::MisplacedSection,
                        &[Step::Key("suspects")],
                        "`suspects` is for host rules",
                        "remove it; the matching sockets already name their processes",
                    );
                }
            }
        }
        if raw.min_count.is_some() && raw.subject != Subject::Process {
            ck.problem(
                Code::MisplacedSection,
                &[Step::Key("min_count")],
                "`min_count` is for process rules",
                "remove it or use `subject: process`",
            );
        }
        let message = ck.template(&raw.message);
        let evidence_counters: Vec<String> = raw
            .evidence
            .counters
            .iter()
            .filter_map(|c| ck.counter("evidence", c))
            .collect();
        for r in &raw.evidence.rst_reasons {
            if !known::RST_REASONS.contains(&r.as_str()) {
                ck.problem(
                    Code::UnknownReason,
                    &[Step::Key("evidence"), Step::Text(r)],
                    format!("unknown RST reason {r:?}"),
                    format!(
                        "use an sk_rst_reason name: {}",
                        known::RST_REASONS.join(", ")
                    ),
                );
            }
        }
        let mut fix_sysctls = Vec::new();
        for (key, value) in &raw.fix.sysctls {
            let Some(k) = ck.sysctl("fix", key) else {
                continue;
            };
            let v = match value {
                RawOperand::Text(t) => Some(Expr::Text(t.clone())),
                other => ck.operand("fix", other, Kind::Number, Level::Host),
            };
            if let Some(v) = v {
                let mut uses_counter = false;
                visit_expr(&v, &mut |e| uses_counter |= matches!(e, Expr::Counter(..)));
                if uses_counter {
                    ck.problem(Code::BadFix, &[Step::Key("fix"), Step::Key(key)], "a fix value may use numbers, parameters, sysctls and statistics, not counters", "compute it from parameters and sysctls");
                } else {
                    fix_sysctls.push((k, v));
                }
            }
        }
        if raw.fix.sysctls.is_empty()
            && raw
                .fix
                .advice
                .as_deref()
                .is_none_or(|a| a.trim().is_empty())
        {
            ck.problem(
                Code::BadFix,
                &[Step::Key("fix")],
                "the fix says nothing",
                "give `sysctls:` values or `advice:`",
            );
        }
        if let Some(lab) = &raw.lab
            && !known::LAB_SCENARIOS.contains(&lab.as_str())
        {
            ck.problem(
                Code::UnknownScenario,
                &[Step::Key("lab")],
                format!("unknown lab scenario {lab:?}"),
                format!("use one of {}", known::LAB_SCENARIOS.join(", ")),
            );
        }
        if raw.explanation.trim().is_empty() {
            ck.problem(
                Code::EmptyText,
                &[Step::Key("explanation")],
                "the explanation is empty",
                "say why this makes resets likely",
            );
        }
        if !ck.problems.is_empty() {
            return Err(ck.problems);
        }
        Ok(Rule {
            id: raw.id.clone(),
            title: raw.title.trim().to_string(),
            severity: raw.severity,
            cause: raw.cause.clone(),
            subject: raw.subject,
            kernel,
            requires,
            absent_reason: raw.applies.absent_reason.clone(),
            params,
            when,
            matches,
            min_count,
            suspects,
            message,
            evidence_counters,
            rst_reasons: raw.evidence.rst_reasons.clone(),
            fix_sysctls,
            advice: raw.fix.advice.as_ref().map(|a| a.trim().to_string()),
            lab: raw.lab.clone(),
            explanation: raw.explanation.trim().to_string(),
            references: raw.references.clone(),
            origin: origin.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges() {
        let r = VersionRange::parse(">=4.12, <6.0").unwrap();
        let v = |a, b| KernelVersion {
            major: a,
            minor: b,
            patch: 0,
        };
        assert!(r.contains(v(5, 4)));
        assert!(!r.contains(v(4, 9)));
        assert!(!r.contains(v(6, 0)));
        for bad in ["4.12", ">=4", ">=x.y", ">=6.0, <5.0", ""] {
            assert!(VersionRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_compile_to_codes() {
        assert_eq!(state_code("CLOSE_WAIT"), Some(8.0));
        assert_eq!(state_code("nope"), None);
        assert_eq!(timer_code("keepalive"), Some(2.0));
    }
}
