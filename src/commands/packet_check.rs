//! The `packet_check` command.

use std::process::ExitCode;

/// Run the command.
pub fn run(args: crate::cli::PacketCheckArgs) -> anyhow::Result<ExitCode> {
    if args.lab {
        return crate::packet::lab::run(args);
    }
    anyhow::bail!("`packet_check` is not implemented yet")
}
