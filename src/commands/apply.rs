//! The `apply` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::ApplyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`apply` is not implemented yet")
}
