//! Grading findings by what is at risk: latent, exposed or observed.
//!
//! A finding's severity says how bad the cause is; its exposure says whether
//! anything on this host meets it now. The grade comes from the data the
//! engine already has (the rule's condition, the socket table, the counter
//! window) and never changes whether a rule fires. The reasoning per kind of
//! rule is in docs/audit-json.md ("Exposure").
//!
//! Nothing here reads the host or prints.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::host::{Snapshot, Socket, TcpState};

use super::finding::{Exposure, Finding, FindingProcess};
use super::raw::{Measure, Subject};
use super::readable::{describe_socket, group_digits};
use super::rule::{Cond, Expr, Rule};

/// What depends on a sysctl, as far as the snapshot can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum AtRisk {
    /// Non-loopback ESTABLISHED sockets with SO_KEEPALIVE that take the
    /// sysctl's value (their TCP_KEEPIDLE / KEEPINTVL / KEEPCNT equals it).
    KeepaliveDefault,
    /// Every listener.
    Listeners,
    /// Listeners whose backlog was clamped to net.core.somaxconn.
    ClampedListeners,
    /// Non-loopback ESTABLISHED sockets (a path outage can drop them).
    Established,
    /// Non-loopback SYN_SENT sockets (handshakes in progress).
    Connecting,
    TimeWait,
    FinWait2,
    /// Flows tracked by conntrack (net.netfilter.nf_conntrack_count > 0).
    Flows,
}

/// The kind of thing a sysctl puts at risk; `None` for keys the snapshot cannot relate to
/// anything (their findings stay latent).
fn at_risk(key: &str) -> Option<AtRisk> {
    Some(match key {
        "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => AtRisk::KeepaliveDefault,
        "net.ipv4.tcp_abort_on_overflow"
        | "net.ipv4.tcp_syncookies"
        | "net.ipv4.tcp_max_syn_backlog"
        | "net.ipv4.tcp_tw_recycle" => AtRisk::Listeners,
        "net.core.somaxconn" => AtRisk::ClampedListeners,
        "net.ipv4.tcp_retries2" | "net.ipv4.tcp_rto_min_us" | "net.ipv4.tcp_rto_max_ms" => {
            AtRisk::Established
        }
        "net.ipv4.tcp_syn_retries" => AtRisk::Connecting,
        "net.ipv4.tcp_rfc1337"
        | "net.ipv4.tcp_tw_reuse"
        | "net.ipv4.tcp_timestamps"
        | "net.ipv4.tcp_max_tw_buckets" => AtRisk::TimeWait,
        "net.ipv4.tcp_fin_timeout" => AtRisk::FinWait2,
        k if k.starts_with("net.netfilter.nf_conntrack_") => AtRisk::Flows,
        _ => return None,
    })
}

/// A grade and why.
struct Grade {
    exposure: Exposure,
    reason: String,
    /// Sockets at risk, per process (pid, comm) -> (count, first example).
    who: Vec<(Option<FindingProcess>, u64, String)>,
}

impl Grade {
    fn latent(reason: impl Into<String>) -> Self {
        Self {
            exposure: Exposure::Latent,
            reason: reason.into(),
            who: Vec::new(),
        }
    }
}

