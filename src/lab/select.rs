//! Which scenarios a lab run is for, and with which values in place of the host's: every
//! scenario, those named (a scenario, or a rule that has one), or those of the findings an
//! audit gave, each job carrying its finding's fix; the `with` values checked against the
//! catalogue of keys, the host's value and the scenarios that will run.
//!
//! The caller runs the audit (collection and rules) and says which flag gave what; nothing
//! here names a flag.

use std::collections::BTreeMap;
use std::path::Path;

use super::Job;
use super::scenarios::{self, Scenario};
use crate::diag::Code;
use crate::host::sysctl::{self, Scope, SysctlError};
use crate::rules::Finding;
use crate::rules::load::RuleSet;
use crate::valid::Invalid;
use crate::valid::params::{self, User};

/// A job for `scenario` alone: no finding, no fix.
fn job(scenario: &'static Scenario) -> Job {
    Job {
        scenario,
        rules: Vec::new(),
        fix_sysctls: Vec::new(),
    }
}

/// Every scenario of the catalogue.
pub fn every() -> Vec<Job> {
    scenarios::CATALOGUE.iter().map(job).collect()
}

/// The scenarios named (directly, or by a rule), before the audit gives the rules' fixes.
pub struct Named {
    pub jobs: Vec<Job>,
    /// The rules named, whose fixes an audit of the host gives ([`Named::with_fixes`]).
    pub rules: Vec<String>,
}

/// A name that is no scenario, or a rule without one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct NameError {
    /// The name as given.
    pub name: String,
    pub problem: NameProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error(
        "no such lab scenario or rule (scenarios: {}; rules: `rstaudit rules list`)",
        scenario_names()
    )]
    Unknown,
    #[error("this rule has no lab scenario")]
    NoScenario,
    #[error("its lab scenario {0:?} is not in the catalogue ({names})", names = scenario_names())]
    NotInCatalogue(String),
}

fn scenario_names() -> String {
    scenarios::CATALOGUE
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The jobs of the names given, in order, one per scenario: a scenario's own name, or a
/// rule's id (the job then runs for that rule).
pub fn named(names: &[String], set: &RuleSet) -> Result<Named, NameError> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut rules = Vec::new();
    for id in names {
        if let Some(scenario) = scenarios::find(id) {
            if !jobs.iter().any(|j| j.scenario.name == scenario.name) {
                jobs.push(job(scenario));
            }
            continue;
        }
        let scenario = scenario_of_rule(id, set).map_err(|problem| NameError {
            name: id.clone(),
            problem,
        })?;
        rules.push(id.clone());
        match jobs.iter_mut().find(|j| j.scenario.name == scenario.name) {
            Some(j) => j.rules.push(id.clone()),
            None => jobs.push(Job {
                scenario,
                rules: vec![id.clone()],
                fix_sysctls: Vec::new(),
            }),
        }
    }
    Ok(Named { jobs, rules })
}

/// The scenario of the rule `id`.
fn scenario_of_rule(id: &str, set: &RuleSet) -> Result<&'static Scenario, NameProblem> {
    let rule = set.get(id).ok_or(NameProblem::Unknown)?;
    let lab = rule.lab.as_deref().ok_or(NameProblem::NoScenario)?;
    scenarios::find(lab).ok_or_else(|| NameProblem::NotInCatalogue(lab.to_string()))
}

impl Named {
    /// The jobs, each with the fix of its rules as the audit of the host found it.
    pub fn with_fixes(mut self, findings: &[Finding]) -> Vec<Job> {
        for found in for_findings(findings) {
            if let Some(j) = self
                .jobs
                .iter_mut()
                .find(|j| j.scenario.name == found.scenario.name)
            {
                j.fix_sysctls = found.fix_sysctls;
            }
        }
        self.jobs
    }
}

/// The jobs of the findings that have a lab scenario, one per scenario, in the order found:
/// each for the rules found, with their fixes (the first value of a key kept).
pub fn for_findings(findings: &[Finding]) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for finding in findings {
        let Some(scenario) = finding.lab.as_deref().and_then(scenarios::find) else {
            continue;
        };
        let fix: Vec<(String, String)> = finding
            .fix
            .sysctls
            .iter()
            .map(|f| (f.key.clone(), f.value.clone()))
            .collect();
        match jobs.iter_mut().find(|j| j.scenario.name == scenario.name) {
            Some(j) => {
                if !j.rules.contains(&finding.rule) {
                    j.rules.push(finding.rule.clone());
                }
                for f in fix {
                    if !j.fix_sysctls.iter().any(|(k, _)| *k == f.0) {
                        j.fix_sysctls.push(f);
                    }
                }
            }
            None => jobs.push(Job {
                scenario,
                rules: vec![finding.rule.clone()],
                fix_sysctls: fix,
            }),
        }
    }
    jobs
}

