//! Fixes that converge. Over the whole rule library and generated snapshots:
//! applying every recommended sysctl fix and auditing again fires none of the
//! fixed rules and no rule that did not fire before. And for every built-in
//! profile: a host at the profile's values is clean for the rules it is meant
//! to satisfy.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::fixture::{host, listener, peer, sock};
use proptest::prelude::*;
use rstaudit::host::sysctl::{Scope, SysctlKey, validate_value};
use rstaudit::host::{Snapshot, TcpState};
use rstaudit::remedy::profiles::{self, Target};
use rstaudit::rules::{self, Finding, RuleSet, Selection};

const KA_TIME: &str = "net.ipv4.tcp_keepalive_time";
const KA_INTVL: &str = "net.ipv4.tcp_keepalive_intvl";
const KA_PROBES: &str = "net.ipv4.tcp_keepalive_probes";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn library() -> &'static RuleSet {
    static SET: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    SET.get_or_init(|| rstaudit::rules::load::builtin().expect("the built-in rules load"))
}

fn audit(set: &RuleSet, params: &[(String, String)], snap: &Snapshot) -> Vec<Finding> {
    let selection = Selection {
        params: params.to_vec(),
        ..Selection::default()
    };
    let plan = selection.plan(set).expect("known parameters");
    rules::eval::evaluate(&plan.rules, &plan.params, snap).findings
}

/// Every sysctl fix, one value per key; two findings asking different values is a failure
/// (`fix` would refuse: "rules disagree").
fn fixes(findings: &[Finding]) -> Result<BTreeMap<String, String>, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for f in findings {
        for s in &f.fix.sysctls {
            if let Some(v) = out.get(&s.key)
                && *v != s.value
            {
                return Err(format!(
                    "rules disagree on {}: {v} and {} ({})",
                    s.key, s.value, f.rule
                ));
            }
            out.insert(s.key.clone(), s.value.clone());
        }
    }
    Ok(out)
}

/// Write `values` into the snapshot as `sysctl -w` would: sockets that take a keepalive
/// default (their option equals the old sysctl) follow the new value, as in the kernel.
fn apply(snap: &Snapshot, values: &BTreeMap<String, String>) -> Snapshot {
    let mut next = snap.clone();
    for (key, value) in values {
        let old: Option<u32> = snap.sysctl(key).and_then(|v| v.trim().parse().ok());
        let new: Option<u32> = value.parse().ok();
        if let (Some(old), Some(new)) = (old, new) {
            for s in next.sockets.iter_mut() {
                let Some(o) = s.options.as_mut() else {
                    continue;
                };
                let slot = match key.as_str() {
                    KA_TIME => &mut o.keepidle,
                    KA_INTVL => &mut o.keepintvl,
                    KA_PROBES => &mut o.keepcnt,
                    _ => continue,
                };
                if *slot == Some(old) {
                    *slot = Some(new);
                }
            }
        }
        next.sysctls.insert(key.clone(), value.clone());
    }
    next
}

fn fired(findings: &[Finding]) -> BTreeSet<String> {
    findings.iter().map(|f| f.rule.clone()).collect()
}

/// The check itself; `Err` says what went wrong.
fn converges(set: &RuleSet, params: &[(String, String)], snap: &Snapshot) -> Result<(), String> {
    let before = audit(set, params, snap);
    let values = fixes(&before)?;
    for (key, value) in &values {
        let k = SysctlKey::parse(key, Scope::NetOnly).map_err(|e| e.to_string())?;
        validate_value(&k, value, snap.sysctl(key))
            .map_err(|e| format!("{key} = {value} is not a valid value: {e}"))?;
    }
    let fixed: BTreeSet<String> = before
        .iter()
        .filter(|f| !f.fix.sysctls.is_empty())
        .map(|f| f.rule.clone())
        .collect();
    let after = audit(set, params, &apply(snap, &values));
    let (was, now) = (fired(&before), fired(&after));
    let still: Vec<&String> = now.intersection(&fixed).collect();
    let new: Vec<&String> = now.difference(&was).collect();
    if still.is_empty() && new.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "applied {values:?}\nstill firing: {still:?}\nnew: {new:?}\nafter: {:#?}",
            after
                .iter()
                .filter(|f| still.contains(&&f.rule) || new.contains(&&f.rule))
                .map(|f| (&f.rule, &f.message, &f.fix.sysctls))
                .collect::<Vec<_>>()
        ))
    }
}

