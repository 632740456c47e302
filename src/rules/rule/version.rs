//! Kernel version ranges of `applies: kernel:` (`">=4.12, <6.0"`).

use super::Op;
use crate::host::KernelVersion;

/// Why a version range cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("an empty bound")]
    EmptyBound,
    #[error("bound {0:?} must start with >=, >, <=, < or =")]
    NoOperator(String),
    #[error("version {0:?} must look like 4.12 or 5.10.3")]
    BadVersion(String),
    #[error("{0:?} contains no kernel version")]
    Empty(String),
}

/// A kernel version range: every bound must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    pub text: String,
    pub bounds: Vec<(Op, KernelVersion)>,
}

impl VersionRange {
    /// Parse `">=4.12, <6.0"`.
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let mut bounds = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(RangeError::EmptyBound);
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
            .ok_or_else(|| RangeError::NoOperator(part.to_string()))?;
            let nums: Vec<&str> = rest.split('.').collect();
            if !(2..=3).contains(&nums.len()) {
                return Err(RangeError::BadVersion(rest.to_string()));
            }
            let mut parsed = [0u32; 3];
            for (i, n) in nums.iter().enumerate() {
                parsed[i] = n
                    .parse()
                    .map_err(|_| RangeError::BadVersion(rest.to_string()))?;
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
            return Err(RangeError::Empty(text.to_string()));
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
