//! The audit of the check that never ends, on a thread of its own: every namespace every
//! `audit_every` (findings kept current: each audit replaces the last), a namespace as soon as
//! it is watched, and a namespace's socket table alone when a reset needs an owner the table
//! lacks. Each namespace's sockets are judged and indexed as they are read (the table itself
//! is not kept): the findings and the index go to the check, the duration and outcome to the
//! metrics and the health.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::host::workload::Workloads;
use crate::host::{CollectOptions, OwnerScan, Snapshot, Socket, SocketSink, Source};
use crate::live::attribute::IndexBuilder;
use crate::rules::eval::Fold;
use crate::rules::{Finding, RuleSet, Selection};
use crate::stop::Stop;
use crate::watch::health::Health;
use crate::watch::metrics::Metrics;

/// What the audit runs: the rules and the selection (profile parameters, `--set`, `--only`,
/// `--skip`), replaced as a whole when the command reloads them.
#[derive(Debug)]
pub struct AuditSetup {
    pub rules: RuleSet,
    pub selection: Selection,
}

/// What the check asks of the audit thread.
pub enum AuditCmd {
    /// Audit this namespace now (it is new), by a path that names it.
    One { inode: u64, path: PathBuf },
    /// Read this namespace's socket table again (a reset needed an owner it lacked).
    Refresh { inode: u64, path: PathBuf },
    /// Audit with these rules from now on (and now).
    Setup(Arc<AuditSetup>),
}

/// One namespace audited.
pub struct Audited {
    pub inode: u64,
    pub findings: Vec<Finding>,
    pub index: IndexBuilder,
    /// What the collector could not read about its sockets, owners and options.
    pub notes: Vec<String>,
}

/// What the audit thread tells the check.
pub enum AuditMsg {
    /// The findings and socket table of a namespace.
    Audited(Box<Audited>),
    /// A namespace's socket table, read again on demand, and how long that took.
    Refreshed {
        inode: u64,
        index: IndexBuilder,
        took: Duration,
    },
    /// Could not be done; said once per problem by the check.
    Failed(String),
}

/// The audit's sink: every socket judged by the rules and indexed for the owners of resets.
struct Sink<'r> {
    fold: Fold<'r>,
    index: IndexBuilder,
}

impl SocketSink for Sink<'_> {
    fn socket(&mut self, socket: Socket) {
        self.index.add(&socket);
        self.fold.socket(socket);
    }

    fn restart(&mut self) {
        self.index.restart();
        self.fold.restart();
    }
}

/// Everything the thread needs.
pub struct AuditThread {
    pub setup: Arc<AuditSetup>,
    pub every: Duration,
    pub commands: Receiver<AuditCmd>,
    pub tx: Sender<AuditMsg>,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    pub workloads: Arc<Mutex<Workloads>>,
    pub stop: Stop,
}

fn options(netns: String) -> CollectOptions {
    CollectOptions {
        source: Source::Live,
        netns: Some(netns),
        interval: None,
        owners: true,
        options: true,
        scan: OwnerScan::Auto,
    }
}

/// The socket, owner and option notes of a snapshot, as lines.
fn socket_notes(snap: &Snapshot) -> Vec<String> {
    snap.notes
        .iter()
        .filter(|n| matches!(n.area.as_str(), "sockets" | "owners" | "options"))
        .map(|n| format!("audit of {}: {}", snap.netns.name, n.message))
        .collect()
}

/// Why an audit of the watch failed (the next one is tried on schedule).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Plan(#[from] crate::rules::PlanError),
    #[error(transparent)]
    Collect(#[from] crate::host::CollectError),
}

impl AuditThread {
    /// Audit every `every` and as asked, until the stop token or the check is gone.
    pub fn run(mut self) {
        let mut next = Instant::now();
        let mut failing_since: Option<Instant> = None;
        loop {
            if self.stop.is_stopped() {
                return;
            }
            let wait = next.saturating_duration_since(Instant::now());
            match self
                .commands
                .recv_timeout(wait.min(Duration::from_millis(200)))
            {
                Ok(AuditCmd::Setup(setup)) => {
                    self.setup = setup;
                    next = Instant::now();
                }
                Ok(AuditCmd::One { inode, path }) => {
                    let target = path.display().to_string();
                    if let Err(e) = self.audit(&target, Some(inode)) {
                        self.failed(format!(
                            "audit of namespace {target}: {}",
                            crate::error::chain(&e)
                        ));
                    }
                }
                Ok(AuditCmd::Refresh { inode, path }) => self.refresh(inode, path),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() < next || self.stop.is_stopped() {
                continue;
            }
            let began = Instant::now();
            match self.audit("all", None) {
                Ok(()) => {
                    failing_since = None;
                    self.metrics
                        .audit_succeeded(began.elapsed(), crate::clock::now_ms() as f64 / 1000.0);
                    self.health.ok("audit");
                }
                Err(e) => {
                    self.metrics.audit_failed(began.elapsed());
                    let since = *failing_since.get_or_insert(began);
                    let msg = format!("the audit failed: {}", crate::error::chain(&e));
                    self.health.failing(
                        "audit",
                        format!("{msg} (failing for {} s)", since.elapsed().as_secs()),
                    );
                    self.failed(msg);
                }
            }
            next = began + self.every;
        }
    }

    fn failed(&self, msg: String) {
        let _ = self.tx.send(AuditMsg::Failed(msg));
    }

    /// Audit `netns` (`all`, or a path): each namespace's findings, labelled, and its index.
    /// `only`: the inode the path must have.
    fn audit(&self, netns: &str, only: Option<u64>) -> Result<(), AuditError> {
        let setup = self.setup.clone();
        let plan = setup.selection.plan(&setup.rules)?;
        let collected = crate::host::collect_into(&options(netns.to_string()), &mut |h| Sink {
            fold: Fold::new(&plan.rules, &plan.params, h),
            index: IndexBuilder::new(h.taken_at_ms),
        })?;
        for (snap, sink) in collected {
            let Some(inode) = snap.netns.inode else {
                continue;
            };
            if only.is_some_and(|i| i != inode) {
                continue;
            }
            let mut findings = sink.fold.finish(&snap).findings;
            {
                let mut workloads = self
                    .workloads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for p in findings.iter_mut().filter_map(|f| f.process.as_mut()) {
                    p.workload = workloads.labels(p.pid).map(|w| (*w).clone());
                }
            }
            let audited = Audited {
                inode,
                findings,
                index: sink.index,
                notes: socket_notes(&snap),
            };
            if self.tx.send(AuditMsg::Audited(Box::new(audited))).is_err() {
                break;
            }
        }
        Ok(())
    }

    fn refresh(&self, inode: u64, path: PathBuf) {
        let began = Instant::now();
        let target = path.display().to_string();
        let read = crate::host::collect_into(&options(target.clone()), &mut |h| {
            IndexBuilder::new(h.taken_at_ms)
        });
        match read {
            Ok(mut list) => {
                let Some((snap, index)) = list.pop() else {
                    return;
                };
                if snap.netns.inode == Some(inode) {
                    let _ = self.tx.send(AuditMsg::Refreshed {
                        inode,
                        index,
                        took: began.elapsed(),
                    });
                }
            }
            Err(e) => self.failed(format!(
                "reading the socket table of namespace {target} again: {e:#}"
            )),
        }
    }
}
