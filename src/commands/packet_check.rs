//! The `packet_check` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(_args: crate::cli::PacketCheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`packet_check` is not implemented yet")
}