/// Set `finding.exposure` and `finding.exposure_reason`. `holds` evaluates a
/// host-level condition of `rule` on this snapshot (`None`: it cannot be told).
/// A host finding with nothing else naming a process gets the processes at risk.
pub fn grade(
    rule: &Rule,
    snap: &Snapshot,
    risks: &Risks,
    finding: &mut Finding,
    holds: &dyn Fn(&Cond) -> Option<bool>,
) {
    let mut best = if rule.subject != Subject::Host {
        Grade {
            exposure: Exposure::Exposed,
            reason: format!(
                "{} {}{} match now",
                group_digits(finding.count.unwrap_or(0)),
                if rule.subject == Subject::Listener {
                    "listener(s)"
                } else {
                    "socket(s)"
                },
                match &finding.process {
                    Some(p) => format!(" of {} (pid {})", p.comm, p.pid),
                    None => " with no known process".to_string(),
                }
            ),
            who: Vec::new(),
        }
    } else if finding.count.is_some() {
        // The rule's own suspects matched sockets now (eval named them in the message).
        Grade {
            exposure: Exposure::Exposed,
            reason: format!(
                "{} socket(s) of the kind that causes this now{}",
                group_digits(finding.count.unwrap_or(0)),
                match &finding.process {
                    Some(p) => format!(", most in {} (pid {})", p.comm, p.pid),
                    None => String::new(),
                }
            ),
            who: Vec::new(),
        }
    } else {
        Grade::latent("nothing in the snapshot depends on this setting now")
    };
    if let Some(mut g) = evidence_rose(rule, snap) {
        if best.exposure == Exposure::Exposed {
            let _ = write!(g.reason, "; {}", best.reason);
        }
        best = g;
    }
    if let Some(when) = &rule.when {
        let branches: Vec<&Cond> = match when {
            Cond::Any(v) => v.iter().collect(),
            c => vec![c],
        };
        for b in branches {
            if holds(b) != Some(true) {
                continue;
            }
            let g = grade_branch(b, snap, risks);
            // A latent branch still says more than the generic reason.
            let more_specific = best.exposure == Exposure::Latent
                && g.exposure == Exposure::Latent
                && rule.subject == Subject::Host
                && finding.count.is_none();
            if g.exposure > best.exposure || more_specific {
                let who = std::mem::take(&mut best.who);
                best = g;
                if best.who.is_empty() {
                    best.who = who;
                }
            } else if best.who.is_empty() && !g.who.is_empty() {
                // Observed from the counters, and these are the processes at risk.
                let _ = write!(best.reason, "; {}", g.reason);
                best.who = g.who;
            }
        }
    }
    if finding.process.is_none()
        && finding.count.is_none()
        && !best.who.is_empty()
        && rule.subject == Subject::Host
    {
        finding.process = best.who[0].0.clone();
        finding.count = Some(best.who.iter().map(|w| w.1).sum());
        for (p, _, example) in best.who.iter().take(3) {
            finding.examples.push(match p {
                Some(p) => format!("{} (pid {}): {example}", p.comm, p.pid),
                None => format!("(no process found): {example}"),
            });
        }
    }
    finding.exposure = best.exposure;
    finding.exposure_reason = best.reason;
}

/// Counters that rise on any busy host, whatever the cause: a change in them does not show
/// that a particular rule's cause is happening.
pub const GENERIC_COUNTERS: &[&str] = &[
    "Tcp.EstabResets",
    "Tcp.OutRsts",
    "Tcp.InErrs",
    "Tcp.AttemptFails",
    "Tcp.RetransSegs",
    "TcpExt.TCPTimeouts",
    "TcpExt.TCPKeepAlive",
];

/// Observed when a cause-specific evidence counter of the rule rose in the window.
fn evidence_rose(rule: &Rule, snap: &Snapshot) -> Option<Grade> {
    let rose: Vec<String> = rule
        .evidence_counters
        .iter()
        .filter(|n| !GENERIC_COUNTERS.contains(&n.as_str()))
        .filter_map(|n| {
            snap.counter_delta(n)
                .filter(|(d, _)| *d > 0)
                .map(|(d, w)| format!("{n} rose by {} in {w} s", group_digits(d)))
        })
        .collect();
    (!rose.is_empty()).then(|| Grade {
        exposure: Exposure::Observed,
        reason: rose.join(", "),
        who: Vec::new(),
    })
}

