//! The fleet report as one self-contained HTML page (inline CSS, no script, no external
//! resource): summary, most common findings with their fixes, the host x rule matrix
//! (most at risk first), failed and stale hosts.

use std::fmt::Write;

use super::table::short_cell;
use super::{FleetReport, HostRow, age, utc};
use crate::report::describe_threshold;
use crate::report::escape::html as esc;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td.cell{text-align:center;font-family:monospace}\
td.observed{background:#f4b6b6}td.exposed{background:#fde2b3}td.latent{background:#eef}\
td.none{color:#aaa}td.accepted{background:#e4f2e4;font-style:italic}tr.stale td.host::after{content:' (stale)';color:#a60}\
.fail{color:#b00;font-weight:bold}th.rule{writing-mode:vertical-rl;white-space:nowrap}";

/// Render the page.
pub fn html(r: &FleetReport) -> String {
    let mut o = String::with_capacity(4096 + r.hosts.len() * 256);
    summary(&mut o, r);
    common_findings(&mut o, r);
    fixes(&mut o, r);
    matrix(&mut o, r);
    failed(&mut o, r);
    duplicates(&mut o, r);
    waivers(&mut o, r);
    stale(&mut o, r);
    o.push_str("</body></html>\n");
    o
}

/// The head of the page and the summary: files, hosts audited, failed and stale, findings
/// and the hosts over the threshold.
fn summary(o: &mut String, r: &FleetReport) {
    let s = &r.summary;
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>rstaudit fleet report</title><style>{STYLE}</style></head><body>\n\
         <h1>rstaudit fleet report</h1>\n<section id=\"summary\"><p>{}: {} file(s), \
         <span id=\"audited\">{}</span> host(s) audited, <span id=\"failed-count\">{}</span> failed, \
         <span id=\"stale-count\">{}</span> stale (older than {}).</p><p>{} finding(s) on {} host(s); ",
        esc(&utc(r.generated_at_ms)),
        s.files,
        s.audited,
        s.failed,
        s.stale,
        esc(&age(Some(r.max_age_seconds as i64))),
        s.findings,
        s.hosts_with_findings,
    );
    if r.fail_on == "never" {
        o.push_str("no threshold (<code>--fail-on never</code>).</p></section>\n");
    } else {
        let _ = writeln!(
            o,
            "<span class=\"{}\">{} host(s)</span> with {} (<code>{}</code>).</p></section>",
            if s.failing { "fail" } else { "ok" },
            s.hosts_failing,
            esc(&describe_threshold(&r.fail_on)),
            esc(&r.fail_on)
        );
    }
}

/// The rules found on most hosts, with their fixes (or advice).
fn common_findings(o: &mut String, r: &FleetReport) {
    o.push_str("<h2>Most common findings</h2>\n");
    if r.rules.is_empty() {
        o.push_str("<p>No findings.</p>\n");
    } else {
        o.push_str(
            "<table class=\"common\"><tr><th>rule</th><th>severity</th><th>hosts</th>\
             <th>observed</th><th>exposed</th><th>latent</th><th>fix</th></tr>\n",
        );
        for rule in &r.rules {
            let n = |e: &str| rule.by_exposure.get(e).copied().unwrap_or(0);
            let fix = if rule.fixes.is_empty() {
                esc(rule.advice.as_deref().unwrap_or("-"))
            } else {
                rule.fixes
                    .iter()
                    .map(|f| {
                        format!(
                            "<code class=\"fix\">{} = {}</code> ({})",
                            esc(&f.key),
                            esc(&f.value),
                            f.hosts
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = writeln!(
                o,
                "<tr data-rule=\"{r}\" data-hosts=\"{h}\"><td title=\"{t}\">{r}</td><td>{}</td>\
                 <td>{h}</td><td>{}</td><td>{}</td><td>{}</td><td>{fix}</td></tr>",
                rule.severity.as_str(),
                n("observed"),
                n("exposed"),
                n("latent"),
                r = esc(&rule.rule),
                t = esc(&rule.title),
                h = rule.hosts,
            );
        }
        o.push_str("</table>\n");
    }
}

/// The fixes, with the hosts they apply to and the rules they clear.
fn fixes(o: &mut String, r: &FleetReport) {
    if !r.fixes.is_empty() {
        o.push_str(
            "<h2>Fixes that would clear them</h2>\n<table class=\"fixes\"><tr><th>sysctl</th>\
             <th>hosts</th><th>clears</th></tr>\n",
        );
        for f in &r.fixes {
            let _ = writeln!(
                o,
                "<tr data-key=\"{k}\"><td><code>{k} = {}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&f.value),
                f.hosts,
                esc(&f.rules.join(", ")),
                k = esc(&f.key),
            );
        }
        o.push_str("</table>\n");
    }
}

/// The host x rule matrix, most at risk first.
fn matrix(o: &mut String, r: &FleetReport) {
    o.push_str("<h2>Hosts, most at risk first</h2>\n");
    if r.hosts.is_empty() {
        o.push_str("<p>No host audit could be read.</p>\n");
    } else {
        o.push_str(
            "<table class=\"matrix\"><thead><tr><th>host</th><th>audit age</th><th>findings</th>",
        );
        for rule in &r.rules {
            let _ = write!(
                o,
                "<th class=\"rule\" title=\"{}\">{}</th>",
                esc(&rule.title),
                esc(&rule.rule)
            );
        }
        o.push_str("</tr></thead><tbody>\n");
        for h in &r.hosts {
            host_row(o, r, h);
        }
        o.push_str("</tbody></table>\n");
    }
}

/// One host's row of the matrix: its name, age and findings, then a cell per rule.
fn host_row(o: &mut String, r: &FleetReport, h: &HostRow) {
    let _ = write!(
        o,
        "<tr class=\"host{}\" data-host=\"{}\" data-failing=\"{}\"><td class=\"host{}\">{}</td>\
         <td>{}</td><td>{}</td>",
        if h.stale { " stale" } else { "" },
        esc(&h.host),
        h.failing,
        if h.failing { " fail" } else { "" },
        esc(&h.host),
        esc(&age(h.age_seconds)),
        h.findings
    );
    for rule in &r.rules {
        match h.cells.get(&rule.rule) {
            Some(c) => {
                let _ = write!(
                    o,
                    "<td class=\"cell {} {}{}\" data-rule=\"{}\" title=\"{}{}\">{}</td>",
                    c.exposure.as_str(),
                    c.severity.as_str(),
                    if c.accepted { " accepted" } else { "" },
                    esc(&rule.rule),
                    if c.accepted {
                        "accepted by a waiver: "
                    } else {
                        ""
                    },
                    esc(&c.reason),
                    short_cell(c)
                );
            }
            None => o.push_str("<td class=\"cell none\">-</td>"),
        }
    }
    o.push_str("</tr>\n");
}

/// The files from which no audit could be read, and why.
fn failed(o: &mut String, r: &FleetReport) {
    if !r.failed.is_empty() {
        o.push_str(
            "<h2 id=\"failed\">Failed: no usable audit</h2>\n<table class=\"failed\">\
             <tr><th>host</th><th>file</th><th>reason</th></tr>\n",
        );
        for f in &r.failed {
            let _ = writeln!(
                o,
                "<tr data-host=\"{h}\"><td>{h}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.file),
                esc(&f.reason),
                h = esc(&f.host),
            );
        }
        o.push_str("</table>\n");
    }
}

/// The files counted once with another, and the file that counts.
fn duplicates(o: &mut String, r: &FleetReport) {
    if !r.duplicates.is_empty() {
        o.push_str(
            "<h2 id=\"duplicates\">Counted once: the same file, or an older audit of the same host</h2>\n\
             <table class=\"duplicates\"><tr><th>host</th><th>file</th><th>same as</th><th>why</th></tr>\n",
        );
        for d in &r.duplicates {
            let _ = writeln!(
                o,
                "<tr data-host=\"{h}\"><td>{h}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.file),
                esc(&d.same_as),
                esc(&d.reason),
                h = esc(&d.host),
            );
        }
        o.push_str("</table>\n");
    }
}

/// The waivers that expired or match nothing, per host.
fn waivers(o: &mut String, r: &FleetReport) {
    if r.summary.waiver_problems > 0 {
        o.push_str(
            "<h2 id=\"waivers\">Waivers that expired or match nothing</h2>\n<table class=\"waivers\">\
             <tr><th>host</th><th>waiver</th></tr>\n",
        );
        for h in &r.hosts {
            for w in &h.waiver_problems {
                let _ = writeln!(
                    o,
                    "<tr data-host=\"{h}\"><td>{h}</td><td>{}</td></tr>",
                    esc(w),
                    h = esc(&h.host),
                );
            }
        }
        o.push_str("</table>\n");
    }
}

/// The hosts whose audit is too old (or of no known time).
fn stale(o: &mut String, r: &FleetReport) {
    let stale: Vec<_> = r.hosts.iter().filter(|h| h.stale).collect();
    if !stale.is_empty() {
        o.push_str(
            "<h2 id=\"stale\">Stale audits</h2>\n<table class=\"stale\"><tr><th>host</th>\
             <th>audited</th><th>age</th><th>time from</th></tr>\n",
        );
        for h in stale {
            let _ = writeln!(
                o,
                "<tr data-host=\"{h}\"><td>{h}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&h.taken_at_ms.map_or_else(|| "unknown".to_string(), utc)),
                esc(&age(h.age_seconds)),
                esc(&h.time_source),
                h = esc(&h.host),
            );
        }
        o.push_str("</table>\n");
    }
}
