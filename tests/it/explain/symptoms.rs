//! `rstaudit explain TEXT`: real symptom texts lead to the expected seed causes and rules,
//! the commands it proposes run, the JSON has its documented shape. What it says about
//! errno values and resets is checked on the kernel in tests/it/explain/kernel.rs.

use crate::common;

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::Value;

/// `explain` ranked by the text alone (`--text-only`), so the answers do not depend on the
/// machine the tests run on.
fn explain(args: &[&str]) -> std::process::Output {
    common::rstaudit()
        .args(["explain", "--text-only"])
        .args(args)
        .output()
        .unwrap()
}

/// The answer as JSON (every cause: --limit 0), exit 0 required.
fn answer(text: &str) -> Value {
    let out = explain(&["--format", "json", "--limit", "0", text]);
    let t = common::exits(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{t}"))
}

fn causes(v: &Value) -> Vec<String> {
    v["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cause"].as_str().unwrap().to_string())
        .collect()
}

fn rules_of(v: &Value, cause: &str) -> Vec<String> {
    v["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"] == cause)
        .unwrap_or_else(|| panic!("cause {cause} not in {v:#}"))["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn errors(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// (symptom as people paste it, top cause, other causes listed, rules of the top cause,
/// errno values recognised).
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const SYMPTOMS: &[Case] = &[
    (
        "Connection reset by peer",
        "write-after-close",
        &["unread-close", "middlebox-idle", "linger-zero", "half-open"],
        &["fin-timeout-long"],
        &["ECONNRESET"],
    ),
    (
        "java.net.SocketException: Connection reset",
        "write-after-close",
        &["unread-close", "middlebox-idle"],
        &["fin-timeout-long"],
        &["ECONNRESET"],
    ),
    (
        "Connection reset by peer on the second write",
        "write-after-close",
        &["middlebox-idle"],
        &["fin-timeout-long"],
        &["ECONNRESET"],
    ),
    (
        "ConnectionResetError: [Errno 104] Connection reset by peer",
        "write-after-close",
        &["unread-close"],
        &[],
        &["ECONNRESET"],
    ),
    (
        "read tcp 10.1.1.1:41234->10.2.2.2:443: read: connection reset by peer",
        "write-after-close",
        &["half-open"],
        &[],
        &["ECONNRESET"],
    ),
    (
        "write tcp 10.0.0.1:5432->10.0.0.2:80: write: broken pipe",
        "write-after-close",
        &["unread-close"],
        &[],
        &["EPIPE"],
    ),
    ("EPIPE", "write-after-close", &[], &[], &["EPIPE"]),
    (
        "errno 104",
        "write-after-close",
        &["unread-close"],
        &[],
        &["ECONNRESET"],
    ),
    (
        "curl: (56) Recv failure: Connection reset by peer",
        "write-after-close",
        &[],
        &[],
        &["ECONNRESET"],
    ),
    (
        "2026/11/30 10:00:00 [error] 812#812: *1 recv() failed (104: Connection reset by peer) while reading response header from upstream",
        "write-after-close",
        &[],
        &[],
        &["ECONNRESET"],
    ),
    (
        "connection reset after 60 s idle behind a load balancer",
        "middlebox-idle",
        &["mobile-idle"],
        &[
            "keepidle-above-idle-timeout",
            "conntrack-timeout-below-keepalive",
            "idle-without-keepalive",
            "keepalive-above-idle-timeout",
        ],
        &["ECONNRESET"],
    ),
    (
        "AWS NLB drops connections idle for 350 seconds",
        "middlebox-idle",
        &["mobile-idle"],
        &["keepidle-above-idle-timeout"],
        &[],
    ),
    (
        "IM app on a mobile network, heartbeat every 10 minutes, then reset",
        "mobile-idle",
        &["middlebox-idle"],
        &["keepalive-above-idle-timeout", "idle-without-keepalive"],
        &[],
    ),
    (
        "移动网络下5分钟后连接被重置",
        "mobile-idle",
        &["middlebox-idle"],
        &["idle-without-keepalive"],
        &["ECONNRESET"],
    ),
    (
        "resets only after a server restart",
        "half-open",
        &[],
        &["idle-without-keepalive", "keepalive-above-idle-timeout"],
        &[],
    ),
    (
        "ECONNREFUSED",
        "port-not-open",
        &["time-wait"],
        &["syncookies-off", "somaxconn-low"],
        &["ECONNREFUSED"],
    ),
    (
        "dial tcp 10.0.0.5:80: connect: connection refused",
        "port-not-open",
        &[],
        &["listen-overflows"],
        &["ECONNREFUSED"],
    ),
    ("errno 111", "port-not-open", &[], &[], &["ECONNREFUSED"]),
    (
        "connection reset under load",
        "accept-overflow",
        &["write-after-close"],
        &["abort-on-overflow", "listener-queue-full"],
        &["ECONNRESET"],
    ),
    (
        "ETIMEDOUT",
        "connect-timeout",
        &["retransmit-timeout", "keepalive-timeout"],
        &["syn-retries-low"],
        &["ETIMEDOUT"],
    ),
    (
        "java.net.SocketTimeoutException: connect timed out",
        "connect-timeout",
        &["retransmit-timeout"],
        &["syn-retries-low"],
        &[],
    ),
    (
        "read: connection timed out after a network outage",
        "retransmit-timeout",
        &["keepalive-timeout", "connect-timeout"],
        &["retries2-low", "user-timeout-short"],
        &["ETIMEDOUT"],
    ),
    (
        "keepalive probes unanswered",
        "keepalive-timeout",
        &[],
        &["resets-timeouts", "keepalive-retry-above-idle-timeout"],
        &[],
    ),
    (
        "haproxy option nolinger",
        "linger-zero",
        &[],
        &["linger-zero"],
        &[],
    ),
    (
        "413 Request Entity Too Large, body unread, connection reset",
        "unread-close",
        &["write-after-close"],
        &["unread-close"],
        &["ECONNRESET"],
    ),
    (
        "tcp_tw_recycle and clients behind NAT",
        "time-wait",
        &[],
        &["tw-recycle"],
        &[],
    ),
    (
        "nf_conntrack: table full, dropping packet",
        "invalid-packets",
        &[],
        &["conntrack-table-full"],
        &[],
    ),
    (
        "TCP: too many orphaned sockets",
        "orphans",
        &[],
        &["orphans-near-max"],
        &[],
    ),
    (
        "ping shows packet loss",
        "packet-loss",
        &[],
        &["retransmitting-sockets"],
        &[],
    ),
];

#[test]
fn real_symptoms_lead_to_their_causes_and_rules() {
    for (text, top, others, rules, errnos) in SYMPTOMS {
        let v = answer(text);
        let got = causes(&v);
        assert_eq!(
            got.first().map(String::as_str),
            Some(*top),
            "{text:?}: {got:?}"
        );
        for o in *others {
            assert!(got.contains(&o.to_string()), "{text:?}: {o} not in {got:?}");
        }
        let ids = rules_of(&v, top);
        for r in *rules {
            assert!(
                ids.contains(&r.to_string()),
                "{text:?}: rule {r} not in {ids:?}"
            );
        }
        assert_eq!(errors(&v), *errnos, "{text:?}");
    }
}

#[test]
fn a_cause_name_or_its_number_names_that_cause_alone() {
    for (text, cause) in [
        ("unread-close", "unread-close"),
        ("linger-zero", "linger-zero"),
        ("4", "mobile-idle"),
        ("cause 2b", "accept-overflow"),
        ("#13", "write-after-close"),
        ("orphans", "orphans"),
    ] {
        let v = answer(text);
        assert_eq!(causes(&v), [cause], "{text:?}");
        assert_eq!(v["causes"][0]["matched"][0], format!("cause {cause}"));
    }
}

/// Regression (issue 27): the answer printed the article's numbering ("Seed cause 13: ...")
/// where a cause needs a name a reader can keep.
#[test]
fn causes_are_named_in_every_output_never_numbered() {
    let out = explain(&["Connection reset by peer"]);
    let t = common::exits(&out, 0);
    assert!(!t.contains("Seed cause"), "{t}");
    assert!(t.contains("\n1. write-after-close: "), "{t}");
    let v = answer("Connection reset by peer");
    assert_eq!(v["schema"], 2, "{v:#}");
    for c in v["causes"].as_array().unwrap() {
        let name = c["cause"].as_str().unwrap();
        assert!(
            name.len() > 2 && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{name}"
        );
    }
    assert_eq!(v["causes"][0]["number"], "13");
    // The audit names them too.
    let dir = tempfile::tempdir().unwrap();
    common::copied_proc_tree(dir.path(), &["netstat", "snmp"], "6.12.0");
    let out = common::rstaudit()
        .args(["audit", "--format", "json", "--fail-on", "never", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    common::exits(&out, 0);
    let a: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = a["namespaces"][0]["findings"].as_array().unwrap();
    assert!(!findings.is_empty(), "{a:#}");
    for f in findings {
        let cause = f["cause"].as_str().unwrap();
        assert!(cause.contains('-') || cause == "orphans", "{f:#}");
    }
}

/// Each cause says why it ranks where it does: the reasons and their points add up to its
/// score, and a symptom that fits a cause's phase and side ranks it above one that does
/// not.
#[test]
fn the_rank_says_why_and_follows_the_fit() {
    let v = answer("java.net.SocketTimeoutException: connect timed out");
    for c in v["causes"].as_array().unwrap() {
        let sum: i64 = c["why"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["points"].as_i64().unwrap())
            .sum();
        assert_eq!(c["score"].as_i64().unwrap(), sum.max(1), "{c:#}");
    }
    let why = |v: &Value, cause: &str| -> String {
        v["causes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cause"] == cause)
            .unwrap_or_else(|| panic!("{cause} missing: {v:#}"))["why"]
            .to_string()
    };
    assert!(
        why(&v, "connect-timeout").contains("fits when: connecting"),
        "{v:#}"
    );
    assert!(
        why(&v, "retransmit-timeout").contains("does not fit when"),
        "{v:#}"
    );
    assert_eq!(v["host"], Value::Null);
    // The same words, but idle: keepalive-timeout rises above connect-timeout.
    let idle = answer("connection timed out on an idle pooled connection");
    let order = causes(&idle);
    let at = |c: &str| order.iter().position(|x| x == c).unwrap_or(usize::MAX);
    assert!(at("keepalive-timeout") < at("connect-timeout"), "{order:?}");
}

/// What a host shows moves causes: a snapshot with tcp_abort_on_overflow=1 and a listener
/// puts accept-overflow first for a bare "Connection reset by peer", and says so.
#[test]
fn what_the_host_shows_moves_a_cause_up() {
    let dir = tempfile::tempdir().unwrap();
    common::copied_proc_tree(dir.path(), &["netstat", "snmp", "tcp"], "6.12.0");
    common::write_file(dir.path(), "proc/sys/net/ipv4/tcp_abort_on_overflow", "1\n");
    let out = common::rstaudit()
        .args(["explain", "--format", "json", "--root"])
        .arg(dir.path())
        .arg("Connection reset by peer")
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(causes(&v)[0], "accept-overflow", "{t}");
    assert!(
        v["causes"][0]["why"]
            .to_string()
            .contains("rule abort-on-overflow fires"),
        "{t}"
    );
    assert!(v["host"].as_str().unwrap().contains("the tree"), "{t}");
    // Without the host's facts it is not first.
    assert_ne!(
        causes(&answer("Connection reset by peer"))[0],
        "accept-overflow"
    );
}

#[test]
fn every_rule_is_found_under_its_cause() {
    let out = common::rstaudit().args(["rules", "list"]).output().unwrap();
    let list = common::exits(&out, 0);
    let rows: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[3].to_string())
        })
        .collect();
    assert!(rows.len() >= 30, "{list}");
    for (rule, cause) in rows {
        let v = answer(&cause);
        assert!(
            rules_of(&v, &cause).contains(&rule),
            "rule {rule} (cause {cause}) is not listed by `explain {cause}`"
        );
    }
}

