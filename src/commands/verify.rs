//! The `verify` command: compare live values with a profile; exit 1 on drift.
//!
//! Also reports keys whose live value is right but that no configuration
//! file keeps (a reboot would undo them): a warning by default, drift when
//! `--persist FILE` names the file that should hold them.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{DiffFormat, VerifyArgs};
use crate::host::netns::NetnsRef;
use crate::remedy::owners::Sources;
use crate::remedy::persist;
use crate::remedy::transaction::LiveIo;
use crate::remedy::verify::{self, LiveStatus, PersistStatus, VerifyRow};
use crate::remedy::{self, profiles, render};

#[derive(Serialize)]
struct Report<'a> {
    profile: &'a str,
    netns: &'a str,
    /// No drift (and, with --persist, everything persisted).
    ok: bool,
    drift: Vec<&'a str>,
    not_persisted: Vec<&'a str>,
    /// The configuration files read, in `sysctl --system` order.
    files: Vec<String>,
    rows: &'a [VerifyRow],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

/// Verify several namespaces: one report each.
#[derive(Serialize)]
struct ManyReport<'a> {
    profile: &'a str,
    ok: bool,
    namespaces: Vec<Report<'a>>,
}

/// Run the command.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let profile = profiles::load_named(&args.profile, "--profile")?;
    let desired = remedy::desired_from_profile(&profile);
    let mut notes = Vec::new();
    let targets: Vec<Option<NetnsRef>> =
        match super::apply::targets::several(args.netns.as_deref(), args.netns_scope.as_deref())? {
            Some((targets, ns_notes)) => {
                notes.extend(ns_notes);
                targets
            }
            None => vec![
                args.netns
                    .as_deref()
                    .map(super::resolve_netns)
                    .transpose()?,
            ],
        };

    let files = match &args.persist {
        Some(p) => {
            if !p.exists() {
                notes.push(format!("{} does not exist", p.display()));
            }
            vec![p.clone()]
        }
        None => {
            let sources = match &args.sysctl_root {
                Some(root) => Sources::under(root),
                None => Sources::system(),
            };
            let (files, dir_notes) = sources.files();
            notes.extend(dir_notes);
            files
        }
    };
    let (persisted, file_notes) = persist::effective_values(&files);
    notes.extend(file_notes);

    let mut checked = Vec::new();
    for ns in &targets {
        checked.push(remedy::in_namespace(
            ns.as_ref(),
            || -> anyhow::Result<_> {
                let (ctx, _) = remedy::describe_current(ns.as_ref())?;
                Ok((ctx.name, verify::check(&LiveIo, &desired, &persisted)))
            },
        )??);
    }
    let file_names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut reports = Vec::new();
    let mut text = String::new();
    for (ns_name, rows) in &checked {
        let (report, t) = one(&args, &profile.name, ns_name, rows, &file_names);
        reports.push(report);
        if checked.len() > 1 {
            text.push_str(&format!("== network namespace {ns_name} ==\n"));
        }
        text.push_str(&t);
    }
    for n in &notes {
        text.push_str(&format!("note: {n}\n"));
    }
    let ok = reports.iter().all(|r| r.ok);
    match args.format {
        DiffFormat::Json => {
            let json = if reports.len() == 1 {
                let mut r = reports.remove(0);
                r.notes = notes;
                serde_json::to_string_pretty(&r)
            } else {
                serde_json::to_string_pretty(&ManyReport {
                    profile: &profile.name,
                    ok,
                    namespaces: reports,
                })
            }
            .context("serialising the report")?;
            super::write_output(None, format!("{json}\n").as_bytes())?;
        }
        DiffFormat::Table => {
            if checked.len() > 1 {
                let bad = checked.len() - reports.iter().filter(|r| r.ok).count();
                text.push_str(&if ok {
                    format!(
                        "OK: every one of {} network namespaces matches.\n",
                        checked.len()
                    )
                } else {
                    format!("{bad} of {} network namespaces drift.\n", checked.len())
                });
            }
            super::write_output(None, text.as_bytes())?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FINDINGS)
    })
}

/// The report and the table text of one namespace.
fn one<'a>(
    args: &VerifyArgs,
    profile: &'a str,
    ns_name: &'a str,
    rows: &'a [VerifyRow],
    files: &[String],
) -> (Report<'a>, String) {
    let drift: Vec<&str> = rows
        .iter()
        .filter(|r| r.status != LiveStatus::Ok)
        .map(|r| r.key.as_str())
        .collect();
    let not_persisted: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == LiveStatus::Ok && r.persist != PersistStatus::Ok)
        .map(|r| r.key.as_str())
        .collect();
    let ok = drift.is_empty() && (args.persist.is_none() || not_persisted.is_empty());
    let mut out = render::verify_table(rows);
    for r in rows.iter().filter(|r| r.status != LiveStatus::Ok) {
        match (&r.live, &r.error) {
            (Some(live), _) => out.push_str(&format!(
                "DRIFT: {} is {live}, profile {profile} wants {}\n",
                r.key, r.target
            )),
            (None, Some(e)) => out.push_str(&format!("DRIFT: {e}\n")),
            (None, None) => {}
        }
    }
    if !not_persisted.is_empty() {
        out.push_str(&format!(
            "{}: live value is right but no configuration file keeps it ({}): a reboot would undo it. Persist with `rstaudit apply --profile {} --persist /etc/sysctl.d/90-rstaudit.conf`.\n",
            if args.persist.is_some() { "NOT PERSISTED" } else { "warning" },
            not_persisted.join(", "),
            args.profile
        ));
    }
    if ok {
        out.push_str(&format!(
            "OK: {} key(s) match profile {profile} in namespace {ns_name}.\n",
            rows.len()
        ));
    }
    let report = Report {
        profile,
        netns: ns_name,
        ok,
        drift,
        not_persisted,
        files: files.to_vec(),
        rows,
        notes: Vec::new(),
    };
    (report, out)
}
