//! The engine: evaluate rules against one snapshot.
//!
//! Host-level values (sysctls, counters, statistics, parameters) are
//! resolved once per rule; what is left is a small tree over socket fields
//! and options. All socket-level rules are then evaluated in a single pass
//! over the socket table, one socket at a time as it is read ([`Fold`], fold.rs:
//! no copies, no regexes, the table never held), and matches are grouped per
//! process as they are counted.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;

use crate::host::{Snapshot, Socket, SocketsSource, TcpState};

use super::finding::{
    CounterEvidence, Evidence, Exposure, Finding, FindingProcess, Fix, SysctlFix,
};
use super::raw::{Field, Measure, SockOpt, Stat, Subject};
use super::readable::{describe_socket, group_digits};
use super::rule::{Arith, Cond, Expr, Op, Piece, Rule, fmt_num, timer_num, visit_expr};
use super::{AuditOutcome, Skipped};

mod compile;
mod context;
mod fold;
mod text;
mod unknown;

use compile::*;
use context::*;
pub use fold::Fold;
use fold::Seen;
use text::{absent_notes, counter_notes, evidence, fix, render, uses};
use unknown::Unknown;

/// How many example sockets a finding shows.
const EXAMPLES: usize = 3;

/// Matches of one rule, per process.
#[derive(Default)]
struct Group {
    comm: Option<Arc<str>>,
    count: u64,
    examples: Vec<String>,
}

/// A rule that needs the socket pass.
struct Job<'r> {
    rule: &'r Rule,
    params: Params,
    cond: CCond,
    /// Listener rules look at LISTEN sockets; socket and process rules at the others;
    /// suspects of host rules at all sockets.
    on_listeners: bool,
    on_others: bool,
    groups: PidMap<Group>,
    /// Sockets that could not be judged (an option or tcp_info not read): held by a known
    /// process, and held by none found (counted only when owners were not all read).
    unknown: u64,
    unknown_unowned: u64,
}

/// Matches are grouped by pid on the hot path: a multiplicative hash is
/// enough for small integer keys and far cheaper than SipHash.
#[derive(Default)]
struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type PidMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<PidHasher>>;

/// Key for sockets without a known owner.
const NO_OWNER: u32 = u32::MAX;

/// Evaluate `rules` (already selected) with parameter overrides against `snap`: decide what
/// each rule needs (applicability, host condition), make one pass over the socket table for
/// every rule that looks at sockets, build the findings, grade them and solve their fixes.
/// The same as feeding `snap`'s sockets to a [`Fold`] one at a time.
pub fn evaluate(
    rules: &[&Rule],
    overrides: &BTreeMap<String, f64>,
    snap: &Snapshot,
) -> AuditOutcome {
    let mut fold = Fold::new(rules, overrides, snap);
    fold.judge_all(&snap.sockets);
    fold.finish(snap)
}

/// Drop a recommended value the key cannot take ([`crate::valid`]: a rule of the user's own
/// computing one out of range), saying so in the finding's notes: no command then shows,
/// writes or applies it.
fn keep_valid_fixes(f: &mut Finding) {
    let notes = &mut f.notes;
    f.fix.sysctls.retain(|fix| {
        let checked = crate::valid::key(&fix.key, crate::host::sysctl::Scope::NetOnly)
            .and_then(|k| crate::valid::value(&k, &fix.value));
        match checked {
            Ok(_) => true,
            Err(e) => {
                notes.push(format!(
                    "no value recommended for {}: the computed {} is not one it takes ({})",
                    fix.key, fix.value, e.message
                ));
                false
            }
        }
    });
}

