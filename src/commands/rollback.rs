//! The `rollback` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::RollbackArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rollback` is not implemented yet")
}
