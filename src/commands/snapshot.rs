//! The `snapshot` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::SnapshotArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`snapshot` is not implemented yet")
}
