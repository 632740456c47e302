//! Shell completions and the man page, generated from the clap definitions.

use std::process::ExitCode;

use crate::cli::CompletionShell;

/// Print a completion script for SHELL.
pub fn completions(_shell: CompletionShell) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`completions` is not implemented yet")
}

/// Print the man page.
pub fn man() -> anyhow::Result<ExitCode> {
    anyhow::bail!("`man` is not implemented yet")
}
