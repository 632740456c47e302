//! The socket pass as a fold: sockets are judged one at a time as they are read, so the
//! audit never needs the table (host::collect_into streams it).
//!
//! Everything a socket is judged against (sysctls, counters, parameters) is known before
//! the first socket; what is known only after the last (the table's statistics, the notes
//! on owners and options) decides at the end which of the counts are used. A rule whose
//! socket condition reads a statistic of the whole table (`stat:`) cannot be judged before
//! the table ends: then the sockets are kept and judged at the end.

use super::*;
use crate::host::SocketSink;

/// What the whole table showed, counted as it went by: its statistics, and whether any
/// socket had options, an owner or tcp_info.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen {
    sockets: u64,
    listeners: u64,
    established: u64,
    time_wait: u64,
    close_wait: u64,
    orphans: u64,
    max_backlog: u32,
    pub(super) any_options: bool,
    pub(super) any_owner: bool,
    pub(super) any_info: bool,
}

impl Seen {
    fn push(&mut self, s: &Socket) {
        self.sockets += 1;
        match s.state {
            TcpState::Listen => {
                self.listeners += 1;
                self.max_backlog = self.max_backlog.max(s.backlog.unwrap_or(0));
            }
            TcpState::Established => self.established += 1,
            TcpState::TimeWait => self.time_wait += 1,
            TcpState::CloseWait => self.close_wait += 1,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
                if s.inode == 0 =>
            {
                self.orphans += 1
            }
            _ => {}
        }
        self.any_options |= s.options.is_some();
        self.any_owner |= s.owner.is_some();
        self.any_info |= s.tcp_info.is_some();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.sockets == 0
    }

    pub(super) fn stats(&self) -> HashMap<Stat, f64> {
        HashMap::from([
            (Stat::Sockets, self.sockets as f64),
            (Stat::Listeners, self.listeners as f64),
            (Stat::Established, self.established as f64),
            (Stat::TimeWait, self.time_wait as f64),
            (Stat::CloseWait, self.close_wait as f64),
            (Stat::Orphans, self.orphans as f64),
            (Stat::MaxListenerBacklog, f64::from(self.max_backlog)),
        ])
    }
}

/// The audit of one namespace, given its sockets one at a time ([`SocketSink`]) and
/// finished with the namespace's final snapshot ([`Fold::finish`]).
pub struct Fold<'r> {
    rules: &'r [&'r Rule],
    overrides: &'r BTreeMap<String, f64>,
    seen: Seen,
    pass: Pass<'r>,
}

enum Pass<'r> {
    /// Judged as they come: a job per rule that may look at sockets (by rule index), and
    /// the sockets at risk for grading.
    Now {
        jobs: Vec<Option<Job<'r>>>,
        risks: super::super::exposure::Risks,
    },
    /// Kept until the table's statistics are known (a socket condition reads one).
    Later(Vec<Socket>),
}

impl<'r> Fold<'r> {
    /// Start the audit of the namespace `header` describes: its kernel, sysctls and
    /// counters are final, its sockets still to come.
    pub fn new(
        rules: &'r [&'r Rule],
        overrides: &'r BTreeMap<String, f64>,
        header: &Snapshot,
    ) -> Self {
        let later = rules
            .iter()
            .any(|r| uses(socket_cond(r), &|e| matches!(e, Expr::Stat(_))));
        let pass = if later {
            Pass::Later(Vec::new())
        } else {
            let ctx = HostCtx::new(header, None);
            Pass::Now {
                jobs: rules.iter().map(|r| job_for(&ctx, r, overrides)).collect(),
                risks: super::super::exposure::Risks::new(rules, header),
            }
        };
        Self {
            rules,
            overrides,
            seen: Seen::default(),
            pass,
        }
    }

    /// Judge the sockets of a table the caller keeps.
    pub(super) fn judge_all(&mut self, sockets: &[Socket]) {
        match &mut self.pass {
            Pass::Now { jobs, risks } => {
                for s in sockets {
                    self.seen.push(s);
                    judge(jobs, risks, s);
                }
            }
            Pass::Later(kept) => kept.extend(sockets.iter().cloned()),
        }
    }

    /// Decide every rule with the namespace's final snapshot (its notes complete) and
    /// build the findings.
    pub fn finish(self, snap: &Snapshot) -> AuditOutcome {
        let (seen, jobs, risks) = match self.pass {
            Pass::Now { jobs, risks } => (self.seen, jobs, risks),
            Pass::Later(kept) => {
                let mut seen = Seen::default();
                kept.iter().for_each(|s| seen.push(s));
                let ctx = HostCtx::new(snap, Some(&seen));
                let mut jobs: Vec<_> = self
                    .rules
                    .iter()
                    .map(|r| job_for(&ctx, r, self.overrides))
                    .collect();
                let mut risks = super::super::exposure::Risks::new(self.rules, snap);
                kept.iter().for_each(|s| judge(&mut jobs, &mut risks, s));
                (seen, jobs, risks)
            }
        };
        outcome(self.rules, self.overrides, snap, &seen, jobs, &risks)
    }
}