/// A host: the sysctls the rules read at generated values, listeners, keepalive sockets
/// (taking the default or their own TCP_KEEPIDLE), orphans and TIME_WAIT sockets.
#[derive(Debug, Clone)]
struct Case {
    sysctls: Vec<(&'static str, u64)>,
    conntrack: bool,
    params: Vec<(&'static str, u64)>,
    listeners: Vec<u32>,
    /// (keepalive on, own TCP_KEEPIDLE or the default, own TCP_KEEPINTVL or the default,
    /// idle seconds)
    keepalive: Vec<(bool, Option<u32>, Option<u32>, u32)>,
    orphans: u32,
    time_wait: u32,
}

fn case() -> impl Strategy<Value = Case> {
    // tcp_rto_max_ms (6.15) shortens the time tcp_retries2 allows: retries2-low's fix must
    // account for it.
    let keepalive = (1u64..=20_000, 1u64..=600, 1u64..=20, 1000u64..=120_000);
    let limits = (
        16u64..=70_000,
        64u64..=70_000,
        1u64..=20,
        1u64..=8,
        10u64..=200,
        10u64..=200,
    );
    let flags = (
        0u64..=1,
        0u64..=1,
        0u64..=1,
        0u64..=2,
        0u64..=1,
        10u64..=120,
    );
    let conntrack = (
        any::<bool>(),
        60u64..=500_000,
        0u64..=1,
        1000u64..=300_000,
        0u64..=100,
    );
    let params = (
        1u64..=3000,
        128u64..=16_384,
        1024u64..=65_535,
        // Up to 254 s: what tcp_retries2 255 lasts at the smallest tcp_rto_max_ms (1 s).
        10u64..=254,
        // Up to 128 s: what tcp_syn_retries 127 lasts at the smallest tcp_rto_max_ms (1 s).
        1u64..=128,
        10u64..=100,
    );
    let sockets = (
        prop::collection::vec(1u32..=70_000, 0..4),
        prop::collection::vec(
            (
                any::<bool>(),
                prop::option::of(1u32..=20_000),
                prop::option::of(1u32..=600),
                0u32..=5000,
            ),
            0..6,
        ),
        0u32..=200,
        0u32..=200,
    );
    (keepalive, limits, flags, conntrack, params, sockets).prop_map(
        |(
            (ka_time, ka_intvl, ka_probes, rto_max),
            (somaxconn, syn_backlog, retries2, syn_retries, max_orphans, max_tw),
            (syncookies, abort, rfc1337, tw_reuse, timestamps, fin_timeout),
            (conntrack, ct_est, liberal, ct_max, ct_fill_pct),
            (idle_timeout, min_somaxconn, wanted_backlog, min_give_up_s, min_syn_give_up_s, ratio),
            (listeners, keepalive, orphans, time_wait),
        )| {
            let mut sysctls = vec![
                (KA_TIME, ka_time),
                (KA_INTVL, ka_intvl),
                (KA_PROBES, ka_probes),
                ("net.core.somaxconn", somaxconn),
                ("net.ipv4.tcp_max_syn_backlog", syn_backlog),
                ("net.ipv4.tcp_retries2", retries2),
                ("net.ipv4.tcp_rto_max_ms", rto_max),
                ("net.ipv4.tcp_syn_retries", syn_retries),
                ("net.ipv4.tcp_max_orphans", max_orphans),
                ("net.ipv4.tcp_max_tw_buckets", max_tw),
                ("net.ipv4.tcp_syncookies", syncookies),
                ("net.ipv4.tcp_abort_on_overflow", abort),
                ("net.ipv4.tcp_rfc1337", rfc1337),
                ("net.ipv4.tcp_tw_reuse", tw_reuse),
                ("net.ipv4.tcp_timestamps", timestamps),
                ("net.ipv4.tcp_fin_timeout", fin_timeout),
            ];
            if conntrack {
                sysctls.extend([
                    ("net.netfilter.nf_conntrack_tcp_timeout_established", ct_est),
                    ("net.netfilter.nf_conntrack_tcp_be_liberal", liberal),
                    ("net.netfilter.nf_conntrack_max", ct_max),
                    (
                        "net.netfilter.nf_conntrack_count",
                        ct_max * ct_fill_pct / 100,
                    ),
                ]);
            }
            Case {
                sysctls,
                conntrack,
                params: vec![
                    ("idle_timeout", idle_timeout),
                    ("min_somaxconn", min_somaxconn),
                    ("wanted_backlog", wanted_backlog),
                    ("min_give_up_s", min_give_up_s),
                    ("min_syn_give_up_s", min_syn_give_up_s),
                    ("ratio_pct", ratio),
                ],
                // The kernel clamps a listener's backlog to somaxconn.
                listeners: listeners
                    .into_iter()
                    .map(|b| b.min(somaxconn as u32))
                    .collect(),
                keepalive,
                // The kernel keeps orphans and TIME_WAIT sockets within their limits.
                orphans: orphans.min(max_orphans as u32),
                time_wait: time_wait.min(max_tw as u32),
            }
        },
    )
}

fn build(c: &Case) -> (Snapshot, Vec<(String, String)>) {
    let mut s = host();
    if !c.conntrack {
        for k in [
            "net.netfilter.nf_conntrack_count",
            "net.netfilter.nf_conntrack_max",
            "net.netfilter.nf_conntrack_tcp_be_liberal",
            "net.netfilter.nf_conntrack_tcp_timeout_established",
        ] {
            s = s.without(k);
        }
    }
    for (k, v) in &c.sysctls {
        s = s.sysctl(k, &v.to_string());
    }
    let time = c.sysctls[0].1 as u32;
    let intvl = c.sysctls[1].1 as u32;
    let probes = c.sysctls[2].1 as u32;
    for (i, b) in c.listeners.iter().enumerate() {
        s = s.socket(listener(&format!("0.0.0.0:{}", 8000 + i), 0, *b).owner(100, "server"));
    }
    for (i, (on, own, own_intvl, idle)) in c.keepalive.iter().enumerate() {
        s = s.socket(
            peer(
                TcpState::Established,
                "10.0.0.5:443",
                "192.0.2.9",
                20000 + i,
            )
            .owner(200 + i as u32, "app")
            .idle_ms(idle * 1000)
            .opts(|o| {
                o.keepalive = Some(*on);
                o.keepidle = Some(own.unwrap_or(time));
                o.keepintvl = Some(own_intvl.unwrap_or(intvl));
                o.keepcnt = Some(probes);
                o.linger = None;
                o.user_timeout = Some(0);
                o.linger2 = Some(0);
            }),
        );
    }
    for i in 0..c.orphans {
        s = s.socket(
            sock(
                TcpState::FinWait1,
                "10.0.0.5:443",
                &format!("192.0.2.10:{}", 30000 + i),
            )
            .orphan(),
        );
    }
    for i in 0..c.time_wait {
        let mut t = sock(
            TcpState::TimeWait,
            "10.0.0.5:443",
            &format!("192.0.2.11:{}", 40000 + i),
        );
        t.0.tcp_info = None;
        s = s.socket(t.orphan());
    }
    let params = c
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (s.build(), params)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn applying_every_sysctl_fix_clears_the_fixed_rules_and_raises_none(c in case()) {
        let set = library();
        let (snap, params) = build(&c);
        if let Err(e) = converges(set, &params, &snap) {
            prop_assert!(false, "{e}");
        }
    }
}

/// The issue's chain on a stock host: tcp_keepalive_time 7200 against a 300 s idle timeout.
#[test]
fn stock_keepalive_fix_is_one_step_and_raises_no_retry_finding() {
    let set = library();
    let snap = host().sysctl(KA_TIME, "7200").build();
    let params = vec![("idle_timeout".to_string(), "300".to_string())];
    let findings = audit(set, &params, &snap);
    let values = fixes(&findings).unwrap();
    assert_eq!(values.get(KA_TIME).map(String::as_str), Some("240"));
    assert_eq!(values.get(KA_INTVL).map(String::as_str), Some("30"));
    converges(set, &params, &snap).unwrap();
    // And from the state the old fix left (time 240, intvl 75), or time 299.
    for time in ["240", "299"] {
        let snap = host().sysctl(KA_TIME, time).build();
        let values = fixes(&audit(set, &params, &snap)).unwrap();
        let intvl: u64 = values[KA_INTVL].parse().unwrap();
        assert!(intvl >= 10, "time {time}: intvl {intvl}");
        converges(set, &params, &snap).unwrap();
    }
}

/// Kernel defaults of a stock 6.x host, for the keys the profiles set.
const STOCK: &[(&str, &str)] = &[
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_abort_on_overflow", "0"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_intvl", "75"),
    ("net.ipv4.tcp_keepalive_probes", "9"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("net.ipv4.tcp_max_syn_backlog", "1024"),
    ("net.ipv4.tcp_max_tw_buckets", "65536"),
    ("net.ipv4.tcp_rfc1337", "0"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_tw_reuse", "2"),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", "0"),
    ("net.netfilter.nf_conntrack_tcp_loose", "1"),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        "432000",
    ),
];

/// What each built-in profile is meant to satisfy: at its values (and parameters) these
/// rules must not fire. `extends:` adds the parent's rules.
const PROFILE_RULES: &[(&str, &[&str])] = &[
    (
        "baseline",
        &[
            "syncookies-off",
            "abort-on-overflow",
            "tw-reuse-without-timestamps",
            "rfc1337-off",
            "fin-timeout-long",
            "somaxconn-low",
            "listener-clamped",
        ],
    ),
    (
        "behind-load-balancer",
        &[
            "keepalive-above-idle-timeout",
            "keepalive-retry-above-idle-timeout",
        ],
    ),
    (
        "mobile-gateway",
        &[
            "keepalive-above-idle-timeout",
            "keepalive-retry-above-idle-timeout",
        ],
    ),
    (
        "high-connection-server",
        &["syn-backlog-small", "time-wait-near-max", "somaxconn-low"],
    ),
    (
        "nat-gateway",
        &[
            "conntrack-timeout-below-keepalive",
            "conntrack-strict-invalid",
        ],
    ),
];

/// The value a profile leaves for a key on a host at `stock`.
fn at_profile(target: &Target, stock: Option<&str>) -> String {
    let cur = stock.and_then(|s| s.parse::<i64>().ok());
    match target {
        Target::Value(v) => v.clone(),
        Target::AtLeast(n) => cur.map_or(*n, |c| c.max(*n)).to_string(),
        Target::AtMost(n) => cur.map_or(*n, |c| c.min(*n)).to_string(),
    }
}

#[test]
fn every_profile_names_what_it_satisfies_and_a_host_at_its_values_is_clean_for_it() {
    let set = library();
    let names: BTreeSet<&str> = profiles::builtin_names().collect();
    let listed: BTreeSet<&str> = PROFILE_RULES.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, listed,
        "every built-in profile says what it satisfies"
    );
    for (name, own) in PROFILE_RULES {
        let profile = profiles::load(name).unwrap();
        let mut meant: Vec<&str> = own.to_vec();
        for parent in &profile.extends {
            let (_, rules) = PROFILE_RULES.iter().find(|(n, _)| n == parent).unwrap();
            meant.extend(rules.iter());
        }
        for id in &meant {
            assert!(set.get(id).is_some(), "{name}: no rule {id}");
        }
        // A stock host with conntrack tracking flows, listeners at the clamp of the stock
        // somaxconn, at the profile's values.
        let mut s = host()
            .sysctl("net.netfilter.nf_conntrack_count", "100")
            .socket(listener("0.0.0.0:443", 0, 4096).owner(100, "server"))
            .socket(listener("0.0.0.0:80", 0, 511).owner(100, "server"));
        for (k, v) in STOCK {
            s = s.sysctl(k, v);
        }
        let mut snap = s.build();
        for (key, setting) in &profile.sysctls {
            let v = at_profile(&setting.target, snap.sysctl(key));
            snap.sysctls.insert(key.clone(), v);
        }
        let params: Vec<(String, String)> = profile.params.clone().into_iter().collect();
        let findings = audit(set, &params, &snap);
        let dirty: Vec<(&str, &str)> = findings
            .iter()
            .filter(|f| meant.contains(&f.rule.as_str()))
            .map(|f| (f.rule.as_str(), f.message.as_str()))
            .collect();
        assert!(dirty.is_empty(), "{name}: {dirty:#?}");
    }
}

