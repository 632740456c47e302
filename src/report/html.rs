//! HTML reports: one self-contained page a person can open in a browser.
//!
//! The audit page shows the findings grouped by severity, each with its
//! evidence and its fix; the packet-check page shows a per-second chart of
//! resets by cause as inline SVG. Pages load nothing from the network (no
//! scripts, fonts, images or style sheets from elsewhere): they can be mailed,
//! archived as a CI artifact, or opened on an air-gapped host.
//!
//! Pure functions from results to a `String`; every piece of text coming
//! from a host or a rule goes through [`escape`].

use std::fmt::Write as _;

pub use super::escape::html as escape;
use super::{AuditReport, NamespaceReport, SEVERITIES};
use crate::rules::{Exposure, Finding, Skipped};

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}
h2{font-size:1.25em;margin:28px 0 10px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.meta{color:#5a6272;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;margin:8px 0}
th,td{border:1px solid #d5d9e0;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eceff3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.finding{background:#fff;border:1px solid #d5d9e0;border-left:6px solid #888;border-radius:4px;padding:10px 16px;margin:10px 0}
.finding h3{margin:0 0 4px;font-size:1.05em}
.finding .id{color:#5a6272;font-size:.9em}
.fix{background:#f0f7f0;border-radius:4px;padding:6px 12px;margin-top:8px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.92em}
pre{background:#f3f4f6;padding:6px 10px;overflow-x:auto;margin:4px 0}
.badge{display:inline-block;border-radius:3px;padding:1px 7px;color:#fff;font-size:.8em;font-weight:600;text-transform:uppercase;margin-right:6px}
.sev-critical{border-left-color:#7b1fa2}.badge.sev-critical{background:#7b1fa2}
.sev-high{border-left-color:#c62828}.badge.sev-high{background:#c62828}
.sev-medium{border-left-color:#ef6c00}.badge.sev-medium{background:#ef6c00}
.sev-low{border-left-color:#1565c0}.badge.sev-low{background:#1565c0}
.sev-info{border-left-color:#607d8b}.badge.sev-info{background:#607d8b}
.badge.exp-observed{background:#b71c1c}.badge.exp-exposed{background:#6d4c41}.badge.exp-latent{background:#fff;color:#555;border:1px solid #999}
.exposure{color:#444}
.ok{color:#2e7d32;font-weight:600}
.verdict{padding:8px 12px;border-radius:4px}.verdict.failed{background:#fdecea;color:#b71c1c}.verdict.ok{background:#e8f5e9}
.note{color:#5a6272;font-size:.92em}
.legend span{display:inline-block;margin-right:16px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px}
"#;

fn page(title: &str, subtitle: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{title}</h1>\n<p class=\"meta\">{subtitle}</p>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
        subtitle = escape(subtitle),
    )
}

/// The audit report: a summary per namespace, then every finding grouped by
/// severity (worst first) with its evidence and fix, then the rules that
/// could not be checked or do not apply and what the collectors could not
/// read, each with the reason.
pub fn audit(report: &AuditReport) -> String {
    let namespaces = &report.namespaces;
    let mut body = verdict(report);
    summary_table(&mut body, namespaces);
    let total = report.summary.findings;
    if total == 0 {
        body.push_str("<p class=\"ok\">No findings.</p>\n");
    }
    severity_sections(&mut body, namespaces);

    let rows = |pick: fn(&NamespaceReport) -> &Vec<Skipped>| -> Vec<[String; 3]> {
        namespaces
            .iter()
            .flat_map(|ns| {
                pick(ns)
                    .iter()
                    .map(|s| [s.rule.clone(), ns.netns.clone(), s.reason.clone()])
            })
            .collect()
    };
    list_section(
        &mut body,
        "Waivers",
        "waivers",
        ["rule", "waiver", "state"],
        &waiver_rows(report),
    );
    list_section(
        &mut body,
        "Not checked",
        "not-checked",
        ["rule", "namespace", "why"],
        &rows(|ns| &ns.not_checked),
    );
    list_section(
        &mut body,
        "Not applicable",
        "not-applicable",
        ["rule", "namespace", "why"],
        &rows(|ns| &ns.not_applicable),
    );
    list_section(
        &mut body,
        "Could not be read",
        "notes",
        ["what", "namespace", "why"],
        &note_rows(namespaces),
    );

    let names: Vec<&str> = namespaces.iter().map(|ns| ns.netns.as_str()).collect();
    page(
        "rstaudit audit",
        &format!(
            "{} · {total} finding{} in {}",
            report.tool,
            if total == 1 { "" } else { "s" },
            if names.is_empty() {
                "no namespace".to_string()
            } else {
                format!("namespace {}", names.join(", "))
            }
        ),
        &body,
    )
}

/// Whether the audit fails its threshold, and why (nothing without a threshold).
fn verdict(report: &AuditReport) -> String {
    if report.summary.failed {
        format!(
            "<p class=\"verdict failed\">{} (<code>--fail-on {}</code>): the audit fails (exit 1).</p>\n",
            capitalise(&escape(&report.failure_reasons())),
            escape(&report.fail_on)
        )
    } else if report.fail_on == "never" {
        String::new()
    } else {
        format!(
            "<p class=\"verdict ok\">No {} (<code>--fail-on {}</code>).</p>\n",
            escape(&super::describe_threshold(&report.fail_on)),
            escape(&report.fail_on)
        )
    }
}

/// One row per namespace: where its facts came from, its findings by severity and exposure,
/// and how many rules passed, were not checked or do not apply.
fn summary_table(body: &mut String, namespaces: &[NamespaceReport]) {
    body.push_str("<h2>Summary</h2>\n<table class=\"summary\">\n<tr><th>namespace</th><th>kernel</th><th>source</th><th>counters</th>");
    for sev in SEVERITIES {
        let _ = write!(body, "<th>{}</th>", sev.as_str());
    }
    for e in Exposure::ALL {
        let _ = write!(body, "<th>{}</th>", e.as_str());
    }
    body.push_str("<th>passed</th><th>not checked</th><th>not applicable</th></tr>\n");
    for ns in namespaces {
        let counters = match ns.window_seconds {
            Some(w) => format!("change over {w} s"),
            None => "totals since boot".to_string(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{counters}</td>",
            escape(&ns.netns),
            escape(&ns.kernel),
            escape(&ns.source)
        );
        for sev in SEVERITIES {
            let n = ns.findings.iter().filter(|f| f.severity == sev).count();
            let _ = write!(body, "<td class=\"num\">{n}</td>");
        }
        for e in Exposure::ALL {
            let n = ns.findings.iter().filter(|f| f.exposure == e).count();
            let _ = write!(body, "<td class=\"num\">{n}</td>");
        }
        let _ = writeln!(
            body,
            "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            ns.passed.len(),
            ns.not_checked.len(),
            ns.not_applicable.len()
        );
    }
    body.push_str("</table>\n");
}

/// The findings of every namespace, one section per severity, worst first.
fn severity_sections(body: &mut String, namespaces: &[NamespaceReport]) {
    for sev in SEVERITIES {
        let findings: Vec<&Finding> = namespaces
            .iter()
            .flat_map(|ns| &ns.findings)
            .filter(|f| f.severity == sev)
            .collect();
        if findings.is_empty() {
            continue;
        }
        let _ = writeln!(
            body,
            "<section class=\"severity\" id=\"sev-{s}\">\n<h2>{S} ({n})</h2>",
            s = sev.as_str(),
            S = capitalise(sev.as_str()),
            n = findings.len()
        );
        for f in findings {
            finding_card(body, f);
        }
        body.push_str("</section>\n");
    }
}

/// Each waiver: its rule, where it is written, and what became of it.
fn waiver_rows(report: &AuditReport) -> Vec<[String; 3]> {
    report
        .waivers
        .iter()
        .map(|w| {
            let what = match w.state {
                crate::rules::accept::WaiverState::Active => {
                    format!(
                        "active until {}: accepts {} finding(s)",
                        w.expires, w.matched
                    )
                }
                crate::rules::accept::WaiverState::Expired => format!(
                    "EXPIRED on {}: its {} finding(s) count again",
                    w.expires, w.matched
                ),
                crate::rules::accept::WaiverState::Unused => {
                    "UNUSED: matches no finding".to_string()
                }
            };
            [
                w.rule.clone(),
                w.waiver.clone(),
                format!("{what}. Reason: {}", w.reason),
            ]
        })
        .collect()
}

/// What the collectors of each namespace could not read, and why.
fn note_rows(namespaces: &[NamespaceReport]) -> Vec<[String; 3]> {
    namespaces
        .iter()
        .flat_map(|ns| {
            ns.notes.iter().map(|n| {
                let what = match &n.subject {
                    Some(s) => format!("{}: {s}", n.area),
                    None => n.area.clone(),
                };
                [what, ns.netns.clone(), n.message.clone()]
            })
        })
        .collect()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn finding_card(body: &mut String, f: &Finding) {
    let sev = f.severity.as_str();
    let _ = writeln!(
        body,
        "<article class=\"finding sev-{sev}\" data-rule=\"{rule}\">\n\
         <h3><span class=\"badge sev-{sev}\">{sev}</span><span class=\"badge exp-{exp}\">{exp}</span>{title}</h3>\n\
         <div class=\"id\">rule <code>{rule}</code> · cause {cause} · {subject} · namespace {netns}</div>\n\
         <p>{message}</p>\n\
         <p class=\"exposure\">{exp}: {why}</p>",
        exp = f.exposure.as_str(),
        why = escape(&f.exposure_reason),
        rule = escape(&f.rule),
        title = escape(&f.title),
        cause = escape(&f.cause),
        subject = escape(&f.subject),
        netns = escape(&f.netns),
        message = escape(&f.message),
    );
    if let Some(a) = &f.accepted {
        let _ = writeln!(
            body,
            "<p class=\"accepted\"><strong>Accepted</strong> until {}: {} (waiver <code>{}</code>); it does not count against <code>--fail-on</code>.</p>",
            escape(&a.expires),
            escape(&a.reason),
            escape(&a.waiver)
        );
    }
    if let Some(p) = &f.process {
        let _ = writeln!(
            body,
            "<p>Process: <code>{}</code> (pid {})</p>",
            escape(&p.comm),
            p.pid
        );
    }
    if let Some(n) = f.count {
        let _ = writeln!(body, "<p>Sockets: {n}</p>");
    }
    if !f.examples.is_empty() {
        body.push_str("<pre class=\"examples\">");
        for e in &f.examples {
            let _ = writeln!(body, "{}", escape(e));
        }
        body.push_str("</pre>\n");
    }
    if !f.evidence.counters.is_empty() {
        body.push_str(
            "<table class=\"evidence\"><tr><th>counter</th><th>total</th><th>change</th></tr>\n",
        );
        for c in &f.evidence.counters {
            let total = c.total.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
            let delta = match (c.delta, c.window_seconds) {
                (Some(d), Some(w)) => format!("+{d} in {w} s"),
                (Some(d), None) => format!("+{d}"),
                _ => "-".into(),
            };
            let _ = writeln!(
                body,
                "<tr><td><code>{}</code></td><td class=\"num\">{total}</td><td class=\"num\">{delta}</td></tr>",
                escape(&c.name)
            );
        }
        body.push_str("</table>\n");
    }
    if !f.evidence.rst_reasons.is_empty() {
        let reasons: Vec<String> = f
            .evidence
            .rst_reasons
            .iter()
            .map(|r| format!("<code>{}</code>", escape(r)))
            .collect();
        let _ = writeln!(body, "<p>Reset reasons: {}</p>", reasons.join(", "));
    }
    if !f.fix.sysctls.is_empty() || f.fix.advice.is_some() {
        body.push_str("<div class=\"fix\"><strong>Fix</strong>\n");
        if !f.fix.sysctls.is_empty() {
            body.push_str(
                "<table class=\"sysctls\"><tr><th>sysctl</th><th>now</th><th>recommended</th></tr>\n",
            );
            for s in &f.fix.sysctls {
                let _ = writeln!(
                    body,
                    "<tr><td><code>{}</code></td><td>{}</td><td><strong>{}</strong></td></tr>",
                    escape(&s.key),
                    escape(s.current.as_deref().unwrap_or("-")),
                    escape(&s.value)
                );
            }
            body.push_str("</table>\n<pre>");
            for s in &f.fix.sysctls {
                let _ = writeln!(
                    body,
                    "sysctl -w {}={}",
                    escape(&s.key),
                    escape(&shell_word(&s.value))
                );
            }
            body.push_str("</pre>\n");
        }
        if let Some(advice) = &f.fix.advice {
            let _ = writeln!(body, "<p>{}</p>", escape(advice));
        }
        body.push_str("</div>\n");
    }
    for note in &f.notes {
        let _ = writeln!(body, "<p class=\"note\">Note: {}</p>", escape(note));
    }
    if f.lab.is_some() {
        let _ = writeln!(
            body,
            "<p class=\"lab\">Reproduce: <code>rstaudit packet-check --lab --rule {}</code></p>",
            escape(&f.rule)
        );
    }
    body.push_str("</article>\n");
}

/// Quote a sysctl value for a shell command line when it has blanks (e.g. `4096 87380 6291456`).
fn shell_word(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn list_section(
    body: &mut String,
    title: &str,
    id: &str,
    headers: [&str; 3],
    rows: &[[String; 3]],
) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        body,
        "<section id=\"{id}\">\n<h2>{title} ({})</h2>\n<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        rows.len(),
        headers[0],
        headers[1],
        headers[2]
    );
    for [a, b, c] in rows {
        let _ = writeln!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(a),
            escape(b),
            escape(c)
        );
    }
    body.push_str("</table>\n</section>\n");
}

/// One line of the per-second chart: resets of one cause, per second of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// What the line counts, e.g. a cause or an RST reason.
    pub label: String,
    /// Resets in second 0, 1, 2, ... of the window.
    pub per_second: Vec<u64>,
}

/// A fixed palette that stays readable for the common colour-vision deficiencies
/// (Okabe and Ito); it repeats after eight series.
const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// A line chart of resets per second, one `<g class="series">` per [`Series`],
/// with axes and a legend, as inline SVG.
pub fn reset_chart(series: &[Series]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 320.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 40.0;
    let seconds = series
        .iter()
        .map(|s| s.per_second.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let max = series
        .iter()
        .flat_map(|s| s.per_second.iter().copied())
        .max()
        .unwrap_or(0);
    let y_top = nice_ceiling(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| {
        if seconds <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (seconds - 1) as f64
        }
    };
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / y_top as f64;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" style=\"max-width:100%;height:auto\" role=\"img\" aria-label=\"resets per second by cause\">\n\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>"
    );
    // Horizontal grid and y labels: 0, 1/4, ... of the rounded maximum.
    for step in 0..=4u64 {
        let v = y_top * step / 4;
        let yy = y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e3e6eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#5a6272\">{v}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    // X labels: at most ~12 ticks, in seconds from the start of the window.
    let every = seconds.div_ceil(12).max(1);
    for i in (0..seconds).step_by(every) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#5a6272\">{i}</text>",
            x(i),
            H - BOTTOM + 16.0
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{r:.1}\" y2=\"{b:.1}\" stroke=\"#5a6272\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b:.1}\" stroke=\"#5a6272\"/>\
         <text x=\"{cx:.1}\" y=\"{xl:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#1d2330\">seconds</text>\
         <text x=\"14\" y=\"{cy:.1}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#1d2330\" transform=\"rotate(-90 14 {cy:.1})\">resets per second</text>",
        b = TOP + plot_h,
        r = W - RIGHT,
        cx = LEFT + plot_w / 2.0,
        xl = H - 6.0,
        cy = TOP + plot_h / 2.0,
    );
    for (n, s) in series.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        let points: Vec<String> = s
            .per_second
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let total: u64 = s.per_second.iter().sum();
        let _ = writeln!(
            svg,
            "<g class=\"series\" data-label=\"{label}\" data-total=\"{total}\">\
             <title>{label}: {total} resets</title>\
             <polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{points}\"/>",
            label = escape(&s.label),
            points = points.join(" "),
        );
        for (i, v) in s.per_second.iter().enumerate() {
            if *v > 0 {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                    x(i),
                    y(*v)
                );
            }
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n<p class=\"legend\">");
    for (n, s) in series.iter().enumerate() {
        let _ = write!(
            svg,
            "<span><i style=\"background:{}\"></i>{} ({})</span>",
            PALETTE[n % PALETTE.len()],
            escape(&s.label),
            s.per_second.iter().sum::<u64>()
        );
    }
    svg.push_str("</p>\n");
    svg
}

/// The top of the y axis: four equal steps of 1, 2 or 5 x 10^k that reach `max`,
/// so every tick is a round whole number.
fn nice_ceiling(max: u64) -> u64 {
    let need = max.div_ceil(4).max(1);
    let mut scale = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * scale >= need {
                return 4 * m * scale;
            }
        }
        match scale.checked_mul(10) {
            Some(s) if s <= u64::MAX / 20 => scale = s,
            _ => return max,
        }
    }
}

/// A table for the packet-check page: a caption, column headers and rows of cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// What the packet-check page shows; built from the packet-check result by the command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PacketPage {
    pub title: String,
    /// One line under the title (window, interface, namespace, ...).
    pub subtitle: String,
    /// Resets per second, one series per cause.
    pub series: Vec<Series>,
    /// Tables below the chart (per-cause totals, verdicts per finding, notes).
    pub tables: Vec<Table>,
}

/// The packet-check report: the chart of resets per second by cause, then the tables.
pub fn packet_check(p: &PacketPage) -> String {
    let mut body = String::new();
    body.push_str("<h2>Resets per second by cause</h2>\n");
    if p.series
        .iter()
        .all(|s| s.per_second.iter().all(|v| *v == 0))
    {
        body.push_str("<p class=\"ok\">No resets seen in the window.</p>\n");
    }
    body.push_str(&reset_chart(&p.series));
    for t in &p.tables {
        let _ = writeln!(body, "<h2>{}</h2>\n<table>\n<tr>", escape(&t.caption));
        for h in &t.headers {
            let _ = write!(body, "<th>{}</th>", escape(h));
        }
        body.push_str("</tr>\n");
        for row in &t.rows {
            body.push_str("<tr>");
            for cell in row {
                let class = if !cell.is_empty() && cell.chars().all(|c| c.is_ascii_digit()) {
                    " class=\"num\""
                } else {
                    ""
                };
                let _ = write!(body, "<td{class}>{}</td>", escape(cell));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
    }
    page(&p.title, &p.subtitle, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Evidence, Fix, Severity, SysctlFix};

    fn finding(rule: &str, severity: Severity) -> Finding {
        Finding {
            rule: rule.into(),
            title: format!("{rule} <title>"),
            severity,
            exposure: crate::rules::Exposure::Exposed,
            exposure_reason: "1 listener(s) depend on it: app (pid 1) 1".into(),
            cause: "linger-zero".into(),
            subject: "host".into(),
            netns: "host".into(),
            message: "a & b".into(),
            process: None,
            count: None,
            examples: vec![],
            evidence: Evidence::default(),
            fix: Fix {
                sysctls: vec![SysctlFix {
                    key: "net.ipv4.tcp_rmem".into(),
                    value: "4096 131072 6291456".into(),
                    current: Some("4096 87380 6291456".into()),
                }],
                advice: None,
            },
            lab: None,
            notes: vec![],
            accepted: None,
        }
    }

    fn report(findings: Vec<Finding>) -> AuditReport {
        AuditReport {
            schema: super::super::AUDIT_SCHEMA,
            tool: "rstaudit test".into(),
            taken_at_ms: None,
            host: None,
            fail_on: "medium".into(),
            summary: super::super::Summary {
                findings: findings.len() as u64,
                by_severity: Default::default(),
                by_exposure: Default::default(),
                not_applicable: 0,
                not_checked: 1,
                passed: 0,
                failed: true,
            },
            namespaces: vec![NamespaceReport {
                netns: "host".into(),
                kernel: "6.18.0".into(),
                source: "live".into(),
                counters: "since_boot".into(),
                window_seconds: None,
                findings,
                not_applicable: vec![],
                not_checked: vec![Skipped {
                    rule: "owners".into(),
                    reason: "not <root>".into(),
                }],
                passed: vec![],
                notes: vec![],
            }],
            waivers: vec![],
        }
    }

    #[test]
    fn text_is_escaped() {
        let html = audit(&report(vec![finding("r1", Severity::High)]));
        assert!(html.contains("not &lt;root&gt;"));
        assert!(html.contains("r1 &lt;title&gt;"));
        assert!(html.contains("a &amp; b"));
        assert!(html.contains("sysctl -w net.ipv4.tcp_rmem=&#39;4096 131072 6291456&#39;"));
        assert!(!html.contains("<title>r1"));
    }

    #[test]
    fn exposure_is_shown_per_finding_and_in_the_summary() {
        let mut latent = finding("latent-one", Severity::Medium);
        latent.exposure = crate::rules::Exposure::Latent;
        latent.exposure_reason = "no listener now".into();
        let mut r = report(vec![finding("exposed-one", Severity::High), latent]);
        r.fail_on = "exposed:medium".into();
        let html = audit(&r);
        assert!(html.contains("<span class=\"badge exp-exposed\">exposed</span>"));
        assert!(html.contains("<span class=\"badge exp-latent\">latent</span>"));
        assert!(html.contains("exposed: 1 listener(s) depend on it: app (pid 1) 1"));
        assert!(html.contains("latent: no listener now"));
        assert!(html.contains("<th>observed</th><th>exposed</th><th>latent</th>"));
        assert!(
            html.contains("Exposed or observed findings at or above medium (<code>--fail-on exposed:medium</code>)"),
            "{html}"
        );
    }

    #[test]
    fn findings_are_grouped_worst_first() {
        let html = audit(&report(vec![
            finding("low-one", Severity::Low),
            finding("crit-one", Severity::Critical),
            finding("high-one", Severity::High),
        ]));
        let pos = |s: &str| html.find(s).unwrap();
        assert!(pos("id=\"sev-critical\"") < pos("id=\"sev-high\""));
        assert!(pos("id=\"sev-high\"") < pos("id=\"sev-low\""));
        assert!(!html.contains("id=\"sev-medium\""));
    }

    #[test]
    fn chart_has_one_group_per_series_and_round_axis() {
        let svg = reset_chart(&[
            Series {
                label: "a".into(),
                per_second: vec![0, 3, 7],
            },
            Series {
                label: "b".into(),
                per_second: vec![1, 0, 0],
            },
        ]);
        assert_eq!(svg.matches("<g class=\"series\"").count(), 2);
        assert!(
            svg.contains(">8</text>"),
            "y axis tops at 8 for a maximum of 7"
        );
        assert_eq!(nice_ceiling(0), 4);
        assert_eq!(nice_ceiling(7), 8);
        assert_eq!(nice_ceiling(37), 40);
        assert_eq!(nice_ceiling(1234), 2000);
    }
}
