//! Fixes that converge: the recommended sysctl values of all findings of one
//! audit, chosen together.
//!
//! Each rule's `fix:` block computes a value for its own keys. Some keys
//! interact: lowering `tcp_keepalive_time` below the idle timeout makes
//! `keepalive-retry-above-idle-timeout` fire unless `tcp_keepalive_intvl`
//! comes down too; the conntrack timeout must stay above the keepalive the
//! fix leaves; two rules may ask for different floors of one limit. Here
//! the values of every finding that touches such keys are replaced by one
//! solution, so that applying all of them clears every fixed finding in one
//! step and raises none (tests/it/remedy/fix_converge.rs checks this over the whole
//! library). docs/remediation.md explains the choices.
//!
//! Pure: reads only the snapshot's sysctls and the rules' parameters.

use std::collections::BTreeMap;

use crate::host::Snapshot;

use super::finding::{Finding, SysctlFix};
use super::rule::Rule;

pub const KEEPALIVE_TIME: &str = "net.ipv4.tcp_keepalive_time";
pub const KEEPALIVE_INTVL: &str = "net.ipv4.tcp_keepalive_intvl";
pub const KEEPALIVE_PROBES: &str = "net.ipv4.tcp_keepalive_probes";
pub const CONNTRACK_ESTABLISHED: &str = "net.netfilter.nf_conntrack_tcp_timeout_established";

/// The shortest keepalive interval recommended: probes closer together than this
/// give up on a peer after a blip (9 probes 1 s apart reset connections after 9 s).
pub const MIN_INTVL: u64 = 10;
/// The shortest outage keepalive must ride out before it resets (intvl x probes).
pub const MIN_OUTAGE: u64 = 120;
/// The kernel's limit of TCP_KEEPCNT / tcp_keepalive_probes.
const MAX_PROBES: u64 = 127;
/// RFC 5382 (REQ-5): a NAT keeps an idle established flow at least 2 h 4 min.
pub const RFC5382_ESTABLISHED: u64 = 7440;

/// Keys whose larger value is always the safer one: when two findings ask for different
/// values, the larger one satisfies both.
const AT_LEAST: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_syn_retries",
    "net.netfilter.nf_conntrack_max",
    CONNTRACK_ESTABLISHED,
];

/// Keepalive settings: first probe after `time` s idle, then every `intvl` s, `probes` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub time: u64,
    pub intvl: u64,
    pub probes: u64,
}

/// The keepalive settings that keep a flow alive through a middlebox forgetting flows idle
/// for `idle_timeout` s, changing `now` as little as possible:
///
/// - the first probe before the timeout, and a retry of a lost first probe too
///   (`time + intvl < idle_timeout`);
/// - `intvl` at most a tenth of the timeout but never below [`MIN_INTVL`] (an
///   interval already in that range is kept);
/// - `time` unchanged when it already fits, else the lower of four fifths of the
///   timeout and what leaves room for one retry;
/// - `probes` raised when `intvl x probes` would give up after an outage shorter
///   than [`MIN_OUTAGE`].
///
/// Nothing is ever raised except `probes`. `None` when no sane setting exists (a timeout
/// too short for probes [`MIN_INTVL`] apart).
pub fn solve_keepalive(now: Keepalive, idle_timeout: u64) -> Option<Keepalive> {
    let fits = |k: Keepalive| k.time < idle_timeout && k.time + k.intvl < idle_timeout;
    if fits(now) {
        return Some(now);
    }
    let cap = (idle_timeout / 10).max(MIN_INTVL);
    let intvl = if (MIN_INTVL..=cap).contains(&now.intvl) {
        now.intvl
    } else {
        cap
    };
    let time = if now.time + intvl < idle_timeout {
        now.time
    } else {
        now.time
            .min(idle_timeout * 4 / 5)
            .min(idle_timeout.checked_sub(intvl + 1)?)
    };
    if time == 0 {
        return None;
    }
    let probes = if intvl * now.probes < MIN_OUTAGE {
        MIN_OUTAGE.div_ceil(intvl).min(MAX_PROBES)
    } else {
        now.probes
    };
    let k = Keepalive {
        time,
        intvl,
        probes,
    };
    fits(k).then_some(k)
}

/// The conntrack timeout for established flows that outlasts keepalive `k` (the whole probe
/// sequence, so a flow whose keepalive is still probing is never forgotten), at least the RFC
/// 5382 minimum, and never below `now`.
pub fn solve_conntrack(now: u64, k: Keepalive) -> u64 {
    now.max(RFC5382_ESTABLISHED)
        .max(k.time + k.intvl * k.probes + 1)
}

fn sysctl_u64(snap: &Snapshot, key: &str) -> Option<u64> {
    snap.sysctl(key)?.split_whitespace().next()?.parse().ok()
}

fn param(rule: Option<&&Rule>, overrides: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    let rule = rule?;
    let p = rule.params.get(name)?;
    Some(overrides.get(name).copied().unwrap_or(p.default))
}

/// Set `key` to `value` in `f`'s fix, dropping it when `value` is the current value.
fn set(f: &mut Finding, snap: &Snapshot, key: &str, value: u64) {
    let current = snap.sysctl(key).map(str::to_string);
    let unchanged = sysctl_u64(snap, key) == Some(value);
    match f.fix.sysctls.iter().position(|s| s.key == key) {
        Some(i) if unchanged => {
            f.fix.sysctls.remove(i);
        }
        Some(i) => f.fix.sysctls[i].value = value.to_string(),
        None if unchanged => {}
        None => f.fix.sysctls.push(SysctlFix {
            key: key.to_string(),
            value: value.to_string(),
            current,
        }),
    }
}