/// Decide every rule once the socket pass is done (`seen`, `jobs` by rule index, `risks`)
/// and build the outcome.
fn outcome(
    rules: &[&Rule],
    overrides: &BTreeMap<String, f64>,
    snap: &Snapshot,
    seen: &Seen,
    mut pass: Vec<Option<Job<'_>>>,
    risks: &super::exposure::Risks,
) -> AuditOutcome {
    let ctx = HostCtx::new(snap, Some(seen));
    let netns = snap.netns.name.clone();
    let mut out = AuditOutcome {
        netns: netns.clone(),
        findings: Vec::new(),
        not_applicable: Vec::new(),
        not_checked: Vec::new(),
        passed: Vec::new(),
    };
    let gaps = Gaps::of(&ctx, seen);
    let mut host_findings: Vec<(Finding, Option<usize>)> = Vec::new();
    let mut jobs: Vec<Job<'_>> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let skip = |reason: String| Skipped {
            rule: rule.id.clone(),
            reason,
        };
        match plan(&ctx, &gaps, rule, rule_params(rule, overrides)) {
            Planned::NotApplicable(why) => out.not_applicable.push(skip(why)),
            Planned::NotChecked(why) => out.not_checked.push(skip(why)),
            Planned::Passed => {}
            Planned::Host(params) => {
                host_findings.push((host_finding(&ctx, &params, rule, &netns), None));
            }
            Planned::Sockets => {
                // The socket pass judged it already: a rule that can look at sockets at the
                // end could at the start (every fact it is judged on was known then).
                let Some(mut job) = pass.get_mut(i).and_then(Option::take) else {
                    out.not_checked.push(skip(
                        "its sockets were not judged as the table was read".to_string(),
                    ));
                    continue;
                };
                if gaps.owners_partial {
                    job.unknown += job.unknown_unowned;
                }
                if rule.subject == Subject::Host {
                    host_findings.push((
                        host_finding(&ctx, &job.params, rule, &netns),
                        Some(jobs.len()),
                    ));
                }
                jobs.push(job);
            }
        }
    }

    let mut jobs: Vec<Option<Job<'_>>> = jobs.into_iter().map(Some).collect();
    for (finding, job_index) in host_findings {
        out.findings
            .push(match job_index.and_then(|i| jobs[i].take()) {
                Some(job) => with_suspects(finding, job),
                None => finding,
            });
    }
    for job in jobs.into_iter().flatten() {
        out.findings.extend(socket_findings(&ctx, job, &netns));
    }
    for rule in rules {
        let id = rule.id.as_str();
        let decided = out.findings.iter().any(|f| f.rule == id)
            || out.not_applicable.iter().any(|s| s.rule == id)
            || out.not_checked.iter().any(|s| s.rule == id);
        if !decided {
            out.passed.push(rule.id.clone());
        }
    }
    for f in &mut out.findings {
        if let Some(rule) = rules.iter().find(|r| r.id == f.rule) {
            let params = rule_params(rule, overrides);
            super::exposure::grade(rule, snap, risks, f, &|c| {
                eval_host(&compile(&ctx, &params, c)).ok()
            });
        }
    }
    super::converge::converge(rules, overrides, snap, &mut out.findings);
    for f in &mut out.findings {
        keep_valid_fixes(f);
    }
    out.findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| {
                a.process
                    .as_ref()
                    .map(|p| p.pid)
                    .cmp(&b.process.as_ref().map(|p| p.pid))
            })
    });
    out
}

/// A rule's parameters: its defaults, with the overrides it declares.
fn rule_params(rule: &Rule, overrides: &BTreeMap<String, f64>) -> Params {
    let mut params: Params = rule
        .params
        .iter()
        .map(|(k, p)| (k.clone(), p.default))
        .collect();
    for (k, v) in overrides {
        if let Some(slot) = params.get_mut(k) {
            *slot = *v;
        }
    }
    params
}

/// What the snapshot could not show, which decides whether a socket rule can be judged.
struct Gaps {
    /// Options can only be read from sockets a process holds: with no such socket there is
    /// nothing to judge, with some and no options at all they were not read. When owners
    /// could not be read (not root), unowned sockets may be held by the processes that were
    /// denied: their options are unread, not absent.
    options_unread: bool,
    have_info: bool,
    /// A socket no process holds (TIME_WAIT, an orphan) has no options to read: when every
    /// owner could be read, not knowing its options is not a gap in the audit.
    owners_partial: bool,
    /// The table was empty (nothing to judge, so nothing was missing).
    no_sockets: bool,
}

impl Gaps {
    fn of(ctx: &HostCtx<'_>, seen: &Seen) -> Self {
        Self {
            options_unread: !seen.any_options
                && (seen.any_owner
                    || ctx.area_note("options").is_some()
                    || ctx.area_note("owners").is_some()),
            have_info: seen.any_info,
            owners_partial: ctx.area_note("owners").is_some() || ctx.area_note("options").is_some(),
            no_sockets: seen.is_empty(),
        }
    }
}

/// What one rule needs, once the host-level facts are known.
enum Planned {
    NotApplicable(String),
    NotChecked(String),
    /// Its host condition does not hold.
    Passed,
    /// A host finding without suspects.
    Host(Params),
    /// A rule for the socket pass: a listener, socket or process rule, or a host finding
    /// whose suspects are looked for.
    Sockets,
}

