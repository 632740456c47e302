//! The `verify` command: compare live values with a profile; exit 1 on drift.
//!
//! Also reports keys whose live value is right but that no configuration
//! file keeps (a reboot would undo them): a warning by default, drift when
//! `--persist FILE` names the file that should hold them.

use super::Exit;

use anyhow::Context;

use crate::cli::{DiffFormat, VerifyArgs};
use crate::remedy::owners::Sources;
use crate::remedy::verify::{self, Request};
use crate::remedy::{self, profiles};
use crate::report::verify as show;

/// Run the command.
pub fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let profile = profiles::load_named(&args.profile, "--profile")?;
    let desired = remedy::desired_from_profile(&profile);
    let targets = super::targets::targets(args.netns.as_deref(), args.netns_scope.as_deref())?;
    let verified = verify::verify(Request {
        desired: &desired,
        targets: &targets.list,
        persist: args.persist.as_deref(),
        sources: args
            .sysctl_root
            .as_deref()
            .map_or_else(Sources::system, Sources::under),
        notes: targets.notes,
    })?;
    let shown = show::Profile {
        name: &profile.name,
        given: &args.profile,
    };
    let bytes = match args.format {
        DiffFormat::Json => show::json(&verified, shown).context("serialising the report")?,
        DiffFormat::Table => show::text(&verified, shown, args.persist.as_deref()).into_bytes(),
    };
    super::write_output(None, &bytes)?;
    Ok(if verified.ok() {
        Exit::Clean
    } else {
        Exit::Findings
    })
}
