//! rstaudit: find why Linux connections get reset, and fix it.
//!
//! Data flows one way: `host` (collectors) -> [`host::Snapshot`] -> `rules`
//! (engine) -> [`rules::Finding`]s -> `report` (renderers) or `remedy`
//! (fixes, profiles, apply). `packet` confirms findings with real or
//! reproduced resets. Nothing in `rules` or `report` touches /proc; nothing
//! in `host` knows about rules.

pub mod cli;
pub mod commands;
pub mod host;
pub mod input;
pub mod output;
pub mod packet;
pub mod remedy;
pub mod report;
pub mod rules;
