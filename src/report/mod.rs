//! Renderers: pure functions from findings (and other results) to bytes.
//! Nothing here reads the host.
//!
//! The audit report ([`AuditReport`]) is built once from the outcomes and
//! rendered by one function per format: [`table`], [`json`], [`yaml`],
//! [`junit`], [`prometheus`]. Its JSON form is documented in docs/audit-json.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::{Note, Snapshot};
use crate::rules::accept::WaiverStatus;
use crate::rules::{AuditOutcome, Exposure, Finding, Severity, Skipped, Threshold};

pub use counts::Counts;

pub mod apply;
pub mod counts;
pub mod escape;
pub mod fleet;
pub mod html;
pub mod junit;
pub mod lab;
pub mod packet_check;
pub mod prometheus;
pub mod rollback;
pub mod table;
pub mod term;
pub mod verify;

/// The version of the audit JSON. Bump on incompatible changes.
/// 2: findings carry `exposure` and `exposure_reason`; `fail_on` is `EXPOSURE:SEVERITY`.
/// 3: findings may carry `accepted`; the report has `waivers` (`audit --accept`).
/// 4: the report has `host` (hostname, machine id); `cause` is a cause's name.
pub const AUDIT_SCHEMA: u32 = 4;

/// Everything an audit found, for every namespace audited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditReport {
    /// Always [`AUDIT_SCHEMA`].
    pub schema: u32,
    /// `rstaudit 0.1.0`.
    pub tool: String,
    /// When the facts were collected (the earliest namespace's snapshot), milliseconds
    /// since the Unix epoch. Absent in audits written before it existed; `report` uses
    /// it to tell stale audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at_ms: Option<u64>,
    /// Which host the facts are of: hostname and machine id, as far as they were read
    /// (`report` counts each host once by them). Absent when no snapshot knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::host::identity::HostIdentity>,
    /// The --fail-on threshold, `EXPOSURE:SEVERITY` (`exposed:medium` by default), or
    /// `never` when disabled.
    pub fail_on: String,
    pub namespaces: Vec<NamespaceReport>,
    /// Every waiver of the accept file and what became of it (empty without `--accept`);
    /// an expired or unused one fails the audit unless `fail_on` is `never`.
    #[serde(default)]
    pub waivers: Vec<WaiverStatus>,
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
    /// Where the facts came from: `live`, `root:DIR`, `file:PATH (SOURCE)`.
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
    /// Every exposure (`latent`, `exposed`, `observed`), also those with no finding.
    pub by_exposure: BTreeMap<String, u64>,
    pub not_applicable: u64,
    pub not_checked: u64,
    pub passed: u64,
    /// Whether a finding is at or above the threshold, in both severity and exposure
    /// (exit code 1).
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
    pub fn new(audits: Vec<(&Snapshot, AuditOutcome)>, fail_on: Option<Threshold>) -> Self {
        let taken_at_ms = audits
            .iter()
            .map(|(snap, _)| snap.taken_at_ms)
            .filter(|&ms| ms > 0)
            .min();
        let host = audits
            .iter()
            .find_map(|(snap, _)| snap.host.clone())
            .filter(|h| !h.is_empty());
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
        let mut counts = Counts::new();
        let mut failed = false;
        for f in namespaces.iter().flat_map(|n| &n.findings) {
            counts.add(f.severity, f.exposure);
            failed |= f.accepted.is_none() && fail_on.is_some_and(|t| t.fails(f));
        }
        let count =
            |f: fn(&NamespaceReport) -> usize| namespaces.iter().map(f).sum::<usize>() as u64;
        let summary = Summary {
            findings: count(|n| n.findings.len()),
            by_severity: counts.by_severity,
            by_exposure: counts.by_exposure,
            not_applicable: count(|n| n.not_applicable.len()),
            not_checked: count(|n| n.not_checked.len()),
            passed: count(|n| n.passed.len()),
            failed,
        };
        Self {
            schema: AUDIT_SCHEMA,
            tool: format!("rstaudit {}", env!("CARGO_PKG_VERSION")),
            taken_at_ms,
            host,
            fail_on: fail_on.map_or_else(|| "never".to_string(), |t| t.as_text()),
            namespaces,
            waivers: Vec::new(),
            summary,
        }
    }

    /// Add what became of the accept file's waivers (`rules::accept::apply`, run on the
    /// findings before [`AuditReport::new`]): an expired or unused waiver fails the audit
    /// when there is a threshold at all.
    pub fn with_waivers(mut self, waivers: Vec<WaiverStatus>) -> Self {
        self.summary.failed |=
            self.fail_on != "never" && waivers.iter().any(|w| w.state.is_stale());
        self.waivers = waivers;
        self
    }

    /// The expired and unused waivers.
    pub fn stale_waivers(&self) -> impl Iterator<Item = &WaiverStatus> {
        self.waivers.iter().filter(|w| w.state.is_stale())
    }

    /// Whether a finding that is not accepted is at or above `fail_on`.
    pub fn findings_fail(&self) -> bool {
        Threshold::parse(&self.fail_on).is_ok_and(|t| {
            self.namespaces
                .iter()
                .flat_map(|n| &n.findings)
                .any(|f| f.accepted.is_none() && t.fails(f))
        })
    }

    /// Why the audit fails, in words (`exposed or observed findings at or above medium and
    /// 1 expired or unused waiver`); empty when it does not.
    pub fn failure_reasons(&self) -> String {
        let mut why = Vec::new();
        if self.findings_fail() {
            why.push(describe_threshold(&self.fail_on));
        }
        let stale = self.stale_waivers().count();
        if self.fail_on != "never" && stale > 0 {
            why.push(format!(
                "{stale} expired or unused waiver{}",
                if stale == 1 { "" } else { "s" }
            ));
        }
        if why.is_empty() {
            // Failed on what this report does not hold (built by hand): the threshold.
            return describe_threshold(&self.fail_on);
        }
        why.join(" and ")
    }

    /// How many findings a waiver accepts.
    pub fn accepted(&self) -> usize {
        self.namespaces
            .iter()
            .flat_map(|n| &n.findings)
            .filter(|f| f.accepted.is_some())
            .count()
    }
}

/// `exposed:medium` -> `exposed or observed findings at or above medium`.
pub fn describe_threshold(fail_on: &str) -> String {
    match Threshold::parse(fail_on) {
        Ok(t) => {
            let which = match t.exposure {
                Exposure::Latent => "findings of any exposure",
                Exposure::Exposed => "exposed or observed findings",
                Exposure::Observed => "observed findings",
            };
            format!("{which} at or above {}", t.severity.as_str())
        }
        Err(_) => format!("findings at or above {fail_on}"),
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
    crate::yaml::to_string(report)
        .expect("the report serialises")
        .into_bytes()
}