#[test]
fn an_unknown_text_exits_1_and_offers_examples() {
    let out = explain(&["my printer is on fire"]);
    let t = common::exits(&out, 1);
    assert!(t.contains("No known cause matches"), "{t}");
    assert!(
        t.contains("rstaudit explain 'Connection reset by peer'"),
        "{t}"
    );
    assert!(
        t.contains("Causes: packet-loss, port-not-open, accept-overflow"),
        "{t}"
    );
    let out = explain(&["--format", "json", "12"]);
    common::exits(&out, 1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["causes"].as_array().unwrap().len(), 0);
    let examples = v["examples"].as_array().unwrap();
    assert!(!examples.is_empty());
    // Every example offered does match.
    for e in examples {
        let v = answer(e.as_str().unwrap());
        assert!(!causes(&v).is_empty(), "{e}");
    }
}

#[test]
fn an_empty_text_cannot_run() {
    let t = common::exits(&explain(&["  "]), 2);
    assert!(t.contains("the symptom is empty"), "{t}");
    common::exits(&explain(&[]), 2);
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn json_has_the_documented_shape() {
    let v = answer("connection reset after 60 s idle behind a load balancer");
    // The JSON is the library's serde type, field for field.
    let typed: rstaudit::rules::symptoms::Explanation =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v:#}"));
    assert_eq!(typed.seconds, Some(60));
    assert_eq!(
        keys(&v),
        BTreeSet::from([
            "schema", "query", "errors", "seconds", "said", "host", "causes", "omitted", "examples"
        ])
    );
    assert_eq!(v["seconds"], 60);
    assert_eq!(v["omitted"], 0);
    assert_eq!(
        v["errors"][0],
        serde_json::json!({"name": "ECONNRESET", "number": 104, "message": "Connection reset by peer"})
    );
    let c = &v["causes"][0];
    assert_eq!(
        keys(c),
        BTreeSet::from([
            "cause", "number", "title", "score", "matched", "why", "summary", "rules", "confirm",
            "advice"
        ])
    );
    assert!(c["score"].as_u64().unwrap() > v["causes"][1]["score"].as_u64().unwrap());
    assert_eq!(
        keys(&c["rules"][0]),
        BTreeSet::from(["id", "title", "severity", "lab"])
    );
    let kinds: Vec<&str> = c["confirm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(keys(x), BTreeSet::from(["kind", "command", "shows"]));
            x["kind"].as_str().unwrap()
        })
        .collect();
    // One lab command per lab scenario of the cause's rules (idle-middlebox and
    // idle-no-keepalive for cause 5).
    assert_eq!(kinds, ["audit", "live", "lab", "lab"]);
    // The 60 s of the text is the idle timeout the audit, the live check and the lab judge by.
    for x in c["confirm"].as_array().unwrap() {
        let cmd = x["command"].as_str().unwrap();
        assert!(cmd.ends_with(" --set idle_timeout=60"), "{cmd}");
    }
    assert!(
        c["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("below the idle timeout"))
    );
    // The limit: the best one only, the rest counted.
    let out = explain(&[
        "--format",
        "json",
        "--limit",
        "1",
        "Connection reset by peer",
    ]);
    common::exits(&out, 0);
    let one: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(one["causes"].as_array().unwrap().len(), 1);
    assert!(one["omitted"].as_u64().unwrap() >= 3, "{one:#}");
}

#[test]
fn the_table_names_causes_rules_commands_and_advice() {
    let out = explain(&["write: broken pipe"]);
    let t = common::exits(&out, 0);
    for needle in [
        "Error: EPIPE (errno 32, \"Broken pipe\")",
        "1. write-after-close: Data sent to a socket the peer already closed",
        "fin-timeout-long",
        // The rule's id, severity and title keep their columns.
        "     fin-timeout-long  low       ",
        "sudo rstaudit audit --only fin-timeout-long",
        "sudo rstaudit packet-check --lab --rule fin-timeout-long",
        "retry automatically only",
        "idempotent",
    ] {
        assert!(t.contains(needle), "{needle:?} missing:\n{t}");
    }
}

/// The audit each answer proposes runs as written (against a copied /proc tree here), and
/// each lab command names a rule with a lab scenario.
#[test]
fn the_proposed_commands_run() {
    let dir = tempfile::tempdir().unwrap();
    common::copied_proc_tree(dir.path(), &["netstat", "snmp"], "6.12.0");
    let mut seen = BTreeSet::new();
    for (text, ..) in SYMPTOMS {
        let v = answer(text);
        for c in v["causes"].as_array().unwrap() {
            for x in c["confirm"].as_array().unwrap() {
                let cmd = x["command"].as_str().unwrap();
                if !seen.insert(cmd.to_string()) {
                    continue;
                }
                let words: Vec<&str> = cmd.split_whitespace().collect();
                assert_eq!(words[..2], ["sudo", "rstaudit"], "{cmd}");
                match x["kind"].as_str().unwrap() {
                    "audit" => {
                        let out = common::rstaudit()
                            .args(&words[2..])
                            .arg("--root")
                            .arg(dir.path())
                            .args(["--fail-on", "never"])
                            .output()
                            .unwrap();
                        common::exits(&out, 0);
                    }
                    "lab" => {
                        let at = words.iter().position(|w| *w == "--rule").unwrap();
                        let rule = words[at + 1];
                        let out = common::rstaudit()
                            .args(["rules", "explain", rule])
                            .output()
                            .unwrap();
                        let t = common::exits(&out, 0);
                        if String::from_utf8_lossy(&out.stdout).starts_with(&format!("{rule}:")) {
                            assert!(t.contains("lab scenario:"), "{cmd}: {t}");
                        } else {
                            // A scenario named by the cause itself: run it (under a second).
                            common::require_root();
                            let out = common::rstaudit().args(&words[2..]).output().unwrap();
                            let t = common::exits(&out, 0);
                            assert!(
                                t.contains(&format!("{rule} (")) && t.contains("confirmed"),
                                "{t}"
                            );
                        }
                    }
                    "live" => assert_eq!(words[2..5], ["packet-check", "--duration", "60"]),
                    other => panic!("kind {other}"),
                }
            }
        }
    }
    assert!(
        seen.iter().any(|c| c.contains("--set idle_timeout=60")),
        "{seen:?}"
    );
}

#[test]
fn rules_explain_takes_a_symptom_too() {
    let out = common::rstaudit()
        .args(["rules", "explain", "Connection refused"])
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    assert!(t.contains(". port-not-open:"), "{t}");
    // It says it is not a rule id, so a mistyped id is not mistaken for an answer.
    assert!(
        t.contains("no rule with id \"Connection refused\"; as a symptom (rstaudit explain):"),
        "{t}"
    );
    // A rule id is still a rule.
    let out = common::rstaudit()
        .args(["rules", "explain", "linger-zero"])
        .output()
        .unwrap();
    let t = common::exits(&out, 0);
    assert!(
        t.starts_with("--- status Some(0)\n--- stdout\nlinger-zero:"),
        "{t}"
    );
    let t = common::exits(
        &common::rstaudit()
            .args(["rules", "explain", "nope"])
            .output()
            .unwrap(),
        2,
    );
    assert!(t.contains("rstaudit explain TEXT"), "{t}");
}

#[test]
fn rules_from_a_directory_join_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(
        dir.path(),
        "lb.yaml",
        "id: my-lb-check\ntitle: Our own load balancer check\nseverity: low\ncause: \"5\"\nsubject: host\nwhen: { sysctl: net.ipv4.tcp_keepalive_time, gt: 1 }\nmessage: m\nfix: { advice: a }\nexplanation: e\n",
    );
    let out = explain(&[
        "--format",
        "json",
        "--rules",
        dir.path().to_str().unwrap(),
        "load balancer",
    ]);
    common::exits(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rules_of(&v, "middlebox-idle").contains(&"my-lb-check".to_string()),
        "{v:#}"
    );
}

