//! Renderers for the live packet check: table, JSON, Prometheus text, HTML.
//!
//! Pure functions from a [`PacketReport`] to text.

use std::fmt::Write as _;

use tabled::builder::Builder;
use tabled::settings::Style;

use crate::live::summary::{PacketReport, Verdict};

use super::escape::prometheus_label as label_value;
use super::html;

fn table(headers: &[&str], rows: Vec<Vec<String>>, max: Option<usize>) -> String {
    let mut b = Builder::default();
    b.push_record(headers.iter().map(|h| h.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::sharp());
    super::term::fit(&mut t, max);
    t.to_string()
}

fn peers_text(c: &crate::live::summary::CauseSummary) -> String {
    let list = c
        .top_peers
        .iter()
        .map(|p| format!("{} ({})", p.addr, p.count))
        .collect::<Vec<_>>()
        .join(", ");
    if c.approximate {
        format!("{list} (approximate: too many distinct peers to count each)")
    } else {
        list
    }
}

fn procs_text(c: &crate::live::summary::CauseSummary) -> String {
    let list = |procs: &[crate::live::summary::ProcessCount]| {
        procs
            .iter()
            .map(|p| {
                let place = p.workload.as_ref().and_then(|w| w.placement());
                match place {
                    Some(at) => format!("{} pid {} in {at} ({})", p.comm, p.pid, p.count),
                    None => format!("{} pid {} ({})", p.comm, p.pid, p.count),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = if c.top_processes.is_empty() {
        "-".to_string()
    } else {
        list(&c.top_processes)
    };
    if !c.top_peer_processes.is_empty() {
        text.push_str(&format!("; sent to {}", list(&c.top_peer_processes)));
    }
    text
}

fn reasons_text(c: &crate::live::summary::CauseSummary) -> String {
    if c.reasons.is_empty() {
        return "-".into();
    }
    c.reasons
        .iter()
        .map(|(r, n)| format!("{r} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cause_rows(r: &PacketReport) -> Vec<Vec<String>> {
    r.causes
        .iter()
        .map(|c| {
            vec![
                c.cause.id().to_string(),
                c.count.to_string(),
                reasons_text(c),
                peers_text(c),
                procs_text(c),
            ]
        })
        .collect()
}

fn verdict_rows(r: &PacketReport) -> Vec<Vec<String>> {
    r.findings
        .iter()
        .map(|f| {
            let rule = match &f.process {
                Some(p) => format!("{} ({} pid {})", f.rule, p.comm, p.pid),
                None => f.rule.clone(),
            };
            vec![
                rule,
                f.severity.as_str().to_string(),
                f.verdict.as_str().to_string(),
                f.detail.clone(),
            ]
        })
        .collect()
}

fn headline(r: &PacketReport) -> String {
    format!(
        "{} resets in {:.1} s in namespace {}{} ({} sent, {} received); kernel drops: {}{}",
        r.resets,
        r.duration_s,
        r.netns,
        r.iface
            .as_deref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default(),
        r.sent,
        r.received,
        r.capture.drops,
        if r.interrupted {
            " (stopped early)"
        } else {
            ""
        }
    )
}

/// The terminal report.
pub fn render_table(r: &PacketReport, max: Option<usize>) -> String {
    let mut out = String::new();
    out.push_str(&super::term::wrap_lines(&headline(r), max, "", "  "));
    if !r.causes.is_empty() {
        let _ = writeln!(out, "\nResets by cause");
        let _ = writeln!(
            out,
            "{}",
            table(
                &[
                    "cause",
                    "count",
                    "kernel reasons",
                    "top peers",
                    "top local processes"
                ],
                cause_rows(r),
                max
            )
        );
    }
    if !r.findings.is_empty() {
        let _ = writeln!(out, "\nAudit findings");
        let _ = writeln!(
            out,
            "{}",
            table(
                &["finding", "severity", "verdict", "detail"],
                verdict_rows(r),
                max
            )
        );
    }
    let moved: Vec<String> = r
        .counters
        .delta
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(k, d)| format!("{k} +{d}"))
        .collect();
    if !moved.is_empty() {
        out.push('\n');
        out.push_str(&super::term::wrap_lines(
            &format!("Counters over the window: {}", moved.join(", ")),
            max,
            "",
            "  ",
        ));
    }
    if let Some(p) = &r.pcap {
        let _ = writeln!(out, "\nCaptured resets written to {p}");
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\nNotes");
        for n in &r.notes {
            out.push_str(&super::term::wrap_lines(n, max, "- ", "  "));
        }
    }
    out
}

/// The JSON report (every event and the per-second timeline).
pub fn render_json(r: &PacketReport) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(r)?;
    s.push('\n');
    Ok(s)
}

/// Prometheus text exposition (node_exporter textfile collector).
pub fn render_prometheus(r: &PacketReport) -> String {
    let mut out = String::new();
    let ns = label_value(&r.netns);
    let _ = writeln!(
        out,
        "# HELP rstaudit_packet_resets Resets seen in the packet-check window, by cause.\n# TYPE rstaudit_packet_resets gauge"
    );
    for c in &r.causes {
        let _ = writeln!(
            out,
            "rstaudit_packet_resets{{netns=\"{ns}\",cause=\"{}\"}} {}",
            c.cause.id(),
            c.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP rstaudit_packet_window_seconds Length of the packet-check window.\n# TYPE rstaudit_packet_window_seconds gauge\nrstaudit_packet_window_seconds{{netns=\"{ns}\"}} {}",
        r.duration_s
    );
    let _ = writeln!(
        out,
        "# HELP rstaudit_packet_kernel_drops Captured resets the kernel dropped (ring full).\n# TYPE rstaudit_packet_kernel_drops gauge\nrstaudit_packet_kernel_drops{{netns=\"{ns}\"}} {}",
        r.capture.drops
    );
    let _ = writeln!(
        out,
        "# HELP rstaudit_packet_finding_confirmed 1 when resets of the finding's kind were seen, 0 when not, -1 when it cannot be checked.\n# TYPE rstaudit_packet_finding_confirmed gauge"
    );
    for f in &r.findings {
        let v = match f.verdict {
            Verdict::Confirmed => 1,
            Verdict::NotSeen => 0,
            Verdict::CannotCheck => -1,
        };
        let pid = f
            .process
            .as_ref()
            .map(|p| format!(",pid=\"{}\"", p.pid))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "rstaudit_packet_finding_confirmed{{netns=\"{ns}\",rule=\"{}\"{pid}}} {v}",
            label_value(&f.rule)
        );
    }
    out
}

/// The HTML page: chart of resets per second by cause, then the tables.
pub fn render_html(r: &PacketReport) -> String {
    let series = r
        .causes
        .iter()
        .map(|c| html::Series {
            label: c.cause.id().to_string(),
            per_second: r
                .timeline
                .iter()
                .map(|s| s.by_cause.get(&c.cause).copied().unwrap_or(0))
                .collect(),
        })
        .collect();
    let mut tables = vec![
        html::Table {
            caption: "Resets by cause".into(),
            headers: [
                "cause",
                "count",
                "kernel reasons",
                "top peers",
                "top local processes",
            ]
            .map(String::from)
            .to_vec(),
            rows: cause_rows(r),
        },
        html::Table {
            caption: "Audit findings".into(),
            headers: ["finding", "severity", "verdict", "detail"]
                .map(String::from)
                .to_vec(),
            rows: verdict_rows(r),
        },
    ];
    if !r.notes.is_empty() {
        tables.push(html::Table {
            caption: "Notes".into(),
            headers: vec!["note".into()],
            rows: r.notes.iter().map(|n| vec![n.clone()]).collect(),
        });
    }
    html::packet_check(&html::PacketPage {
        title: "rstaudit packet-check".into(),
        subtitle: headline(r),
        series,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::attribute::Cause;
    use crate::live::summary::{CauseSummary, PeerCount};

    fn report(approximate: bool) -> PacketReport {
        PacketReport {
            schema: 1,
            mode: "live",
            netns: "host".into(),
            started_at_ms: 0,
            duration_s: 1.0,
            interrupted: false,
            iface: None,
            port: None,
            resets: 3,
            sent: 0,
            received: 3,
            capture: Default::default(),
            pcap: None,
            tracing: Default::default(),
            causes: vec![CauseSummary {
                cause: Cause::Received,
                title: Cause::Received.title().into(),
                count: 3,
                reasons: Default::default(),
                top_peers: vec![PeerCount {
                    addr: "10.0.0.9".parse().unwrap(),
                    count: 3,
                }],
                top_processes: vec![],
                top_peer_processes: vec![],
                approximate,
            }],
            findings: vec![],
            counters: Default::default(),
            timeline: vec![],
            events: vec![],
            events_omitted: 3,
            notes: vec![],
        }
    }

    #[test]
    fn approximate_top_lists_say_so_in_the_table_and_the_json() {
        let exact = render_table(&report(false), None);
        assert!(exact.contains("10.0.0.9 (3)"), "{exact}");
        assert!(!exact.contains("approximate"), "{exact}");
        let approx = render_table(&report(true), None);
        assert!(approx.contains("approximate"), "{approx}");
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&report(true)).unwrap()).unwrap();
        assert_eq!(json["causes"][0]["approximate"], true);
        assert_eq!(json["events_omitted"], 3);
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&report(false)).unwrap()).unwrap();
        assert_eq!(json["causes"][0].get("approximate"), None);
    }

    #[test]
    fn packet_check_table() {
        use crate::live::summary::FindingVerdict;
        use crate::live::summary::ProcessCount;
        use crate::rules::{FindingProcess, Severity};
        let mut r = report(false);
        r.duration_s = 10.0;
        r.resets = 5;
        r.sent = 2;
        r.causes.insert(
            0,
            CauseSummary {
                cause: Cause::LingerZero,
                title: Cause::LingerZero.title().into(),
                count: 2,
                reasons: [("TCP_STATE".to_string(), 2)].into(),
                top_peers: vec![PeerCount {
                    addr: "127.0.0.1".parse().unwrap(),
                    count: 2,
                }],
                top_processes: vec![ProcessCount {
                    pid: 812,
                    comm: "haproxy".into(),
                    count: 2,
                    workload: None,
                }],
                top_peer_processes: vec![ProcessCount {
                    pid: 4242,
                    comm: "curl".into(),
                    count: 2,
                    workload: None,
                }],
                approximate: false,
            },
        );
        r.findings = vec![
            FindingVerdict {
                rule: "listener-linger-zero".into(),
                title: "Listeners set to reset every connection they accept (SO_LINGER 0)".into(),
                severity: Severity::Medium,
                process: Some(FindingProcess {
                    pid: 812,
                    comm: "haproxy".into(),
                    workload: None,
                }),
                suspected: Vec::new(),
                verdict: Verdict::Confirmed,
                resets: 2,
                detail: "2 resets with reason TCP_STATE from haproxy's close()".into(),
                counters: [("TcpExt.TCPAbortOnData".to_string(), 2)].into(),
                processes: vec![ProcessCount {
                    pid: 812,
                    comm: "haproxy".into(),
                    count: 2,
                    workload: None,
                }],
            },
            FindingVerdict {
                rule: "keepalive-above-idle-timeout".into(),
                title: "Keepalive starts after middleboxes forget idle flows".into(),
                severity: Severity::Medium,
                process: None,
                suspected: Vec::new(),
                verdict: Verdict::NotSeen,
                resets: 0,
                detail: "no reset received on a connection idle longer than the idle timeout"
                    .into(),
                counters: Default::default(),
                processes: vec![],
            },
        ];
        r.notes = vec!["a note of the window".into()];
        insta::assert_snapshot!(render_table(&r, None));
    }
}
