//! The `fix` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::FixArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fix` is not implemented yet")
}