/// Decide what `rule` needs: whether it applies to this kernel and namespace, whether its
/// host condition holds, and whether the socket facts it reads were collected.
fn plan(ctx: &HostCtx<'_>, gaps: &Gaps, rule: &Rule, params: Params) -> Planned {
    let snap = ctx.snap;
    if let Some(range) = &rule.kernel {
        match snap.kernel.version {
            Some(v) if !range.contains(v) => {
                return Planned::NotApplicable(format!(
                    "kernel {} is outside {}",
                    snap.kernel.describe(),
                    range.text
                ));
            }
            None => {
                return Planned::NotChecked(format!(
                    "kernel version of {:?} unknown; the rule applies to {}",
                    snap.kernel.release, range.text
                ));
            }
            _ => {}
        }
    }
    if let Some(key) = rule.requires.iter().find(|k| snap.sysctl(k).is_none()) {
        return match ctx.note_for(key) {
            Some(note) if !note.contains("does not exist") && !note.contains("absent") => {
                Planned::NotChecked(format!("sysctl {key} was not read: {note}"))
            }
            _ => Planned::NotApplicable(rule.absent_reason.clone().unwrap_or_else(|| {
                format!("{key} does not exist on this kernel or in this namespace")
            })),
        };
    }
    if let Some(when) = &rule.when {
        match eval_host(&compile(ctx, &params, when)) {
            Err(why) => return Planned::NotChecked(why.to_string()),
            Ok(false) => return Planned::Passed,
            Ok(true) => {}
        }
    }
    let socket_cond = if rule.subject == Subject::Host {
        rule.suspects.as_ref()
    } else {
        rule.matches.as_ref()
    };
    let Some(cond) = socket_cond else {
        return Planned::Host(params);
    };
    let needs_sockets = rule.subject != Subject::Host;
    if snap.sockets_source == SocketsSource::None && needs_sockets {
        return Planned::NotChecked(ctx.sockets_missing().to_string());
    }
    if needs_sockets && uses(Some(cond), &|e| matches!(e, Expr::Opt(_))) && gaps.options_unread {
        let area = ["options", "owners"]
            .into_iter()
            .find(|a| ctx.area_note(a).is_some());
        return Planned::NotChecked(match area {
            Some(a) => format!("socket options were not read (see the note `{a}`)"),
            None => "socket options were not read (they need CAP_SYS_PTRACE and kernel 5.6+)"
                .to_string(),
        });
    }
    if needs_sockets
        && uses(
            Some(cond),
            &|e| matches!(e, Expr::Field(f) if f.needs_tcp_info()),
        )
        && !gaps.have_info
        && !gaps.no_sockets
    {
        return Planned::NotChecked(
            "tcp_info was not read (the socket table came from /proc/net/tcp or was not read)"
                .to_string(),
        );
    }
    let compiled = compile(ctx, &params, cond);
    if let Some(why) = missing(&compiled) {
        return Planned::NotChecked(why.to_string());
    }
    Planned::Sockets
}

/// A host finding with the processes its suspects found (or a note on why none are named).
fn with_suspects(mut finding: Finding, job: Job<'_>) -> Finding {
    let mut groups = sorted_groups(job.groups);
    if let Some((pid, g)) = groups.first()
        && *pid != NO_OWNER
    {
        finding.process = Some(FindingProcess {
            pid: *pid,
            comm: g.comm.as_deref().unwrap_or("?").to_string(),
            workload: None,
        });
    }
    if groups.is_empty() && job.unknown > 0 {
        finding.notes.push(format!(
            "the processes behind this could not be looked for: {} sockets could not \
             be judged (socket options or tcp_info not read: the notes say why)",
            group_digits(job.unknown)
        ));
    } else if groups.is_empty() {
        finding
            .notes
            .push("no process holds sockets of the kind that would cause this now".to_string());
    } else {
        if job.unknown > 0 {
            finding.notes.push(format!(
                "{} more sockets could not be judged (socket options or tcp_info not read)",
                group_digits(job.unknown)
            ));
        }
        let names: Vec<String> = groups.iter().take(5).map(|(pid, g)| who(*pid, g)).collect();
        let _ = write!(finding.message, "; likely: {}", names.join(", "));
        finding.count = Some(groups.iter().map(|(_, g)| g.count).sum());
        for (pid, g) in groups.iter_mut().take(EXAMPLES) {
            if let Some(e) = g.examples.first() {
                finding.examples.push(format!("{}: {e}", who(*pid, g)));
            }
        }
    }
    finding
}

