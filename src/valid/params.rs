//! Parameters: every rule and lab parameter the project knows, its unit and the values that
//! mean something.
//!
//! Rules declare their parameters (with a default) and the lab reads a few of its own; the
//! table here says which values each can take, so `--set`, a profile's or a config file's
//! `params:` and a rule's default are judged alike. A parameter that a rule of the user's own
//! declares and the table does not list takes any finite number.

use std::collections::BTreeSet;

use super::Invalid;
use crate::diag::Code;

/// Who reads a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// The built-in rules (and the lab, which runs their scenarios with them).
    Rules,
    /// The lab only (`packet-check --lab --set NAME=VALUE`).
    Lab,
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    /// `s`, `ms`, `%` or empty (a count).
    pub unit: &'static str,
    pub lo: f64,
    pub hi: f64,
    /// Only whole numbers mean something (counts, kernel settings).
    pub whole: bool,
    pub user: User,
}

const INT_MAX: f64 = i32::MAX as f64;
/// A week, the longest `--duration` too.
const WEEK: f64 = 604_800.0;

const fn p(name: &'static str, unit: &'static str, lo: f64, hi: f64, whole: bool) -> ParamSpec {
    ParamSpec {
        name,
        unit,
        lo,
        hi,
        whole,
        user: User::Rules,
    }
}

/// The table, in name order.
pub const PARAMS: &[ParamSpec] = &[
    // Seconds before a middlebox forgets an idle flow.
    p("idle_timeout", "s", 1.0, WEEK, false),
    p("listen_burst_seconds", "s", 0.01, 3600.0, false),
    p("min_backlog", "", 1.0, INT_MAX, true),
    // How long a connection must survive unanswered retransmissions (the fix clamps the
    // retries it computes to the kernel's limit).
    p("min_give_up_s", "s", 1.0, WEEK, false),
    p("min_idle", "s", 1.0, INT_MAX, false),
    // tcp_info's retransmits is a u8.
    p("min_retransmits", "", 1.0, 255.0, true),
    p("min_sockets", "", 1.0, INT_MAX, true),
    p("min_somaxconn", "", 1.0, INT_MAX, true),
    p("min_syn_give_up_s", "s", 1.0, WEEK, false),
    p("min_user_timeout_ms", "ms", 1.0, INT_MAX, true),
    ParamSpec {
        user: User::Lab,
        // How long the lab cuts the path in the keepalive-timeout scenario.
        ..p("outage", "s", 1.0, WEEK, false)
    },
    // A Linux keepalive time (MAX_TCP_KEEPIDLE).
    p("peer_keepalive_time", "s", 1.0, 32767.0, true),
    p("ratio_pct", "%", 1.0, 100.0, false),
    p("wanted_backlog", "", 1.0, INT_MAX, true),
];

/// The table's entry for `name`.
pub fn spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMS
        .binary_search_by(|s| s.name.cmp(name))
        .ok()
        .map(|i| &PARAMS[i])
}

impl ParamSpec {
    /// Check a number against the parameter's values.
    pub fn check(&self, v: f64) -> Result<f64, Invalid> {
        let unit = match self.unit {
            "" => String::new(),
            "s" => " seconds".to_string(),
            u => format!(" {u}"),
        };
        let shown = |x: f64| crate::valid::fmt_num(x);
        if !v.is_finite() || v < self.lo || v > self.hi {
            return Err(Invalid::new(
                Code::BadValue,
                format!(
                    "parameter {}: {} is out of range {}..={}{unit}",
                    self.name,
                    shown(v),
                    shown(self.lo),
                    shown(self.hi)
                ),
                "",
            ));
        }
        if self.whole && v.fract() != 0.0 {
            return Err(Invalid::new(
                Code::BadValue,
                format!(
                    "parameter {}: {} is not a whole number",
                    self.name,
                    shown(v)
                ),
                "",
            ));
        }
        Ok(v)
    }
}

/// The parameters one run accepts: those its rules declare, and the lab's when the lab runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    names: BTreeSet<String>,
    lab: bool,
}

