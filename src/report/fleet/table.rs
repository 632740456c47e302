//! The fleet report as text: summary, most common findings, fixes, the host x rule
//! matrix (most at risk first), failed and stale hosts.

use std::fmt::Write;

use super::{Cell, FleetReport, age, utc};
use crate::report::describe_threshold;
use crate::report::term::{self, Term};
use crate::rules::Severity;

/// `E:high`, `O:crit`, `L:med`: exposure initial, then the severity; `*` when a waiver
/// accepts it.
pub fn short_cell(c: &Cell) -> String {
    let e = match c.exposure {
        crate::rules::Exposure::Latent => 'L',
        crate::rules::Exposure::Exposed => 'E',
        crate::rules::Exposure::Observed => 'O',
    };
    let s = match c.severity {
        Severity::Critical => "crit",
        Severity::High => "high",
        Severity::Medium => "med",
        Severity::Low => "low",
        Severity::Info => "info",
    };
    let star = if c.accepted { "*" } else { "" };
    format!("{e}:{s}{star}")
}

/// The first sentence of an advice (the JSON and HTML keep it whole).
fn first_sentence(text: &str) -> String {
    let text = text
        .strip_prefix("No sysctl can fix this. ")
        .unwrap_or(text);
    match text.find(". ") {
        Some(i) => text[..=i].to_string(),
        None => text.to_string(),
    }
}

/// The host x rule matrix: the first `fixed` columns, then the rule columns; with a width,
/// the rule columns are split into blocks that fit, each block repeating the fixed columns.
fn matrix(out: &mut String, rows: &[Vec<String>], fixed: usize, max: Option<usize>) {
    let Some(max) = max else {
        return out.push_str(&term::columns(rows, None));
    };
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(|c| term::width(c))
            .max()
    };
    let lead: usize = (0..fixed.min(n)).filter_map(width).map(|w| w + 2).sum();
    let widest_rule = (fixed..n).filter_map(width).max().unwrap_or(0);
    if lead + widest_rule > max {
        return out.push_str(&term::records(rows, max));
    }
    let mut start = fixed;
    let mut first = true;
    while start < n || first {
        let mut end = start;
        let mut used = lead;
        while end < n && (end == start || used + width(end).unwrap_or(0) + 2 <= max) {
            used += width(end).unwrap_or(0) + 2;
            end += 1;
        }
        if !first {
            out.push('\n');
        }
        let block: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .take(fixed)
                    .chain(r.iter().skip(start).take(end - start))
                    .cloned()
                    .collect()
            })
            .collect();
        out.push_str(&term::columns(&block, None));
        first = false;
        if end == start {
            break;
        }
        start = end;
    }
}

/// Render the report as text; with `term.width`, within that many columns.
pub fn table(r: &FleetReport, term: Term) -> Vec<u8> {
    let max = term.columns();
    let mut out = String::new();
    summary(&mut out, r, max);
    common_findings(&mut out, r, max);
    fixes(&mut out, r, max);
    hosts(&mut out, r, max);
    failed(&mut out, r, max);
    duplicates(&mut out, r, max);
    waivers(&mut out, r, max);
    stale(&mut out, r, max);
    out.into_bytes()
}

