//! Findings counted by severity and by exposure, as the audit's summary and the fleet's give
//! them: every severity and every exposure is present, zero when no finding has it.

use std::collections::BTreeMap;

use super::SEVERITIES;
use crate::rules::{Exposure, Severity};

/// The counts, keyed by the names the JSON uses (`critical`, ..., `latent`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub by_severity: BTreeMap<String, u64>,
    pub by_exposure: BTreeMap<String, u64>,
}

impl Counts {
    /// Every severity and exposure at zero.
    pub fn new() -> Self {
        Self {
            by_severity: SEVERITIES
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect(),
            by_exposure: Exposure::ALL
                .iter()
                .map(|e| (e.as_str().to_string(), 0))
                .collect(),
        }
    }

    /// Count one finding.
    pub fn add(&mut self, severity: Severity, exposure: Exposure) {
        *self
            .by_severity
            .entry(severity.as_str().to_string())
            .or_default() += 1;
        *self
            .by_exposure
            .entry(exposure.as_str().to_string())
            .or_default() += 1;
    }
}

impl Default for Counts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_present_and_counted_once() {
        let mut counts = Counts::new();
        assert_eq!(counts.by_severity.len(), SEVERITIES.len());
        assert_eq!(counts.by_exposure.len(), Exposure::ALL.len());
        assert!(
            counts
                .by_severity
                .values()
                .chain(counts.by_exposure.values())
                .all(|&n| n == 0)
        );
        counts.add(Severity::High, Exposure::Observed);
        counts.add(Severity::High, Exposure::Latent);
        assert_eq!(counts.by_severity["high"], 2);
        assert_eq!(counts.by_severity["low"], 0);
        assert_eq!(counts.by_exposure["observed"], 1);
        assert_eq!(counts.by_exposure["latent"], 1);
        assert_eq!(counts.by_exposure["exposed"], 0);
    }
}
