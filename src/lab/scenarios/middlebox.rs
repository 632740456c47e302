//! Scenarios through a middlebox or a cut path: idle timeouts against keepalive, a lost
//! keepalive probe, keepalive giving up.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::time::Duration;

use super::*;

/// Keepalive values of a run at real scale, and how they are written at lab scale.
pub(super) fn keepalive_settings(
    scale: Scale,
    values: &BTreeMap<String, String>,
) -> Vec<(String, String, Option<String>)> {
    values
        .iter()
        .map(|(k, v)| {
            let lab = if k == KEEPALIVE_TIME || k == KEEPALIVE_INTVL {
                v.parse::<f64>()
                    .ok()
                    .map(|real| scale.kernel_secs(real).to_string())
                    .filter(|lab| lab != v)
            } else {
                None
            };
            (k.clone(), v.clone(), lab)
        })
        .collect()
}

pub(super) fn keepalive_values(ctx: &Ctx) -> Result<BTreeMap<String, String>, LabError> {
    [KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES]
        .iter()
        .map(|k| Ok((k.to_string(), ctx.value(k)?.to_string())))
        .collect()
}

pub(super) fn with_fix(
    values: &BTreeMap<String, String>,
    fix: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out = values.clone();
    for (k, v) in fix {
        out.insert(k.clone(), v.clone());
    }
    out
}

pub(super) fn num(values: &BTreeMap<String, String>, key: &str) -> f64 {
    values
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Client side of the idle scenarios: say hello, let `pause` run, then write and read again.
pub(super) fn idle_client(
    addr: SocketAddrV4,
    pause: impl FnOnce() -> Result<Vec<String>, LabError>,
    measure: impl FnOnce() -> Result<Measured, LabError>,
) -> Result<(Vec<String>, Measured), LabError> {
    let mut c = sock::connect(addr).step(format!("connect {addr}"))?;
    sock::set_keepalive(&c)?;
    c.write_all(b"hello").step("first write")?;
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).step("first echo")?;
    let mut app = vec!["client: connected with SO_KEEPALIVE, first echo received".to_string()];
    app.extend(pause()?);
    app.push(write_outcome(
        &mut c,
        b"again",
        "client write after the pause",
    ));
    app.push(read_outcome(&mut c, "client read"));
    // Measured before the client closes: teardown segments are not part of the scenario.
    Ok((app, measure()?))
}

pub(super) fn idle_middlebox(ctx: &Ctx) -> Result<Outcome, LabError> {
    let idle_timeout = ctx.param("idle_timeout", 300.0);
    let default_fix = vec![(
        KEEPALIVE_TIME,
        ((idle_timeout / 2.0).floor().max(1.0)).to_string(),
    )];
    middlebox_scenario(ctx, idle_timeout, default_fix, false)
}

pub(super) fn lost_keepalive_probe(ctx: &Ctx) -> Result<Outcome, LabError> {
    let idle_timeout = ctx.param("idle_timeout", 300.0);
    // The retry must come while the middlebox still knows the flow: a third of what is left
    // after the first probe (keepalive_time itself halved first if it is already too late).
    let time = ctx.number(KEEPALIVE_TIME)?;
    let mut default_fix = Vec::new();
    let time_fix = if time < idle_timeout {
        time
    } else {
        let t = (idle_timeout / 2.0).floor().max(1.0);
        default_fix.push((KEEPALIVE_TIME, t.to_string()));
        t
    };
    default_fix.push((
        KEEPALIVE_INTVL,
        ((idle_timeout - time_fix) / 3.0)
            .floor()
            .max(1.0)
            .to_string(),
    ));
    middlebox_scenario(ctx, idle_timeout, default_fix, true)
}

/// The flow outlives a middlebox's idle timeout when keepalive refreshes it in time: the
/// first probe (keepalive_time), or, when that one is lost, the retry (time + intvl).
pub(crate) fn keepalive_keeps_flow(
    time: f64,
    intvl: f64,
    timeout: f64,
    first_probe_lost: bool,
) -> bool {
    if first_probe_lost {
        time < timeout && time + intvl < timeout
    } else {
        time < timeout
    }
}

