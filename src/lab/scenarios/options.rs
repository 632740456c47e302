//! Scenarios for rules about a socket option the application sets (or leaves off): the
//! host run sets what the rule flags on the socket, the fix run does what the rule's
//! advice says. No sysctl is involved, so no host value is copied.
//!
//! - `idle-no-keepalive`: an idle connection without SO_KEEPALIVE through a middlebox that
//!   forgets idle flows (idle-without-keepalive);
//! - `linger2-abort`: close() in FIN_WAIT2 with TCP_LINGER2 -1 (linger2-negative,
//!   resets-abort-on-linger);
//! - `user-timeout`: a short TCP_USER_TIMEOUT during a path outage (user-timeout-short).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::super::evidence::{Meter, nap};
use super::super::netns::LabNs;
use super::super::scale;
use super::super::{LabError, Step, nft, sock};
use super::{
    LAB_TABLE, Outcome, Ran, RunReport, ScaleReport, both, build_middlebox, build_pair, finish_run,
    join, lo_addr, read_outcome, spawn_in, with_echo_server, write_outcome,
};

/// What the client of `idle-no-keepalive` sets on its socket.
#[derive(Clone, Copy)]
enum Keepalive {
    Off,
    /// SO_KEEPALIVE with TCP_KEEPIDLE and TCP_KEEPINTVL (lab seconds).
    Idle(i32, i32),
}

pub(super) fn idle_no_keepalive(ctx: &super::Ctx) -> Result<Outcome, LabError> {
    nft::find()?;
    let idle_timeout = ctx.param("idle_timeout", 300.0);
    let (scale, preserved) = scale::choose(idle_timeout, &[3, 4, 5], |_| true);
    let timeout_lab = scale.kernel_secs(idle_timeout);
    let idle_lab = timeout_lab as f64 * 1.5;
    let keepidle_lab = (timeout_lab / 2).max(1) as i32;
    let run = |slot: u8, keepalive: Keepalive| -> Result<RunReport, LabError> {
        let mb = build_middlebox(slot, timeout_lab)?;
        let report = RunReport {
            change: Some(match keepalive {
                Keepalive::Off => "no SO_KEEPALIVE, as the flagged sockets".to_string(),
                Keepalive::Idle(idle, intvl) => format!(
                    "SO_KEEPALIVE with TCP_KEEPIDLE {idle} s and TCP_KEEPINTVL {intvl} s (lab scale), below the idle timeout"
                ),
            }),
            ..RunReport::default()
        };
        let meter = Meter::start(&[&mb.client, &mb.middlebox, &mb.server], mb.addrs.clone())?;
        let (app, measured) = with_echo_server(&mb.server, &mb.client, mb.server_addr, || {
            let mut c =
                sock::connect(mb.server_addr).step(format!("connect {}", mb.server_addr))?;
            let mut app = Vec::new();
            match keepalive {
                Keepalive::Off => app.push("client: connected without SO_KEEPALIVE".to_string()),
                Keepalive::Idle(idle, intvl) => {
                    sock::set_keepalive_idle(&c, idle, intvl)?;
                    app.push(format!(
                        "client: connected with SO_KEEPALIVE, TCP_KEEPIDLE {idle} s"
                    ));
                }
            }
            c.write_all(b"hello").step("first write")?;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).step("first echo")?;
            nap(Duration::from_secs_f64(idle_lab))?;
            app.push(format!(
                "client: idle {idle_lab:.1} s (real {:.0} s) > middlebox timeout {timeout_lab} s",
                idle_lab * scale.factor
            ));
            app.push(write_outcome(
                &mut c,
                b"again",
                "client write after the pause",
            ));
            app.push(read_outcome(&mut c, "client read"));
            let mut m = meter.read()?;
            m.add_middlebox_rejects(nft::counted_packets(&mb.middlebox, LAB_TABLE)?);
            Ok((app, m))
        })?;
        Ok(finish_run(report, app, measured))
    };
    let (host, fix) = both(
        || run(1, Keepalive::Off),
        || run(2, Keepalive::Idle(keepidle_lab, 1)),
    )?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: "application: SO_KEEPALIVE with TCP_KEEPIDLE below the idle timeout"
            .into(),
        expected_reason:
            "a reset from the middlebox (nftables reject with tcp reset); the client sees ECONNRESET"
                .into(),
        scale: Some(ScaleReport {
            factor: scale.factor,
            durations: vec![
                format!("middlebox idle timeout {idle_timeout} s -> {timeout_lab} s"),
                format!(
                    "client idle {:.0} s -> {idle_lab:.1} s",
                    idle_lab * scale.factor
                ),
                format!(
                    "fix TCP_KEEPIDLE {:.0} s -> {keepidle_lab} s",
                    f64::from(keepidle_lab) * scale.factor
                ),
            ],
            outcome_preserved: preserved,
        }),
        notes: vec![format!(
            "idle timeout from the rule parameter idle_timeout={idle_timeout} (set with --set idle_timeout=SECONDS); the host's tcp_keepalive_* sysctls do not apply to a socket without SO_KEEPALIVE"
        )],
    })))
}

