//! The rule engine: load and validate rules (YAML data), evaluate them
//! against a [`crate::host::Snapshot`], produce [`Finding`]s.
//!
//! Nothing here touches /proc or prints: rules are data, the engine is a
//! pure function from (rules, parameters, snapshot) to findings.

pub mod finding;

pub use finding::{Evidence, Finding, FindingProcess, Fix, Severity, SysctlFix};

use crate::host::Snapshot;

/// Which rules to run, and their parameters.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--rules DIR`: adds to and overrides the built-in rules by id.
    pub extra_dir: Option<std::path::PathBuf>,
    /// `--only`.
    pub only: Vec<String>,
    /// `--skip`.
    pub skip: Vec<String>,
    /// Parameters (profile first, then `--set`, later wins).
    pub params: Vec<(String, String)>,
}

/// A rule that did not produce a verdict, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    pub rule: String,
    pub reason: String,
}

/// The audit of one snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditOutcome {
    pub netns: String,
    pub findings: Vec<Finding>,
    /// Rules that do not apply here (key absent on this kernel, version range).
    pub not_applicable: Vec<Skipped>,
    /// Rules that could not be checked (data missing: not root, no sock_diag, ...).
    pub not_checked: Vec<Skipped>,
}

/// Evaluate the selected rules against one snapshot.
pub fn run(selection: &Selection, snapshot: &Snapshot) -> anyhow::Result<AuditOutcome> {
    let _ = (selection, snapshot);
    anyhow::bail!("the rule engine is not implemented yet")
}
