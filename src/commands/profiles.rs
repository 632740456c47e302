//! The `profiles` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::ProfilesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`profiles` is not implemented yet")
}
