//! What `apply` prints: the diff (a table per namespace), the owners of its keys, the
//! result, and the same as one JSON document.
//!
//! Pure functions of a [`Planned`] apply and its outcome. An apply in one namespace has the
//! single-namespace shape (`netns`, `rows`, `problems`, `result`, `other_namespaces`); one
//! over several namespaces keeps those fields with the namespace in each item and adds
//! `namespaces` and `result.applied` (docs/remediation.md).

use serde::Serialize;

use crate::remedy::apply::{Outcome, Planned, Request};
use crate::remedy::netns_tx::{EachFailure, NsApplied, NsPlan};
use crate::remedy::others::Others;
use crate::remedy::owners::{Owner, PersistWarning};
use crate::remedy::ownership::Ownership;
use crate::remedy::render;
use crate::remedy::transaction::{Change, Row};

/// The result of the transactions, when they ran.
pub type Executed<'a> = Option<&'a Result<Outcome, EachFailure>>;

/// The problems of one namespace: its plan's, then the keys other files own.
pub fn ns_problems(p: &NsPlan) -> Vec<String> {
    let mut out = p.plan.problems.clone();
    out.extend(p.owned.iter().map(owned_problem));
    out
}

/// Every problem of the apply, as its error lists them (namespace by namespace when there
/// are several), then those of the request as a whole.
pub fn problems(planned: &Planned) -> Vec<String> {
    let mut out: Vec<String> = if planned.request.several {
        planned
            .namespaces
            .iter()
            .flat_map(|p| {
                ns_problems(p)
                    .into_iter()
                    .map(move |x| format!("namespace {}: {x}", p.ctx.name))
            })
            .collect()
    } else {
        planned.namespaces.iter().flat_map(ns_problems).collect()
    };
    out.extend(planned.problems.iter().cloned());
    out
}

fn owned_problem(o: &Owner) -> String {
    format!(
        "{}: set by {} (= {}), a file rstaudit does not manage; changing it would fight that \
         file's owner, and `sysctl --system` sets {} again. Leave it to that file, or change it \
         anyway with --override-owned {}",
        o.key,
        o.place(),
        o.value,
        o.value,
        o.key
    )
}