/// Drops the first keepalive probe from the client before the middlebox's conntrack sees
/// it (priority raw): the flow is not refreshed, as when a lossy link eats the probe.
pub(super) const LOSE_TABLE: &str = "rstaudit_lose";

/// The client idles past the middlebox's idle timeout, with keepalive as `values` say (and,
/// with `lose_first_probe`, the first probe lost on the way).
pub(super) fn middlebox_scenario(
    ctx: &Ctx,
    idle_timeout: f64,
    default_fix: Vec<(&str, String)>,
    lose_first_probe: bool,
) -> Result<Outcome, LabError> {
    nft::find()?;
    let host_values = keepalive_values(ctx)?;
    let (fix, fix_notes) = ctx.fix_or(&default_fix, KEEPALIVE_KEYS);
    let fix_values = with_fix(&host_values, &fix);
    let (scale, preserved) = scale::choose(idle_timeout, &[3, 4, 5, 6, 8, 10, 12, 15, 20], |s| {
        let t = s.kernel_secs(idle_timeout) as f64;
        [&host_values, &fix_values].iter().all(|v| {
            let (time, intvl) = (num(v, KEEPALIVE_TIME), num(v, KEEPALIVE_INTVL));
            keepalive_keeps_flow(time, intvl, idle_timeout, lose_first_probe)
                == keepalive_keeps_flow(
                    s.kernel_secs(time) as f64,
                    s.kernel_secs(intvl) as f64,
                    t,
                    lose_first_probe,
                )
        })
    });
    let timeout_lab = scale.kernel_secs(idle_timeout);
    let idle_lab = timeout_lab as f64 * 1.5;
    let run = |slot: u8, values: &BTreeMap<String, String>| -> Result<RunReport, LabError> {
        let mb = build_middlebox(slot, timeout_lab)?;
        let report = RunReport {
            settings: settings(&mb.client, &keepalive_settings(scale, values))?,
            ..RunReport::default()
        };
        let meter = Meter::start(&[&mb.client, &mb.middlebox, &mb.server], mb.addrs.clone())?;
        let (app, measured) = with_echo_server(&mb.server, &mb.client, mb.server_addr, || {
            idle_client(
                mb.server_addr,
                || {
                    let mut app = Vec::new();
                    let mut slept = 0.0;
                    if lose_first_probe {
                        // Let the client's delayed ACK of the echo pass first: the next
                        // packet from the client is then the first keepalive probe.
                        slept = 0.3;
                        nap(Duration::from_secs_f64(slept))?;
                        lose_next_probe(&mb)?;
                    }
                    nap(Duration::from_secs_f64(idle_lab - slept))?;
                    app.push(format!(
                            "client: idle {idle_lab:.1} s (real {:.0} s) > middlebox timeout {timeout_lab} s",
                            idle_lab * scale.factor
                        ));
                    if lose_first_probe {
                        app.push(format!(
                            "middlebox: lost {} keepalive probe(s) from the client",
                            nft::counted_packets(&mb.middlebox, LOSE_TABLE)?
                        ));
                    }
                    Ok(app)
                },
                || {
                    let mut m = meter.read()?;
                    m.add_middlebox_rejects(nft::counted_packets(&mb.middlebox, LAB_TABLE)?);
                    Ok(m)
                },
            )
        })?;
        Ok(finish_run(report, app, measured))
    };
    let (host, fixed) = both(|| run(1, &host_values), || run(2, &fix_values))?;
    let mut durations = vec![
        format!("middlebox idle timeout {idle_timeout} s -> {timeout_lab} s"),
        format!(
            "client idle {:.0} s -> {idle_lab:.1} s",
            idle_lab * scale.factor
        ),
    ];
    for (label, v) in [("host", &host_values), ("fix", &fix_values)] {
        let ka = num(v, KEEPALIVE_TIME);
        durations.push(format!(
            "{label} tcp_keepalive_time {ka} s -> {} s",
            scale.kernel_secs(ka)
        ));
        if lose_first_probe {
            let intvl = num(v, KEEPALIVE_INTVL);
            durations.push(format!(
                "{label} tcp_keepalive_intvl {intvl} s -> {} s",
                scale.kernel_secs(intvl)
            ));
        }
    }
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix: fixed,
        fix_description: describe_fix(&fix),
        expected_reason: if lose_first_probe {
            "a reset from the middlebox to the keepalive retry or the next write (nftables reject with tcp reset); the client sees ECONNRESET"
        } else {
            "a reset from the middlebox (nftables reject with tcp reset); the client sees ECONNRESET"
        }
        .into(),
        scale: Some(ScaleReport {
            factor: scale.factor,
            durations,
            outcome_preserved: preserved,
        }),
        notes: [format!(
            "idle timeout from the rule parameter idle_timeout={idle_timeout} (set with --set idle_timeout=SECONDS)"
        )]
        .into_iter()
        .chain(fix_notes)
        .collect(),
    })))
}

