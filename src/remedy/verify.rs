//! Drift check: compare live values (and the sysctl configuration files)
//! with a profile, the way a configuration-management check expects.

use std::collections::BTreeMap;

use serde::Serialize;

use super::persist::PersistedValue;
use super::transaction::{Desired, SysctlIo};

/// How one key compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    /// The live value satisfies the target.
    Ok,
    /// It does not.
    Drift,
    /// The key could not be read (absent on this kernel, not in this namespace, ...).
    Unreadable,
}

/// Whether the configuration files keep the value across a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistStatus {
    /// The last file that sets it gives a value that satisfies the target.
    Ok,
    /// No file sets it: a reboot returns it to the kernel default.
    Missing,
    /// A file sets a value that does not satisfy the target.
    Differs,
}

/// One row of a verify report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyRow {
    pub key: String,
    /// The live value (`None` when unreadable).
    pub live: Option<String>,
    /// The target (`1`, `>= 4096`, `<= 300`).
    pub target: String,
    pub status: LiveStatus,
    /// Why the key could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub persist: PersistStatus,
    /// The persisted value and where it is set (`/etc/sysctl.d/90-x.conf:4`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persisted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persisted_at: Option<String>,
    pub why: String,
}

/// Compare every key with its target (call inside the namespace).
pub fn check(
    io: &dyn SysctlIo,
    desired: &[Desired],
    persisted: &BTreeMap<String, PersistedValue>,
) -> Vec<VerifyRow> {
    desired
        .iter()
        .map(|d| {
            let (live, status, error) = match io.read(&d.key) {
                Ok(v) => {
                    let ok = d.target.satisfied_by(&v);
                    (
                        Some(v),
                        if ok {
                            LiveStatus::Ok
                        } else {
                            LiveStatus::Drift
                        },
                        None,
                    )
                }
                Err(e) => (None, LiveStatus::Unreadable, Some(e.to_string())),
            };
            let p = persisted.get(d.key.as_str());
            let persist = match p {
                None => PersistStatus::Missing,
                Some(p) if d.target.satisfied_by(&p.value) => PersistStatus::Ok,
                Some(_) => PersistStatus::Differs,
            };
            VerifyRow {
                key: d.key.to_string(),
                live,
                target: d.target.to_string(),
                status,
                error,
                persist,
                persisted: p.map(|p| p.value.clone()),
                persisted_at: p.map(|p| format!("{}:{}", p.file.display(), p.line)),
                why: d.reason.clone(),
            }
        })
        .collect()
}
