//! Drift check: compare live values (and the sysctl configuration files)
//! with a profile, the way a configuration-management check expects, in one
//! network namespace or several ([`verify`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::NsError;
use super::owners::Sources;
use super::persist::PersistedValue;
use super::transaction::{Desired, LiveIo, SysctlIo};
use crate::host::netns::{self, NetnsRef};

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
    /// The key does not exist on this kernel and the catalogue says why (a release that
    /// removed it or had not added it, a module not loaded): not drift.
    NotApplicable,
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

/// Compare every key with its target (call inside the namespace) on the running `kernel`.
pub fn check(
    io: &dyn SysctlIo,
    desired: &[Desired],
    persisted: &BTreeMap<String, PersistedValue>,
    kernel: Option<crate::host::KernelVersion>,
) -> Vec<VerifyRow> {
    desired
        .iter()
        .map(|d| {
            let (live, status, error) = match io.read(&d.key) {
                Err(crate::host::sysctl::SysctlError::Absent { .. })
                    if let Some(why) = crate::valid::not_applicable(&d.key, kernel) =>
                {
                    (None, LiveStatus::NotApplicable, Some(why))
                }
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

/// What to verify: a profile's targets in some namespaces, and where they should persist.
#[derive(Debug)]
pub struct Request<'a> {
    pub desired: &'a [Desired],
    /// The namespaces (`None`: the caller's own).
    pub targets: &'a [Option<NetnsRef>],
    /// The file that should keep the values; `None`: every file of `sources`, as
    /// `sysctl --system` reads them.
    pub persist: Option<&'a Path>,
    pub sources: Sources,
    /// Notes from before (how the namespaces were found); the verdict's notes start with them.
    pub notes: Vec<String>,
}

/// The verdict in every namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub namespaces: Vec<NsVerdict>,
    /// The configuration files read, in `sysctl --system` order.
    pub files: Vec<PathBuf>,
    /// What could not be read.
    pub notes: Vec<String>,
}

/// One namespace's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsVerdict {
    pub netns: String,
    pub rows: Vec<VerifyRow>,
    /// The keys whose live value does not satisfy the target (or could not be read).
    pub drift: Vec<String>,
    /// The keys whose live value is right but that no configuration file keeps.
    pub not_persisted: Vec<String>,
    /// No drift, and with a persist file named, nothing left unpersisted.
    pub ok: bool,
    /// It is the initial network namespace: the one a sysctl.d file is loaded into at boot.
    pub initial: bool,
    /// What `--netns` selects it with (`None`: the caller's own namespace).
    pub netns_flag: Option<String>,
}

impl Verified {
    /// Every namespace is ok.
    pub fn ok(&self) -> bool {
        self.namespaces.iter().all(|n| n.ok)
    }
}

/// Compare the live values in every namespace of `req` with the targets, and each key with
/// the configuration files.
pub fn verify(req: Request) -> Result<Verified, NsError> {
    let mut notes = req.notes;
    let files = match req.persist {
        Some(p) => {
            if !p.exists() {
                notes.push(format!("{} does not exist", p.display()));
            }
            vec![p.to_path_buf()]
        }
        None => {
            let (files, dir_notes) = req.sources.files();
            notes.extend(dir_notes);
            files
        }
    };
    let (persisted, file_notes) = super::persist::effective_values(&files);
    notes.extend(file_notes);
    let mut namespaces = Vec::new();
    for ns in req.targets {
        let (netns, rows) = netns::in_namespace(ns.as_ref(), || {
            let (ctx, _) = super::describe_current(ns.as_ref())?;
            let rows = check(&LiveIo, req.desired, &persisted, ctx.kernel);
            Ok::<_, NsError>((ctx, rows))
        })??;
        let mut v = verdict(netns.name, rows, req.persist.is_some());
        v.initial = netns.initial;
        v.netns_flag = ns.as_ref().map(super::netns_flag);
        namespaces.push(v);
    }
    Ok(Verified {
        namespaces,
        files,
        notes,
    })
}

fn verdict(netns: String, rows: Vec<VerifyRow>, strict: bool) -> NsVerdict {
    let drift: Vec<String> = rows
        .iter()
        .filter(|r| !matches!(r.status, LiveStatus::Ok | LiveStatus::NotApplicable))
        .map(|r| r.key.clone())
        .collect();
    let not_persisted: Vec<String> = rows
        .iter()
        .filter(|r| r.status == LiveStatus::Ok && r.persist != PersistStatus::Ok)
        .map(|r| r.key.clone())
        .collect();
    let ok = drift.is_empty() && (!strict || not_persisted.is_empty());
    NsVerdict {
        netns,
        rows,
        drift,
        not_persisted,
        ok,
        initial: false,
        netns_flag: None,
    }
}