#[test]
fn the_idle_time_is_the_time_near_idle_and_milliseconds_are_no_idle_time() {
    let v = answer("tcp_keepalive_time is 7200 s and the load balancer's idle timeout is 350 s");
    assert_eq!(v["seconds"], 350, "{v:#}");
    assert_eq!(causes(&v)[0], "middlebox-idle");
    let v = answer("resets after 2 minutes idle");
    assert_eq!(v["seconds"], 120);
    let v = answer("java.net.SocketTimeoutException: connect timed out after 500 ms");
    assert_eq!(v["seconds"], Value::Null, "{v:#}");
    assert_eq!(causes(&v)[0], "connect-timeout");
}

#[test]
fn a_log_is_read_from_standard_input() {
    let mut child = common::rstaudit()
        .args(["explain", "--text-only", "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Traceback (most recent call last):\n  File \"x.py\", line 3\nConnectionResetError: [Errno 104] Connection reset by peer\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    common::exits(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(errors(&v), ["ECONNRESET"]);
    assert_eq!(causes(&v)[0], "write-after-close");
}

#[test]
fn a_refused_connect_is_confirmed_by_the_closed_port_scenario() {
    let v = answer("ECONNREFUSED");
    let confirm = v["causes"][0]["confirm"].as_array().unwrap();
    let commands: Vec<&str> = confirm
        .iter()
        .map(|x| x["command"].as_str().unwrap())
        .collect();
    assert!(
        commands.contains(&"sudo rstaudit packet-check --lab --rule closed-port"),
        "{commands:?}"
    );
    let live = confirm.iter().find(|x| x["kind"] == "live").unwrap();
    assert!(
        live["shows"].as_str().unwrap().contains("NO_SOCKET"),
        "{live}"
    );
}
