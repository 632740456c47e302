//! The `audit` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::AuditArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`audit` is not implemented yet")
}
