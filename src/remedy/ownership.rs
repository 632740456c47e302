//! An apply against the other owners of its keys: which configuration file owns each key,
//! which keys are refused because a file rstaudit does not manage sets them (unless the
//! caller allows taking them over), and what would undo a persist file at boot.
//!
//! The owners themselves are found by [`super::owners`]; this module judges one plan
//! against them. It returns facts, never messages that name a flag.

use std::path::Path;

use super::owners::{self, Owner, Owners, PersistWarning, Sources};
use super::persist;
use super::transaction::Plan;
use crate::host::sysctl::{Scope, SysctlError, SysctlKey};

/// The owners of this host's keys and the keys the caller allows to take over.
#[derive(Debug, Clone)]
pub struct OwnerCheck {
    sources: Sources,
    owners: Owners,
    allowed: Vec<String>,
}

/// A key given to take over that is no sysctl key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {error}")]
pub struct BadOverride {
    pub key: String,
    pub error: SysctlError,
}

/// What an apply's report says about owners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The owner of every key of the diff that a configuration file sets.
    pub owners: Vec<Owner>,
    /// The keys another file owns that are changed anyway (allowed by the caller).
    pub overridden: Vec<String>,
    pub persist_warnings: Vec<PersistWarning>,
    /// What could not be read.
    pub notes: Vec<String>,
    /// Keys allowed to take over that are no key of this apply.
    pub unused_overrides: Vec<String>,
}

impl OwnerCheck {
    /// Read the configuration files of `sources` and check the keys of `overrides`.
    pub fn load(sources: Sources, overrides: &[String]) -> Result<Self, BadOverride> {
        let allowed = overrides
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                SysctlKey::parse(k.trim(), Scope::AnyKey)
                    .map(|k| k.as_str().to_string())
                    .map_err(|error| BadOverride {
                        key: k.clone(),
                        error,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            owners: owners::load(&sources),
            sources,
            allowed,
        })
    }

    /// The owners of the keys the plan would change that another file sets to another value,
    /// except the keys allowed: the apply must refuse them.
    pub fn refused(&self, plan: &Plan) -> Vec<Owner> {
        self.owners
            .conflicts(changing(plan), &self.allowed)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The owners, overrides, persist warnings and notes for this plan (`persist`: the file
    /// the values would be persisted to).
    pub fn report(&self, plan: &Plan, persist: Option<&Path>) -> Ownership {
        let owners = plan
            .rows
            .iter()
            .filter_map(|r| self.owners.get(&r.key).cloned())
            .collect();
        // The keys refused without the overrides that they let through.
        let overridden = self
            .owners
            .conflicts(changing(plan), &[])
            .into_iter()
            .filter(|o| self.allowed.contains(&o.key))
            .map(|o| o.key.clone())
            .collect();
        let unused_overrides = self
            .allowed
            .iter()
            .filter(|a| !plan.rows.iter().any(|r| &r.key == *a))
            .cloned()
            .collect();
        let persist_warnings = match persist.map(persist::absolute) {
            Some(Ok(path)) => {
                let values: Vec<(String, String)> = plan
                    .resolved
                    .iter()
                    .map(|(k, v, _)| (k.to_string(), v.clone()))
                    .collect();
                owners::persist_warnings(&self.sources, &path, &values)
            }
            _ => Vec::new(),
        };
        Ownership {
            owners,
            overridden,
            persist_warnings,
            notes: self.owners.notes.clone(),
            unused_overrides,
        }
    }
}

/// The (key, new value) of every change of the plan.
fn changing(plan: &Plan) -> impl Iterator<Item = (&str, &str)> {
    plan.changes
        .iter()
        .map(|c| (c.key.as_str(), c.new.as_str()))
}
