//! Every built-in rule fires on one fixture and stays quiet on another,
//! and the engine's grouping, counter and applicability behaviour.

use crate::common;

use common::fixture::{Snap, Sock, host, listener, nginx_linger0, peer, sock};
use rstaudit::host::{Linger, Snapshot, SockOptions, TcpState};
use rstaudit::rules::{self, AuditOutcome, Selection};

fn audit_with(rule: &str, snap: &Snapshot, params: &[(&str, &str)]) -> AuditOutcome {
    let sel = Selection {
        only: vec![rule.to_string()],
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Selection::default()
    };
    rules::run(&rules::load::builtin().unwrap(), &sel, snap).expect("audit runs")
}

struct Case {
    rule: &'static str,
    fires: Snap,
    quiet: Snap,
}

fn case(rule: &'static str, fires: Snap, quiet: Snap) -> Case {
    Case { rule, fires, quiet }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "abort-on-overflow",
            host().sysctl("net.ipv4.tcp_abort_on_overflow", "1"),
            host(),
        ),
        case(
            "keepalive-above-idle-timeout",
            host().sysctl("net.ipv4.tcp_keepalive_time", "7200"),
            host().sysctl("net.ipv4.tcp_keepalive_time", "240"),
        ),
        case(
            "keepalive-retry-above-idle-timeout",
            host().sysctl("net.ipv4.tcp_keepalive_time", "250"),
            host().sysctl("net.ipv4.tcp_keepalive_time", "7200"),
        ),
        case(
            "linger-zero",
            host().socket(
                sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5000")
                    .owner(812, "nginx")
                    .linger0(),
            ),
            host().socket(
                sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5000")
                    .owner(812, "nginx")
                    .keepalive(true, 60),
            ),
        ),
        case(
            "rfc1337-off",
            host().sysctl("net.ipv4.tcp_rfc1337", "0"),
            host(),
        ),
        case(
            "paws-timewait",
            host().kernel("6.18.0").counter("TcpExt.PAWSTimewait", 3),
            host()
                .kernel("6.18.0")
                .counter("TcpExt.PAWSTimewait", 3)
                .sysctl("net.ipv4.tcp_rfc1337", "0"),
        ),
        case(
            "somaxconn-low",
            host().sysctl("net.core.somaxconn", "128"),
            host(),
        ),
        case(
            "syn-backlog-small",
            host()
                .sysctl("net.ipv4.tcp_syncookies", "0")
                .sysctl("net.ipv4.tcp_max_syn_backlog", "128")
                .socket(listener("0.0.0.0:80", 0, 4096)),
            host()
                .sysctl("net.ipv4.tcp_syncookies", "0")
                .sysctl("net.ipv4.tcp_max_syn_backlog", "128")
                .socket(listener("0.0.0.0:80", 0, 100)),
        ),
        case(
            "syncookies-off",
            host().sysctl("net.ipv4.tcp_syncookies", "0"),
            host(),
        ),
        case(
            "tw-recycle",
            host()
                .kernel("4.9.0")
                .sysctl("net.ipv4.tcp_tw_recycle", "1"),
            host()
                .kernel("4.9.0")
                .sysctl("net.ipv4.tcp_tw_recycle", "0"),
        ),
        case(
            "tw-reuse-without-timestamps",
            host()
                .sysctl("net.ipv4.tcp_tw_reuse", "1")
                .sysctl("net.ipv4.tcp_timestamps", "0"),
            host().sysctl("net.ipv4.tcp_tw_reuse", "1"),
        ),
        case(
            "listener-clamped",
            host()
                .sysctl("net.core.somaxconn", "128")
                .socket(listener("0.0.0.0:80", 0, 128)),
            host()
                .sysctl("net.core.somaxconn", "128")
                .socket(listener("0.0.0.0:80", 0, 64)),
        ),
        case(
            "listener-linger-zero",
            host().socket(
                listener("0.0.0.0:80", 0, 128)
                    .owner(77, "haproxy")
                    .linger0(),
            ),
            host().socket(
                listener("0.0.0.0:80", 0, 128)
                    .owner(77, "haproxy")
                    .opts(|o| {
                        o.linger = Some(Linger {
                            on: false,
                            seconds: 0,
                        })
                    }),
            ),
        ),
        case(
            "listener-backlog-small",
            host().socket(listener("127.0.0.1:8081", 0, 2).owner(80, "nginx")),
            host().socket(listener("127.0.0.1:8081", 0, 511).owner(80, "nginx")),
        ),
        case(
            "listener-queue-full",
            host().socket(listener("0.0.0.0:80", 129, 128).owner(812, "nginx")),
            host().socket(listener("0.0.0.0:80", 3, 128).owner(812, "nginx")),
        ),
        case(
            "listen-overflows",
            host().counter("TcpExt.ListenOverflows", 5),
            host().counter("TcpExt.ListenOverflows", 0),
        ),
        case(
            "idle-without-keepalive",
            host().socket(
                est(1)
                    .owner(7, "app")
                    .idle_ms(400_000)
                    .keepalive(false, 7200),
            ),
            host().socket(est(1).owner(7, "app").idle_ms(400_000).keepalive(true, 60)),
        ),
        case(
            "half-open",
            host().socket(
                est(1)
                    .owner(7, "app")
                    .idle_ms(700_000)
                    .keepalive(false, 7200),
            ),
            host().socket(est(1).owner(7, "app").idle_ms(700_000).keepalive(true, 600)),
        ),
        case(
            "keepidle-above-idle-timeout",
            host().socket(
                est(1)
                    .owner(7, "app")
                    .idle_ms(400_000)
                    .keepalive(true, 7200),
            ),
            host().socket(est(1).owner(7, "app").idle_ms(400_000).keepalive(true, 60)),
        ),
        case(
            "linger2-negative",
            host().socket(est(1).owner(7, "app").opts(|o| o.linger2 = Some(-1))),
            host().socket(est(1).owner(7, "app").opts(|o| o.linger2 = Some(0))),
        ),
        case(
            "time-wait-near-max",
            host()
                .sysctl("net.ipv4.tcp_max_tw_buckets", "10")
                .sockets(9, |i| client(TcpState::TimeWait, i).orphan()),
            host()
                .sysctl("net.ipv4.tcp_max_tw_buckets", "10")
                .sockets(2, |i| client(TcpState::TimeWait, i).orphan()),
        ),
        case(
            "orphans-near-max",
            host()
                .sysctl("net.ipv4.tcp_max_orphans", "10")
                .sockets(9, |i| client(TcpState::FinWait2, i).orphan()),
            host()
                .sysctl("net.ipv4.tcp_max_orphans", "10")
                .sockets(1, |i| client(TcpState::FinWait2, i).orphan()),
        ),
        case(
            "fin-timeout-long",
            host().sysctl("net.ipv4.tcp_fin_timeout", "120"),
            host(),
        ),
        case(
            "retries2-low",
            host().sysctl("net.ipv4.tcp_retries2", "5"),
            host(),
        ),
        case(
            "syn-retries-low",
            host().sysctl("net.ipv4.tcp_syn_retries", "2"),
            host(),
        ),
        case(
            "conntrack-timeout-below-keepalive",
            host().sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", "120"),
            host(),
        ),
        case(
            "conntrack-strict-invalid",
            host().sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", "0"),
            host()
                .sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", "0")
                .sysctl("net.netfilter.nf_conntrack_count", "0"),
        ),
        case(
            "conntrack-table-full",
            host().sysctl("net.netfilter.nf_conntrack_count", "250000"),
            host(),
        ),
        case(
            "close-wait-pile",
            host().sockets(12, |i| client(TcpState::CloseWait, i).owner(9, "leaky")),
            host().sockets(5, |i| client(TcpState::CloseWait, i).owner(9, "leaky")),
        ),
        case(
            "unread-close",
            host().socket(
                sock(TcpState::CloseWait, "10.0.0.5:443", "10.0.0.9:1000")
                    .owner(9, "app")
                    .rx(100),
            ),
            host()
                .socket(sock(TcpState::CloseWait, "10.0.0.5:443", "10.0.0.9:1000").owner(9, "app")),
        ),
        case(
            "resets-abort-on-close",
            host().counter("TcpExt.TCPAbortOnClose", 3),
            host().counter("TcpExt.TCPAbortOnClose", 0),
        ),
        case(
            "resets-abort-on-data",
            host().counter("TcpExt.TCPAbortOnData", 3),
            host().counter("TcpExt.TCPAbortOnData", 0),
        ),
        case(
            "resets-abort-on-linger",
            host().counter("TcpExt.TCPAbortOnLinger", 3),
            host().counter("TcpExt.TCPAbortOnLinger", 0),
        ),
        case(
            "resets-timeouts",
            host().counter("TcpExt.TCPAbortOnTimeout", 3),
            host().counter("TcpExt.TCPAbortOnTimeout", 0),
        ),
        case(
            "retransmitting-sockets",
            host().socket(est(1).owner(7, "app").retransmits(5)),
            host().socket(est(1).owner(7, "app").retransmits(1)),
        ),
        case(
            "user-timeout-short",
            host().socket(est(1).owner(7, "app").opts(|o| o.user_timeout = Some(5000))),
            host().socket(
                est(1)
                    .owner(7, "app")
                    .opts(|o| o.user_timeout = Some(30000)),
            ),
        ),
    ]
}