impl SocketSink for Fold<'_> {
    fn socket(&mut self, socket: Socket) {
        match &mut self.pass {
            Pass::Now { jobs, risks } => {
                self.seen.push(&socket);
                judge(jobs, risks, &socket);
            }
            Pass::Later(kept) => kept.push(socket),
        }
    }

    fn restart(&mut self) {
        self.seen = Seen::default();
        match &mut self.pass {
            Pass::Now { jobs, risks } => {
                for job in jobs.iter_mut().flatten() {
                    job.groups.clear();
                    job.unknown = 0;
                    job.unknown_unowned = 0;
                }
                risks.clear();
            }
            Pass::Later(kept) => kept.clear(),
        }
    }
}

/// The condition a rule judges sockets with: its matches, or a host rule's suspects.
fn socket_cond(rule: &Rule) -> Option<&Cond> {
    if rule.subject == Subject::Host {
        rule.suspects.as_ref()
    } else {
        rule.matches.as_ref()
    }
}

/// The socket job of `rule`, unless it cannot look at sockets: no socket condition, or a
/// kernel, sysctl or host condition that rules it out already. Whether the socket facts
/// it reads were collected is decided at the end ([`plan`]), and so is a host condition on
/// the table's statistics.
fn job_for<'r>(
    ctx: &HostCtx<'_>,
    rule: &'r Rule,
    overrides: &BTreeMap<String, f64>,
) -> Option<Job<'r>> {
    let cond = socket_cond(rule)?;
    if let Some(range) = &rule.kernel
        && ctx.snap.kernel.version.is_some_and(|v| !range.contains(v))
    {
        return None;
    }
    if rule.requires.iter().any(|k| ctx.snap.sysctl(k).is_none()) {
        return None;
    }
    let params = rule_params(rule, overrides);
    if let Some(when) = &rule.when
        && eval_host(&compile(ctx, &params, when)) == Ok(false)
    {
        return None;
    }
    Some(Job {
        rule,
        on_listeners: matches!(rule.subject, Subject::Listener | Subject::Host),
        on_others: rule.subject != Subject::Listener,
        cond: compile(ctx, &params, cond),
        params,
        groups: PidMap::default(),
        unknown: 0,
        unknown_unowned: 0,
    })
}

/// Judge one socket by every job that looks at its kind (matches grouped per process), and
/// count it for grading.
fn judge(jobs: &mut [Option<Job<'_>>], risks: &mut super::super::exposure::Risks, s: &Socket) {
    let listening = s.state == TcpState::Listen;
    for job in jobs.iter_mut().flatten() {
        if (listening && !job.on_listeners) || (!listening && !job.on_others) {
            continue;
        }
        match eval(&job.cond, s) {
            Some(true) => {
                let pid = s.owner.as_ref().map_or(NO_OWNER, |o| o.pid);
                let g = job.groups.entry(pid).or_default();
                if g.comm.is_none() {
                    g.comm = s.owner.as_ref().map(|o| o.comm.clone());
                }
                g.count += 1;
                if g.examples.len() < EXAMPLES {
                    g.examples.push(describe_socket(s));
                }
            }
            None if s.owner.is_some() => job.unknown += 1,
            None => job.unknown_unowned += 1,
            Some(false) => {}
        }
    }
    risks.push(s);
}
