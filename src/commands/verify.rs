//! The `verify` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`verify` is not implemented yet")
}
