//! The socket-table refresh thread: the host snapshot (sockets, owners, options) and the audit
//! findings behind the verdicts, once a second.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::attribute::SocketIndex;
use crate::host::{CollectOptions, Source};
use crate::rules::{Finding, Selection};

/// Shared with the snapshot thread.
#[derive(Default)]
pub(super) struct Shared {
    pub index: SocketIndex,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    pub audit_error: Option<String>,
}

pub(super) fn snapshot_loop(
    netns: Option<String>,
    rules: Option<PathBuf>,
    params: Vec<(String, String)>,
    shared: Arc<Mutex<Shared>>,
    done: Arc<AtomicBool>,
) {
    let opts = CollectOptions {
        source: Source::Live,
        netns,
        interval: None,
        owners: true,
        options: true,
    };
    let selection = Selection {
        extra_dir: rules,
        params,
        ..Default::default()
    };
    let mut first = true;
    while !done.load(Ordering::SeqCst) {
        let began = Instant::now();
        match crate::host::collect(&opts) {
            Ok(snaps) => {
                let Some(snap) = snaps.into_iter().next() else {
                    break;
                };
                let audit = crate::rules::run(&selection, &snap);
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
                    Ok(outcome) => {
                        for f in outcome.findings {
                            let pid = f.process.as_ref().map(|p| p.pid);
                            if !sh.findings.iter().any(|g| {
                                g.rule == f.rule && g.process.as_ref().map(|p| p.pid) == pid
                            }) {
                                sh.findings.push(f);
                            }
                        }
                    }
                    Err(e) => {
                        if sh.audit_error.is_none() {
                            sh.audit_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            Err(e) => {
                let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
                sh.notes.push(format!(
                    "the socket table could not be read ({e:#}): owners come from the kernel trace only"
                ));
                break;
            }
        }
        first = false;
        // One refresh a second at most; a slow host refreshes as fast as it can.
        while began.elapsed() < Duration::from_secs(1) && !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
