//! The rule engine: load and validate rules (YAML data), evaluate them
//! against a [`crate::host::Snapshot`], produce [`Finding`]s.
//!
//! Nothing here touches /proc or prints: rules are data, the engine is a
//! pure function from (rules, parameters, snapshot) to findings.

pub mod finding;

pub use finding::{Evidence, Finding, FindingProcess, Fix, Severity, SysctlFix};
