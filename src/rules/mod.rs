//! The rule engine: load and validate rules (YAML data), evaluate them
//! against a [`crate::host::Snapshot`], produce [`Finding`]s.
//!
//! Nothing here touches /proc or prints: rules are data, the engine is a
//! pure function from (rules, parameters, snapshot) to findings. Loading is
//! two-step: [`raw`] mirrors the file (unknown keys rejected), [`rule`]
//! checks it and builds the runtime type; [`load`] reports every problem of
//! every file at once.

pub mod accept;
pub mod converge;
pub mod doc;
pub mod eval;
pub mod exposure;
pub mod finding;
pub mod known;
pub mod load;
pub mod raw;
pub mod readable;
pub mod retrans;
pub mod rule;
pub mod symptoms;

use std::collections::BTreeMap;

pub use finding::{
    Evidence, Exposure, Finding, FindingProcess, Fix, Severity, SysctlFix, Threshold,
};
pub use load::{Diagnostic, LoadError, RuleSet};
pub use rule::Rule;

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
    /// Rules that were checked and found nothing.
    #[serde(default)]
    pub passed: Vec<String>,
}

/// A selection resolved against a rule set: which rules, which parameter values.
#[derive(Debug)]
pub struct Plan<'r> {
    pub rules: Vec<&'r Rule>,
    pub params: BTreeMap<String, f64>,
}

/// Why a selection does not fit the rule set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no rule with id {id:?}; see `rstaudit rules list` (known: {})", known.join(", "))]
    UnknownRule { id: String, known: Vec<String> },
    /// A parameter no rule declares, or a value it cannot take ([`crate::valid::params`]).
    #[error(transparent)]
    Param(#[from] crate::valid::Invalid),
}

impl Selection {
    /// Check ids and parameters against `set`: an unknown id or parameter, or a parameter
    /// value it cannot take ([`crate::valid::params`]), is an error naming the known ones.
    pub fn plan<'r>(&self, set: &'r RuleSet) -> Result<Plan<'r>, PlanError> {
        for id in self.only.iter().chain(&self.skip) {
            if set.get(id).is_none() {
                return Err(PlanError::UnknownRule {
                    id: id.clone(),
                    known: set.rules.iter().map(|r| r.id.clone()).collect(),
                });
            }
        }
        let rules: Vec<&Rule> = set
            .rules
            .iter()
            .filter(|r| self.only.is_empty() || self.only.contains(&r.id))
            .filter(|r| !self.skip.contains(&r.id))
            .collect();
        let accepted = set.params();
        let mut params = BTreeMap::new();
        for (name, value) in &self.params {
            params.insert(name.clone(), accepted.check(name, value)?);
        }
        Ok(Plan { rules, params })
    }
}

/// Evaluate the selected rules of `set` (loaded once by the caller) against one snapshot.
pub fn run(
    set: &RuleSet,
    selection: &Selection,
    snapshot: &Snapshot,
) -> Result<AuditOutcome, PlanError> {
    let plan = selection.plan(set)?;
    Ok(eval::evaluate(&plan.rules, &plan.params, snapshot))
}
