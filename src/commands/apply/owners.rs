//! `apply`: which sysctl.d / sysctl.conf file owns each key, the refusal of keys another file
//! owns (unless `--override-owned`), and what would undo `--persist` at boot.

use std::path::Path;

use serde::Serialize;

use crate::host::sysctl::{Scope, SysctlKey};
use crate::remedy::owners::{self, Owner, Owners, PersistWarning, Sources};
use crate::remedy::persist;
use crate::remedy::transaction::Plan;

/// The owners of this host's keys and the keys the user allows to take over.
pub(super) struct OwnerCheck {
    sources: Sources,
    owners: Owners,
    allowed: Vec<String>,
}

/// What the JSON report says about owners.
#[derive(Serialize)]
pub(super) struct OwnersJson {
    /// The owner of every key of the diff that a configuration file sets.
    pub owners: Vec<Owner>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub persist_warnings: Vec<PersistWarning>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_notes: Vec<String>,
}

impl OwnerCheck {
    /// Read the configuration files (`root`: the hidden `--sysctl-root`) and check the keys
    /// of `--override-owned`.
    pub(super) fn load(root: Option<&Path>, overrides: &[String]) -> anyhow::Result<Self> {
        let sources = root.map_or_else(Sources::system, Sources::under);
        let allowed = overrides
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| {
                SysctlKey::parse(k.trim(), Scope::AnyKey)
                    .map(|k| k.as_str().to_string())
                    .map_err(|e| anyhow::anyhow!("--override-owned {k}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            owners: owners::load(&sources),
            sources,
            allowed,
        })
    }

    /// One validation problem per key the plan would change that another file owns.
    pub(super) fn refuse(&self, plan: &mut Plan) {
        let changing = plan
            .changes
            .iter()
            .map(|c| (c.key.as_str(), c.new.as_str()));
        for o in self.owners.conflicts(changing, &self.allowed) {
            plan.problems.push(format!(
                "{}: set by {} (= {}), a file rstaudit does not manage; changing it would fight \
                 that file's owner, and `sysctl --system` sets {} again. Leave it to that file, or \
                 change it anyway with --override-owned {}",
                o.key,
                o.place(),
                o.value,
                o.value,
                o.key
            ));
        }
    }

    /// The owners, overrides, persist warnings and notes for this plan.
    pub(super) fn report(&self, plan: &Plan, persist_path: Option<&Path>) -> OwnersJson {
        let owners: Vec<Owner> = plan
            .rows
            .iter()
            .filter_map(|r| self.owners.get(&r.key).cloned())
            .collect();
        // The keys refused without --override-owned that it let through.
        let overridden = self
            .owners
            .conflicts(
                plan.changes
                    .iter()
                    .map(|c| (c.key.as_str(), c.new.as_str())),
                &[],
            )
            .into_iter()
            .filter(|o| self.allowed.contains(&o.key))
            .map(|o| o.key.clone())
            .collect();
        let mut owner_notes = self.owners.notes.clone();
        for a in &self.allowed {
            if !plan.rows.iter().any(|r| &r.key == a) {
                owner_notes.push(format!("--override-owned {a}: not a key of this apply"));
            }
        }
        let persist_warnings = match persist_path.map(persist::absolute) {
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
        OwnersJson {
            owners,
            overridden,
            persist_warnings,
            owner_notes,
        }
    }
}

impl OwnersJson {
    /// The lines under the diff table: the owner of each key a file sets, then the warnings.
    pub(super) fn text(&self, keys: usize) -> String {
        let mut out = String::new();
        if !self.owners.is_empty() {
            out.push_str("Owners (the last sysctl.d / sysctl.conf file that sets the key, in `sysctl --system` order):\n");
            for o in &self.owners {
                let whose = if o.managed {
                    " (managed by rstaudit)".to_string()
                } else if self.overridden.contains(&o.key) {
                    " (another owner; --override-owned: changed anyway)".to_string()
                } else {
                    " (another owner)".to_string()
                };
                out.push_str(&format!(
                    "  {}: {} sets {}{whose}\n",
                    o.key,
                    o.place(),
                    o.value
                ));
            }
        }
        let unset = keys - self.owners.len();
        if unset > 0 {
            out.push_str(&format!(
                "{unset} key(s) set by no sysctl.d / sysctl.conf file.\n"
            ));
        }
        for w in &self.persist_warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for n in &self.owner_notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}
