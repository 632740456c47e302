//! What one host shows about each cause, for ranking: the findings of the cause's rules
//! (observed, exposed or latent), rules that were checked and passed, and the counters its
//! rules name as evidence. Built from an audit's outcome; reads nothing itself.

use std::collections::{BTreeMap, BTreeSet};

use super::fit::Reason;
use crate::host::Snapshot;
use crate::rules::finding::Exposure;
use crate::rules::{AuditOutcome, Rule};

/// Points a finding of one of the cause's rules gives, by exposure.
fn finding_points(e: Exposure) -> i64 {
    match e {
        Exposure::Observed => 8,
        Exposure::Exposed => 5,
        Exposure::Latent => 2,
    }
}

/// Points taken when every rule of the cause was checked here and found nothing.
pub const PASSED_POINTS: i64 = 3;
/// Points for an evidence counter that is above zero (at most [`MAX_COUNTERS`] counted).
pub const COUNTER_POINTS: i64 = 1;
const MAX_COUNTERS: usize = 2;

/// The facts of one host (every namespace audited) that rank causes.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    /// What the facts are: `this host`, `snapshot FILE`.
    pub label: String,
    /// rule -> the worst exposure of its findings.
    findings: BTreeMap<String, Exposure>,
    /// Rules checked and found nothing in every namespace.
    passed: BTreeSet<String>,
    /// Counter -> the largest value seen (the change over the window when there were two
    /// samples, else the total since boot), with whether it is a change.
    counters: BTreeMap<String, (u64, bool)>,
}

impl HostView {
    /// The view of `audits` (each namespace's snapshot and outcome).
    pub fn of(label: impl Into<String>, audits: &[(&Snapshot, &AuditOutcome)]) -> Self {
        let mut v = HostView {
            label: label.into(),
            ..Self::default()
        };
        let mut failed: BTreeSet<String> = BTreeSet::new();
        for (snap, out) in audits {
            for f in &out.findings {
                let worst = v.findings.entry(f.rule.clone()).or_insert(f.exposure);
                *worst = (*worst).max(f.exposure);
                failed.insert(f.rule.clone());
            }
            for s in &out.not_checked {
                failed.insert(s.rule.clone());
            }
            v.passed.extend(out.passed.iter().cloned());
            let (first, second) = (&snap.counters.first, &snap.counters.second);
            if let Some(first) = first {
                for (name, total) in &first.values {
                    let value = match second.as_ref().and_then(|s| s.values.get(name)) {
                        Some(later) => (later.saturating_sub(*total), true),
                        None => (*total, false),
                    };
                    let seen = v.counters.entry(name.clone()).or_insert(value);
                    if value.0 > seen.0 {
                        *seen = value;
                    }
                }
            }
        }
        v.passed.retain(|r| !failed.contains(r));
        v
    }

    /// Why the cause whose rules are `rules` ranks higher or lower on this host.
    pub fn judge(&self, rules: &[&Rule]) -> Vec<Reason> {
        let mut out = Vec::new();
        let mut found: Vec<(&str, Exposure)> = rules
            .iter()
            .filter_map(|r| self.findings.get(&r.id).map(|e| (r.id.as_str(), *e)))
            .collect();
        found.sort_by_key(|(_, e)| std::cmp::Reverse(*e));
        if let Some((rule, e)) = found.first() {
            out.push(Reason {
                points: finding_points(*e),
                text: format!("{}: rule {rule} fires ({})", self.label, e.as_str()),
            });
        } else if !rules.is_empty() && rules.iter().all(|r| self.passed.contains(&r.id)) {
            out.push(Reason {
                points: -PASSED_POINTS,
                text: format!(
                    "{}: its rules were checked and found nothing ({})",
                    self.label,
                    rules
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let mut counted: Vec<&str> = Vec::new();
        for r in rules {
            for c in &r.evidence_counters {
                // A counter that rises on any busy host says nothing about this cause.
                if counted.len() == MAX_COUNTERS
                    || counted.contains(&c.as_str())
                    || crate::rules::exposure::GENERIC_COUNTERS.contains(&c.as_str())
                {
                    continue;
                }
                if let Some((n, window)) = self.counters.get(c).filter(|(n, _)| *n > 0) {
                    counted.push(c);
                    out.push(Reason {
                        points: COUNTER_POINTS,
                        text: format!(
                            "{}: {c} {}",
                            self.label,
                            if *window {
                                format!("rose by {n} in the window")
                            } else {
                                format!("is {n} since boot")
                            }
                        ),
                    });
                }
            }
        }
        out
    }
}
