//! The lab's report as a table: one row per scenario, then what each run saw.

use crate::packet::lab::{LabReport, Verdict};

/// The table: one row per scenario, then details.
pub fn render_table(report: &LabReport) -> String {
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
    let mut out = b.build().with(Style::sharp()).to_string();
    out.push('\n');
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
    out
}