/// Socket `i` of the server on 10.0.0.5:443: to 10.0.0.9, port 1000 + `i`.
fn client(state: TcpState, i: usize) -> Sock {
    peer(state, "10.0.0.5:443", "10.0.0.9", 1000 + i)
}

fn est(i: u16) -> Sock {
    peer(
        TcpState::Established,
        "10.0.0.5:443",
        "10.0.0.9",
        40000 + usize::from(i),
    )
}

#[test]
fn every_rule_fires_on_one_fixture_and_not_on_another() {
    for c in cases() {
        let fired = audit_with(c.rule, &c.fires.build(), &[]);
        assert!(
            fired.findings.iter().any(|f| f.rule == c.rule),
            "{} did not fire: {fired:#?}",
            c.rule
        );
        let quiet = audit_with(c.rule, &c.quiet.build(), &[]);
        assert!(
            quiet.findings.is_empty(),
            "{} fired on the quiet fixture: {quiet:#?}",
            c.rule
        );
        assert_eq!(
            quiet.passed,
            vec![c.rule.to_string()],
            "{}: {quiet:#?}",
            c.rule
        );
    }
}

#[test]
fn every_builtin_rule_has_a_case() {
    let set = rules::load::builtin().expect("built-in rules load");
    let mut ids: Vec<String> = set.rules.iter().map(|r| r.id.clone()).collect();
    let mut covered: Vec<String> = cases().iter().map(|c| c.rule.to_string()).collect();
    ids.sort();
    covered.sort();
    assert_eq!(ids, covered);
}

