//! The socket-table refresh thread: the host snapshot (sockets, owners, options) and the audit
//! findings behind the verdicts, once a second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::attribute::SocketIndex;
use super::error::RefreshError;
use crate::host::Snapshot;
use crate::rules::{Finding, PlanError};

/// What the command gives the live check to re-read the watched namespace once a second: its
/// snapshot (sockets, owners, options) and the audit of it, with rules the command loaded
/// once. The outer error means the socket table could not be read; the inner one that the
/// audit could not run.
pub type Refresh =
    Box<dyn FnMut() -> Result<(Snapshot, Result<Vec<Finding>, PlanError>), RefreshError> + Send>;

/// Shared with the snapshot thread.
#[derive(Default)]
pub(super) struct Shared {
    pub index: SocketIndex,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    pub audit_error: Option<String>,
}

pub(super) fn snapshot_loop(
    mut refresh: Refresh,
    shared: Arc<Mutex<Shared>>,
    done: Arc<AtomicBool>,
) {
    let mut first = true;
    while !done.load(Ordering::SeqCst) {
        let began = Instant::now();
        match refresh() {
            Ok((snap, audit)) => {
                let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                sh.index.update(&snap);
                if first {
                    for n in snap
                        .notes
                        .iter()
                        .filter(|n| matches!(n.area.as_str(), "sockets" | "owners" | "options"))
                    {
                        sh.notes.push(format!("snapshot: {}", n.message));
                    }
                }
                match audit {
                    Ok(findings) => merge_findings(&mut sh.findings, findings),
                    Err(e) => {
                        if sh.audit_error.is_none() {
                            sh.audit_error = Some(crate::error::chain(&e));
                        }
                    }
                }
            }
            Err(e) => {
                let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                sh.notes.push(format!(
                    "the socket table could not be read ({}): owners come from the kernel trace only",
                    crate::error::chain(&e)
                ));
                break;
            }
        }
        first = false;
        // One refresh a second at most, and on a host whose refresh is slow (a socket table of
        // 100,000 entries and their owners) no more than a tenth of the time spent refreshing.
        let pause = refresh_pause(began.elapsed());
        while began.elapsed() < pause && !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How long a refresh that took `took` waits before the next one starts (counted from its start).
pub(super) fn refresh_pause(took: Duration) -> Duration {
    (took * 10).max(Duration::from_secs(1))
}

/// Take in the findings of one more audit, keeping one row per finding over the window.
///
/// A finding is (rule, process). A rule found without a process in one audit and with one in
/// another is the same finding whose owner was not known yet (or no longer): the rows with a
/// process stand, the process-less row of an earlier audit is dropped, and a later
/// process-less one is not added. Rows are never removed otherwise, so the list only grows.
pub(super) fn merge_findings(rows: &mut Vec<Finding>, audit: Vec<Finding>) {
    let pid = |f: &Finding| f.process.as_ref().map(|p| p.pid);
    let before = rows.len();
    for f in audit {
        if pid(&f).is_some() {
            let mut i = 0;
            rows.retain(|g| {
                i += 1;
                !(i <= before && g.rule == f.rule && g.process.is_none())
            });
        } else if rows.iter().any(|g| g.rule == f.rule && g.process.is_some()) {
            continue;
        }
        if !rows.iter().any(|g| g.rule == f.rule && pid(g) == pid(&f)) {
            rows.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_refreshes_take_a_tenth_of_the_time_at_most() {
        assert_eq!(
            refresh_pause(Duration::from_millis(20)),
            Duration::from_secs(1)
        );
        assert_eq!(
            refresh_pause(Duration::from_millis(400)),
            Duration::from_secs(4)
        );
    }

    fn finding(rule: &str, pid: Option<u32>) -> Finding {
        let mut v = serde_json::json!({
            "rule": rule, "title": rule, "severity": "medium", "cause": "2",
            "subject": "listener", "netns": "x", "message": "",
            "evidence": {}, "fix": {}
        });
        if let Some(pid) = pid {
            v["process"] = serde_json::json!({ "pid": pid, "comm": "nginx" });
        }
        serde_json::from_value(v).unwrap()
    }

    fn rows(list: &[Finding]) -> Vec<(String, Option<u32>)> {
        list.iter()
            .map(|f| (f.rule.clone(), f.process.as_ref().map(|p| p.pid)))
            .collect()
    }

    #[test]
    fn one_row_per_finding_while_the_audit_changes() {
        // Regression: `listen-overflows` (no process) from the first audit stood next to
        // `listen-overflows (nginx pid 7)` from a later one, with opposite verdicts.
        let mut list = Vec::new();
        merge_findings(&mut list, vec![finding("listen-overflows", None)]);
        merge_findings(
            &mut list,
            vec![
                finding("listen-overflows", Some(7)),
                finding("somaxconn-low", None),
            ],
        );
        merge_findings(
            &mut list,
            vec![
                finding("listen-overflows", None),
                finding("somaxconn-low", None),
            ],
        );
        merge_findings(&mut list, vec![finding("listen-overflows", Some(8))]);
        assert_eq!(
            rows(&list),
            [
                ("listen-overflows".to_string(), Some(7)),
                ("somaxconn-low".to_string(), None),
                ("listen-overflows".to_string(), Some(8)),
            ]
        );
    }
}
