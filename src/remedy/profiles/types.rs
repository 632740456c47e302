//! Step two's result: a checked profile with `extends:` resolved, its settings and targets.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::host::sysctl::{SysctlKey, normalize};

/// A checked profile with `extends:` resolved (step two of loading).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    /// `built-in` or the file it was read from.
    pub source: String,
    pub description: String,
    /// The profiles this one extends, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
    /// Parameters for the rules (`idle_timeout` -> `350`), parents' overridden by children's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Dotted key -> target, parents' overridden by children's.
    pub sysctls: BTreeMap<String, Setting>,
}

/// What a profile wants for one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    #[serde(flatten)]
    pub target: Target,
    pub reason: String,
    /// The profile that set it.
    pub from: String,
    #[serde(skip)]
    pub key: SysctlKey,
    #[serde(skip)]
    pub(super) loc: Loc,
}

/// A target value: exact, or a bound for keys whose defaults scale with memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Exactly this value (normalised whitespace).
    Value(String),
    /// At least this number: the current value is kept when it is higher.
    AtLeast(i64),
    /// At most this number: the current value is kept when it is lower.
    AtMost(i64),
}

/// A bound (`at_least`, `at_most`) needs a current value that is one integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("current value {0:?} is not a single integer")]
pub struct NotAnInteger(pub String);

impl Target {
    /// The value to write given the current one.
    pub fn resolve(&self, current: &str) -> Result<String, NotAnInteger> {
        let cur = || {
            current
                .trim()
                .parse::<i64>()
                .map_err(|_| NotAnInteger(current.to_string()))
        };
        Ok(match self {
            Self::Value(v) => v.clone(),
            Self::AtLeast(n) => cur()?.max(*n).to_string(),
            Self::AtMost(n) => cur()?.min(*n).to_string(),
        })
    }

    /// Whether a live or persisted value satisfies the target.
    pub fn satisfied_by(&self, value: &str) -> bool {
        match self {
            Self::Value(v) => values_equal(v, value),
            Self::AtLeast(n) => value.trim().parse::<i64>().is_ok_and(|x| x >= *n),
            Self::AtMost(n) => value.trim().parse::<i64>().is_ok_and(|x| x <= *n),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(v) => f.write_str(v),
            Self::AtLeast(n) => write!(f, ">= {n}"),
            Self::AtMost(n) => write!(f, "<= {n}"),
        }
    }
}

/// Compare two sysctl values as the kernel would print them (whitespace-normalised).
pub fn values_equal(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Loc {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) column: usize,
}
