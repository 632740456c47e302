//! The checker of one rule file: names (sysctl keys, counters, statistics, states, timers),
//! parameters, the types of comparisons and message templates, each problem a diagnostic at
//! its place in the file.

use std::collections::BTreeSet;

use super::*;

pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) loc: Locator<'a>,
    pub(super) params: BTreeSet<String>,
    pub(super) problems: Vec<Diagnostic>,
    /// The rule's `computed:` values as written, and those checked so far (`None`: refused).
    pub(super) computed_raw: &'a BTreeMap<String, RawOperand>,
    pub(super) computed: BTreeMap<String, Option<Expr>>,
    /// Names being checked, to refuse a value that refers to itself.
    pub(super) computing: Vec<String>,
}

/// What kind of value the left side of a comparison is, so constants can be checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Number,
    Bool,
    State,
    Timer,
}

/// Where an expression may appear.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    /// `when`, `min_count`, fixes: no socket fields.
    Host,
    /// `match`, `suspects`: socket fields allowed.
    Socket,
}

impl Checker<'_> {
    pub(super) fn problem(
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

    /// A sysctl key the rule names, checked by the one authority on keys ([`crate::valid`]).
    pub(super) fn sysctl(&mut self, section: &str, key: &str) -> Option<String> {
        self.checked_sysctl(section, key)
            .map(|k| k.key.as_str().to_string())
    }

    pub(super) fn checked_sysctl(&mut self, section: &str, key: &str) -> Option<crate::valid::Key> {
        match crate::valid::key(key, Scope::NetOnly) {
            Ok(k) => Some(k),
            Err(e) => {
                self.problem(
                    e.code,
                    &[Step::Key(section), Step::Text(key)],
                    e.message,
                    e.hint,
                );
                None
            }
        }
    }

    pub(super) fn counter(&mut self, section: &str, name: &str) -> Option<String> {
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

    pub(super) fn param(&mut self, section: &str, name: &str) -> Option<String> {
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

    pub(super) fn expr(&mut self, section: &str, e: &RawExpr, level: Level) -> Option<Expr> {
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
                Some(k) => found.push(Expr::Sysctl(k, e.absent)),
                None => bad = true,
            }
        }
        if e.absent.is_some_and(|v| !v.is_finite()) {
            self.problem(
                Code::BadOperands,
                &[Step::Key(section), Step::Key("absent")],
                "`absent` must be a finite number",
                "e.g. `{ sysctl: net.ipv4.tcp_rto_max_ms, absent: 120000 }`",
            );
            bad = true;
        }
        if e.absent.is_some() && e.sysctl.is_none() && e.counter.is_none() {
            self.problem(
                Code::BadOperands,
                &[Step::Key(section), Step::Key("absent")],
                "`absent` only goes with `sysctl` or `counter`",
                "write `{ sysctl: KEY, absent: VALUE }` or `{ counter: NAME, absent: VALUE }`",
            );
            bad = true;
        }
        if let Some(name) = &e.computed {
            match self.computed_value(section, name) {
                Some(x) => found.push(Expr::Computed(name.clone(), Box::new(x))),
                None => bad = true,
            }
        }
        if let Some(c) = &e.counter {
            match (self.counter(section, c), e.absent) {
                (Some(c), None) => found.push(Expr::Counter(c, Measure::Auto)),
                (Some(c), Some(v)) => found.push(Expr::CounterOr(c, v)),
                (None, _) => bad = true,
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
            (Arith::ModelTimeoutMs, &e.tcp_model_timeout_ms),
            (Arith::ModelRetries, &e.tcp_model_retries),
            (Arith::GiveUpMs, &e.tcp_give_up_ms),
            (Arith::SynGiveUpMs, &e.tcp_syn_give_up_ms),
        ] {
            if let Some(args) = args {
                let name = op.as_str();
                let (least, most) = op.arity();
                if args.len() < least || args.len() > most {
                    let (count, example) = match (least, most) {
                        (2, 2) => ("exactly 2".to_string(), "[A, B]"),
                        (3, 3) => ("exactly 3".to_string(), "[A, B, C]"),
                        (n, _) => (format!("at least {n}"), "[A, B]"),
                    };
                    self.problem(
                        Code::BadOperands,
                        &[Step::Key(section), Step::Key(name)],
                        format!("`{name}` needs {count} operands"),
                        format!("write `{name}: {example}`"),
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
                "write one of param, sysctl, computed, counter, rate, stat, field, option, add, sub, mul, div, min, max, tcp_model_timeout_ms, tcp_model_retries, tcp_give_up_ms, tcp_syn_give_up_ms",
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

    /// The checked expression of the `computed:` value `name` (checked once, at its first use).
    pub(super) fn computed_value(&mut self, section: &str, name: &str) -> Option<Expr> {
        if let Some(done) = self.computed.get(name) {
            return done.clone();
        }
        if self.computing.iter().any(|n| n == name) {
            self.problem(
                Code::BadOperands,
                &[Step::Key("computed"), Step::Key(name)],
                format!(
                    "computed value {name:?} depends on itself ({} -> {name})",
                    self.computing.join(" -> ")
                ),
                "compute it from parameters, sysctls, counters and statistics",
            );
            return None;
        }
        let raw = self.computed_raw;
        let Some(op) = raw.get(name) else {
            let declared: Vec<&str> = raw.keys().map(String::as_str).collect();
            self.problem(
                Code::UnknownParam,
                &[Step::Key(section), Step::Text(name)],
                format!("unknown computed value {name:?}"),
                if declared.is_empty() {
                    "declare it under `computed:`".to_string()
                } else {
                    format!("declared under `computed:`: {}", declared.join(", "))
                },
            );
            return None;
        };
        self.computing.push(name.to_string());
        let x = self.operand("computed", op, Kind::Number, Level::Host);
        self.computing.pop();
        self.computed.insert(name.to_string(), x.clone());
        x
    }

    pub(super) fn operand(
        &mut self,
        section: &str,
        o: &RawOperand,
        kind: Kind,
        level: Level,
    ) -> Option<Expr> {
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
                        "a number, or {param|sysctl|computed|counter|stat|field|option: ...}, or add/sub/mul/div/min/max or a tcp_* function"
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

    /// A condition: a group (`all`, `any`, `not`) of conditions, or a comparison.
    pub(super) fn cond(&mut self, section: &str, c: &RawCond, level: Level) -> Option<Cond> {
        let cmps = comparisons(c);
        if !self.check_shape(section, c, cmps.len() + usize::from(c.one_of.is_some())) {
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
            return self.conds(section, list, level).map(Cond::All);
        }
        if let Some(list) = &c.any {
            return self.conds(section, list, level).map(Cond::Any);
        }
        if let Some(inner) = &c.not {
            return self
                .cond(section, inner, level)
                .map(|c| Cond::Not(Box::new(c)));
        }
        if !self.left_fits(section, c, level) {
            return None;
        }
        let (left, kind) = self.left_side(section, c, level)?;
        let (op, right) = self.right_side(section, c, &cmps, kind, level)?;
        Some(Cond::Cmp {
            left: left?,
            op,
            right,
        })
    }

    /// Whether the condition is one group, or one left side with `n_cmp` comparisons, one.
    fn check_shape(&mut self, section: &str, c: &RawCond, n_cmp: usize) -> bool {
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
        if groups + lefts != 1 || (groups == 1 && n_cmp > 0) || (lefts == 1 && n_cmp != 1) {
            self.problem(Code::BadCondition,
                &[Step::Key(section)],
                "a condition must be one of all / any / not, or one left side (sysctl, counter, stat, field, option, value) with one comparison (eq, ne, lt, le, gt, ge, in)",
                "e.g. `{ sysctl: net.ipv4.tcp_syncookies, eq: 0 }`",
            );
            return false;
        }
        true
    }

    /// The conditions of `all` or `any`: every one of them, and at least one.
    fn conds(&mut self, section: &str, list: &[RawCond], level: Level) -> Option<Vec<Cond>> {
        let v: Vec<Cond> = list
            .iter()
            .filter_map(|c| self.cond(section, c, level))
            .collect();
        (v.len() == list.len() && !v.is_empty()).then_some(v)
    }

    /// Whether the left side of a comparison may be used at `level`: socket fields and
    /// options only in `match` and `suspects`.
    fn left_fits(&mut self, section: &str, c: &RawCond, level: Level) -> bool {
        if level == Level::Socket {
            return true;
        }
        if c.field.is_some() {
            self.problem(
                Code::MisplacedSocketField,
                &[Step::Key(section), Step::Key("field")],
                "socket fields can only be used in `match` or `suspects`",
                "move the comparison into `match:` (listener, socket or process rules)",
            );
            return false;
        }
        if c.option.is_some() {
            self.problem(
                Code::MisplacedSocketField,
                &[Step::Key(section), Step::Key("option")],
                "socket options can only be used in `match` or `suspects`",
                "move the comparison into `match:` (listener, socket or process rules)",
            );
            return false;
        }
        true
    }

    /// The left side of a comparison (`None` inside: it had a problem) and the kind of value
    /// it is, which the right side must be.
    fn left_side(
        &mut self,
        section: &str,
        c: &RawCond,
        level: Level,
    ) -> Option<(Option<Expr>, Kind)> {
        Some(if let Some(k) = &c.sysctl {
            (
                self.sysctl(section, k).map(|k| Expr::Sysctl(k, None)),
                Kind::Number,
            )
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
            (Some(Expr::Field(f)), kind)
        } else if let Some(o) = c.option {
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
        })
    }

    /// The operator and the right side of a comparison, of the `kind` of the left side:
    /// `in` a list, or one of `cmps`.
    fn right_side(
        &mut self,
        section: &str,
        c: &RawCond,
        cmps: &[(Op, &RawOperand)],
        kind: Kind,
        level: Level,
    ) -> Option<(Op, Vec<Expr>)> {
        if let Some(list) = &c.one_of {
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
            return Some((Op::In, r.into_iter().collect::<Option<Vec<_>>>()?));
        }
        let (op, v) = cmps[0];
        if matches!(kind, Kind::Bool | Kind::State | Kind::Timer) && !matches!(op, Op::Eq | Op::Ne)
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
        Some((op, vec![self.operand(section, v, kind, level)?]))
    }

    pub(super) fn template(&mut self, text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                self.problem(Code::BadMessage, &[Step::Key("message")], "unclosed `{` in the message", "placeholders look like {sysctl:KEY}, {param:NAME}, {counter:NAME}, {stat:NAME}, {computed:NAME}");
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
                Some(("sysctl", k)) => self.sysctl("message", k).map(|k| Expr::Sysctl(k, None)),
                Some(("param", p)) => self.param("message", p).map(Expr::Param),
                Some(("computed", c)) => self
                    .computed_value("message", c)
                    .map(|x| Expr::Computed(c.to_string(), Box::new(x))),
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
                    self.problem(Code::BadMessage, &[Step::Key("message"), Step::Text(inner)], format!("unknown placeholder {{{inner}}}"), "placeholders look like {sysctl:KEY}, {param:NAME}, {counter:NAME}, {stat:NAME}, {computed:NAME}");
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

/// The comparisons a condition makes (`eq`, `ne`, ...), in that order.
fn comparisons(c: &RawCond) -> Vec<(Op, &RawOperand)> {
    [
        (Op::Eq, &c.eq),
        (Op::Ne, &c.ne),
        (Op::Lt, &c.lt),
        (Op::Le, &c.le),
        (Op::Gt, &c.gt),
        (Op::Ge, &c.ge),
    ]
    .into_iter()
    .filter_map(|(op, v)| v.as_ref().map(|v| (op, v)))
    .collect()
}

pub(super) fn op_key(op: Op) -> &'static str {
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

/// "did you mean" for a misspelt name.
pub(super) fn suggest(name: &str, known: &[&str]) -> String {
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

pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
