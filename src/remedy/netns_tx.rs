//! One apply over several network namespaces, and what other namespaces hold.
//!
//! Most net.* keys are per network namespace: an apply in one namespace leaves
//! every other one (every container's) at its own values. [`plan_each`]
//! validates in every namespace before anything is written; [`execute_each`]
//! then runs the transaction of [`super::transaction`] in each, the initial
//! namespace last, with one rollback file per namespace (all of one group, so
//! `rollback` restores them together). When one namespace fails, its own
//! transaction restores what it wrote, and the namespaces already done are
//! restored too, so the apply as a whole changes nothing. An apply in one
//! namespace is the same with one plan.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::NsError;
use super::faults::Faults;
use super::owners::Owner;
use super::state::{self, RecordedNetns};
use super::transaction::{
    self, Applied, Change, Desired, LiveIo, NsContext, PersistRequest, Plan, TxFailure, TxOptions,
};
use crate::host::netns::{self, EnterError, NetnsRef};

/// One namespace's validated plan.
#[derive(Debug, Clone)]
pub struct NsPlan {
    /// `None`: the namespace the caller runs in.
    pub ns: Option<NetnsRef>,
    pub ctx: NsContext,
    pub recorded: RecordedNetns,
    pub plan: Plan,
    /// Global keys left out here: shared by every namespace, they are set in the initial one.
    pub skipped_global: Vec<String>,
    /// Keys the plan would change that another configuration file owns: refused like the
    /// plan's problems (see [`super::ownership`]).
    pub owned: Vec<Owner>,
}

impl NsPlan {
    /// Whether anything stops this namespace's transaction.
    pub fn is_refused(&self) -> bool {
        !self.plan.problems.is_empty() || !self.owned.is_empty()
    }
}

/// Step 1 in every namespace of `targets` (none written). When the initial namespace is one
/// of them, global keys are validated and written only there.
pub fn plan_each(
    targets: &[Option<NetnsRef>],
    desired: &[Desired],
    faults: &Faults,
) -> Result<Vec<NsPlan>, NsError> {
    let mut out = Vec::new();
    for ns in targets {
        let (ctx, recorded) =
            netns::in_namespace(ns.as_ref(), || super::describe_current(ns.as_ref()))??;
        out.push((ns.clone(), ctx, recorded));
    }
    let with_initial = out.iter().any(|(_, ctx, _)| ctx.initial);
    let mut plans = Vec::new();
    for (ns, ctx, recorded) in out {
        let (mine, skipped): (Vec<Desired>, Vec<Desired>) = desired
            .iter()
            .cloned()
            .partition(|d| ctx.initial || !with_initial || !d.key.is_global());
        let plan = netns::in_namespace(ns.as_ref(), || {
            transaction::plan(&LiveIo, &mine, &ctx, faults)
        })?;
        plans.push(NsPlan {
            ns,
            ctx,
            recorded,
            plan,
            skipped_global: skipped.iter().map(|d| d.key.to_string()).collect(),
            owned: Vec::new(),
        });
    }
    Ok(plans)
}

/// What the transactions over several namespaces need besides the plans.
pub struct EachOptions<'a> {
    pub state_dir: &'a Path,
    pub what: String,
    /// Written with the initial namespace's transaction (the one `sysctl --system` loads into).
    pub persist: Option<PersistRequest>,
    pub faults: &'a Faults,
    /// The rollback files are one group (an apply over several namespaces), which `rollback`
    /// restores together.
    pub grouped: bool,
}

/// One namespace done.
#[derive(Debug, Clone, Serialize)]
pub struct NsApplied {
    pub netns: String,
    #[serde(flatten)]
    pub applied: Applied,
}

/// Why one namespace's transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum NsFailure {
    #[error(transparent)]
    Enter(Box<EnterError>),
    #[error(transparent)]
    Tx(Box<TxFailure>),
}

/// A namespace failed; what was done about the others.
#[derive(Debug)]
pub struct EachFailure {
    pub netns: String,
    pub error: NsFailure,
    /// Namespaces done before it and restored since.
    pub restored: Vec<String>,
    /// Namespaces done before it that could not be restored (and why): their rollback files
    /// stay in effect.
    pub not_restored: Vec<String>,
    /// Where their rollback files are, for the command that restores them.
    pub state_dir: PathBuf,
}

