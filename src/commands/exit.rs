//! The exit codes of every command (README.md, docs/ci.md), and the one place they become numbers.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: ran; nothing at or above the threshold (also: a closed standard output).
    Clean,
    /// 1: ran; findings at or above `--fail-on`, drift, or a fix that did not help.
    Findings,
    /// 2: could not run (bad arguments, a bad rule or profile file, unreadable input), or a
    /// part of the work could not run (a lab scenario, every file of a fleet report).
    CouldNotRun,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Clean => 0,
            Exit::Findings => 1,
            Exit::CouldNotRun => 2,
        })
    }
}