/// Grade one branch of a host condition that holds.
fn grade_branch(c: &Cond, snap: &Snapshot, risks: &Risks) -> Grade {
    let mut counters: Vec<(String, Measure)> = Vec::new();
    let mut stats = false;
    let mut keys: Vec<String> = Vec::new();
    c.visit(&mut |e| match e {
        Expr::Counter(name, m) => counters.push((name.clone(), *m)),
        Expr::Stat(_) => stats = true,
        Expr::Sysctl(k, _) => keys.push(k.clone()),
        _ => {}
    });
    let window = snap.counter_window();
    if !counters.is_empty() {
        let rose: Vec<String> = counters
            .iter()
            .filter(|(_, m)| *m != Measure::Total && window.is_some())
            .filter_map(|(n, _)| {
                snap.counter_delta(n)
                    .filter(|(d, _)| *d > 0)
                    .map(|(d, w)| format!("{n} rose by {} in {} s", group_digits(d), w))
            })
            .collect();
        if !rose.is_empty() {
            return Grade {
                exposure: Exposure::Observed,
                reason: rose.join(", "),
                who: Vec::new(),
            };
        }
        if window.is_none() && !stats {
            let names: Vec<&str> = counters.iter().map(|(n, _)| n.as_str()).collect();
            return Grade::latent(format!(
                "{} counted since boot, not necessarily now; run with --interval SECONDS to see whether it is happening",
                names.join(", ")
            ));
        }
    }
    if stats {
        return Grade {
            exposure: Exposure::Exposed,
            reason: "the socket table shows it now".to_string(),
            who: Vec::new(),
        };
    }
    keys.sort();
    keys.dedup();
    let kinds: Vec<AtRisk> = keys.iter().filter_map(|k| at_risk(k)).collect();
    if kinds.is_empty() {
        return Grade::latent(format!(
            "a setting ({}); nothing in the snapshot shows what depends on it",
            keys.join(", ")
        ));
    }
    if kinds.contains(&AtRisk::Flows) {
        return match snap
            .sysctl("net.netfilter.nf_conntrack_count")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(n) if n > 0 => Grade {
                exposure: Exposure::Exposed,
                reason: format!("{} flows are tracked by conntrack now", group_digits(n)),
                who: Vec::new(),
            },
            Some(_) => Grade::latent("conntrack tracks no flows now"),
            None => Grade::latent("net.netfilter.nf_conntrack_count was not read"),
        };
    }
    let owners_partial = snap
        .notes
        .iter()
        .any(|n| n.area == "owners" || n.area == "options");
    match risks
        .tallies
        .iter()
        .find(|t| t.what == At::of(&kinds, &keys))
    {
        Some(tally) => tally.grade(owners_partial),
        // Every branch of every rule is counted (Risks::new): not reached.
        None => Grade::latent("the sockets that depend on it were not counted"),
    }
}

/// A peer outside this host's loopback (`::ffff:127.0.0.1` on a dual-stack socket is loopback).
fn non_loopback(s: &Socket) -> bool {
    let peer = s.remote_addr.to_canonical();
    !peer.is_loopback() && !peer.is_unspecified()
}

/// The sysctl values the socket checks compare with, read once per finding.
struct Defaults {
    /// (value of the keepalive sysctl, whether the condition reads it) for time, intvl, probes.
    keepalive: [(Option<u32>, bool); 3],
    somaxconn: Option<u32>,
}

impl Defaults {
    fn new(what: &At, snap: &Snapshot) -> Self {
        let read = |k: &str| snap.sysctl(k).and_then(|v| v.trim().parse::<u32>().ok());
        let ka = |i: usize| (read(KEEPALIVE_KEYS[i]), what.keepalive_used[i]);
        Self {
            keepalive: [ka(0), ka(1), ka(2)],
            somaxconn: read("net.core.somaxconn"),
        }
    }
}

