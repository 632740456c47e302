//! The rstaudit binary: parse arguments, dispatch, map errors to exit codes.
//!
//! Exit codes (README.md, docs/ci.md; [`commands::Exit`], which alone turns them into numbers):
//! 0 = ran, nothing at or above the threshold; 1 = findings at or above --fail-on, or
//! drift; 2 = could not run. A closed standard output (`rstaudit audit | head`) exits 0.
//! With `--format json` an error is a JSON object on standard output (message, code, exit
//! code), where the report would have been; an error after the report was written is text
//! on standard error.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;

// The library's layers, named at the root of the binary so the command layer reaches them
// as `crate::rules`, `crate::host`, ...; the library cannot reach back into the commands.
use rstaudit::{
    clock, hint, host, input, lab, live, output, remedy, report, rules, stop, trace, valid, yaml,
};

use cli::Cli;
use commands::Exit;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let json = json_requested(&args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            return json_error(first.strip_prefix("error: ").unwrap_or(first), "usage").into();
        }
        Err(e) => e.exit(),
    };
    let exit = match commands::dispatch(cli) {
        Ok(exit) => exit,
        Err(err) if is_broken_pipe(&err) => Exit::Clean,
        // As JSON where the report would have been; after a report (apply's plan with its
        // problems), as text beside it.
        Err(err) if json && !commands::stdout_used() => {
            json_error(&format!("{err:#}"), error_code(&err))
        }
        Err(err) => {
            eprintln!("rstaudit: error: {err:#}");
            Exit::CouldNotRun
        }
    };
    exit.into()
}

/// Whether the command line asks for JSON (`--format json` or `--format=json`, before any
/// `--`): then errors are JSON too.
fn json_requested(args: &[OsString]) -> bool {
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        match a.as_ref() {
            "--" => return false,
            "--format" if it.next().is_some_and(|v| v == "json") => return true,
            "--format=json" => return true,
            _ => {}
        }
    }
    false
}

/// An error as JSON on standard output, where the caller reads the report
/// (docs/audit-json.md, "Errors"): `{"error": {"message", "code", "exit_code"}}`.
#[expect(
    clippy::disallowed_methods,
    reason = "the command layer writes the error where the report would have gone"
)]
fn json_error(message: &str, code: &str) -> Exit {
    let v = serde_json::json!({
        "error": { "message": message, "code": code, "exit_code": 2 }
    });
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        eprintln!("rstaudit: error: {message}");
    }
    Exit::CouldNotRun
}

/// A stable code for an error: what kind of input could not be had.
fn error_code(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::NotFound => return "not-found",
                std::io::ErrorKind::PermissionDenied => return "permission-denied",
                _ => {}
            }
        }
    }
    "error"
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