#[test]
fn the_healthy_fixture_has_no_findings() {
    let out = rules::run(
        &rules::load::builtin().unwrap(),
        &Selection::default(),
        &host().build(),
    )
    .unwrap();
    assert!(out.findings.is_empty(), "{out:#?}");
    assert!(out.not_checked.is_empty(), "{out:#?}");
}

#[test]
fn socket_findings_are_grouped_per_process() {
    let snap = host()
        .sockets(1204, nginx_linger0)
        .sockets(3, |i| {
            peer(
                TcpState::Established,
                "10.0.0.5:8080",
                "10.0.0.7",
                20000 + i,
            )
            .owner(99, "java")
            .linger0()
        })
        .build();
    let out = audit_with("linger-zero", &snap, &[]);
    assert_eq!(out.findings.len(), 2, "{out:#?}");
    let f = &out.findings[0];
    assert_eq!(f.process.as_ref().unwrap().pid, 812);
    assert_eq!(f.count, Some(1204));
    assert_eq!(f.examples.len(), 3);
    assert!(
        f.message
            .starts_with("nginx (pid 812): 1,204 sockets with SO_LINGER {1, 0}"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("e.g. 10.0.0.5:443 -> 10.0.0.9:10000 ESTABLISHED"),
        "{}",
        f.message
    );
}

#[test]
fn parameters_change_the_verdict_and_unknown_ones_are_refused() {
    let snap = host().sysctl("net.ipv4.tcp_keepalive_time", "240").build();
    assert!(
        audit_with("keepalive-above-idle-timeout", &snap, &[])
            .findings
            .is_empty()
    );
    let out = audit_with(
        "keepalive-above-idle-timeout",
        &snap,
        &[("idle_timeout", "60")],
    );
    assert_eq!(out.findings.len(), 1);
    // The fix is computed from the parameter: 80% of the idle timeout.
    assert_eq!(out.findings[0].fix.sysctls[0].value, "48");
    assert_eq!(
        out.findings[0].fix.sysctls[0].current.as_deref(),
        Some("240")
    );
    let sel = Selection {
        params: vec![("idle_timout".into(), "60".into())],
        ..Selection::default()
    };
    let err = rules::run(&rules::load::builtin().unwrap(), &sel, &snap)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("idle_timout") && err.contains("idle_timeout"),
        "{err}"
    );
    let sel = Selection {
        params: vec![("idle_timeout".into(), "soon".into())],
        ..Selection::default()
    };
    assert!(rules::run(&rules::load::builtin().unwrap(), &sel, &snap).is_err());
    let sel = Selection {
        only: vec!["no-such-rule".into()],
        ..Selection::default()
    };
    assert!(rules::run(&rules::load::builtin().unwrap(), &sel, &snap).is_err());
}

