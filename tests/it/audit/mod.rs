//! `rstaudit audit`: formats, exit codes and thresholds, exposure, waivers, the config file,
//! and the audit of a namespace the tests create.

mod accept;
mod cli;
mod config;
mod exposure;
mod netns;
mod report;
