//! The outputs of the always-on check (`rstaudit watch`): the metrics registry with bounded
//! cardinality ([`metrics`]), the scrape endpoint serving it and the health state
//! ([`http`], [`health`]), and the JSON-lines event stream ([`events`]).
//!
//! These are the parts that do not depend on where resets come from: the command wires them
//! to the live check and the periodic audit. This module may import `host` (the workload
//! labels, the process's own stats), `rules` (severities, exposures), `report` (the audit
//! report's types) and `stop`; it opens no /proc or /sys path itself, parses no flag,
//! prints nothing and installs no signal handler: the caller passes a
//! [`crate::stop::Stop`] and asks for a reopen of the event file.

pub mod check;
pub mod events;
pub mod health;
pub mod http;
pub mod metrics;
