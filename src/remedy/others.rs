//! The other network namespaces: which there are, and which of them hold other values.
//!
//! Most net.* keys are per network namespace, so an apply in the caller's own namespace
//! leaves every container's at its own values. [`find`] lists every namespace but the
//! caller's (what `all` adds to it); [`compare`] reads the per-namespace keys of an apply in
//! each of them and says where they differ.

use serde::Serialize;

use super::NsError;
use super::profiles::values_equal;
use super::transaction::{LiveIo, Row, SysctlIo};
use crate::host::Note;
use crate::host::netns::{self, NetnsRef, RUN_NETNS};
use crate::host::sysctl::{Scope, SysctlKey};

/// Every namespace but the caller's own (see `host::netns::list_all`), and notes on what
/// could not be inspected. With `scope` (for tests) only the names under /run/netns that
/// start with it: notes about the namespaces outside the scope are then left out.
pub fn find(scope: Option<&str>) -> Result<(Vec<NetnsRef>, Vec<String>), NsError> {
    let own = netns::current_inode().map_err(NsError::Inode)?;
    let mut notes: Vec<Note> = Vec::new();
    let found = netns::list_all(&mut notes)
        .into_iter()
        .filter(|n| n.inode != own)
        .filter(|n| match scope {
            None => true,
            Some(prefix) => {
                n.path.parent() == Some(std::path::Path::new(RUN_NETNS))
                    && n.name.starts_with(prefix)
            }
        })
        .collect();
    let notes = match scope {
        Some(_) => Vec::new(),
        None => notes
            .iter()
            .map(|n| match &n.subject {
                Some(s) => format!("{s}: {}", n.message),
                None => n.message.clone(),
            })
            .collect(),
    };
    Ok((found, notes))
}

/// The per-namespace keys of an apply in the caller's own namespace, and the other
/// namespaces that hold other values for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Others {
    pub per_namespace: Vec<String>,
    pub global: Vec<String>,
    /// How many other namespaces were found.
    pub count: usize,
    /// Those that hold another value of a per-namespace key (or could not be read).
    pub differ: Vec<NsValues>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Another namespace's values of some keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsValues {
    pub netns: String,
    /// (key, value there) for each key whose value there is not the one wanted.
    pub differ: Vec<(String, String)>,
    /// Why the namespace (or a key in it) could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Compare the targets of `rows` (the diff of an apply) with every other namespace
/// (`scope`: as in [`find`]). What cannot be found is a note, not an error.
pub fn compare(rows: &[Row], scope: Option<&str>) -> Others {
    let keys: Vec<(SysctlKey, String)> = rows
        .iter()
        .filter(|r| r.current.is_some())
        .filter_map(|r| {
            Some((
                SysctlKey::parse(&r.key, Scope::AnyKey).ok()?,
                r.target.clone(),
            ))
        })
        .collect();
    let (per_ns, global): (Vec<_>, Vec<_>) = keys.into_iter().partition(|(k, _)| !k.is_global());
    let (found, notes) = find(scope).unwrap_or_else(|e| {
        (
            Vec::new(),
            vec![format!("other network namespaces not compared: {e}")],
        )
    });
    let differ = differing(&per_ns, &found)
        .into_iter()
        .filter(|n| !n.differ.is_empty() || n.error.is_some())
        .collect();
    Others {
        per_namespace: per_ns.iter().map(|(k, _)| k.to_string()).collect(),
        global: global.iter().map(|(k, _)| k.to_string()).collect(),
        count: found.len(),
        differ,
        notes,
    }
}

/// Read `keys` (key, wanted value) in each of `others` and say where they differ.
pub fn differing(keys: &[(SysctlKey, String)], others: &[NetnsRef]) -> Vec<NsValues> {
    others
        .iter()
        .map(|ns| {
            let read = netns::run_in(ns, || {
                let mut differ = Vec::new();
                let mut errors = Vec::new();
                for (k, want) in keys {
                    match LiveIo.read(k) {
                        Ok(v) if values_equal(&v, want) => {}
                        Ok(v) => differ.push((k.to_string(), v)),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (differ, errors)
            });
            match read {
                Ok((differ, errors)) => NsValues {
                    netns: ns.name.clone(),
                    differ,
                    error: (!errors.is_empty()).then(|| errors.join("; ")),
                },
                Err(e) => NsValues {
                    netns: ns.name.clone(),
                    differ: Vec::new(),
                    error: Some(e.to_string()),
                },
            }
        })
        .collect()
}
