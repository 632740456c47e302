//! `apply --netns all` and `--netns A,B`: one transaction over several namespaces; and, after an
//! apply in the caller's own namespace, which keys are per namespace and which other
//! namespaces hold other values.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::owners::{OwnerCheck, OwnersJson};
use crate::cli::{ApplyArgs, DiffFormat};
use crate::host::netns::NetnsRef;
use crate::host::sysctl::{Scope, SysctlKey};
use crate::remedy::faults::Faults;
use crate::remedy::netns_tx::{self, EachOptions, NsApplied, NsValues};
use crate::remedy::persist::{self, PersistEntry};
use crate::remedy::render;
use crate::remedy::transaction::{Change, Desired, PersistRequest, Row};

#[derive(Serialize)]
struct NsJson<'a> {
    netns: &'a str,
    rows: &'a [Row],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    skipped_global: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    problems: &'a [String],
}

/// A row or a change, with the namespace it belongs to.
#[derive(Serialize)]
struct InNs<'a, T> {
    netns: &'a str,
    #[serde(flatten)]
    item: &'a T,
}

#[derive(Serialize)]
struct Report<'a> {
    what: &'a str,
    dry_run: bool,
    /// Every namespace's rows, as the single-namespace report has them (with `netns`).
    rows: Vec<InNs<'a, Row>>,
    namespaces: Vec<NsJson<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ResultJson<'a>>,
    #[serde(flatten)]
    ownership: &'a OwnersJson,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    ok: bool,
    /// Every change made, in every namespace (empty when the apply failed: all restored).
    written: Vec<InNs<'a, Change>>,
    applied: &'a [NsApplied],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Everything `apply` decided before choosing one namespace or several.
pub(super) struct Request<'a> {
    pub args: &'a ApplyArgs,
    pub what: &'a str,
    pub desired: &'a [Desired],
    pub owners: &'a OwnerCheck,
    pub faults: &'a Faults,
}

