//! The `rules` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::RulesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rules` is not implemented yet")
}
