//! The lab's report as a table: one row per scenario, then what each run saw.

use crate::lab::{LabReport, Verdict};

/// The table: one row per scenario, then details; within `max` columns when given.
pub fn render_table(report: &LabReport, max: Option<usize>) -> String {
    use tabled::builder::Builder;
    use tabled::settings::Style;
    let mut b = Builder::default();
    b.push_record(["SCENARIO", "VERDICT", "RESETS host -> fix", "FIX"]);
    for s in &report.scenarios {
        let resets = match (&s.host_run, &s.fix_run) {
            (Some(h), Some(f)) => format!("{} -> {}", h.resets, f.resets),
            _ => "-".to_string(),
        };
        b.push_record([
            s.scenario.clone(),
            s.verdict.as_str().to_string(),
            resets,
            s.fix.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut table = b.build();
    table.with(Style::sharp());
    super::term::fit(&mut table, max);
    let table = table.to_string();
    let mut out = String::new();
    for s in &report.scenarios {
        out.push_str(&format!(
            "\n{} ({}): {}\n",
            s.scenario,
            s.title,
            s.verdict.as_str()
        ));
        if !s.rules.is_empty() {
            out.push_str(&format!("  findings: {}\n", s.rules.join(", ")));
        }
        out.push_str(&format!("  {}\n", s.summary));
        if let Some(r) = &s.expected_reason {
            out.push_str(&format!("  expected reason: {r}\n"));
        }
        if let Some(scale) = &s.scale {
            out.push_str(&format!(
                "  time scaled by {:.0} (real seconds per lab second): {}\n",
                scale.factor,
                scale.durations.join("; ")
            ));
        }
        for (label, run) in [("host values", &s.host_run), ("with the fix", &s.fix_run)] {
            let Some(run) = run else { continue };
            out.push_str(&format!("  {label}: {} reset(s)", run.resets));
            let settings: Vec<String> = run
                .settings
                .iter()
                .map(|st| match &st.lab_value {
                    Some(lab) => format!("{}={} (lab {lab})", st.key, st.value),
                    None => format!("{}={}", st.key, st.value),
                })
                .collect();
            if !settings.is_empty() {
                out.push_str(&format!(" [{}]", settings.join(", ")));
            }
            out.push('\n');
            if let Some(change) = &run.change {
                out.push_str(&format!("    change: {change}\n"));
            }
            if !run.reasons.is_empty() {
                let r: Vec<String> = run
                    .reasons
                    .iter()
                    .map(|(k, v)| format!("{k} x{v}"))
                    .collect();
                out.push_str(&format!("    reasons: {}\n", r.join(", ")));
            }
            if let Some(c) = run.captured_resets {
                out.push_str(&format!(
                    "    captured: {c}, counted by the kernel: {}\n",
                    run.counted_resets
                ));
            }
            for n in &run.notes {
                out.push_str(&format!("    note: {n}\n"));
            }
            if !run.counters.is_empty() {
                let c: Vec<String> = run
                    .counters
                    .iter()
                    .map(|(k, v)| format!("{k} +{v}"))
                    .collect();
                out.push_str(&format!("    counters: {}\n", c.join(", ")));
            }
            for line in &run.app {
                out.push_str(&format!("    {line}\n"));
            }
        }
        for n in &s.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    let loud: Vec<&str> = report
        .scenarios
        .iter()
        .filter(|s| s.verdict == Verdict::ReproducedButFixDidNotHelp)
        .map(|s| s.scenario.as_str())
        .collect();
    if !loud.is_empty() {
        out.push_str(&format!(
            "\nWARNING: the recommended fix did not remove the resets in: {}. The rule's fix is wrong or incomplete.\n",
            loud.join(", ")
        ));
    }
    if !report.with.is_empty() {
        let w: Vec<String> = report
            .with
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "\nvalues replaced inside the lab (--with): {}\n",
            w.join(", ")
        ));
    }
    for n in &report.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&format!(
        "\n{} scenario(s) in {:.1} s on kernel {}\n",
        report.scenarios.len(),
        report.seconds,
        report.kernel
    ));
    format!("{table}\n{}", super::term::wrap_block(&out, max))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::lab::{LabSetting, RunReport, SCHEMA_VERSION, ScaleReport, ScenarioReport};

    fn run(resets: u64, settings: &[(&str, &str, Option<&str>)]) -> RunReport {
        RunReport {
            settings: settings
                .iter()
                .map(|(k, v, lab)| LabSetting {
                    key: k.to_string(),
                    value: v.to_string(),
                    lab_value: lab.map(str::to_string),
                })
                .collect(),
            resets,
            counted_resets: resets,
            captured_resets: Some(resets),
            reasons: BTreeMap::from([("TCP_ABORT_ON_CLOSE".to_string(), resets)])
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect(),
            counters: BTreeMap::from([("server TcpExt.TCPAbortOnClose".to_string(), resets)]),
            app: vec!["client: read -> ECONNRESET".to_string()],
            ..RunReport::default()
        }
    }

    #[test]
    fn lab_table() {
        let report = LabReport {
            schema: SCHEMA_VERSION,
            kernel: "6.18.0".into(),
            with: BTreeMap::from([("net.ipv4.tcp_keepalive_time".to_string(), "600".to_string())]),
            notes: vec!["a note of the whole lab".into()],
            seconds: 12.5,
            scenarios: vec![
                ScenarioReport {
                    scenario: "unread-close".into(),
                    title: "close() with unread data".into(),
                    rules: vec!["unread-close".into()],
                    verdict: Verdict::Confirmed,
                    summary: "1 reset(s) with the host's values, none with the fix".into(),
                    expected_reason: Some("TCP_ABORT_ON_CLOSE".into()),
                    fix: Some("read to EOF before close()".into()),
                    scale: None,
                    host_run: Some(run(1, &[])),
                    fix_run: Some(run(0, &[])),
                    notes: vec![],
                    seconds: 1.0,
                },
                ScenarioReport {
                    scenario: "idle-middlebox".into(),
                    title: "idle flow through a middlebox".into(),
                    rules: vec!["keepalive-above-idle-timeout".into()],
                    verdict: Verdict::ReproducedButFixDidNotHelp,
                    summary: "1 reset(s) with the host's values and still 1 with the fix".into(),
                    expected_reason: Some("middlebox reject".into()),
                    fix: Some("net.ipv4.tcp_keepalive_time=240".into()),
                    scale: Some(ScaleReport {
                        factor: 100.0,
                        durations: vec!["idle timeout 300 s -> 3 s".into()],
                        outcome_preserved: false,
                    }),
                    host_run: Some(run(1, &[("net.ipv4.tcp_keepalive_time", "600", Some("6"))])),
                    fix_run: Some(run(1, &[("net.ipv4.tcp_keepalive_time", "240", Some("2"))])),
                    notes: vec!["a note of the scenario".into()],
                    seconds: 9.0,
                },
                ScenarioReport {
                    scenario: "tw-recycle".into(),
                    title: "tcp_tw_recycle".into(),
                    rules: vec![],
                    verdict: Verdict::NotReproducibleOnThisKernel,
                    summary: "net.ipv4.tcp_tw_recycle was removed in 4.12".into(),
                    expected_reason: None,
                    fix: None,
                    scale: None,
                    host_run: None,
                    fix_run: None,
                    notes: vec![],
                    seconds: 0.0,
                },
            ],
        };
        insta::assert_snapshot!(render_table(&report, None));
    }
}