/// conntrack-timeout-below-keepalive asks for what outlasts the keepalive the fixes leave, at
/// least RFC 5382's 7440 s (what nat-gateway requires), not 432000 s.
#[test]
fn conntrack_fix_outlasts_the_keepalive_left_and_agrees_with_nat_gateway() {
    let set = library();
    let ct = "net.netfilter.nf_conntrack_tcp_timeout_established";
    let snap = host().sysctl(KA_TIME, "7200").sysctl(ct, "3600").build();
    let value = |idle: &str| {
        let params = vec![("idle_timeout".to_string(), idle.to_string())];
        let findings = audit(set, &params, &snap);
        assert!(
            findings
                .iter()
                .any(|f| f.rule == "conntrack-timeout-below-keepalive")
        );
        converges(set, &params, &snap).unwrap();
        fixes(&findings).unwrap()[ct].clone()
    };
    // Keepalive left at 7200 + 75 x 9: just past its last probe.
    assert_eq!(value("10000"), "7876");
    // Keepalive fixed to 240 + 30 x 9 in the same run: the RFC 5382 floor.
    assert_eq!(value("300"), "7440");
}

/// A socket rule that compares each socket with a statistic of the whole table: judged only
/// once the table has gone by (the fold keeps the sockets until then).
const TABLE_STAT_RULE: &str = r#"
id: test-established-above-listeners
title: Established sockets while listeners are few
severity: low
cause: "3"
subject: socket
match:
  all:
    - field: state
      eq: ESTABLISHED
    - stat: listeners
      lt: 3
