//! Renderers: pure functions from findings (and other results) to bytes.
//! Nothing here reads the host.
//!
//! The audit report ([`AuditReport`]) is built once from the outcomes and
//! rendered by one function per format: [`table`], [`json`], [`yaml`],
//! [`junit`], [`prometheus`]. Its JSON form is documented in docs/audit-json.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::{Note, Snapshot};
use crate::rules::{AuditOutcome, Finding, Severity, Skipped};

pub mod html;
pub mod junit;
pub mod packet_check;
pub mod prometheus;
pub mod table;

/// The version of the audit JSON. Bump on incompatible changes.
pub const AUDIT_SCHEMA: u32 = 1;

/// Everything an audit found, for every namespace audited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditReport {
    /// Always [`AUDIT_SCHEMA`].
    pub schema: u32,
    /// `rstaudit 0.1.0`.
    pub tool: String,
    /// The --fail-on threshold (`never` when disabled).
    pub fail_on: String,
    pub namespaces: Vec<NamespaceReport>,
    pub summary: Summary,
}

/// The audit of one network namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceReport {
    pub netns: String,
    /// The kernel release, and its real version when the release hides it
    /// (`6.1.0-57-cloud-amd64 (6.1.192)`).
    pub kernel: String,
    /// Where the facts came from: `live`, `root:DIR`, `file:PATH`.
    pub source: String,
    /// `since_boot` (one counter sample) or `window` (two samples).
    pub counters: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
    pub findings: Vec<Finding>,
    pub not_applicable: Vec<Skipped>,
    pub not_checked: Vec<Skipped>,
    pub passed: Vec<String>,
    /// What the collectors could not read, and why.
    pub notes: Vec<Note>,
}

/// Totals over every namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub findings: u64,
    /// Every severity, also those with no finding.
    pub by_severity: BTreeMap<String, u64>,
    pub not_applicable: u64,
    pub not_checked: u64,
    pub passed: u64,
    /// Whether a finding is at or above the threshold (exit code 1).
    pub failed: bool,
}

pub const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

impl AuditReport {
    /// Build the report. `fail_on` = None means never fail.
    pub fn new(audits: Vec<(&Snapshot, AuditOutcome)>, fail_on: Option<Severity>) -> Self {
        let namespaces: Vec<NamespaceReport> = audits
            .into_iter()
            .map(|(snap, out)| {
                let window = snap.counter_window();
                NamespaceReport {
                    netns: out.netns,
                    kernel: snap.kernel.describe(),
                    source: snap.source.clone(),
                    counters: if window.is_some() {
                        "window"
                    } else {
                        "since_boot"
                    }
                    .to_string(),
                    window_seconds: window,
                    findings: out.findings,
                    not_applicable: out.not_applicable,
                    not_checked: out.not_checked,
                    passed: out.passed,
                    notes: snap.notes.clone(),
                }
            })
            .collect();
        let mut by_severity: BTreeMap<String, u64> = SEVERITIES
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        let mut failed = false;
        for f in namespaces.iter().flat_map(|n| &n.findings) {
            *by_severity
                .entry(f.severity.as_str().to_string())
                .or_default() += 1;
            failed |= fail_on.is_some_and(|t| f.severity >= t);
        }
        let count =
            |f: fn(&NamespaceReport) -> usize| namespaces.iter().map(f).sum::<usize>() as u64;
        let summary = Summary {
            findings: count(|n| n.findings.len()),
            by_severity,
            not_applicable: count(|n| n.not_applicable.len()),
            not_checked: count(|n| n.not_checked.len()),
            passed: count(|n| n.passed.len()),
            failed,
        };
        Self {
            schema: AUDIT_SCHEMA,
            tool: format!("rstaudit {}", env!("CARGO_PKG_VERSION")),
            fail_on: fail_on.map_or("never", Severity::as_str).to_string(),
            namespaces,
            summary,
        }
    }
}

/// The report as pretty JSON (docs/audit-json.md), with a final newline.
pub fn json(report: &AuditReport) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(report).expect("the report serialises");
    out.push(b'\n');
    out
}

/// The report as YAML (the same structure as the JSON).
pub fn yaml(report: &AuditReport) -> Vec<u8> {
    serde_yaml::to_string(report)
        .expect("the report serialises")
        .into_bytes()
}