/// The diff: one table (several: one per namespace), the owners, and the notes.
pub fn diff_text(planned: &Planned) -> String {
    let mut out = String::new();
    let several = planned.request.several;
    for p in &planned.namespaces {
        if several {
            out.push_str(&format!("== network namespace {} ==\n", p.ctx.name));
        }
        out.push_str(&render::diff_table(&p.plan.rows));
        if several && !p.skipped_global.is_empty() {
            out.push_str(&format!(
                "left to the initial namespace (global, shared by every namespace): {}\n",
                p.skipped_global.join(", ")
            ));
        }
    }
    let keys = planned.namespaces.iter().map(|p| p.plan.rows.len()).max();
    out.push_str(&owners_text(&planned.ownership, keys.unwrap_or(0)));
    for n in &planned.request.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The lines under the diff table: the owner of each key a file sets, then the warnings.
fn owners_text(o: &Ownership, keys: usize) -> String {
    let mut out = String::new();
    if !o.owners.is_empty() {
        out.push_str("Owners (the last sysctl.d / sysctl.conf file that sets the key, in `sysctl --system` order):\n");
        for owner in &o.owners {
            let whose = if owner.managed {
                " (managed by rstaudit)"
            } else if o.overridden.contains(&owner.key) {
                " (another owner; --override-owned: changed anyway)"
            } else {
                " (another owner)"
            };
            out.push_str(&format!(
                "  {}: {} sets {}{whose}\n",
                owner.key,
                owner.place(),
                owner.value
            ));
        }
    }
    let unset = keys.saturating_sub(o.owners.len());
    if unset > 0 {
        out.push_str(&format!(
            "{unset} key(s) set by no sysctl.d / sysctl.conf file.\n"
        ));
    }
    for w in &o.persist_warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for n in owner_notes(o) {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

fn owner_notes(o: &Ownership) -> Vec<String> {
    let mut notes = o.notes.clone();
    for a in &o.unused_overrides {
        notes.push(format!("--override-owned {a}: not a key of this apply"));
    }
    notes
}

/// What a successful apply did, under the diff.
pub fn result_text(planned: &Planned, outcome: &Outcome) -> String {
    if planned.request.several {
        return several_result_text(planned, &outcome.applied);
    }
    let mut msg = String::new();
    let Some(one) = outcome.applied.first() else {
        return msg;
    };
    let applied = &one.applied;
    if applied.written.is_empty() {
        msg.push_str("Nothing to change: every key is already at its target.\n");
    } else {
        msg.push_str(&format!(
            "Applied {} key(s) in namespace {}.\n",
            applied.written.len(),
            one.netns
        ));
    }
    if let Some(rb) = &applied.rollback_file {
        let file = rb.display().to_string();
        msg.push_str(&format!(
            "Rollback file: {file} (undo with `{}`).\n",
            crate::hint::command(["rstaudit", "rollback", &file])
        ));
    }
    if let Some(p) = &applied.persisted {
        if applied.persist_unchanged {
            msg.push_str(&format!("{} is already up to date.\n", p.display()));
        } else {
            msg.push_str(&format!("Persisted to {}.\n", p.display()));
        }
    }
    if let Some(o) = &outcome.others {
        msg.push_str(&others_text(o, &one.netns, &planned.request));
    }
    msg
}

fn several_result_text(planned: &Planned, applied: &[NsApplied]) -> String {
    let mut msg = String::new();
    for a in applied {
        msg.push_str(&format!(
            "namespace {}: {}\n",
            a.netns,
            match (&a.applied.rollback_file, a.applied.written.len()) {
                (_, 0) => "nothing to change".to_string(),
                (Some(rb), n) => format!("applied {n} key(s), rollback file {}", rb.display()),
                (None, n) => format!("applied {n} key(s)"),
            }
        ));
    }
    let dir = planned.request.state_dir.display().to_string();
    msg.push_str(&format!(
        "Undo every namespace of this apply with `{}`.\n",
        crate::hint::command(["rstaudit", "rollback", "--state-dir", &dir])
    ));
    msg
}

/// After an apply in the caller's own namespace (`here`): which keys are per namespace, and
/// which other namespaces hold other values.
fn others_text(o: &Others, here: &str, request: &Request) -> String {
    let mut out = String::new();
    if !o.per_namespace.is_empty() {
        out.push_str(&format!(
            "Per network namespace (set in namespace {here} only): {}.\n",
            o.per_namespace.join(", ")
        ));
    }
    if !o.global.is_empty() {
        out.push_str(&format!(
            "Global (shared by every namespace): {}.\n",
            o.global.join(", ")
        ));
    }
    if o.per_namespace.is_empty() {
        return out;
    }
    if o.count == 0 {
        if o.notes.is_empty() {
            out.push_str("No other network namespace.\n");
        }
    } else if o.differ.is_empty() {
        out.push_str(&format!(
            "The {} other network namespace(s) hold the same values.\n",
            o.count
        ));
    } else {
        out.push_str(&format!(
            "{} of {} other network namespace(s) differ:\n",
            o.differ.len(),
            o.count
        ));
        for n in &o.differ {
            let vals: Vec<String> = n.differ.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("  {}: {}", n.netns, vals.join(", ")));
            if let Some(e) = &n.error {
                out.push_str(&format!(" (not read: {e})"));
            }
            out.push('\n');
        }
        out.push_str(&format!("{}.\n", apply_there(request)));
    }
    for n in &o.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The apply that does the same in the other namespaces, with the same state directory: a
/// profile in every namespace at once; today's fixes in one namespace at a time (each has
/// findings of its own).
fn apply_there(request: &Request) -> String {
    let dir = crate::remedy::state::dir_words(&request.state_dir);
    let fixes = request.selects.first().is_some_and(|w| w == "--fixes");
    let netns = if fixes { "NAME" } else { "all" };
    let words = ["rstaudit", "apply"]
        .into_iter()
        .chain(request.selects.iter().map(String::as_str))
        .chain(["--netns", netns])
        .chain(dir.iter().map(String::as_str));
    let cmd = crate::hint::command(words);
    if fixes {
        format!("Apply there too with `{cmd}` in each namespace")
    } else {
        format!("Apply there too with `{cmd}` (or --netns NAME,... for some of them)")
    }
}

/// What the JSON report says about owners (flattened into it).
#[derive(Serialize)]
struct OwnersJson<'a> {
    /// The owner of every key of the diff that a configuration file sets.
    owners: &'a [Owner],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    overridden: &'a [String],
    #[serde(skip_serializing_if = "<[PersistWarning]>::is_empty")]
    persist_warnings: &'a [PersistWarning],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    owner_notes: Vec<String>,
}

impl<'a> OwnersJson<'a> {
    fn new(o: &'a Ownership) -> Self {
        Self {
            owners: &o.owners,
            overridden: &o.overridden,
            persist_warnings: &o.persist_warnings,
            owner_notes: owner_notes(o),
        }
    }
}

/// The report of an apply in one namespace.
#[derive(Serialize)]
struct OneJson<'a> {
    what: &'a str,
    netns: &'a str,
    dry_run: bool,
    rows: &'a [Row],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<OneResultJson<'a>>,
    #[serde(flatten)]
    ownership: OwnersJson<'a>,
    /// After an apply in the caller's own namespace: the other namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    other_namespaces: Option<&'a Others>,
}

#[derive(Serialize)]
struct OneResultJson<'a> {
    ok: bool,
    written: &'a [Change],
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persisted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One namespace's part of the report of an apply over several.
#[derive(Serialize)]
struct NsJson<'a> {
    netns: &'a str,
    rows: &'a [Row],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    skipped_global: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

/// A row or a change, with the namespace it belongs to.
#[derive(Serialize)]
struct InNs<'a, T> {
    netns: &'a str,
    #[serde(flatten)]
    item: &'a T,
}