message: "established while the host has few listeners"
evidence:
  counters: [Tcp.EstabResets]
fix:
  advice: None; a rule of the tests.
explanation: A test rule.
references:
  - https://man7.org/linux/man-pages/man7/tcp.7.html
"#;

/// The audit of a table given one socket at a time, as `audit` reads the live host (header
/// first, sockets as they are dumped, notes last), after a dump that failed part way and
/// was restarted.
fn streamed(
    rules: &[&rules::Rule],
    params: &BTreeMap<String, f64>,
    snap: &Snapshot,
) -> rules::AuditOutcome {
    use rstaudit::host::SocketSink;
    let mut header = snap.clone();
    header.sockets.clear();
    let notes = std::mem::take(&mut header.notes);
    let mut fold = rules::eval::Fold::new(rules, params, &header);
    // A dump that failed after some sockets: forgotten.
    for s in snap.sockets.iter().rev().take(3) {
        fold.socket(s.clone());
    }
    fold.restart();
    for s in &snap.sockets {
        fold.socket(s.clone());
    }
    header.notes = notes;
    fold.finish(&header)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn judging_sockets_as_they_are_read_gives_the_audit_of_the_table(
        c in case(),
        with_stat_rule in any::<bool>(),
        partial_owners in any::<bool>(),
    ) {
        let mut set = library().clone();
        if with_stat_rule {
            set.rules.push(rules::load::parse_file("test.yaml", TABLE_STAT_RULE).expect("test rule"));
        }
        let (mut snap, params) = build(&c);
        if partial_owners {
            snap.notes.push(rstaudit::host::Note::new("owners", None, "pid 1: permission denied"));
        }
        let selection = Selection { params, ..Selection::default() };
        let plan = selection.plan(&set).expect("known parameters");
        let table = rules::eval::evaluate(&plan.rules, &plan.params, &snap);
        let stream = streamed(&plan.rules, &plan.params, &snap);
        prop_assert_eq!(&stream, &table);
        if with_stat_rule {
            let decided = table.findings.iter().any(|f| f.rule == "test-established-above-listeners")
                || table.passed.iter().any(|r| r == "test-established-above-listeners");
            prop_assert!(decided, "{:?}", table.not_checked);
        }
    }
}
