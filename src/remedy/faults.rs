//! Failure injection for the apply and rollback transactions.
//!
//! Every step of a transaction can be made to fail on purpose, so tests can
//! show that each failure leaves every key as it was. The plan is given by
//! the hidden `--inject-fault STEP` flag of `apply` and `rollback` (it can
//! only make a run fail, never make one succeed):
//! `validate`, `rollback-file`, `write:KEY`, `read-back:KEY`,
//! `persist-write`, `persist-rename`, and `restore:KEY` (restoring KEY after
//! another step failed). `pause-after-write:KEY` fails nothing: it holds the
//! run for [`PAUSE`] after KEY is written and read back, so a test can kill
//! the process at a known point of the transaction.

use std::fmt;
use std::time::Duration;

/// How long `pause-after-write:KEY` holds the run.
pub const PAUSE: Duration = Duration::from_secs(2);

/// One step to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Validate,
    RollbackFile,
    Write(String),
    ReadBack(String),
    PersistWrite,
    PersistRename,
    Restore(String),
    PauseAfterWrite(String),
}

/// A step name that is not one of the steps (the command adds the flag that gave it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected validate, rollback-file, write:KEY, read-back:KEY, persist-write, persist-rename, restore:KEY or pause-after-write:KEY"
)]
pub struct UnknownStep(pub String);

/// The failure a planned fault makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected failure ({0})")]
pub struct Injected(pub Fault);

impl std::str::FromStr for Fault {
    type Err = UnknownStep;
    fn from_str(s: &str) -> Result<Self, UnknownStep> {
        Ok(match s.split_once(':') {
            None if s == "validate" => Self::Validate,
            None if s == "rollback-file" => Self::RollbackFile,
            None if s == "persist-write" => Self::PersistWrite,
            None if s == "persist-rename" => Self::PersistRename,
            Some(("write", key)) if !key.is_empty() => Self::Write(key.to_string()),
            Some(("read-back", key)) if !key.is_empty() => Self::ReadBack(key.to_string()),
            Some(("restore", key)) if !key.is_empty() => Self::Restore(key.to_string()),
            Some(("pause-after-write", key)) if !key.is_empty() => {
                Self::PauseAfterWrite(key.to_string())
            }
            _ => return Err(UnknownStep(s.to_string())),
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Validate => f.write_str("validate"),
            Self::RollbackFile => f.write_str("rollback-file"),
            Self::Write(k) => write!(f, "write:{k}"),
            Self::ReadBack(k) => write!(f, "read-back:{k}"),
            Self::PersistWrite => f.write_str("persist-write"),
            Self::PersistRename => f.write_str("persist-rename"),
            Self::Restore(k) => write!(f, "restore:{k}"),
            Self::PauseAfterWrite(k) => write!(f, "pause-after-write:{k}"),
        }
    }
}

/// The steps to fail in one run (empty in normal use).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// Parse the steps to fail; the first that is not a step is the error.
    pub fn parse(items: &[String]) -> Result<Self, UnknownStep> {
        items
            .iter()
            .map(|s| s.parse::<Fault>())
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `fault` is planned.
    pub fn hits(&self, fault: &Fault) -> bool {
        self.0.contains(fault)
    }

    /// An error to return when `fault` is planned.
    pub fn check(&self, fault: Fault) -> Result<(), Injected> {
        if self.hits(&fault) {
            Err(Injected(fault))
        } else {
            Ok(())
        }
    }
}

impl From<Vec<Fault>> for Faults {
    fn from(v: Vec<Fault>) -> Self {
        Self(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_parses_and_prints_back() {
        for s in [
            "validate",
            "rollback-file",
            "write:net.core.somaxconn",
            "read-back:net.core.somaxconn",
            "persist-write",
            "persist-rename",
            "restore:net.core.somaxconn",
            "pause-after-write:net.core.somaxconn",
        ] {
            let f: Fault = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        for bad in [
            "restore:",
            "restore",
            "pause-after-write:",
            "pause",
            "write",
        ] {
            let err = bad.parse::<Fault>().unwrap_err();
            assert_eq!(err.0, bad);
            assert!(err.to_string().contains("restore:KEY"), "{err}");
        }
    }
}