impl fmt::Display for EachFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in network namespace {}: {}", self.netns, self.error)?;
        if !self.restored.is_empty() {
            write!(
                f,
                "; the namespaces already done were restored ({})",
                self.restored.join(", ")
            )?;
        }
        if !self.not_restored.is_empty() {
            let dir = state::dir_words(&self.state_dir);
            let words = ["rstaudit", "rollback"]
                .into_iter()
                .chain(dir.iter().map(String::as_str));
            write!(
                f,
                "; COULD NOT RESTORE namespace(s): {}; run `{}`",
                self.not_restored.join("; "),
                crate::hint::command(words)
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for EachFailure {}

/// Steps 2 to 4 in every namespace, the initial one last; a failure restores the namespaces
/// already done. The plans must be free of problems.
pub fn execute_each(plans: &[NsPlan], opts: &EachOptions) -> Result<Vec<NsApplied>, EachFailure> {
    let group = opts.grouped.then(state::new_group);
    let mut order: Vec<&NsPlan> = plans.iter().filter(|p| !p.ctx.initial).collect();
    order.extend(plans.iter().filter(|p| p.ctx.initial));
    let mut done: Vec<(&NsPlan, Applied)> = Vec::new();
    for p in order {
        let tx = TxOptions {
            state_dir: Some(opts.state_dir),
            what: opts.what.clone(),
            netns: p.recorded.clone(),
            persist: if p.ctx.initial {
                opts.persist.clone()
            } else {
                None
            },
            faults: opts.faults,
            group: group.clone(),
        };
        let result = netns::in_namespace(p.ns.as_ref(), || {
            transaction::execute(&LiveIo, &p.plan, &tx)
        });
        let error = match result {
            Ok(Ok(applied)) => {
                done.push((p, applied));
                continue;
            }
            Ok(Err(failure)) => NsFailure::Tx(failure),
            Err(e) => NsFailure::Enter(Box::new(e)),
        };
        let mut failure = EachFailure {
            netns: p.ctx.name.clone(),
            error,
            restored: Vec::new(),
            not_restored: Vec::new(),
            state_dir: opts.state_dir.to_path_buf(),
        };
        for (p, applied) in done.iter().rev() {
            match undo(p, applied) {
                Ok(()) => failure.restored.push(p.ctx.name.clone()),
                Err(why) => failure.not_restored.push(format!("{}: {why}", p.ctx.name)),
            }
        }
        failure.restored.reverse();
        return Err(failure);
    }
    Ok(done
        .into_iter()
        .map(|(p, applied)| NsApplied {
            netns: p.ctx.name.clone(),
            applied,
        })
        .collect())
}

/// Why one namespace's applied values could not be restored.
#[derive(Debug, thiserror::Error)]
enum UndoError {
    #[error(transparent)]
    Enter(EnterError),
    #[error("{0}")]
    Restore(Box<transaction::TxFailure>),
    #[error("renaming {}: {source}", path.display())]
    Retire {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Restore one namespace's applied values (as a transaction of its own) and retire its
/// rollback file.
fn undo(p: &NsPlan, applied: &Applied) -> Result<(), UndoError> {
    let plan = Plan {
        changes: applied
            .written
            .iter()
            .rev()
            .map(|c| Change {
                key: c.key.clone(),
                old: c.new.clone(),
                new: c.old.clone(),
            })
            .collect(),
        ..Plan::default()
    };
    let faults = Faults::default();
    let tx = TxOptions {
        state_dir: None,
        what: "undo".into(),
        netns: p.recorded.clone(),
        persist: None,
        faults: &faults,
        group: None,
    };
    netns::in_namespace(p.ns.as_ref(), || transaction::execute(&LiveIo, &plan, &tx))
        .map_err(UndoError::Enter)?
        .map_err(UndoError::Restore)?;
    if let Some(rb) = &applied.rollback_file {
        state::retire(rb, "aborted").map_err(|source| UndoError::Retire {
            path: rb.clone(),
            source,
        })?;
    }
    Ok(())
}