pub(super) fn keepalive_timeout(ctx: &Ctx) -> Result<Outcome, LabError> {
    nft::find()?;
    let outage = ctx.param("outage", 120.0);
    let host_values = keepalive_values(ctx)?;
    let (fix, fix_notes) = ctx.fix_or(
        &[
            (KEEPALIVE_INTVL, "75".to_string()),
            (KEEPALIVE_PROBES, "9".to_string()),
        ],
        KEEPALIVE_KEYS,
    );
    let fix_values = with_fix(&host_values, &fix);
    let gives_up = |t: f64, i: f64, p: f64, outage: f64| t + i * p < outage;
    let (scale, preserved) = scale::choose(outage, &[4, 5, 6, 8, 10, 12, 15, 20], |s| {
        let o = s.kernel_secs(outage) as f64;
        [&host_values, &fix_values].iter().all(|v| {
            let (t, i, p) = (
                num(v, KEEPALIVE_TIME),
                num(v, KEEPALIVE_INTVL),
                num(v, KEEPALIVE_PROBES),
            );
            gives_up(t, i, p, outage)
                == gives_up(s.kernel_secs(t) as f64, s.kernel_secs(i) as f64, p, o)
        })
    });
    let outage_lab = scale.kernel_secs(outage);
    let run = |slot: u8, values: &BTreeMap<String, String>| -> Result<RunReport, LabError> {
        let (client, server, addr) = build_pair(slot)?;
        let report = RunReport {
            settings: settings(&client, &keepalive_settings(scale, values))?,
            ..RunReport::default()
        };
        let meter = Meter::start(&[&client, &server], vec![addr.into()])?;
        let (app, measured) = with_echo_server(&server, &client, addr, || {
            idle_client(
                addr,
                || {
                    nft::load(
                        &server,
                        &format!(
                            "table inet {CUT_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    meta l4proto tcp drop\n  }}\n}}\n"
                        ),
                    )?;
                    nap(Duration::from_secs(outage_lab))?;
                    nft::run(&server, &["delete", "table", "inet", CUT_TABLE], "")?;
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(vec![format!(
                        "path dead for {outage_lab} s (real {outage} s), then restored"
                    )])
                },
                || meter.read(),
            )
        })?;
        Ok(finish_run(report, app, measured))
    };
    let (host, fixed) = both(|| run(1, &host_values), || run(2, &fix_values))?;
    let mut durations = vec![format!("path outage {outage} s -> {outage_lab} s")];
    for (label, v) in [("host", &host_values), ("fix", &fix_values)] {
        let (t, i, p) = (
            num(v, KEEPALIVE_TIME),
            num(v, KEEPALIVE_INTVL),
            num(v, KEEPALIVE_PROBES),
        );
        durations.push(format!(
            "{label} keepalive gives up after {t} + {i} x {p} = {} s -> {} s",
            t + i * p,
            scale.kernel_secs(t) as f64 + scale.kernel_secs(i) as f64 * p
        ));
    }
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix: fixed,
        fix_description: describe_fix(&fix),
        expected_reason:
            "TCP_KEEPALIVE_TIMEOUT (TcpExt.TCPAbortOnTimeout); the application sees ETIMEDOUT"
                .into(),
        scale: Some(ScaleReport {
            factor: scale.factor,
            durations,
            outcome_preserved: preserved,
        }),
        notes: [format!(
            "outage length from the parameter outage={outage} (set with --set outage=SECONDS)"
        )]
        .into_iter()
        .chain(fix_notes)
        .collect(),
    })))
}
