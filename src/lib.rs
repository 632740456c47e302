//! rstaudit: find why Linux connections get reset, and fix it.
//!
//! Data flows one way: `host` (collectors) -> [`host::Snapshot`] -> `rules`
//! (engine) -> [`rules::Finding`]s -> `report` (renderers) or `remedy`
//! (fixes, profiles, apply). `trace` turns the kernel's trace and captured
//! frames into reset events; `live` ties them to causes, processes and
//! findings; `lab` reproduces findings in throwaway namespaces; `watch` holds the
//! always-on check's metrics, scrape endpoint and event stream. Only `host`
//! touches /proc and /sys (tracefs aside, which `trace` owns); nothing in
//! `host` knows about rules.
//!
//! The command layer (flags, dispatch, exit codes) belongs to the binary
//! (src/main.rs, src/cli.rs, src/commands/), not to this library: no module
//! here can import it. docs/architecture.md lists what each layer may use. What is a valid
//! sysctl key, value or parameter is said once, in `valid`, and every layer asks there.

// Nor does the library print: it returns what it has to say and the command layer writes it.
// clippy.toml names std::io::stdout and stderr as disallowed methods.
#![deny(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro,
    clippy::disallowed_methods
)]

pub mod clock;
pub mod config;
pub mod diag;
pub mod error;
pub mod hint;
pub mod host;
pub mod input;
pub mod lab;
pub mod live;
pub mod output;
pub mod remedy;
pub mod report;
pub mod rules;
pub mod stop;
pub mod trace;
pub mod valid;
pub mod watch;
pub mod yaml;