#[test]
fn absent_keys_make_rules_not_applicable_not_silent() {
    let snap = host().without("net.ipv4.tcp_abort_on_overflow").build();
    let out = audit_with("abort-on-overflow", &snap, &[]);
    assert!(out.findings.is_empty());
    assert_eq!(out.not_applicable.len(), 1, "{out:#?}");
    assert!(
        out.not_applicable[0]
            .reason
            .contains("tcp_abort_on_overflow")
    );
}

#[test]
fn unread_options_make_socket_rules_not_checked() {
    let snap = host()
        .socket(sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5000"))
        .note("options", None, "EPERM reading socket options: run as root")
        .build();
    let out = audit_with("linger-zero", &snap, &[]);
    assert!(out.findings.is_empty());
    assert_eq!(out.not_checked.len(), 1, "{out:#?}");
    // The reason points to the note that says why, once for every rule it stops (issue 27).
    assert_eq!(
        out.not_checked[0].reason, "socket options were not read (see the note `options`)",
        "{out:#?}"
    );
}

#[test]
fn option_rules_are_not_checked_when_owners_could_not_be_read() {
    // Unprivileged audit: /proc/PID/fd of other processes is denied, so no socket has an
    // owner and no options note is written; the sockets may well have SO_LINGER 0.
    let snap = host()
        .socket(sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5000"))
        .note(
            "owners",
            Some("66 processes"),
            "permission denied reading /proc/PID/fd of 66 processes",
        )
        .build();
    let out = audit_with("linger-zero", &snap, &[]);
    assert!(out.passed.is_empty(), "{out:#?}");
    assert_eq!(out.not_checked.len(), 1, "{out:#?}");
    assert_eq!(
        out.not_checked[0].reason, "socket options were not read (see the note `owners`)",
        "{out:#?}"
    );
}

/// A host rule that names the likely processes (resets-abort-on-data: sockets with SO_LINGER
/// 0) must not claim "no process holds such sockets" when it could not look at them.
#[test]
fn a_host_finding_does_not_clear_processes_it_could_not_look_at() {
    let denied = host()
        .counter("TcpExt.TCPAbortOnData", 3)
        .socket(sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5000"))
        .socket(sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5001"))
        .note(
            "owners",
            Some("66 processes"),
            "permission denied reading /proc/PID/fd of 66 processes",
        )
        .build();
    let f = &audit_with("resets-abort-on-data", &denied, &[]).findings[0];
    assert!(
        !f.notes.iter().any(|n| n.contains("no process holds")),
        "{f:#?}"
    );
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("could not be looked for: 2 sockets could not be judged")),
        "{f:#?}"
    );
    // With the options read and none of the kind, it may say so.
    let mut read = denied.clone();
    read.notes.clear();
    for s in &mut read.sockets {
        s.options = Some(SockOptions {
            linger: Some(Linger {
                on: false,
                seconds: 0,
            }),
            ..SockOptions::default()
        });
    }
    let f = &audit_with("resets-abort-on-data", &read, &[]).findings[0];
    assert!(
        f.notes.iter().any(|n| n.contains("no process holds")),
        "{f:#?}"
    );
}

/// Sockets no process holds (TIME_WAIT) have no options: with every owner read they are not
/// "could not be judged"; with owners denied they may belong to a hidden process and are.
#[test]
fn sockets_no_process_holds_are_not_unjudged_when_every_owner_was_read() {
    let build = |denied: bool| {
        let mut b = host().sockets(3, nginx_linger0).sockets(5, |i| {
            peer(TcpState::TimeWait, "10.0.0.5:443", "10.0.0.8", 20000 + i)
        });
        if denied {
            b = b.note("owners", Some("pid 1"), "EPERM reading /proc/1/fd");
        }
        b.build()
    };
    let notes = |snap: &Snapshot| {
        audit_with("linger-zero", snap, &[]).findings[0]
            .notes
            .clone()
    };
    let all_read = notes(&build(false));
    assert!(
        !all_read.iter().any(|n| n.contains("could not be judged")),
        "{all_read:?}"
    );
    // Sockets that changed under the scan are a note of their own: every owner was still read.
    let mut churned = build(false);
    churned.notes.push(rstaudit::host::Note::new(
        "changed",
        Some("3 sockets".into()),
        "socket options of 3 sockets not read: their process exited, or closed or reused the \
         descriptor, while the scan ran (short-lived connections)",
    ));
    let churned = notes(&churned);
    assert!(
        !churned.iter().any(|n| n.contains("could not be judged")),
        "{churned:?}"
    );
    let denied = notes(&build(true));
    assert!(
        denied
            .iter()
            .any(|n| n.contains("5 sockets on this host could not be judged")),
        "{denied:?}"
    );
}

#[test]
fn counters_are_since_boot_with_one_sample_and_a_change_with_two() {
    let one = host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .counter("TcpExt.ListenOverflows", 1234)
        .build();
    let f = &audit_with("abort-on-overflow", &one, &[]).findings[0];
    assert!(f.message.contains("1,234 (since boot)"), "{}", f.message);
    assert!(f.notes.iter().any(|n| n.contains("since boot")), "{f:#?}");
    let two = host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .counter2("TcpExt.ListenOverflows", 1000, 1007)
        .build();
    let f = &audit_with("abort-on-overflow", &two, &[]).findings[0];
    assert!(f.message.contains("7 (in 10 s)"), "{}", f.message);
    let ev = f
        .evidence
        .counters
        .iter()
        .find(|c| c.name == "TcpExt.ListenOverflows")
        .unwrap();
    assert_eq!(
        (ev.total, ev.delta, ev.window_seconds),
        (Some(1007), Some(7), Some(10.0))
    );
    assert!(!f.notes.iter().any(|n| n.contains("since boot")));
}

#[test]
fn counter_rules_name_the_likely_processes() {
    let snap = host()
        .counter("TcpExt.TCPAbortOnClose", 42)
        .socket(
            sock(TcpState::CloseWait, "10.0.0.5:80", "10.0.0.9:1000")
                .owner(55, "worker")
                .rx(10),
        )
        .socket(
            sock(TcpState::CloseWait, "10.0.0.5:80", "10.0.0.9:1001")
                .owner(55, "worker")
                .rx(10),
        )
        .socket(sock(TcpState::Established, "10.0.0.5:80", "10.0.0.9:1002").owner(56, "other"))
        .build();
    let out = audit_with("resets-abort-on-close", &snap, &[]);
    let f = &out.findings[0];
    assert_eq!(f.process.as_ref().map(|p| p.pid), Some(55), "{f:#?}");
    assert!(
        f.message.contains("likely: worker (pid 55)"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("other"), "{}", f.message);
}

#[test]
fn tw_recycle_is_not_applicable_on_modern_kernels() {
    let out = audit_with("tw-recycle", &host().build(), &[]);
    assert!(out.findings.is_empty());
    assert_eq!(out.not_applicable.len(), 1);
    assert!(
        out.not_applicable[0].reason.contains("removed in 4.12"),
        "{out:#?}"
    );
}

#[test]
fn time_wait_overflow_counter_alone_fires() {
    let snap = host()
        .counter2("TcpExt.TCPTimeWaitOverflow", 10, 25)
        .build();
    let out = audit_with("time-wait-near-max", &snap, &[]);
    assert_eq!(out.findings.len(), 1, "{out:#?}");
    assert!(
        out.findings[0].message.contains("15 (in 10 s)"),
        "{}",
        out.findings[0].message
    );
}

#[test]
fn rule_ids_and_files_agree_and_every_lab_name_is_known() {
    for (file, _) in rules::load::EMBEDDED {
        let set = rules::load::builtin().unwrap();
        let id = file.trim_end_matches(".yaml");
        assert!(
            set.get(id).is_some(),
            "rules/{file}: the id must equal the file name"
        );
    }
}

#[test]
fn option_rules_pass_when_no_process_holds_a_socket() {
    // An unowned listener (e.g. of another namespace's process) and no note: nothing to judge.
    let snap = host().socket(listener("0.0.0.0:22", 0, 128)).build();
    let out = audit_with("linger-zero", &snap, &[]);
    assert!(out.not_checked.is_empty(), "{out:#?}");
    assert_eq!(out.passed, vec!["linger-zero".to_string()]);
    // Owned sockets without options: they were not read.
    let snap = host()
        .socket(sock(TcpState::Established, "10.0.0.5:443", "10.0.0.9:5000").owner(5, "x"))
        .build();
    let mut snap = snap;
    snap.sockets[0].options = None;
    let out = audit_with("linger-zero", &snap, &[]);
    assert_eq!(out.not_checked.len(), 1, "{out:#?}");
}

/// The catalogue of causes (docs/causes.md) has a section for every cause, and each section
/// names every rule that checks for that cause: what rules and `explain` point to is there.
#[test]
fn the_catalogue_of_causes_covers_every_cause_and_its_rules() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/causes.md"),
    )
    .unwrap();
    let set = rules::load::builtin().unwrap();
    for cause in rules::known::CAUSES {
        let head = format!("\n## {cause}\n");
        let at = text
            .find(&head)
            .unwrap_or_else(|| panic!("docs/causes.md has no section `## {cause}`"));
        let body = &text[at + head.len()..];
        let body = &body[..body.find("\n## ").unwrap_or(body.len())];
        for field in [
            "- Kernel reason:",
            "- Counters:",
            "- Settings:",
            "- Confirm:",
            "- Fix:",
            "- Rules:",
        ] {
            assert!(body.contains(field), "{cause}: no {field:?}");
        }
        let listed = &body[body.find("- Rules:").unwrap()..];
        for rule in set.rules.iter().filter(|r| r.cause == *cause) {
            assert!(
                listed.contains(&format!("`{}`", rule.id)),
                "docs/causes.md, {cause}: rule {} is not listed",
                rule.id
            );
        }
        assert!(
            text.contains(&format!("| [{cause}](#{cause}) |")),
            "{cause} is not in the table"
        );
    }
}
