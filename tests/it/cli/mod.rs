//! The command line as a whole: help, errors that name their flag, diagnostics of broken input
//! files, hostile input, and what every command does without root.

mod bad_input;
mod diagnostics;
mod flag_errors;
mod help;
mod privilege;
mod terminal;
