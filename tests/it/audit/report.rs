//! Snapshot tests of the audit table (no colour) and JSON for a fixture host
//! with several findings, and the shape of the other formats.

use crate::common;

use common::fixture::{host, listener, nginx_linger0, peer};
use rstaudit::host::{Snapshot, TcpState};
use rstaudit::report::term::Term;
use rstaudit::report::{self, AuditReport};
use rstaudit::rules::{self, Exposure, Selection, Threshold};

fn fixture() -> Snapshot {
    host()
        .sysctl("net.ipv4.tcp_abort_on_overflow", "1")
        .sysctl("net.ipv4.tcp_keepalive_time", "7200")
        .sysctl("net.core.somaxconn", "64")
        .without("net.netfilter.nf_conntrack_count")
        .counter2("TcpExt.ListenOverflows", 100, 112)
        .counter2("TcpExt.TCPAbortOnData", 5000, 5230)
        .socket(listener("0.0.0.0:443", 64, 64).owner(812, "nginx"))
        .sockets(1204, nginx_linger0)
        .sockets(12, |i| {
            peer(TcpState::CloseWait, "10.0.0.5:8080", "10.0.0.7", 30000 + i)
                .owner(4242, "java")
                .keepalive(true, 60)
        })
        .note(
            "owners",
            Some("pid 1"),
            "EPERM reading /proc/1/fd: run as root",
        )
        .build()
}

fn report() -> AuditReport {
    let snap = fixture();
    let out = rules::run(
        &rules::load::builtin().unwrap(),
        &Selection::default(),
        &snap,
    )
    .unwrap();
    AuditReport::new(vec![(&snap, out)], Some(Threshold::default()))
}

#[test]
fn table_snapshot() {
    let text = String::from_utf8(report::table::table(&report(), Term::PLAIN)).unwrap();
    assert!(!text.contains('\x1b'));
    insta::assert_snapshot!("audit_table", text);
}

/// The same report on an 80-column terminal, coloured: two columns, every line within 80
/// columns once the colour codes are left out.
#[test]
fn table_snapshot_80_columns() {
    let term = Term {
        width: Some(80),
        color: true,
    };
    let text = String::from_utf8(report::table::table(&report(), term)).unwrap();
    assert!(text.contains("\x1b["), "{text}");
    for line in text.lines() {
        assert!(report::term::width(line) <= 80, "{line}");
    }
    let plain = String::from_utf8(report::table::table(
        &report(),
        Term {
            width: Some(80),
            color: false,
        },
    ))
    .unwrap();
    insta::assert_snapshot!("audit_table_80", plain);
}

#[test]
fn json_snapshot() {
    let text = String::from_utf8(report::json(&report())).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["schema"], 4);
    insta::assert_snapshot!("audit_json", text);
}

#[test]
fn colour_is_only_added_when_asked() {
    let term = Term {
        width: None,
        color: true,
    };
    let text = String::from_utf8(report::table::table(&report(), term)).unwrap();
    assert!(text.contains("\x1b[31mHIGH"), "{text}");
}

#[test]
fn yaml_round_trips_to_the_same_report() {
    let r = report();
    let back: AuditReport = serde_yaml::from_slice(&report::yaml(&r)).unwrap();
    assert_eq!(back, r);
}

#[test]
fn junit_is_well_formed_and_counts_failures() {
    let r = report();
    let xml = String::from_utf8(report::junit::junit(&r)).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
    let rules_with = |keep: &dyn Fn(&rstaudit::rules::Finding) -> bool| {
        let mut ids: Vec<&str> = r.namespaces[0]
            .findings
            .iter()
            .filter(|f| keep(f))
            .map(|f| f.rule.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let fired = rules_with(&|_| true);
    // A rule fails when a finding is at or above the exposure of --fail-on (exposed);
    // a rule with only latent findings passes and shows them in <system-out>.
    let failing = rules_with(&|f| f.exposure >= Exposure::Exposed);
    let latent_only = fired - failing;
    assert!(failing > 0 && latent_only > 0, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), failing);
    assert_eq!(xml.matches("<system-out>").count(), latent_only);
    assert!(xml.contains(&format!("failures=\"{failing}\"")), "{xml}");
    let strict = AuditReport::new(
        vec![(
            &fixture(),
            rules::run(
                &rules::load::builtin().unwrap(),
                &Selection::default(),
                &fixture(),
            )
            .unwrap(),
        )],
        Some(Threshold::parse("latent:medium").unwrap()),
    );
    let strict_xml = String::from_utf8(report::junit::junit(&strict)).unwrap();
    assert_eq!(strict_xml.matches("<failure ").count(), fired);
    assert_eq!(
        xml.matches("<testcase ").count(),
        fired
            + r.summary.passed as usize
            + r.summary.not_applicable as usize
            + r.summary.not_checked as usize
    );
    // Balanced tags and no raw text that would break XML.
    assert_eq!(
        xml.matches("<testcase ").count(),
        xml.matches("</testcase>").count() + xml.matches("\"/>\n").count()
            - xml.matches("<skipped ").count()
    );
    assert_eq!(
        xml.matches("<system-out>").count(),
        xml.matches("</system-out>").count()
    );
    assert!(!xml.contains("{1, 0}<") && xml.contains("SO_LINGER {1, 0}"));
    assert_eq!(
        report::junit::escape("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
    );
}

#[test]
fn prometheus_fits_the_textfile_collector() {
    let text = String::from_utf8(report::prometheus::prometheus(&report())).unwrap();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP rstaudit_") || rest.starts_with("TYPE rstaudit_"),
                "{line}"
            );
            if rest.starts_with("TYPE") {
                assert!(rest.ends_with(" gauge"), "{line}");
            }
        } else {
            assert!(line.starts_with("rstaudit_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(
                !line.split('{').next().unwrap().ends_with("_total"),
                "{line}"
            );
        }
    }
    assert!(
        text.contains(
            "rstaudit_findings{netns=\"host\",rule=\"linger-zero\",severity=\"medium\",exposure=\"observed\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("rstaudit_finding_sockets{netns=\"host\",rule=\"linger-zero\"} 1204"),
        "{text}"
    );
    assert!(
        text.contains("rstaudit_findings_by_exposure{netns=\"host\",exposure=\"latent\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("rstaudit_audit_failed{fail_on=\"exposed:medium\"} 1"),
        "{text}"
    );
}
