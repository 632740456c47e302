//! The fleet report: many hosts' audit JSON files (docs/audit-json.md) in, one view of
//! the fleet out (docs/fleet.md). Pure: the command layer reads the files and passes
//! their bytes (or why they could not be read) with the time to judge staleness by;
//! nothing here touches the file system or the clock.
//!
//! An audit file is read leniently ([`read::parse`]): only the fields the fleet view
//! needs, unknown fields ignored, so audits written by newer versions of the same
//! schema still read. A file that cannot be used becomes a row of the `failed`
//! section, never an error of the whole report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::civil_from_days;
use crate::rules::{Exposure, Severity, Threshold};

pub mod build;
pub mod html;
pub mod prometheus;
pub mod read;
pub mod table;

pub use build::{FleetOptions, build};
pub use read::{HostAudit, HostInput, ReadError};

/// The version of the fleet report JSON. Bump on incompatible changes.
pub const FLEET_SCHEMA: u32 = 1;

/// The whole fleet: the JSON form of `rstaudit report --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetReport {
    /// Always [`FLEET_SCHEMA`].
    pub schema: u32,
    /// `rstaudit 0.1.0`.
    pub tool: String,
    /// When the report was made, milliseconds since the Unix epoch.
    pub generated_at_ms: u64,
    /// An audit older than this (seconds) is stale.
    pub max_age_seconds: u64,
    /// The threshold, `EXPOSURE:SEVERITY`, or `never`.
    pub fail_on: String,
    pub summary: FleetSummary,
    /// Every rule that fired on at least one host, the most common first.
    pub rules: Vec<RuleRow>,
    /// The sysctl changes the hosts' findings carry, the most common first.
    pub fixes: Vec<FleetFix>,
    /// Every host whose audit was read, the most at risk first.
    pub hosts: Vec<HostRow>,
    /// Files that could not be used, in the order given.
    pub failed: Vec<FailedHost>,
    /// Files counted once with another: the same file given twice (or directly and through
    /// its directory), or an older audit of a host another file has a newer audit of.
    #[serde(default)]
    pub duplicates: Vec<Duplicate>,
}

/// Totals over the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSummary {
    /// Files given (audited + failed).
    pub files: u64,
    /// Hosts whose audit was read.
    pub audited: u64,
    /// Files that could not be used.
    pub failed: u64,
    /// Files counted once with another (`duplicates`).
    #[serde(default)]
    pub duplicates: u64,
    /// Audited hosts whose audit is older than `max_age_seconds`, or has no time.
    pub stale: u64,
    /// Audited hosts with at least one finding.
    pub hosts_with_findings: u64,
    /// Audited hosts with a finding at or above `fail_on` (not accepted), or a waiver
    /// that expired or matches nothing.
    pub hosts_failing: u64,
    /// Findings over the fleet.
    pub findings: u64,
    /// Of those, accepted by a waiver (`audit --accept`).
    pub accepted: u64,
    /// Waivers that expired or match nothing, over the fleet.
    pub waiver_problems: u64,
    /// Every severity, also those with no finding.
    pub by_severity: BTreeMap<String, u64>,
    /// Every exposure, also those with no finding.
    pub by_exposure: BTreeMap<String, u64>,
    /// A finding somewhere is at or above `fail_on` (exit code 1).
    pub failing: bool,
}

/// One rule across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRow {
    pub rule: String,
    pub title: String,
    /// The highest severity it was reported with.
    pub severity: Severity,
    /// Hosts where it fired.
    pub hosts: u64,
    /// Hosts by the worst exposure it had there.
    pub by_exposure: BTreeMap<String, u64>,
    /// Hosts where it is at or above `fail_on` (and not accepted).
    pub hosts_failing: u64,
    /// Hosts where a waiver accepts every finding of it.
    pub hosts_accepted: u64,
    /// The sysctl changes that clear it, with the hosts that carry each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<FixCount>,
    /// The advice of the finding, when no sysctl fixes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// A sysctl value and how many hosts' findings ask for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixCount {
    pub key: String,
    pub value: String,
    pub hosts: u64,
}