/// The application half-closes (shutdown(SHUT_WR)), the peer acknowledges its FIN (FIN_WAIT2),
/// then the application closes: with TCP_LINGER2 -1 the kernel resets at once.
fn linger2_run(slot: u8, linger2: Option<i32>) -> Result<RunReport, LabError> {
    let ns = LabNs::new("lab")?;
    let addr = lo_addr(slot);
    let report = RunReport {
        change: Some(match linger2 {
            Some(v) => format!("TCP_LINGER2 {v} on the closing socket, as the flagged sockets"),
            None => "TCP_LINGER2 left alone (tcp_fin_timeout bounds FIN_WAIT2)".to_string(),
        }),
        ..RunReport::default()
    };
    let meter = Meter::start(&[&ns], vec![addr.into()])?;
    let (app, measured) = ns.run(|| {
        let listener = sock::listener(addr, 16, None)?;
        let client = sock::connect(addr).step("connect")?;
        let (mut peer, _) = listener.accept().step("accept")?;
        peer.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut app = Vec::new();
        if let Some(v) = linger2 {
            sock::set_linger2(&client, v)?;
        }
        client.shutdown(Shutdown::Write).step("shutdown")?;
        app.push(read_outcome(&mut peer, "peer read after the shutdown"));
        // The peer's kernel has acknowledged the FIN: the closing side is in FIN_WAIT2.
        std::thread::sleep(Duration::from_millis(100));
        drop(client);
        app.push("application: close() in FIN_WAIT2".to_string());
        std::thread::sleep(Duration::from_millis(100));
        // Measured before the peer closes: only what the application's close() sent counts.
        let measured = meter.read()?;
        app.push(write_outcome(&mut peer, b"x", "peer write after the close"));
        Ok((app, measured))
    })?;
    Ok(finish_run(report, app, measured))
}

pub(super) fn linger2_abort(_ctx: &super::Ctx) -> Result<Outcome, LabError> {
    let (host, fix) = both(|| linger2_run(1, Some(-1)), || linger2_run(2, None))?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: "application: do not set a negative TCP_LINGER2; use net.ipv4.tcp_fin_timeout to bound FIN_WAIT2".into(),
        expected_reason: "TCP_ABORT_ON_LINGER (TcpExt.TCPAbortOnLinger)".into(),
        scale: None,
        notes: vec![],
    })))
}

const OUTAGE_TABLE: &str = "rstaudit_outage";
/// The path outage, lab seconds; the host run's TCP_USER_TIMEOUT is shorter, the fix's longer.
const OUTAGE_MS: u64 = 2000;
const SHORT_USER_TIMEOUT_MS: u32 = 1000;

/// The client writes while the path is dead, then the path comes back and the server writes.
fn user_timeout_run(slot: u8, user_timeout_ms: u32) -> Result<RunReport, LabError> {
    let (client, server, addr) = build_pair(slot)?;
    let report = RunReport {
        change: Some(if user_timeout_ms == 0 {
            "TCP_USER_TIMEOUT 0: the kernel's retransmission limit (tcp_retries2)".to_string()
        } else {
            format!("TCP_USER_TIMEOUT {user_timeout_ms} ms, shorter than the outage")
        }),
        ..RunReport::default()
    };
    let meter = Meter::start(&[&client, &server], vec![addr.into()])?;
    let restored = AtomicBool::new(false);
    let listener = server.run(|| sock::listener(addr, 16, None))?;
    let (app, measured) = std::thread::scope(|scope| -> Result<_, LabError> {
        let srv = spawn_in(scope, &server, || {
            let (mut conn, _) = listener.accept().step("accept")?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            while !restored.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut app = vec![write_outcome(
                &mut conn,
                b"late",
                "server write after the path is back",
            )];
            std::thread::sleep(Duration::from_millis(200));
            let mut buf = [0u8; 64];
            app.push(match conn.read(&mut buf) {
                Ok(n) => format!("server read: {n} bytes"),
                Err(e) => format!("server read: {}", sock::describe(&e)),
            });
            Ok(app)
        });
        let cli = spawn_in(scope, &client, || {
            let mut c = sock::connect(addr).step("connect")?;
            if user_timeout_ms > 0 {
                sock::set_user_timeout(&c, user_timeout_ms)?;
            }
            nft::load(
                &server,
                &format!(
                    "table inet {OUTAGE_TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    meta l4proto tcp drop\n  }}\n}}\n"
                ),
            )?;
            let mut app = vec![write_outcome(
                &mut c,
                b"request",
                "client write during the outage",
            )];
            nap(Duration::from_millis(OUTAGE_MS))?;
            nft::run(&server, &["delete", "table", "inet", OUTAGE_TABLE], "")?;
            app.push(format!("path dead for {OUTAGE_MS} ms, then restored"));
            restored.store(true, Ordering::SeqCst);
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; 64];
            app.push(match c.read(&mut buf) {
                Ok(n) => format!("client read: {n} bytes"),
                Err(e) => format!("client read: {}", sock::describe(&e)),
            });
            std::thread::sleep(Duration::from_millis(300));
            Ok((app, meter.read()?))
        });
        let client_side = join(cli);
        restored.store(true, Ordering::SeqCst);
        let server_side = join(srv)?;
        let (mut app, m) = client_side?;
        app.extend(server_side);
        Ok((app, m))
    })?;
    Ok(finish_run(report, app, measured))
}

pub(super) fn user_timeout(_ctx: &super::Ctx) -> Result<Outcome, LabError> {
    nft::find()?;
    let (host, fix) = both(
        || user_timeout_run(1, SHORT_USER_TIMEOUT_MS),
        || user_timeout_run(2, 0),
    )?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: "application: a TCP_USER_TIMEOUT longer than the stalls the path has (here 0, the kernel's retransmission limit)".into(),
        expected_reason: "no reset when the user timeout drops the connection (ETIMEDOUT, TcpExt.TCPAbortOnTimeout); NO_SOCKET when the peer writes to it later".into(),
        scale: None,
        notes: vec![format!(
            "lab values: an outage of {OUTAGE_MS} ms and a TCP_USER_TIMEOUT of {SHORT_USER_TIMEOUT_MS} ms stand for a user timeout shorter than the stalls of the path"
        )],
    })))
}