/// The two lines of the summary: files, hosts audited, failed and stale; findings and the
/// hosts over the threshold.
fn summary(out: &mut String, r: &FleetReport, max: Option<usize>) {
    let s = &r.summary;
    let mut head = String::new();
    let _ = writeln!(
        head,
        "rstaudit fleet report, {}: {} file(s), {} host(s) audited, {} failed, {} stale (older than {}){}",
        utc(r.generated_at_ms),
        s.files,
        s.audited,
        s.failed,
        s.stale,
        age(Some(r.max_age_seconds as i64)),
        if s.duplicates > 0 {
            format!(", {} counted once with another", s.duplicates)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        head,
        "{} finding(s) on {} host(s), {} accepted by a waiver; {}",
        s.findings,
        s.hosts_with_findings,
        s.accepted,
        if r.fail_on == "never" {
            "--fail-on never".to_string()
        } else {
            format!(
                "{} host(s) with {} ({})",
                s.hosts_failing,
                describe_threshold(&r.fail_on),
                r.fail_on
            )
        }
    );
    out.push_str(&term::wrap_lines(&head, max, "", "  "));
}

/// The rules found on most hosts, numbered as the matrix's columns, with their fixes.
fn common_findings(out: &mut String, r: &FleetReport, max: Option<usize>) {
    out.push_str("\nMost common findings (# is the column of the host matrix)\n");
    if r.rules.is_empty() {
        out.push_str("No findings.\n");
    } else {
        let mut rows = vec![
            [
                "#", "rule", "severity", "hosts", "observed", "exposed", "latent", "fix",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for (i, rule) in r.rules.iter().enumerate() {
            let n = |e: &str| rule.by_exposure.get(e).copied().unwrap_or(0).to_string();
            let fix = if rule.fixes.is_empty() {
                rule.advice
                    .as_deref()
                    .map_or_else(|| "-".to_string(), first_sentence)
            } else {
                rule.fixes
                    .iter()
                    .map(|f| format!("{}={} ({})", f.key, f.value, f.hosts))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            rows.push(vec![
                (i + 1).to_string(),
                rule.rule.clone(),
                rule.severity.as_str().to_string(),
                rule.hosts.to_string(),
                n("observed"),
                n("exposed"),
                n("latent"),
                fix,
            ]);
        }
        out.push_str(&term::columns(&rows, max));
    }
}

/// The fixes, with the hosts asking for each value and the rules they clear.
fn fixes(out: &mut String, r: &FleetReport, max: Option<usize>) {
    if !r.fixes.is_empty() {
        out.push_str("\nFixes that would clear them (hosts asking for each value)\n");
        let mut rows = vec![["sysctl", "hosts", "clears"].map(String::from).to_vec()];
        for f in &r.fixes {
            rows.push(vec![
                format!("{} = {}", f.key, f.value),
                f.hosts.to_string(),
                f.rules.join(", "),
            ]);
        }
        out.push_str(&term::columns(&rows, max));
    }
}

/// The host x rule matrix, most at risk first.
fn hosts(out: &mut String, r: &FleetReport, max: Option<usize>) {
    out.push('\n');
    out.push_str(&term::wrap_lines(
        "Hosts, most at risk first (cells: O observed, E exposed, L latent; severity; * accepted)",
        max,
        "",
        "  ",
    ));
    if r.hosts.is_empty() {
        out.push_str("No host audit could be read.\n");
    } else {
        let mut head: Vec<String> = ["host", "age", "fail", "findings"]
            .map(String::from)
            .to_vec();
        head.extend((1..=r.rules.len()).map(|i| i.to_string()));
        let mut rows = vec![head];
        for h in &r.hosts {
            let mut row = vec![
                h.host.clone(),
                format!(
                    "{}{}",
                    age(h.age_seconds),
                    if h.stale { " STALE" } else { "" }
                ),
                if h.failing { "FAIL" } else { "ok" }.to_string(),
                h.findings.to_string(),
            ];
            row.extend(r.rules.iter().map(|rule| {
                h.cells
                    .get(&rule.rule)
                    .map_or_else(|| "-".to_string(), short_cell)
            }));
            rows.push(row);
        }
        matrix(out, &rows, 4, max);
    }
}

/// The files from which no audit could be read, and why.
fn failed(out: &mut String, r: &FleetReport, max: Option<usize>) {
    if !r.failed.is_empty() {
        let _ = writeln!(out, "\nFailed ({}): no usable audit", r.failed.len());
        let mut rows = vec![["host", "file", "reason"].map(String::from).to_vec()];
        for f in &r.failed {
            rows.push(vec![f.host.clone(), f.file.clone(), f.reason.clone()]);
        }
        out.push_str(&term::columns(&rows, max));
    }
}

/// The files counted once with another, and the file that counts.
fn duplicates(out: &mut String, r: &FleetReport, max: Option<usize>) {
    if !r.duplicates.is_empty() {
        let _ = writeln!(
            out,
            "\nCounted once ({}): the same file, or an older audit of the same host",
            r.duplicates.len()
        );
        let mut rows = vec![
            ["host", "file", "same as", "why"]
                .map(String::from)
                .to_vec(),
        ];
        for d in &r.duplicates {
            rows.push(vec![
                d.host.clone(),
                d.file.clone(),
                d.same_as.clone(),
                d.reason.clone(),
            ]);
        }
        out.push_str(&term::columns(&rows, max));
    }
}

/// The waivers that expired or match nothing, per host.
fn waivers(out: &mut String, r: &FleetReport, max: Option<usize>) {
    let waivers: Vec<_> = r
        .hosts
        .iter()
        .filter(|h| !h.waiver_problems.is_empty())
        .collect();
    if !waivers.is_empty() {
        let _ = writeln!(
            out,
            "\nWaivers that expired or match nothing ({})",
            r.summary.waiver_problems
        );
        let mut rows = vec![["host", "waiver"].map(String::from).to_vec()];
        for h in waivers {
            for w in &h.waiver_problems {
                rows.push(vec![h.host.clone(), w.clone()]);
            }
        }
        out.push_str(&term::columns(&rows, max));
    }
}

/// The hosts whose audit is too old (or of no known time), and where its time comes from.
fn stale(out: &mut String, r: &FleetReport, max: Option<usize>) {
    let stale: Vec<_> = r.hosts.iter().filter(|h| h.stale).collect();
    if !stale.is_empty() {
        let _ = writeln!(
            out,
            "\nStale ({}): audit older than {} (its findings are still shown above)",
            stale.len(),
            age(Some(r.max_age_seconds as i64))
        );
        let mut rows = vec![
            ["host", "audited", "age", "time from"]
                .map(String::from)
                .to_vec(),
        ];
        for h in stale {
            rows.push(vec![
                h.host.clone(),
                h.taken_at_ms.map_or_else(|| "unknown".to_string(), utc),
                age(h.age_seconds),
                match h.time_source.as_str() {
                    "audit" => "the audit".to_string(),
                    "file" => {
                        "the file's modification time (the audit has no time stamp)".to_string()
                    }
                    _ => "nowhere: no time stamp".to_string(),
                },
            ]);
        }
        out.push_str(&term::columns(&rows, max));
    }
}