impl Accepted {
    /// The parameters `declared` by the loaded rules.
    pub fn of_rules<'a>(declared: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            names: declared.into_iter().map(str::to_string).collect(),
            lab: false,
        }
    }

    /// Every rule parameter of the table: what a profile may set when no rule set is at hand
    /// (the built-in rules declare exactly these). The lab's own are for its `--set` only.
    pub fn table() -> Self {
        Self::of_rules(
            PARAMS
                .iter()
                .filter(|p| p.user == User::Rules)
                .map(|p| p.name),
        )
    }

    /// The same, with the lab's own parameters.
    pub fn with_lab(mut self) -> Self {
        self.lab = true;
        self.names.extend(
            PARAMS
                .iter()
                .filter(|p| p.user == User::Lab)
                .map(|p| p.name.to_string()),
        );
        self
    }

    /// Whether `name` is accepted.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The accepted names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Check `name=value`: a parameter this run accepts, and a number it can take.
    pub fn check(&self, name: &str, value: &str) -> Result<f64, Invalid> {
        self.check_name(name)?;
        let v: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                Invalid::new(
                    Code::BadValue,
                    format!("parameter {name}={value:?}: expected a number, e.g. {name}=300"),
                    "",
                )
            })?;
        self.check_number(name, v)
    }

    /// Check a number already parsed (a config file's, a rule's default).
    pub fn check_number(&self, name: &str, v: f64) -> Result<f64, Invalid> {
        self.check_name(name)?;
        match spec(name) {
            Some(s) => s.check(v),
            None if v.is_finite() => Ok(v),
            None => Err(Invalid::new(
                Code::BadValue,
                format!("parameter {name}: expected a finite number"),
                "",
            )),
        }
    }

    fn check_name(&self, name: &str) -> Result<(), Invalid> {
        if self.names.contains(name) {
            return Ok(());
        }
        let who = if self.lab {
            "no rule or lab scenario"
        } else {
            "no rule"
        };
        let list: Vec<&str> = self.names().collect();
        Err(Invalid::new(
            Code::UnknownParam,
            format!(
                "{who} has a parameter named {name:?} (known parameters: {})",
                list.join(", ")
            ),
            super::names::nearest(name, list.iter().copied())
                .map(|n| format!("did you mean {n}?"))
                .unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_range_holds_a_value() {
        assert!(PARAMS.windows(2).all(|w| w[0].name < w[1].name));
        assert!(PARAMS.iter().all(|p| p.lo <= p.hi && p.lo > 0.0));
    }

    #[test]
    fn values_and_names_are_checked() {
        let rules = Accepted::of_rules(["idle_timeout", "mine"]);
        assert_eq!(rules.check("idle_timeout", "350"), Ok(350.0));
        let e = rules.check("idle_timeout", "-5").unwrap_err();
        assert_eq!(e.code, Code::BadValue);
        assert_eq!(
            e.message,
            "parameter idle_timeout: -5 is out of range 1..=604800 seconds"
        );
        assert_eq!(
            rules.check("mine", "-5"),
            Ok(-5.0),
            "a parameter of the user's own"
        );
        let e = rules.check("idle_timeuot", "1").unwrap_err();
        assert_eq!(e.code, Code::UnknownParam);
        assert_eq!(e.hint, "did you mean idle_timeout?");
        assert_eq!(
            rules.check("outage", "1").unwrap_err().code,
            Code::UnknownParam
        );
        assert_eq!(rules.clone().with_lab().check("outage", "60"), Ok(60.0));
        assert_eq!(
            rules.check("idle_timeout", "x").unwrap_err().code,
            Code::BadValue
        );
        let whole = Accepted::table().check("min_backlog", "8.5").unwrap_err();
        assert_eq!(
            Accepted::table().check("outage", "60").unwrap_err().code,
            Code::UnknownParam,
            "a profile sets rule parameters, not the lab's"
        );
        assert!(whole.message.contains("not a whole number"), "{whole}");
    }
}
