//! The typed label sets of the metric families, and what the caller gives to build them.
//!
//! A label set is a struct (`#[derive(EncodeLabelSet)]`), built only by the family's
//! [`Budget`](super::budget::Budget), so its free-text values are bounded where they are
//! made. Closed sets (direction, severity, exposure, verdict) are enums.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use serde::Serialize;

use crate::host::workload::Workload;
use crate::rules::{Exposure, Severity};

/// A bounded label's value: shared with the budget that admitted it, so a known value
/// costs no allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub(crate) Arc<str>);

impl Value {
    pub(crate) fn empty() -> Self {
        Value(Arc::from(""))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl EncodeLabelValue for Value {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, &self.0)
    }
}

macro_rules! str_label {
    ($t:ty) => {
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
                fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}

/// Which way a reset went, seen from this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// This host sent it.
    Sent,
    /// This host received it.
    Received,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}
str_label!(Direction);

/// What the live check says of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Resets of its kind were seen in the window.
    Confirmed,
    /// None seen in the window.
    NotSeen,
    /// This kernel or this window cannot tell.
    CannotCheck,
    /// The live check has not judged it yet (its first window is not over).
    Pending,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::NotSeen => "not_seen",
            Verdict::CannotCheck => "cannot_check",
            Verdict::Pending => "pending",
        }
    }
}
str_label!(Verdict);

/// A severity as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeverityLabel(pub Severity);

impl EncodeLabelValue for SeverityLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.0.as_str())
    }
}

/// An exposure as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExposureLabel(pub Exposure);

impl EncodeLabelValue for ExposureLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
        fmt::Write::write_str(encoder, self.0.as_str())
    }
}

/// One reset (or several of the same kind), as the live check tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reset<'a> {
    pub direction: Option<Direction>,
    /// The derived cause (`no-socket`, `linger-zero`, ...).
    pub cause: &'a str,
    /// The kernel's reason (`NOT_SPECIFIED`, `TCP_ABORT_ON_CLOSE`, ...), empty before 6.10.
    pub reason: &'a str,
    pub netns: &'a str,
    /// The container's name, or its short id; empty outside containers.
    pub container: &'a str,
    /// The systemd unit; empty when none.
    pub unit: &'a str,
    /// The owning process's name; empty when no owner is known.
    pub comm: &'a str,
}

impl<'a> Reset<'a> {
    /// The container and unit labels of a process's [`Workload`].
    pub fn owned_by(mut self, workload: &'a Workload) -> Self {
        self.container = workload.container.as_ref().map_or("", |c| c.label());
        self.unit = workload.unit.as_deref().unwrap_or("");
        self
    }
}

/// `rstaudit_resets_total`'s labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResetLabels {
    /// Empty when the capture could not tell.
    pub direction: Option<Direction>,
    pub cause: Value,
    pub reason: Value,
    pub netns: Value,
    pub container: Value,
    pub unit: Value,
    pub comm: Value,
}

impl ResetLabels {
    /// The bounded labels, in the order the family's budget admits them.
    pub(crate) const BOUNDED: [&'static str; 6] =
        ["cause", "reason", "netns", "container", "unit", "comm"];

    /// The same set with every bounded label `other`.
    pub(crate) fn folded(self, other: &Value) -> Self {
        ResetLabels {
            direction: self.direction,
            cause: other.clone(),
            reason: other.clone(),
            netns: other.clone(),
            container: other.clone(),
            unit: other.clone(),
            comm: other.clone(),
        }
    }
}

/// One row of the audit: findings of one rule with one exposure and verdict in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    pub netns: String,
    pub rule: String,
    pub severity: Severity,
    pub exposure: Exposure,
    pub verdict: Verdict,
    /// Findings of the row (socket findings count processes, as in the audit's textfile).
    pub count: u64,
}

/// `rstaudit_findings`' labels: the audit textfile's, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FindingLabels {
    pub netns: Value,
    pub rule: Value,
    pub severity: SeverityLabel,
    pub exposure: ExposureLabel,
    pub verdict: Verdict,
}

impl FindingLabels {
    pub(crate) const BOUNDED: [&'static str; 2] = ["netns", "rule"];

    pub(crate) fn folded(self, other: &Value) -> Self {
        FindingLabels {
            netns: other.clone(),
            rule: other.clone(),
            ..self
        }
    }
}

/// Why events were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The writer was behind and the queue full.
    QueueFull,
    /// The file could not be written (or opened).
    WriteFailed,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::WriteFailed => "write_failed",
        }
    }
}
str_label!(DropReason);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct DropLabels {
    pub(crate) reason: DropReason,
}

/// A bounded label of a family, for the metrics that report the budgets' use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BudgetLabels {
    pub(crate) family: &'static str,
    pub(crate) label: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct FamilyLabels {
    pub(crate) family: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub(crate) version: &'static str,
}