/// Apply in every namespace of `targets` as one transaction.
pub(super) fn run(
    req: &Request,
    targets: &[Option<NetnsRef>],
    notes: &[String],
) -> anyhow::Result<ExitCode> {
    let args = req.args;
    if args.profile.is_none() {
        anyhow::bail!(
            "--fixes applies the fixes of one namespace's findings: give one --netns NAME, or \
             --profile NAME for several namespaces"
        );
    }
    let table = args.format == DiffFormat::Table;
    let mut plans = netns_tx::plan_each(targets, req.desired, req.faults)?;
    for p in &mut plans {
        req.owners.refuse(&mut p.plan);
    }
    let initial = plans.iter().find(|p| p.ctx.initial);
    let ownership = req.owners.report(
        initial.map_or(&plans[0].plan, |p| &p.plan),
        args.persist.as_deref(),
    );
    let problems: Vec<String> = plans
        .iter()
        .flat_map(|p| {
            p.plan
                .problems
                .iter()
                .map(move |x| format!("namespace {}: {x}", p.ctx.name))
        })
        .collect();

    if table {
        let mut out = String::new();
        for p in &plans {
            out.push_str(&format!("== network namespace {} ==\n", p.ctx.name));
            out.push_str(&render::diff_table(&p.plan.rows));
            if !p.skipped_global.is_empty() {
                out.push_str(&format!(
                    "left to the initial namespace (global, shared by every namespace): {}\n",
                    p.skipped_global.join(", ")
                ));
            }
        }
        out.push_str(&ownership.text(plans.iter().map(|p| p.plan.rows.len()).max().unwrap_or(0)));
        for n in notes {
            out.push_str(&format!("note: {n}\n"));
        }
        super::super::write_output(None, out.as_bytes())?;
    }

    let mut result = None;
    if problems.is_empty() && !args.dry_run {
        let persist = match &args.persist {
            None => None,
            Some(p) => {
                let Some(initial) = initial else {
                    anyhow::bail!(
                        "--persist writes the initial namespace's values (the one `sysctl \
                         --system` loads at boot), and it is not among these namespaces; \
                         nothing was written"
                    );
                };
                let path =
                    persist::absolute(p).with_context(|| format!("--persist {}", p.display()))?;
                let entries: Vec<PersistEntry> = initial
                    .plan
                    .resolved
                    .iter()
                    .map(|(k, v, why)| PersistEntry {
                        key: k.to_string(),
                        value: v.clone(),
                        comment: why.clone(),
                    })
                    .collect();
                Some(PersistRequest {
                    path,
                    text: Some(persist::render(req.what, &entries)),
                })
            }
        };
        let opts = EachOptions {
            state_dir: &args.state_dir,
            what: req.what.to_string(),
            persist,
            faults: req.faults,
        };
        result = Some(netns_tx::execute_each(&plans, &opts));
    }

    if !table {
        let applied: &[NsApplied] = match &result {
            Some(Ok(a)) => a,
            _ => &[],
        };
        let report = Report {
            what: req.what,
            dry_run: args.dry_run,
            rows: plans
                .iter()
                .flat_map(|p| {
                    p.plan.rows.iter().map(|item| InNs {
                        netns: &p.ctx.name,
                        item,
                    })
                })
                .collect(),
            namespaces: plans
                .iter()
                .map(|p| NsJson {
                    netns: &p.ctx.name,
                    rows: &p.plan.rows,
                    skipped_global: &p.skipped_global,
                    problems: &p.plan.problems,
                })
                .collect(),
            notes,
            result: result.as_ref().map(|r| ResultJson {
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
            ownership: &ownership,
        };
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        super::super::write_output(None, format!("{json}\n").as_bytes())?;
    }

    if !problems.is_empty() {
        anyhow::bail!(
            "{} cannot be applied in {} namespaces; nothing was written in any:\n  {}",
            req.what,
            plans.len(),
            problems.join("\n  ")
        );
    }
    match result {
        None => {
            if table {
                super::super::write_output(None, b"Dry run: nothing was written.\n")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Ok(applied)) => {
            if table {
                let mut msg = String::new();
                for a in &applied {
                    msg.push_str(&format!(
                        "namespace {}: {}\n",
                        a.netns,
                        match (&a.applied.rollback_file, a.applied.written.len()) {
                            (_, 0) => "nothing to change".to_string(),
                            (Some(rb), n) =>
                                format!("applied {n} key(s), rollback file {}", rb.display()),
                            (None, n) => format!("applied {n} key(s)"),
                        }
                    ));
                }
                msg.push_str(&format!(
                    "Undo every namespace of this apply with `rstaudit rollback --state-dir {}`.\n",
                    args.state_dir.display()
                ));
                super::super::write_output(None, msg.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(failure)) => Err(anyhow::Error::new(failure).context(format!(
            "applying {} in {} namespaces",
            req.what,
            plans.len()
        ))),
    }
}

/// After an apply in the caller's own namespace: the per-namespace keys of `rows` and the
/// other namespaces that hold other values for them.
#[derive(Serialize)]
pub(super) struct Others {
    pub per_namespace: Vec<String>,
    pub global: Vec<String>,
    /// How many other namespaces were found.
    pub count: usize,
    /// Those that hold another value of a per-namespace key (or could not be read).
    pub differ: Vec<NsValues>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Compare the targets of `rows` with every other namespace (`scope`: the hidden
/// `--netns-scope`).
pub(super) fn others(rows: &[Row], scope: Option<&str>) -> Others {
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
    let (found, notes) = super::targets::others(scope).unwrap_or_else(|e| {
        (
            Vec::new(),
            vec![format!("other network namespaces not compared: {e:#}")],
        )
    });
    let differ = netns_tx::differing(&per_ns, &found)
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

impl Others {
    pub(super) fn text(&self, here: &str) -> String {
        let mut out = String::new();
        if !self.per_namespace.is_empty() {
            out.push_str(&format!(
                "Per network namespace (set in namespace {here} only): {}.\n",
                self.per_namespace.join(", ")
            ));
        }
        if !self.global.is_empty() {
            out.push_str(&format!(
                "Global (shared by every namespace): {}.\n",
                self.global.join(", ")
            ));
        }
        if self.per_namespace.is_empty() {
            return out;
        }
        if self.count == 0 {
            if self.notes.is_empty() {
                out.push_str("No other network namespace.\n");
            }
        } else if self.differ.is_empty() {
            out.push_str(&format!(
                "The {} other network namespace(s) hold the same values.\n",
                self.count
            ));
        } else {
            out.push_str(&format!(
                "{} of {} other network namespace(s) differ:\n",
                self.differ.len(),
                self.count
            ));
            for n in &self.differ {
                let vals: Vec<String> = n.differ.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("  {}: {}", n.netns, vals.join(", ")));
                if let Some(e) = &n.error {
                    out.push_str(&format!(" (not read: {e})"));
                }
                out.push('\n');
            }
            out.push_str("Apply there too with --netns all (or --netns NAME,...).\n");
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}