/// Whether `s` is at risk for `kind`; `None` when that cannot be told (options not read).
fn matches(kind: AtRisk, d: &Defaults, s: &Socket) -> Option<bool> {
    Some(match kind {
        AtRisk::KeepaliveDefault => {
            if s.state != TcpState::Established || !non_loopback(s) {
                return Some(false);
            }
            let opts = s.options.as_ref()?;
            if !opts.keepalive? {
                return Some(false);
            }
            // Takes the default of every keepalive sysctl the condition reads.
            let own = [opts.keepidle, opts.keepintvl, opts.keepcnt];
            let mut all = true;
            for ((sysctl, used), own) in d.keepalive.iter().zip(own) {
                if *used {
                    all &= own? == (*sysctl)?;
                }
            }
            all
        }
        AtRisk::Listeners => s.state == TcpState::Listen,
        AtRisk::ClampedListeners => {
            s.state == TcpState::Listen
                && matches!((s.backlog, d.somaxconn), (Some(b), Some(m)) if b >= m)
        }
        AtRisk::Established => s.state == TcpState::Established && non_loopback(s),
        AtRisk::Connecting => s.state == TcpState::SynSent && non_loopback(s),
        AtRisk::TimeWait => s.state == TcpState::TimeWait,
        AtRisk::FinWait2 => s.state == TcpState::FinWait2,
        AtRisk::Flows => false,
    })
}

/// What is at risk, for "N <this>: nginx (pid 1) 2, ...".
fn describe(kind: AtRisk) -> &'static str {
    match kind {
        AtRisk::KeepaliveDefault => {
            "socket(s) with SO_KEEPALIVE to non-loopback peers take this default"
        }
        AtRisk::Listeners => "listener(s) depend on it",
        AtRisk::ClampedListeners => "listener(s) are clamped to net.core.somaxconn",
        AtRisk::Established => "established connection(s) to non-loopback peers depend on it",
        AtRisk::Connecting => "handshake(s) to non-loopback peers are in progress",
        AtRisk::TimeWait => "TIME_WAIT socket(s) depend on it",
        AtRisk::FinWait2 => "FIN_WAIT2 socket(s) depend on it",
        AtRisk::Flows => "flow(s) are tracked by conntrack",
    }
}

/// Why nothing is at risk.
fn nothing(kind: AtRisk) -> &'static str {
    match kind {
        AtRisk::KeepaliveDefault => {
            "no socket with SO_KEEPALIVE to a non-loopback peer takes this default now"
        }
        AtRisk::Listeners => "no listener now",
        AtRisk::ClampedListeners => "no listener is clamped to net.core.somaxconn now",
        AtRisk::Established => "no established connection to a non-loopback peer now",
        AtRisk::Connecting => "no handshake to a non-loopback peer in progress now",
        AtRisk::TimeWait => "no TIME_WAIT socket now",
        AtRisk::FinWait2 => "no FIN_WAIT2 socket now",
        AtRisk::Flows => "conntrack tracks no flows now",
    }
}

/// What one tally counts: the kinds of sockets at risk (only keepalive sockets where a
/// keepalive sysctl is read), and which keepalive sysctls their options are compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct At {
    kinds: Vec<AtRisk>,
    keepalive_used: [bool; 3],
}

impl At {
    fn of(kinds: &[AtRisk], keys: &[String]) -> Self {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        // With keepalive keys in the condition, only keepalive sockets meet it.
        if kinds.contains(&AtRisk::KeepaliveDefault) {
            kinds = vec![AtRisk::KeepaliveDefault];
        }
        let used = |k: &str| keys.iter().any(|x| x == k);
        Self {
            kinds,
            keepalive_used: KEEPALIVE_KEYS.map(used),
        }
    }
}

