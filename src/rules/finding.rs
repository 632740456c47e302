//! What the engine produces: findings, with evidence and fixes.
//!
//! These types are the contract between the engine, the reporters, the
//! remedy layer and the packet check. They serialise to the audit JSON
//! (docs/audit-json.md).

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// What is at risk, in increasing order: `Latent < Exposed < Observed`.
///
/// - `latent`: a setting that would matter, but nothing in the snapshot
///   depends on it now (or it could not be told: the reason says so);
/// - `exposed`: sockets, listeners, processes or tracked flows are at risk
///   now (named in the finding);
/// - `observed`: a counter in the rule's own condition rose in the
///   `--interval` window: it is happening.
///
/// How each finding is graded: docs/audit-json.md.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    #[default]
    Latent,
    Exposed,
    Observed,
}

impl Exposure {
    pub const ALL: [Exposure; 3] = [Self::Observed, Self::Exposed, Self::Latent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latent => "latent",
            Self::Exposed => "exposed",
            Self::Observed => "observed",
        }
    }

    /// `latent`, `exposed` or `observed`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Info,
    ];

    /// `info` ... `critical`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Why a threshold (`--fail-on`, `fail_on:`) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("{0:?} is not an exposure (latent, exposed, observed)")]
    Exposure(String),
    #[error("{0:?} is not a severity (info, low, medium, high, critical)")]
    Severity(String),
}

/// When an audit fails: findings at or above both a severity and an exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub severity: Severity,
    pub exposure: Exposure,
}

impl Default for Threshold {
    /// Exposed or observed findings of medium or more; latent ones never fail.
    fn default() -> Self {
        Self {
            severity: Severity::Medium,
            exposure: Exposure::Exposed,
        }
    }
}

impl Threshold {
    /// Whether `f` is at or above the threshold.
    pub fn fails(&self, f: &Finding) -> bool {
        f.severity >= self.severity && f.exposure >= self.exposure
    }

    /// `SEVERITY` (exposed and observed findings) or `EXPOSURE:SEVERITY`, e.g.
    /// `medium`, `latent:medium`, `observed:low`.
    pub fn parse(s: &str) -> Result<Self, ThresholdError> {
        let (exposure, severity) = match s.split_once(':') {
            Some((e, sev)) => (
                Exposure::parse(e).ok_or_else(|| ThresholdError::Exposure(e.to_string()))?,
                sev,
            ),
            None => (Exposure::Exposed, s),
        };
        let severity = Severity::parse(severity)
            .ok_or_else(|| ThresholdError::Severity(severity.to_string()))?;
        Ok(Self { severity, exposure })
    }

    /// The canonical text: `exposed:medium`.
    pub fn as_text(&self) -> String {
        format!("{}:{}", self.exposure.as_str(), self.severity.as_str())
    }
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The stable id of the rule that fired, e.g. `linger-zero`.
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    /// What is at risk: `latent`, `exposed` or `observed` ([`Exposure`]).
    #[serde(default)]
    pub exposure: Exposure,
    /// Why this exposure, naming what is at risk (`3 sockets with SO_KEEPALIVE use
    /// this default: sshd (pid 812) 2, ...`) or what could not be told.
    #[serde(default)]
    pub exposure_reason: String,
    /// The cause it belongs to, by name (docs/causes.md), e.g. `linger-zero`.
    pub cause: String,
    /// `host`, `listener`, `socket` or `process`.
    pub subject: String,
    /// The network namespace, by friendly name.
    pub netns: String,
    /// One line saying what was found, with the numbers.
    pub message: String,
    /// For per-process findings: the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<FindingProcess>,
    /// For socket findings: how many sockets matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// A few examples (`10.0.0.5:443 -> 10.0.0.9:51234 ESTABLISHED`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    pub evidence: Evidence,
    pub fix: Fix,
    /// The lab scenario that reproduces it (`packet-check --lab`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// What limits the finding: counters read once (totals since boot), sockets that
    /// could not be judged, a fix value that could not be computed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set when a waiver of the accept file (`audit --accept`) covers the finding: it is
    /// still shown, and does not count against `--fail-on` (docs/accept.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<super::accept::Acceptance>,
}

/// A process a finding points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingProcess {
    pub pid: u32,
    pub comm: String,
    /// Its systemd unit, container and pod, from its cgroup (the audit of a live host, when
    /// the process has any of them; docs/watch.md, "Containers and services").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<crate::host::workload::Workload>,
}

/// What would confirm a finding, and what was seen already.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Counters named by the rule, with their value and change when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<CounterEvidence>,
    /// Kernel RST reasons (`sk_rst_reason` names) a reset of this kind carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rst_reasons: Vec<String>,
}

/// A counter's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterEvidence {
    /// `TcpExt.ListenOverflows`.
    pub name: String,
    /// Total since boot (or namespace creation), when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Change over the sampling window, when two samples were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<u64>,
    /// The window, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<f64>,
}

/// How to fix a finding.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fix {
    /// Sysctl changes, when a sysctl can fix it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<SysctlFix>,
    /// Advice for the application or the operator, when no sysctl can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

/// One sysctl change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlFix {
    pub key: String,
    /// The recommended value (parameters already substituted; keys that interact are
    /// chosen together across findings: docs/remediation.md).
    pub value: String,
    /// The value it replaces, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
}