/// The report of an apply over several namespaces.
#[derive(Serialize)]
struct SeveralJson<'a> {
    what: &'a str,
    dry_run: bool,
    /// Every namespace's rows, as the single-namespace report has them (with `netns`).
    rows: Vec<InNs<'a, Row>>,
    namespaces: Vec<NsJson<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    /// Problems of the apply as a whole (those of a namespace are under `namespaces`).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    problems: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<SeveralResultJson<'a>>,
    #[serde(flatten)]
    ownership: OwnersJson<'a>,
}

#[derive(Serialize)]
struct SeveralResultJson<'a> {
    ok: bool,
    /// Every change made, in every namespace (empty when the apply failed: all restored).
    written: Vec<InNs<'a, Change>>,
    applied: &'a [NsApplied],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The JSON report (with a final newline): the diff, and the result when the transactions
/// ran. It fails only on a path that is not UTF-8.
pub fn json(
    planned: &Planned,
    dry_run: bool,
    executed: Executed,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = if planned.request.several {
        serde_json::to_vec_pretty(&several_json(planned, dry_run, executed))
    } else {
        serde_json::to_vec_pretty(&one_json(planned, dry_run, executed))
    }?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn one_json<'a>(planned: &'a Planned, dry_run: bool, executed: Executed<'a>) -> OneJson<'a> {
    let first = planned.namespaces.first();
    let outcome = executed.and_then(|r| r.as_ref().ok());
    OneJson {
        what: &planned.request.what,
        netns: first.map_or("", |p| p.ctx.name.as_str()),
        dry_run,
        rows: first.map_or(&[], |p| p.plan.rows.as_slice()),
        problems: problems(planned),
        ownership: OwnersJson::new(&planned.ownership),
        other_namespaces: outcome.and_then(|o| o.others.as_ref()),
        result: executed.map(|r| match r {
            Ok(o) => {
                let a = o.applied.first().map(|a| &a.applied);
                OneResultJson {
                    ok: true,
                    written: a.map_or(&[], |a| a.written.as_slice()),
                    rollback_file: a
                        .and_then(|a| a.rollback_file.as_ref())
                        .map(|p| p.display().to_string()),
                    persisted: a
                        .and_then(|a| a.persisted.as_ref())
                        .map(|p| p.display().to_string()),
                    error: None,
                }
            }
            Err(e) => OneResultJson {
                ok: false,
                written: &[],
                rollback_file: None,
                persisted: None,
                error: Some(e.error.to_string()),
            },
        }),
    }
}

fn several_json<'a>(
    planned: &'a Planned,
    dry_run: bool,
    executed: Executed<'a>,
) -> SeveralJson<'a> {
    let applied: &[NsApplied] = match executed {
        Some(Ok(o)) => &o.applied,
        _ => &[],
    };
    let ns = &planned.namespaces;
    SeveralJson {
        what: &planned.request.what,
        dry_run,
        rows: ns
            .iter()
            .flat_map(|p| {
                p.plan.rows.iter().map(|item| InNs {
                    netns: &p.ctx.name,
                    item,
                })
            })
            .collect(),
        namespaces: ns
            .iter()
            .map(|p| NsJson {
                netns: &p.ctx.name,
                rows: &p.plan.rows,
                skipped_global: &p.skipped_global,
                problems: ns_problems(p),
            })
            .collect(),
        notes: &planned.request.notes,
        problems: &planned.problems,
        result: executed.map(|r| SeveralResultJson {
            ok: r.is_ok(),
            written: applied
                .iter()
                .flat_map(|a| {
                    a.applied.written.iter().map(|item| InNs {
                        netns: &a.netns,
                        item,
                    })
                })
                .collect(),
            applied,
            error: r.as_ref().err().map(|e| e.to_string()),
        }),
        ownership: OwnersJson::new(&planned.ownership),
    }
}
