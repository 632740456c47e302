//! What a finding says: the message with its placeholders filled, the evidence, the fix.

use super::*;

pub(super) fn uses(cond: Option<&Cond>, pred: &dyn Fn(&Expr) -> bool) -> bool {
    let mut found = false;
    if let Some(c) = cond {
        c.visit(&mut |e| found |= pred(e));
    }
    found
}

pub(super) fn render(ctx: &HostCtx<'_>, params: &Params, rule: &Rule) -> String {
    let mut out = String::new();
    for p in &rule.message.pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Value(e @ Expr::Counter(name, m)) => match host_value(ctx, params, e) {
                Ok(v) => {
                    let delta = match m {
                        Measure::Auto => ctx.two_samples,
                        Measure::Change => true,
                        Measure::Total | Measure::Rate => false,
                    };
                    let _ = if delta {
                        write!(
                            out,
                            "{} (in {} s)",
                            group_digits(v as u64),
                            fmt_num(ctx.window.unwrap_or(0.0))
                        )
                    } else {
                        write!(out, "{} (since boot)", group_digits(v as u64))
                    };
                }
                Err(_) => {
                    let _ = write!(out, "{name} (not read)");
                }
            },
            Piece::Value(e) => match host_value(ctx, params, e) {
                Ok(v) => out.push_str(&fmt_num(v)),
                Err(_) => out.push_str("(unknown)"),
            },
        }
    }
    out
}

pub(super) fn evidence(ctx: &HostCtx<'_>, rule: &Rule) -> Evidence {
    Evidence {
        counters: rule
            .evidence_counters
            .iter()
            .map(|name| CounterEvidence {
                name: name.clone(),
                total: ctx.snap.counter(name),
                delta: ctx.snap.counter_delta(name).map(|(d, _)| d),
                window_seconds: ctx.snap.counter_delta(name).map(|(_, w)| w),
            })
            .collect(),
        rst_reasons: rule.rst_reasons.clone(),
    }
}

pub(super) fn fix(ctx: &HostCtx<'_>, params: &Params, rule: &Rule, notes: &mut Vec<String>) -> Fix {
    let mut sysctls = Vec::new();
    for (key, e) in &rule.fix_sysctls {
        let value = match e {
            Expr::Text(t) => Ok(t.clone()),
            e => host_value(ctx, params, e).map(|v| fmt_num(v.floor())),
        };
        match value {
            Ok(value) => sysctls.push(SysctlFix {
                key: key.clone(),
                value,
                current: ctx.snap.sysctl(key).map(str::to_string),
            }),
            Err(why) => notes.push(format!("no value computed for {key}: {why}")),
        }
    }
    Fix {
        sysctls,
        advice: rule.advice.clone(),
    }
}

pub(super) fn counter_notes(ctx: &HostCtx<'_>, rule: &Rule, notes: &mut Vec<String>) {
    let uses_counters = !rule.evidence_counters.is_empty()
        || uses(rule.when.as_ref(), &|e| {
            matches!(e, Expr::Counter(..) | Expr::CounterOr(..))
        });
    let uses_rate = [&rule.when, &rule.matches, &rule.suspects].iter().any(|c| {
        uses(c.as_ref(), &|e| {
            matches!(e, Expr::Counter(_, Measure::Rate))
        })
    });
    if uses_rate && !ctx.two_samples {
        notes.push(
            "no --interval window: rates of counters were not judged (taken as 0 per second); run with --interval SECONDS"
                .to_string(),
        );
    }
    if uses_counters && !ctx.two_samples {
        notes.push(
            "counters are totals since boot (or namespace creation); run with --interval SECONDS to judge their change"
                .to_string(),
        );
    }
}

/// A note for each sysctl the rule took at its `absent:` value because this kernel does not
/// have it: the finding says which value it assumed.
pub(super) fn absent_notes(ctx: &HostCtx<'_>, rule: &Rule, notes: &mut Vec<String>) {
    let mut seen: Vec<(String, f64, bool)> = Vec::new();
    let mut look = |e: &Expr| {
        let (name, v, sysctl) = match e {
            Expr::Sysctl(k, Some(v)) => (k, *v, true),
            Expr::CounterOr(c, v) => (c, *v, false),
            _ => return,
        };
        if !seen.iter().any(|(s, _, _)| s == name) {
            seen.push((name.clone(), v, sysctl));
        }
    };
    for c in [&rule.when, &rule.suspects].into_iter().flatten() {
        c.visit(&mut look);
    }
    for (_, e) in rule.computed.iter().chain(rule.fix_sysctls.iter()) {
        visit_expr(e, &mut look);
    }
    for p in &rule.message.pieces {
        if let Piece::Value(e) = p {
            visit_expr(e, &mut look);
        }
    }
    for (key, v, sysctl) in seen {
        let absent = if sysctl {
            matches!(ctx.sysctl(&key), Err(Unknown::SysctlAbsent { .. }))
        } else {
            matches!(
                ctx.counter(&key, Measure::Total),
                Err(Unknown::CounterAbsent { .. })
            )
        };
        if absent {
            notes.push(format!(
                "{key} does not exist on this kernel: taken as {}{}",
                fmt_num(v),
                if sysctl {
                    ", the value the kernel works with without it"
                } else {
                    ""
                }
            ));
        }
    }
}