/// The findings of a listener, socket or process rule: one per process (with at least
/// `min_count` matches for process rules).
fn socket_findings(ctx: &HostCtx<'_>, job: Job<'_>, netns: &str) -> Vec<Finding> {
    let rule = job.rule;
    let min = match &rule.min_count {
        Some(e) => host_value(ctx, &job.params, e).unwrap_or(1.0),
        None => 1.0,
    };
    let noun = if rule.subject == Subject::Listener {
        "listener"
    } else {
        "socket"
    };
    let unknown = job.unknown;
    let mut findings = Vec::new();
    for (pid, g) in sorted_groups(job.groups) {
        if (g.count as f64) < min {
            continue;
        }
        let unjudged = (unknown > 0).then(|| {
            format!(
                "{} sockets on this host could not be judged (socket options or tcp_info not read)",
                group_digits(unknown)
            )
        });
        let message = format!(
            "{}: {} {}{} {}, e.g. {}",
            who(pid, &g),
            group_digits(g.count),
            noun,
            if g.count == 1 { "" } else { "s" },
            render(ctx, &job.params, rule),
            g.examples.first().map_or("", String::as_str)
        );
        let mut finding = rule_finding(ctx, &job.params, rule, netns, message, unjudged);
        finding.process = (pid != NO_OWNER).then(|| FindingProcess {
            pid,
            comm: g.comm.as_deref().unwrap_or("?").to_string(),
            workload: None,
        });
        finding.count = Some(g.count);
        finding.examples = g.examples;
        findings.push(finding);
    }
    findings
}

/// The verdict of a host-level condition (after [`compile`] folded what it could).
fn eval_host(c: &CCond) -> Result<bool, Unknown> {
    match c {
        CCond::Known(b) => Ok(*b),
        CCond::Missing(why) => Err(why.clone()),
        CCond::All(v) => {
            let r: Vec<_> = v.iter().map(eval_host).collect();
            if r.iter().any(|x| matches!(x, Ok(false))) {
                Ok(false)
            } else {
                r.into_iter().find(Result::is_err).unwrap_or(Ok(true))
            }
        }
        CCond::Any(v) => {
            let r: Vec<_> = v.iter().map(eval_host).collect();
            if r.iter().any(|x| matches!(x, Ok(true))) {
                Ok(true)
            } else {
                r.into_iter().find(Result::is_err).unwrap_or(Ok(false))
            }
        }
        CCond::Not(c) => eval_host(c).map(|b| !b),
        CCond::Cmp { .. } | CCond::Leaf { .. } => Err(Unknown::SocketCondition),
    }
}

fn who(pid: u32, g: &Group) -> String {
    if pid == NO_OWNER {
        "(no process found)".to_string()
    } else {
        format!("{} (pid {pid})", g.comm.as_deref().unwrap_or("?"))
    }
}

fn sorted_groups(groups: PidMap<Group>) -> Vec<(u32, Group)> {
    let mut v: Vec<(u32, Group)> = groups.into_iter().collect();
    v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
    v
}

fn host_finding(ctx: &HostCtx<'_>, params: &Params, rule: &Rule, netns: &str) -> Finding {
    rule_finding(ctx, params, rule, netns, render(ctx, params, rule), None)
}

/// A finding of `rule` with `message`: its evidence, its fix and the notes on both (`note`
/// after the counter notes); no process, count or examples yet.
fn rule_finding(
    ctx: &HostCtx<'_>,
    params: &Params,
    rule: &Rule,
    netns: &str,
    message: String,
    note: Option<String>,
) -> Finding {
    let mut notes = Vec::new();
    counter_notes(ctx, rule, &mut notes);
    absent_notes(ctx, rule, &mut notes);
    notes.extend(note);
    let fix = fix(ctx, params, rule, &mut notes);
    Finding {
        rule: rule.id.clone(),
        title: rule.title.clone(),
        severity: rule.severity,
        exposure: Exposure::Latent,
        exposure_reason: String::new(),
        cause: rule.cause.clone(),
        subject: rule.subject.as_str().to_string(),
        netns: netns.to_string(),
        message,
        process: None,
        count: None,
        examples: Vec::new(),
        evidence: evidence(ctx, rule),
        fix,
        lab: rule.lab.clone(),
        notes,
        accepted: None,
    }
}