/// The parameters of the rules among those a lab run was given (the lab's own left out),
/// for the audit that finds the findings.
pub fn rule_params(given: &BTreeMap<String, f64>) -> Vec<(String, String)> {
    given
        .iter()
        .filter(|(k, _)| params::spec(k).is_none_or(|p| p.user != User::Lab))
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

/// A value to put in place of the host's that cannot be.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct WithError {
    pub key: String,
    pub value: String,
    pub problem: Box<WithProblem>,
}

#[derive(Debug, thiserror::Error)]
pub enum WithProblem {
    /// Not a key or value of the catalogue ([`crate::valid`]).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Not of the shape of the host's value.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
}

/// The values to put in place of the host's, as (key, value) in the order given: a key
/// some supported kernel has and a value it means ([`crate::valid`]), of the shape of the
/// host's value; a later value of a key replaces an earlier one.
pub fn checked_with(pairs: Vec<(String, String)>) -> Result<Vec<(String, String)>, WithError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        let (key, value) = match checked_value(&k, &v) {
            Ok(kv) => kv,
            Err(problem) => {
                return Err(WithError {
                    key: k,
                    value: v,
                    problem: Box::new(problem),
                });
            }
        };
        out.retain(|(existing, _)| *existing != key);
        out.push((key, value));
    }
    Ok(out)
}

/// One key and value of [`checked_with`], both normalized.
fn checked_value(k: &str, v: &str) -> Result<(String, String), WithProblem> {
    let key = crate::valid::key(k, Scope::NetOnly)?;
    let value = crate::valid::value(&key, v)?;
    let current = sysctl::read(Path::new("/"), &key.key).ok();
    let value = sysctl::validate_value(&key.key, &value, current.as_deref())?;
    Ok((key.key.to_string(), value))
}

/// A key put in place of the host's that no job's scenario uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{invalid}")]
pub struct UnusedWith {
    pub key: String,
    pub invalid: Invalid,
}

/// Every key of `with` is one a job's scenario copies from the host.
pub fn check_with_is_used(with: &[(String, String)], jobs: &[Job]) -> Result<(), UnusedWith> {
    let Some((key, _)) = with
        .iter()
        .find(|(key, _)| !jobs.iter().any(|j| j.scenario.keys.contains(&key.as_str())))
    else {
        return Ok(());
    };
    let mut keys: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.scenario.keys.iter().copied())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let invalid = Invalid::new(
        Code::UnknownParam,
        format!(
            "no selected scenario uses this key (they use: {})",
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            }
        ),
        "",
    );
    Err(UnusedWith {
        key: key.clone(),
        invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(jobs: &[Job]) -> Vec<(&str, Vec<&str>)> {
        jobs.iter()
            .map(|j| {
                (
                    j.scenario.name,
                    j.rules.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn names_give_one_job_per_scenario_with_the_rules_named() {
        let set = crate::rules::load::builtin().unwrap();
        let given = [
            "closed-port",
            "abort-on-overflow",
            "closed-port",
            "listen-overflows",
        ]
        .map(String::from);
        let named = named(&given, &set).unwrap();
        assert_eq!(
            names(&named.jobs),
            [
                ("closed-port", vec![]),
                (
                    "accept-overflow",
                    vec!["abort-on-overflow", "listen-overflows"]
                ),
            ]
        );
        assert_eq!(named.rules, ["abort-on-overflow", "listen-overflows"]);
    }

    #[test]
    fn a_name_that_is_no_scenario_or_a_rule_without_one_is_refused() {
        let set = crate::rules::load::builtin().unwrap();
        let e = named(&["no-such".to_string()], &set).err().unwrap();
        assert_eq!(
            (e.name.as_str(), &e.problem),
            ("no-such", &NameProblem::Unknown)
        );
        let e = named(&["rfc1337-off".to_string()], &set).err().unwrap();
        assert_eq!(e.problem, NameProblem::NoScenario);
        assert_eq!(e.to_string(), "this rule has no lab scenario");
    }

    #[test]
    fn a_with_key_no_scenario_copies_is_refused() {
        let with = [("net.ipv4.tcp_fin_timeout".to_string(), "30".to_string())];
        let jobs: Vec<Job> = every()
            .into_iter()
            .filter(|j| j.scenario.name == "accept-overflow")
            .collect();
        let e = check_with_is_used(&with, &jobs).unwrap_err();
        assert_eq!(e.key, "net.ipv4.tcp_fin_timeout");
        assert!(
            e.invalid
                .message
                .contains("(they use: net.ipv4.tcp_abort_on_overflow)"),
            "{}",
            e.invalid.message
        );
        let with = [(
            "net.ipv4.tcp_abort_on_overflow".to_string(),
            "1".to_string(),
        )];
        assert!(check_with_is_used(&with, &jobs).is_ok());
    }
}