const KEEPALIVE_KEYS: [&str; 3] = [
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The sockets at risk for every branch of the rules' host conditions, counted as the
/// socket table goes by once ([`Risks::push`]), so that grading never needs the table.
pub struct Risks {
    tallies: Vec<Tally>,
}

/// Sockets at risk of one kind, per process.
struct Tally {
    what: At,
    defaults: Defaults,
    groups: BTreeMap<Option<u32>, (Option<FindingProcess>, u64, String)>,
    total: u64,
    /// Sockets that could not be judged (options not read), held by a known process or not.
    unsure_owned: u64,
    unsure_unowned: u64,
}

impl Risks {
    /// A tally for each kind of socket that a branch of a host condition of `rules` puts at
    /// risk, with the sysctl values of `snap` to compare options with.
    pub fn new(rules: &[&Rule], snap: &Snapshot) -> Self {
        let mut tallies: Vec<Tally> = Vec::new();
        for when in rules.iter().filter_map(|r| r.when.as_ref()) {
            let branches: Vec<&Cond> = match when {
                Cond::Any(v) => v.iter().collect(),
                c => vec![c],
            };
            for b in branches {
                let mut keys: Vec<String> = Vec::new();
                b.visit(&mut |e| {
                    if let Expr::Sysctl(k, _) = e {
                        keys.push(k.clone());
                    }
                });
                let kinds: Vec<AtRisk> = keys.iter().filter_map(|k| at_risk(k)).collect();
                if kinds.is_empty() || kinds.contains(&AtRisk::Flows) {
                    continue;
                }
                let what = At::of(&kinds, &keys);
                if !tallies.iter().any(|t| t.what == what) {
                    tallies.push(Tally {
                        defaults: Defaults::new(&what, snap),
                        what,
                        groups: BTreeMap::new(),
                        total: 0,
                        unsure_owned: 0,
                        unsure_unowned: 0,
                    });
                }
            }
        }
        Self { tallies }
    }

    /// Count one socket of the table.
    pub fn push(&mut self, s: &Socket) {
        for t in &mut self.tallies {
            t.push(s);
        }
    }

    /// Forget the sockets counted so far.
    pub fn clear(&mut self) {
        for t in &mut self.tallies {
            t.groups.clear();
            t.total = 0;
            t.unsure_owned = 0;
            t.unsure_unowned = 0;
        }
    }
}

impl Tally {
    fn push(&mut self, s: &Socket) {
        let mut hit = false;
        let mut unsure = false;
        for k in &self.what.kinds {
            match matches(*k, &self.defaults, s) {
                Some(true) => hit = true,
                None => unsure = true,
                Some(false) => {}
            }
        }
        if hit {
            self.total += 1;
            let entry = self
                .groups
                .entry(s.owner.as_ref().map(|o| o.pid))
                .or_insert_with(|| {
                    (
                        s.owner.as_ref().map(|o| FindingProcess {
                            pid: o.pid,
                            comm: o.comm.to_string(),
                            workload: None,
                        }),
                        0,
                        describe_socket(s),
                    )
                });
            entry.1 += 1;
        } else if unsure && s.owner.is_some() {
            self.unsure_owned += 1;
        } else if unsure {
            self.unsure_unowned += 1;
        }
    }

    /// The grade. Sockets without a known process count as unjudged only when some owners
    /// or options could not be read (`owners_partial`): else no process holds them.
    fn grade(&self, owners_partial: bool) -> Grade {
        let kind = self.what.kinds[0];
        if self.total == 0 {
            let unknown = self.unsure_owned
                + if owners_partial {
                    self.unsure_unowned
                } else {
                    0
                };
            return Grade::latent(if unknown > 0 {
                format!(
                    "could not tell whether any socket depends on it: {} socket(s) could not be judged (their options were not read: the notes say why)",
                    group_digits(unknown)
                )
            } else {
                nothing(kind).to_string()
            });
        }
        let mut who: Vec<(Option<FindingProcess>, u64, String)> =
            self.groups.values().cloned().collect();
        who.sort_by(|a, b| {
            b.1.cmp(&a.1).then_with(|| {
                a.0.as_ref()
                    .map(|p| p.pid)
                    .cmp(&b.0.as_ref().map(|p| p.pid))
            })
        });
        let mut reason = format!("{} {}: ", group_digits(self.total), describe(kind));
        for (i, (p, n, _)) in who.iter().take(5).enumerate() {
            if i > 0 {
                reason.push_str(", ");
            }
            let _ = match p {
                Some(p) => write!(reason, "{} (pid {}) {}", p.comm, p.pid, group_digits(*n)),
                None => write!(reason, "(no process found) {}", group_digits(*n)),
            };
        }
        if who.len() > 5 {
            let _ = write!(reason, ", and {} more processes", who.len() - 5);
        }
        Grade {
            exposure: Exposure::Exposed,
            reason,
            who,
        }
    }
}