/// Replace the fixes of interacting keys in `findings` by one joint solution.
pub fn converge(
    rules: &[&Rule],
    overrides: &BTreeMap<String, f64>,
    snap: &Snapshot,
    findings: &mut [Finding],
) {
    let rule_of = |id: &str| rules.iter().find(|r| r.id == id);
    let touches =
        |f: &Finding, keys: &[&str]| f.fix.sysctls.iter().any(|s| keys.contains(&s.key.as_str()));
    let keepalive_keys = [KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES];
    let now = match (
        sysctl_u64(snap, KEEPALIVE_TIME),
        sysctl_u64(snap, KEEPALIVE_INTVL),
        sysctl_u64(snap, KEEPALIVE_PROBES),
    ) {
        (Some(time), Some(intvl), Some(probes)) => Some(Keepalive {
            time,
            intvl,
            probes,
        }),
        _ => None,
    };
    let mut keepalive = now;
    if let Some(now) = now {
        let idle_timeout = findings
            .iter()
            .filter(|f| touches(f, &keepalive_keys))
            .filter_map(|f| param(rule_of(&f.rule), overrides, "idle_timeout"))
            .filter(|t| t.is_finite() && *t >= 1.0)
            .map(|t| t as u64)
            .min();
        if let Some(idle_timeout) = idle_timeout {
            let solved = solve_keepalive(now, idle_timeout);
            keepalive = solved.or(Some(now));
            for f in findings.iter_mut().filter(|f| touches(f, &keepalive_keys)) {
                match solved {
                    Some(k) => {
                        set(f, snap, KEEPALIVE_TIME, k.time);
                        set(f, snap, KEEPALIVE_INTVL, k.intvl);
                        set(f, snap, KEEPALIVE_PROBES, k.probes);
                        // The keys in the order a reader follows them.
                        f.fix.sysctls.sort_by_key(|s| {
                            keepalive_keys
                                .iter()
                                .position(|k| *k == s.key)
                                .unwrap_or(usize::MAX)
                        });
                    }
                    None => {
                        f.fix
                            .sysctls
                            .retain(|s| !keepalive_keys.contains(&s.key.as_str()));
                        f.notes.push(format!(
                            "no keepalive sysctls fit an idle timeout of {idle_timeout} s with probes at least {MIN_INTVL} s apart; send application-level pings more often than the timeout instead"
                        ));
                    }
                }
            }
        }
    }
    if let (Some(k), Some(ct)) = (keepalive, sysctl_u64(snap, CONNTRACK_ESTABLISHED)) {
        let value = solve_conntrack(ct, k);
        for f in findings
            .iter_mut()
            .filter(|f| touches(f, &[CONNTRACK_ESTABLISHED]))
        {
            set(f, snap, CONNTRACK_ESTABLISHED, value);
        }
    }
    for key in AT_LEAST {
        let max = findings
            .iter()
            .flat_map(|f| &f.fix.sysctls)
            .filter(|s| s.key == *key)
            .filter_map(|s| s.value.parse::<u64>().ok())
            .max();
        if let Some(max) = max {
            for f in findings.iter_mut() {
                for s in f.fix.sysctls.iter_mut().filter(|s| s.key == *key) {
                    if s.value.parse::<u64>().is_ok() {
                        s.value = max.to_string();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(time: u64, intvl: u64, probes: u64) -> Keepalive {
        Keepalive {
            time,
            intvl,
            probes,
        }
    }

    #[test]
    fn stock_keepalive_against_300_s_lowers_time_and_interval_together() {
        assert_eq!(solve_keepalive(k(7200, 75, 9), 300), Some(k(240, 30, 9)));
    }

    #[test]
    fn time_just_below_the_timeout_never_gives_a_one_second_interval() {
        // The old per-rule formula gave intvl max((300 - 299) / 3, 1) = 1.
        let s = solve_keepalive(k(299, 75, 9), 300).unwrap();
        assert!(s.intvl >= MIN_INTVL, "{s:?}");
        assert!(s.time + s.intvl < 300, "{s:?}");
        assert!(s.intvl * s.probes >= MIN_OUTAGE, "{s:?}");
    }

    #[test]
    fn settings_that_fit_are_kept() {
        assert_eq!(solve_keepalive(k(240, 30, 9), 300), Some(k(240, 30, 9)));
        assert_eq!(solve_keepalive(k(60, 10, 3), 300), Some(k(60, 10, 3)));
    }

    #[test]
    fn short_timeouts_keep_the_interval_floor_and_raise_probes() {
        assert_eq!(solve_keepalive(k(7200, 75, 9), 30), Some(k(19, 10, 12)));
        assert_eq!(solve_keepalive(k(7200, 75, 9), 11), None);
    }

    #[test]
    fn conntrack_outlasts_the_probe_sequence_and_the_rfc_minimum() {
        assert_eq!(solve_conntrack(600, k(240, 30, 9)), RFC5382_ESTABLISHED);
        assert_eq!(solve_conntrack(3600, k(7200, 75, 9)), 7200 + 75 * 9 + 1);
        assert_eq!(solve_conntrack(432000, k(7200, 75, 9)), 432000);
    }
}
