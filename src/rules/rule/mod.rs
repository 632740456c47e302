//! The validated rule: what the engine runs.
//!
//! [`Rule::from_raw`] checks a [`RawRule`] against the names the tool knows
//! (sysctl keys, counters, RST reasons, causes, lab scenarios), the declared
//! parameters and the types of each comparison, and returns every problem
//! with its position in the file.

use std::collections::BTreeMap;
use std::fmt;

use crate::host::TcpState;
use crate::host::sysctl::Scope;

use super::finding::Severity;
use super::known;
use super::raw::{Field, Measure, RawCond, RawExpr, RawOperand, RawRule, SockOpt, Stat, Subject};
use crate::diag::{Code, Diagnostic, Locator, Step};

mod check;
mod codes;
mod from_raw;
mod version;

use codes::TIMER_NAMES;
pub use codes::{state_code, timer_code, timer_num};
pub use version::VersionRange;

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
    /// Named values (`computed:`), in name order.
    pub computed: Vec<(String, Expr)>,
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

/// Arithmetic, and the kernel's retransmission arithmetic (src/rules/retrans.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    /// `[RETRIES, BASE_MS, RTO_MAX_MS]` -> [`crate::rules::retrans::model_timeout_ms`].
    ModelTimeoutMs,
    /// `[BUDGET_MS, BASE_MS, RTO_MAX_MS]` -> [`crate::rules::retrans::model_retries`].
    ModelRetries,
    /// `[RETRIES, RTO_MS, RTO_MAX_MS]` -> [`crate::rules::retrans::give_up_ms`].
    GiveUpMs,
    /// `[SYN_RETRIES, LINEAR, RTO_MAX_MS]` -> [`crate::rules::retrans::syn_give_up_ms`].
    SynGiveUpMs,
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
            Self::ModelTimeoutMs => "tcp_model_timeout_ms",
            Self::ModelRetries => "tcp_model_retries",
            Self::GiveUpMs => "tcp_give_up_ms",
            Self::SynGiveUpMs => "tcp_syn_give_up_ms",
        }
    }

    /// How many operands the operation takes: `(at least, at most)`.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Self::Add | Self::Mul | Self::Min | Self::Max => (2, usize::MAX),
            Self::Sub | Self::Div => (2, 2),
            Self::ModelTimeoutMs | Self::ModelRetries | Self::GiveUpMs | Self::SynGiveUpMs => {
                (3, 3)
            }
        }
    }

    /// Whether it is written as a function of its operands (`min(a, b)`), not with a sign.
    fn is_function(self) -> bool {
        !matches!(self, Self::Add | Self::Sub | Self::Mul | Self::Div)
    }
}

/// A value. Names (TCP states, timers, booleans) are compiled to numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(f64),
    Text(String),
    Param(String),
    /// A sysctl, and the value the kernel behaves as if it had where the key does not exist.
    Sysctl(String, Option<f64>),
    /// A value named under `computed:`, with its expression.
    Computed(String, Box<Expr>),
    Counter(String, Measure),
    /// A counter (its change over the window, else its total), and the value taken where
    /// this kernel does not have it.
    CounterOr(String, f64),
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
            Self::Computed(_, e) => e.is_socket_level(),
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
    match e {
        Expr::Arith(_, args) => args.iter().for_each(|a| visit_expr(a, f)),
        Expr::Computed(_, inner) => visit_expr(inner, f),
        _ => {}
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Const(v) => write!(f, "{}", fmt_num(*v)),
            Self::Text(t) => f.write_str(t),
            Self::Param(p) => write!(f, "param {p}"),
            Self::Sysctl(k, None) => f.write_str(k),
            Self::Sysctl(k, Some(v)) => write!(f, "{k} ({} where absent)", fmt_num(*v)),
            Self::Computed(name, _) => f.write_str(name),
            Self::Counter(c, m) => match m {
                Measure::Auto => write!(f, "{c}"),
                Measure::Change => write!(f, "change of {c}"),
                Measure::Total => write!(f, "total {c}"),
                Measure::Rate => write!(f, "{c} per second"),
            },
            Self::CounterOr(c, v) => write!(f, "{c} ({} where absent)", fmt_num(*v)),
            Self::Stat(s) => write!(f, "{} sockets", s.as_str()),
            Self::Field(x) => write!(f, "socket {}", x.as_str()),
            Self::Opt(o) => write!(f, "option {}", o.as_str()),
            Self::Arith(op, args) => {
                let inner: Vec<String> = args.iter().map(ToString::to_string).collect();
                if op.is_function() {
                    return write!(f, "{}({})", op.as_str(), inner.join(", "));
                }
                let sym = match op {
                    Arith::Add => " + ",
                    Arith::Sub => " - ",
                    Arith::Mul => " * ",
                    _ => " / ",
                };
                write!(f, "({})", inner.join(sym))
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

/// A message with placeholders (`{sysctl:KEY}`, `{param:NAME}`, `{counter:NAME}`, `{stat:NAME}`,
/// `{computed:NAME}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Value(Expr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::KernelVersion;

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

    /// The table of parameters (crate::valid::params) covers every parameter of the built-in
    /// rules, and each default is one of its values.
    #[test]
    fn every_builtin_parameter_is_in_the_table() {
        let set = crate::rules::load::builtin().unwrap();
        for rule in &set.rules {
            for (name, p) in &rule.params {
                let spec = crate::valid::params::spec(name)
                    .unwrap_or_else(|| panic!("{}: parameter {name} is not in the table", rule.id));
                assert_eq!(spec.user, crate::valid::params::User::Rules, "{name}");
                spec.check(p.default)
                    .unwrap_or_else(|e| panic!("{}: {e}", rule.id));
            }
        }
        for spec in crate::valid::params::PARAMS {
            let declared = set.rules.iter().any(|r| r.params.contains_key(spec.name));
            assert_eq!(
                declared,
                spec.user == crate::valid::params::User::Rules,
                "{}: a rule parameter no rule declares, or a lab parameter a rule declares",
                spec.name
            );
        }
    }

    /// A fix that sets a key to a value the key does not mean is refused at load, where it is
    /// written, like the same value in a profile.
    #[test]
    fn a_fix_constant_outside_the_keys_values_is_refused() {
        let text = "id: cookies\ntitle: t\nseverity: high\ncause: \"2\"\nsubject: host\n\
                    when: { sysctl: net.ipv4.tcp_syncookies, eq: 0 }\nmessage: m\n\
                    fix:\n  sysctls:\n    net.ipv4.tcp_syncookies: 7\nexplanation: e\n";
        let problems = crate::rules::load::parse_file("cookies.yaml", text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].code, crate::diag::Code::BadValue);
        assert_eq!(
            problems[0].message,
            "net.ipv4.tcp_syncookies: 7 is out of range 0..=2"
        );
        assert_eq!((problems[0].line, problems[0].col), (10, 5));
        let misspelt = text.replace(
            "sysctls:\n    net.ipv4.tcp_syncookies",
            "sysctls:\n    net.ipv4.tcp_syncookie",
        );
        let problems = crate::rules::load::parse_file("cookies.yaml", &misspelt).unwrap_err();
        assert_eq!(problems[0].code, crate::diag::Code::UnknownSysctl);
        assert_eq!(problems[0].hint, "did you mean net.ipv4.tcp_syncookies?");
    }

    #[test]
    fn names_compile_to_codes() {
        assert_eq!(state_code("CLOSE_WAIT"), Some(8.0));
        assert_eq!(state_code("nope"), None);
        assert_eq!(timer_code("keepalive"), Some(2.0));
    }
}
