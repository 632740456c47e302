//! The one apply: a set of sysctl targets in one network namespace or several, validated
//! everywhere before anything is written, then one transaction per namespace.
//!
//! [`plan`] turns a [`Request`] into a [`Planned`] apply: the diff and the problems of every
//! namespace (see [`super::netns_tx::plan_each`]), the keys other configuration files own
//! ([`super::ownership`]), and the problems of the request as a whole: a persist file holds
//! the values `sysctl --system` loads into the initial namespace at boot, so persisting is
//! refused unless the initial namespace is one of the targets. [`Planned::execute`] then runs
//! the transactions ([`super::netns_tx::execute_each`]), the persist file going with the
//! initial namespace's; after an apply in the caller's own namespace alone it compares the
//! other namespaces ([`super::others`]). One namespace is N = 1 of the same path; the
//! caller says whether several were asked for, which groups their rollback files.

use std::path::PathBuf;

use super::NsError;
use super::faults::Faults;
use super::netns_tx::{self, EachFailure, EachOptions, NsApplied, NsPlan};
use super::others::{self, Others};
use super::ownership::{OwnerCheck, Ownership};
use super::persist::{self, PersistEntry, PersistError};
use super::transaction::{Desired, PersistRequest};
use crate::host::netns::NetnsRef;

/// What to apply, where, and how.
#[derive(Debug)]
pub struct Request {
    /// What is applied, for messages, rollback files and the persist file (`profile baseline`).
    pub what: String,
    /// The words of a command line that select the same thing to apply (`--profile ./p.yaml`),
    /// for the advice printed after the apply; the caller's, which knows its flags.
    pub selects: Vec<String>,
    pub desired: Vec<Desired>,
    /// The namespaces (`None`: the caller's own), at least one.
    pub targets: Vec<Option<NetnsRef>>,
    /// Several namespaces were asked for (a list, or every one), even if one was found: the
    /// rollback files are one group, and the report lists namespaces.
    pub several: bool,
    /// Notes on how the namespaces were found.
    pub notes: Vec<String>,
    /// The sysctl.d file to write the initial namespace's values to.
    pub persist: Option<PathBuf>,
    /// Where the rollback files are written.
    pub state_dir: PathBuf,
    pub owners: OwnerCheck,
    pub faults: Faults,
    /// Compare only with the names under /run/netns that start with this (tests; see
    /// [`others::find`]).
    pub scope: Option<String>,
}

/// An apply validated in every namespace, nothing written yet.
#[derive(Debug)]
pub struct Planned {
    pub request: Request,
    /// One plan per namespace, in the order of the targets.
    pub namespaces: Vec<NsPlan>,
    /// The owners of the keys (of the initial namespace's plan, or the first's).
    pub ownership: Ownership,
    /// Problems of the request as a whole; like those of a namespace, they stop the apply.
    pub problems: Vec<String>,
}

/// A transaction in every namespace that went through.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub applied: Vec<NsApplied>,
    /// After an apply in the caller's own namespace alone: the other namespaces.
    pub others: Option<Others>,
}

/// Why an apply did not run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// [`Planned::execute`] of a plan with problems: nothing was written.
    #[error("the apply has problems; nothing was written")]
    Refused,
    /// The persist file's path cannot be used (its directory is missing, ...).
    #[error(transparent)]
    PersistPath(PersistError),
    /// A transaction failed; what was written was restored (see [`EachFailure`]).
    #[error(transparent)]
    Failed(EachFailure),
}

/// Validate `request` in every namespace; nothing is written.
pub fn plan(request: Request) -> Result<Planned, NsError> {
    let mut namespaces = netns_tx::plan_each(&request.targets, &request.desired, &request.faults)?;
    for p in &mut namespaces {
        p.owned = request.owners.refused(&p.plan);
    }
    let initial = namespaces.iter().position(|p| p.ctx.initial);
    let ownership = namespaces
        .get(initial.unwrap_or(0))
        .map(|p| request.owners.report(&p.plan, request.persist.as_deref()))
        .unwrap_or_default();
    let mut problems = Vec::new();
    if namespaces.is_empty() {
        problems.push("no network namespace to apply in".to_string());
    } else if request.persist.is_some() && initial.is_none() {
        problems.push(match namespaces.as_slice() {
            [one] => format!(
                "persist: a sysctl.d file is loaded into the initial network namespace at boot \
                 (`sysctl --system`), and namespace {} is not the initial one; persist from \
                 the initial namespace",
                one.ctx.name
            ),
            all => format!(
                "persist: a sysctl.d file is loaded into the initial network namespace at boot \
                 (`sysctl --system`), and it is not among these {} namespaces; persist with \
                 the initial namespace among them",
                all.len()
            ),
        });
    }
    problems.extend(write_checks(&request, &namespaces, initial.is_some()));
    Ok(Planned {
        request,
        namespaces,
        ownership,
        problems,
    })
}

/// The checks of what the apply would write besides sysctls, made before anything is written
/// (and by a dry run, which then writes nothing): the state directory the rollback files go
/// to, when anything would change; the persist file and its directory.
fn write_checks(request: &Request, namespaces: &[NsPlan], initial: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let changes = namespaces.iter().any(|p| !p.plan.changes.is_empty());
    if (changes || request.persist.is_some())
        && let Err(e) = super::state::check_writable(&request.state_dir)
    {
        problems.push(format!("rollback file: {e}"));
    }
    if let Some(path) = &request.persist
        && initial
        && let Err(e) = persist::absolute(path).and_then(|p| persist::existing_managed(&p))
    {
        problems.push(format!("persist: {e}"));
    }
    problems
}

impl Planned {
    /// Whether anything stops the apply (then [`Planned::execute`] writes nothing).
    pub fn is_refused(&self) -> bool {
        !self.problems.is_empty() || self.namespaces.iter().any(NsPlan::is_refused)
    }

    /// The initial namespace's plan, when it is one of the targets.
    pub fn initial(&self) -> Option<&NsPlan> {
        self.namespaces.iter().find(|p| p.ctx.initial)
    }

    /// Run the transactions: every namespace but the initial one, then the initial one with
    /// the persist file. A failure restores what was written (see [`EachFailure`]).
    pub fn execute(&self) -> Result<Outcome, ApplyError> {
        if self.is_refused() {
            return Err(ApplyError::Refused);
        }
        let req = &self.request;
        let persist = match (&req.persist, self.initial()) {
            (Some(path), Some(initial)) => Some(PersistRequest {
                path: persist::absolute(path).map_err(ApplyError::PersistPath)?,
                text: Some(persist::render(&req.what, &entries(initial))),
            }),
            _ => None,
        };
        let opts = EachOptions {
            state_dir: &req.state_dir,
            what: req.what.clone(),
            persist,
            faults: &req.faults,
            grouped: req.several,
        };
        let applied =
            netns_tx::execute_each(&self.namespaces, &opts).map_err(ApplyError::Failed)?;
        let others = match (req.several, req.targets.as_slice()) {
            (false, [None]) => Some(others::compare(
                &self.namespaces[0].plan.rows,
                req.scope.as_deref(),
            )),
            _ => None,
        };
        Ok(Outcome { applied, others })
    }
}

/// The persist file's entries: the resolved targets of a plan.
fn entries(p: &NsPlan) -> Vec<PersistEntry> {
    p.plan
        .resolved
        .iter()
        .map(|(k, v, why)| PersistEntry {
            key: k.to_string(),
            value: v.clone(),
            comment: why.clone(),
        })
        .collect()
}
