//! Waivers: an accept file (`audit --accept FILE`, docs/accept.md) names findings an
//! operator has accepted, each with a reason and an expiry date.
//!
//! Loading is two-step like rules and profiles ([`load`]): a serde type mirrors the file
//! (unknown keys rejected), then every entry is checked and every problem reported at once
//! as a [`crate::diag::Diagnostic`]. [`apply`] marks the findings a live waiver matches as
//! accepted and returns the state of every waiver, so one that expired or matches nothing
//! is reported rather than forgotten. Nothing here reads the clock: the caller passes the
//! date.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Finding;
use crate::diag::Diagnostic;

mod load;

pub use crate::clock::Date;
pub use load::{load, parse};

/// One checked waiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    pub rule: String,
    pub netns: Option<String>,
    /// The process name (comm) of a process or socket finding.
    pub process: Option<String>,
    /// A sysctl key the finding's fix changes.
    pub sysctl: Option<String>,
    pub reason: String,
    /// The last day (UTC) the waiver holds.
    pub expires: Date,
    /// `FILE:LINE` of the entry.
    pub at: String,
}

/// A loaded accept file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcceptFile {
    pub waivers: Vec<Waiver>,
}

/// Every problem found in an accept file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AcceptError {
    pub problems: Vec<Diagnostic>,
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::diag::fmt_problems(f, "the accept file", &self.problems)
    }
}

/// How a finding was accepted (`accepted` in the audit JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acceptance {
    pub reason: String,
    /// YYYY-MM-DD, the last day the waiver holds.
    pub expires: String,
    /// `FILE:LINE` of the waiver.
    pub waiver: String,
}

/// What became of one waiver in this audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaiverState {
    /// In force and matched at least one finding.
    Active,
    /// Past its expiry date: the findings it names count again.
    Expired,
    /// In force but matched no finding.
    Unused,
}

impl WaiverState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Unused => "unused",
        }
    }

    /// Expired or unused: reported, and fails an audit that has a `--fail-on` threshold.
    pub fn is_stale(self) -> bool {
        self != Self::Active
    }
}

/// One waiver and what it did (`waivers` in the audit JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaiverStatus {
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctl: Option<String>,
    pub reason: String,
    pub expires: String,
    /// `FILE:LINE` of the entry.
    pub waiver: String,
    pub state: WaiverState,
    /// Findings it matches (for an expired waiver: the findings it no longer accepts).
    pub matched: u64,
}

impl Waiver {
    /// Whether the waiver names this finding (expiry aside).
    pub fn matches(&self, f: &Finding) -> bool {
        f.rule == self.rule
            && self.netns.as_ref().is_none_or(|n| *n == f.netns)
            && self
                .process
                .as_ref()
                .is_none_or(|p| f.process.as_ref().is_some_and(|fp| fp.comm == *p))
            && self
                .sysctl
                .as_ref()
                .is_none_or(|k| f.fix.sysctls.iter().any(|s| s.key == *k))
    }
}

/// Mark every finding a waiver in force matches as accepted (the first matching waiver in
/// file order names it), and say what became of each waiver on `today`.
pub fn apply<'f>(
    file: &AcceptFile,
    findings: impl IntoIterator<Item = &'f mut Finding>,
    today: Date,
) -> Vec<WaiverStatus> {
    let mut matched = vec![0u64; file.waivers.len()];
    for f in findings {
        let mut first = None;
        for (i, w) in file.waivers.iter().enumerate() {
            if w.matches(f) {
                matched[i] += 1;
                if w.expires >= today && first.is_none() {
                    first = Some(w);
                }
            }
        }
        f.accepted = first.map(|w| Acceptance {
            reason: w.reason.clone(),
            expires: w.expires.to_string(),
            waiver: w.at.clone(),
        });
    }
    file.waivers
        .iter()
        .zip(matched)
        .map(|(w, n)| WaiverStatus {
            rule: w.rule.clone(),
            netns: w.netns.clone(),
            process: w.process.clone(),
            sysctl: w.sysctl.clone(),
            reason: w.reason.clone(),
            expires: w.expires.to_string(),
            waiver: w.at.clone(),
            state: if w.expires < today {
                WaiverState::Expired
            } else if n == 0 {
                WaiverState::Unused
            } else {
                WaiverState::Active
            },
            matched: n,
        })
        .collect()
}
