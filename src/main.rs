//! The rstaudit binary: parse arguments, dispatch, map errors to exit codes.
//!
//! Exit codes (README.md, docs/ci.md; [`commands::Exit`], which alone turns them into numbers):
//! 0 = ran, nothing at or above the threshold; 1 = findings at or above --fail-on, or
//! drift; 2 = could not run. A closed standard output (`rstaudit audit | head`) exits 0.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;

// The library's layers, named at the root of the binary so the command layer reaches them
// as `crate::rules`, `crate::host`, ...; the library cannot reach back into the commands.
use rstaudit::{
    clock, hint, host, lab, live, output, remedy, report, rules, stop, trace, valid, yaml,
};

use cli::Cli;
use commands::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let exit = match commands::dispatch(cli) {
        Ok(exit) => exit,
        Err(err) if is_broken_pipe(&err) => Exit::Clean,
        Err(err) => {
            eprintln!("rstaudit: error: {err:#}");
            Exit::CouldNotRun
        }
    };
    exit.into()
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
