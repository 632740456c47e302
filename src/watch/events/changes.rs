//! The `finding` events of one audit: what appeared, changed or cleared since the last.
//!
//! A finding is known by its namespace, rule and process (for a finding about one process);
//! it changed when its exposure, verdict or message did.

use super::schema::{Change, FindingEvent};
use crate::rules::{Exposure, Finding, Severity};
use crate::watch::metrics::Verdict;

/// What the events compare of a finding; keep the last audit's to compare with the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub netns: String,
    pub rule: String,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub severity: Severity,
    pub exposure: Exposure,
    pub verdict: Verdict,
    pub message: String,
    pub workload: Option<Box<crate::host::workload::Workload>>,
}

impl Seen {
    pub fn of(f: &Finding, verdict: Verdict) -> Seen {
        Seen {
            netns: f.netns.clone(),
            rule: f.rule.clone(),
            pid: f.process.as_ref().map(|p| p.pid),
            comm: f.process.as_ref().map(|p| p.comm.clone()),
            severity: f.severity,
            exposure: f.exposure,
            verdict,
            message: f.message.clone(),
            workload: f
                .process
                .as_ref()
                .and_then(|p| p.workload.clone())
                .map(Box::new),
        }
    }

    fn same_finding(&self, other: &Seen) -> bool {
        self.netns == other.netns && self.rule == other.rule && self.pid == other.pid
    }

    fn event(&self, change: Change, time_ms: u64) -> FindingEvent {
        FindingEvent {
            time_ms,
            change,
            netns: self.netns.clone(),
            rule: self.rule.clone(),
            severity: self.severity,
            exposure: self.exposure,
            verdict: self.verdict,
            message: (change != Change::Cleared).then(|| self.message.clone()),
            pid: self.pid,
            comm: self.comm.clone(),
            workload: self.workload.clone(),
        }
    }
}

/// The events from `before` (the last audit) to `now`: appeared and changed in `now`'s
/// order, then cleared in `before`'s.
pub fn changes(before: &[Seen], now: &[Seen], time_ms: u64) -> Vec<FindingEvent> {
    let mut out = Vec::new();
    for n in now {
        match before.iter().find(|b| b.same_finding(n)) {
            None => out.push(n.event(Change::Appeared, time_ms)),
            Some(b)
                if (b.exposure, b.verdict, &b.message) != (n.exposure, n.verdict, &n.message) =>
            {
                out.push(n.event(Change::Changed, time_ms))
            }
            Some(_) => {}
        }
    }
    for b in before {
        if !now.iter().any(|n| n.same_finding(b)) {
            out.push(b.event(Change::Cleared, time_ms));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(rule: &str, pid: Option<u32>, verdict: Verdict) -> Seen {
        Seen {
            netns: "host".into(),
            rule: rule.into(),
            pid,
            comm: pid.map(|_| "nginx".into()),
            severity: Severity::High,
            exposure: Exposure::Exposed,
            verdict,
            message: "nginx (pid 812): 3 sockets with SO_LINGER 0".into(),
            workload: None,
        }
    }

    #[test]
    fn appeared_changed_and_cleared() {
        let before = [
            seen("linger-zero", Some(812), Verdict::NotSeen),
            seen("linger-zero", Some(900), Verdict::NotSeen),
            seen("syn-backlog", None, Verdict::Pending),
        ];
        let now = [
            seen("linger-zero", Some(812), Verdict::Confirmed),
            seen("syn-backlog", None, Verdict::Pending),
            seen("tw-reuse", None, Verdict::CannotCheck),
        ];
        let events = changes(&before, &now, 7);
        let got: Vec<(Change, &str, Option<u32>, bool)> = events
            .iter()
            .map(|e| (e.change, e.rule.as_str(), e.pid, e.message.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                (Change::Changed, "linger-zero", Some(812), true),
                (Change::Appeared, "tw-reuse", None, true),
                (Change::Cleared, "linger-zero", Some(900), false),
            ]
        );
        assert!(changes(&now, &now, 8).is_empty());
    }
}
