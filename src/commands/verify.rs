//! The `verify` command: compare live values with a profile; exit 1 on drift.
//!
//! Also reports keys whose live value is right but that no configuration
//! file keeps (a reboot would undo them): a warning by default, drift when
//! `--persist FILE` names the file that should hold them.

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{DiffFormat, VerifyArgs};
use crate::host::netns;
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

/// Run the command.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let profile = profiles::load(&args.profile)?;
    let desired = remedy::desired_from_profile(&profile);
    if args.netns.as_deref() == Some("all") {
        anyhow::bail!("verify --netns all is not supported: verify one namespace at a time");
    }
    let ns = args.netns.as_deref().map(netns::resolve).transpose()?;

    let mut notes = Vec::new();
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

    let (ns_name, rows) = remedy::in_namespace(ns.as_ref(), || -> anyhow::Result<_> {
        let (ctx, _) = remedy::describe_current(ns.as_ref())?;
        Ok((ctx.name, verify::check(&LiveIo, &desired, &persisted)))
    })??;

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

    match args.format {
        DiffFormat::Json => {
            let report = Report {
                profile: &profile.name,
                netns: &ns_name,
                ok,
                drift: drift.clone(),
                not_persisted: not_persisted.clone(),
                files: files.iter().map(|f| f.display().to_string()).collect(),
                rows: &rows,
                notes,
            };
            let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
            super::write_output(None, format!("{json}\n").as_bytes())?;
        }
        DiffFormat::Table => {
            let mut out = render::verify_table(&rows);
            for r in rows.iter().filter(|r| r.status != LiveStatus::Ok) {
                match (&r.live, &r.error) {
                    (Some(live), _) => out.push_str(&format!(
                        "DRIFT: {} is {live}, profile {} wants {}\n",
                        r.key, profile.name, r.target
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
            for n in &notes {
                out.push_str(&format!("note: {n}\n"));
            }
            if ok {
                out.push_str(&format!(
                    "OK: {} key(s) match profile {} in namespace {ns_name}.\n",
                    rows.len(),
                    profile.name
                ));
            }
            super::write_output(None, out.as_bytes())?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_FINDINGS)
    })
}