/// A sysctl change across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFix {
    pub key: String,
    pub value: String,
    /// Hosts whose findings ask for this value.
    pub hosts: u64,
    /// The rules it clears (sorted).
    pub rules: Vec<String>,
}

/// One audited host: a row of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRow {
    /// The file name without `.json` (the Ansible role names it after the inventory host).
    pub host: String,
    /// The file it was read from.
    pub file: String,
    /// The host's hostname and machine id, as its audit says (audit schema 4 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    /// The audit's `taken_at_ms`, or the file's modification time (see `time_source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at_ms: Option<u64>,
    /// `audit` (the audit's own time stamp), `file` (the file's modification time: the
    /// audit has none) or `none`.
    pub time_source: String,
    /// Seconds between `taken_at_ms` and the report (negative: the audit is dated later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// Older than `max_age_seconds`, or of unknown age.
    pub stale: bool,
    /// `rstaudit 0.1.0`, as the audit says.
    pub tool: String,
    /// Kernel releases of the namespaces audited.
    pub kernels: Vec<String>,
    /// Namespaces audited.
    pub namespaces: Vec<String>,
    pub findings: u64,
    /// Findings accepted by a waiver.
    pub accepted: u64,
    /// Waivers that expired or match nothing: `expired: RULE (FILE:LINE)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiver_problems: Vec<String>,
    /// A finding not accepted is at or above `fail_on`, or a waiver expired or matches
    /// nothing (unless `fail_on` is `never`), as `audit` fails.
    pub failing: bool,
    /// The worst finding: exposure first, then severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst: Option<Cell>,
    /// Rule id -> the worst finding of that rule on this host.
    pub cells: BTreeMap<String, Cell>,
}

/// A cell of the matrix: what one rule found on one host (the worst over its namespaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub severity: Severity,
    pub exposure: Exposure,
    /// Findings of this rule on the host (one per namespace and process).
    pub findings: u64,
    /// A waiver accepts every finding of this rule on the host (else the cell is the
    /// worst finding not accepted).
    pub accepted: bool,
    /// What is at risk, from the worst finding's `exposure_reason`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Cell {
    /// Ordering key: not accepted first, then exposure, then severity.
    pub fn rank(&self) -> (bool, Exposure, Severity) {
        (!self.accepted, self.exposure, self.severity)
    }

    /// Not accepted, and at or above the threshold.
    pub fn fails(&self, t: Option<Threshold>) -> bool {
        !self.accepted
            && t.is_some_and(|t| self.severity >= t.severity && self.exposure >= t.exposure)
    }

    /// `exposed/high`.
    pub fn short(&self) -> String {
        format!("{}/{}", self.exposure.as_str(), self.severity.as_str())
    }
}

/// A file counted once with another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duplicate {
    pub host: String,
    pub file: String,
    /// The file that counts instead.
    pub same_as: String,
    /// `same file`, or `same host` (an older audit of the host `same_as` holds).
    pub reason: String,
}

/// A file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedHost {
    pub host: String,
    pub file: String,
    /// Why: unreadable, not JSON, not an audit, an unknown schema, an audit with nothing in it.
    pub reason: String,
}

/// The report as pretty JSON, with a final newline.
pub fn json(report: &FleetReport) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(report).expect("the report serialises");
    out.push(b'\n');
    out
}

/// `2026-12-01 01:05 UTC` from milliseconds since the epoch.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// `3 d 4 h`, `2 h 5 min`, `40 s`; `in the future` for a negative age.
pub fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "unknown".to_string(),
        Some(s) if s < 0 => format!("{} in the future", age(Some(-s))),
        Some(s) if s >= 86_400 => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
        Some(s) if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        Some(s) if s >= 60 => format!("{} min", s / 60),
        Some(s) => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(1_795_900_000_000), "2026-11-28 21:06 UTC");
    }

    #[test]
    fn ages() {
        assert_eq!(age(Some(40)), "40 s");
        assert_eq!(age(Some(3 * 86_400 + 7200)), "3 d 2 h");
        assert_eq!(age(Some(-120)), "2 min in the future");
        assert_eq!(age(None), "unknown");
    }
}
