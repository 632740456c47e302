//! Scenarios on one host's own sockets: a closed port, close with unread data, SO_LINGER 0,
//! a full accept queue, data after close, tw_recycle.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::*;

pub(super) fn closed_port(_ctx: &Ctx) -> Result<Outcome, LabError> {
    let run = |slot: u8, listening: bool| -> Result<RunReport, LabError> {
        let ns = LabNs::new("lab")?;
        let addr = lo_addr(slot);
        let mut report = RunReport::default();
        if listening {
            report.change = Some("the service listens on the port".into());
        }
        let meter = Meter::start(&[&ns], vec![addr.into()])?;
        let (app, measured) = ns.run(|| {
            let listener = if listening {
                Some(sock::listener(addr, 16, None)?)
            } else {
                None
            };
            let mut app = Vec::new();
            match sock::connect(addr) {
                Ok(mut client) => {
                    app.push(format!("connect {addr}: connected"));
                    if let Some(listener) = &listener {
                        let (mut server, _) = listener.accept().step("accept")?;
                        client.shutdown(std::net::Shutdown::Write)?;
                        app.push(read_outcome(&mut server, "server read"));
                        drop(server);
                        app.push(read_outcome(&mut client, "client read"));
                    }
                }
                Err(e) => app.push(format!("connect {addr}: {}", sock::describe(&e))),
            }
            Ok((app, meter.read()?))
        })?;
        Ok(finish_run(report, app, measured))
    };
    let (host, fix) = both(|| run(1, false), || run(2, true))?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: "start the service (a listener on the port) before clients connect".into(),
        expected_reason: "NO_SOCKET".into(),
        scale: None,
        notes: vec![],
    })))
}

/// Accept one connection; the client sends `sent` bytes; the server then closes
/// as `close` says; returns what the client saw.
pub(super) fn close_scenario(
    slot: u8,
    sent: usize,
    change: Option<&str>,
    close: impl FnOnce(TcpStream) -> Result<(), LabError> + Send,
) -> Result<RunReport, LabError> {
    let ns = LabNs::new("lab")?;
    let addr = lo_addr(slot);
    let report = RunReport {
        change: change.map(str::to_string),
        ..RunReport::default()
    };
    let meter = Meter::start(&[&ns], vec![addr.into()])?;
    let (app, measured) = ns.run(|| {
        let listener = sock::listener(addr, 16, None)?;
        let mut client = sock::connect(addr).step("connect")?;
        let (server, _) = listener.accept().step("accept")?;
        let mut app = Vec::new();
        if sent > 0 {
            client.write_all(&vec![b'x'; sent]).step("client write")?;
            app.push(format!("client: sent {sent} bytes"));
            server.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut b = [0u8; 1];
            server.peek(&mut b).step("waiting for the client's bytes")?;
        }
        close(server)?;
        app.push(read_outcome(
            &mut client,
            "client read after the server's close",
        ));
        Ok((app, meter.read()?))
    })?;
    Ok(finish_run(report, app, measured))
}

pub(super) fn unread_close(_ctx: &Ctx) -> Result<Outcome, LabError> {
    let (host, fix) = both(
        || {
            close_scenario(1, 64, None, |s| {
                drop(s);
                Ok(())
            })
        },
        || {
            close_scenario(
                2,
                64,
                Some("the server reads what the client sent before close()"),
                |mut s| {
                    let mut buf = [0u8; 64];
                    s.read_exact(&mut buf).step("draining")?;
                    drop(s);
                    Ok(())
                },
            )
        },
    )?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: "application: read (drain) the receive queue before close()".into(),
        expected_reason: "TCP_ABORT_ON_CLOSE".into(),
        scale: None,
        notes: vec![],
    })))
}

pub(super) fn linger_zero(_ctx: &Ctx) -> Result<Outcome, LabError> {
    let (host, fix) = both(
        || {
            close_scenario(
                1,
                0,
                Some("SO_LINGER {1,0} as the application sets it"),
                |s| {
                    sock::set_linger_zero(&s)?;
                    drop(s);
                    Ok(())
                },
            )
        },
        || {
            close_scenario(2, 0, Some("SO_LINGER left off: a plain close()"), |s| {
                drop(s);
                Ok(())
            })
        },
    )?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: "application: do not set SO_LINGER {1,0}; close() plainly".into(),
        expected_reason: "TCP_STATE (TcpExt.TCPAbortOnData)".into(),
        scale: None,
        notes: vec![],
    })))
}

pub(super) fn accept_overflow(ctx: &Ctx) -> Result<Outcome, LabError> {
    let host_value = ctx.value(ABORT_ON_OVERFLOW)?.to_string();
    let (fix, fix_notes) = ctx.fix_or(
        &[(ABORT_ON_OVERFLOW, "0".to_string())],
        &[ABORT_ON_OVERFLOW],
    );
    let run =
        |slot: u8, values: Vec<(String, String, Option<String>)>| -> Result<RunReport, LabError> {
            let ns = LabNs::new("lab")?;
            let addr = lo_addr(slot);
            let report = RunReport {
                settings: settings(&ns, &values)?,
                ..RunReport::default()
            };
            let meter = Meter::start(&[&ns], vec![addr.into()])?;
            let (app, measured) = ns.run(|| {
                let _listener = sock::listener(addr, 1, Some(5))?;
                // Handshakes first (TCP_DEFER_ACCEPT keeps them out of the accept
                // queue), then data: the ACK carrying data meets a full queue.
                // A SYN that meets a full accept queue is dropped, and its connect() times
                // out (seen on 5.10 under emulation, where the handshakes overlap): that is the
                // overflow too, said as what the client saw, not an error of the run.
                let mut app = Vec::new();
                let mut clients = Vec::new();
                for i in 0..4 {
                    match sock::connect(addr) {
                        Ok(c) => clients.push((i, c)),
                        Err(e) => app.push(format!(
                            "client {i} (listen backlog 1, never accepted): connect: {}",
                            sock::describe(&e)
                        )),
                    }
                }
                if clients.is_empty() {
                    return Err(LabError::NoClientConnected);
                }
                for (_, c) in &mut clients {
                    c.write_all(b"hello").step("client write")?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::sleep(Duration::from_millis(500));
                for (i, c) in clients.iter_mut() {
                    c.set_nonblocking(true)?;
                    app.push(read_outcome(
                        c,
                        &format!("client {i} (listen backlog 1, never accepted)"),
                    ));
                }
                Ok((app, meter.read()?))
            })?;
            Ok(finish_run(report, app, measured))
        };
    let host_values = vec![plain(ABORT_ON_OVERFLOW, &host_value)];
    let mut fix_values = host_values.clone();
    for (k, v) in &fix {
        fix_values.retain(|(key, _, _)| key != k);
        fix_values.push(plain(k, v));
    }
    let (host, fixed) = both(|| run(1, host_values), || run(2, fix_values))?;
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix: fixed,
        fix_description: describe_fix(&fix),
        expected_reason: "INVALID_SYN (TcpExt.ListenOverflows, EmbryonicRsts)".into(),
        scale: None,
        notes: fix_notes,
    })))
}

pub(super) fn write_after_close(ctx: &Ctx) -> Result<Outcome, LabError> {
    let fin_timeout = ctx.value(FIN_TIMEOUT)?.to_string();
    let reason = if ctx.number(FIN_TIMEOUT)? > 60.0 {
        "TCP_ABORT_ON_DATA (tcp_fin_timeout > 60 keeps a full FIN_WAIT2 socket)"
    } else {
        "TCP_TIMEWAIT_SOCKET (tcp_fin_timeout <= 60: the closed socket is already TIME_WAIT-like)"
    };
    // A finding's sysctl fix (tcp_fin_timeout) is tried as such; otherwise the application fix.
    let sysctl_fix = ctx.finding_fix(&[FIN_TIMEOUT]);
    let fix_value = sysctl_fix
        .iter()
        .find(|(k, _)| k == FIN_TIMEOUT)
        .map(|(_, v)| v.clone());
    let run = |slot: u8, graceful: bool, fin: &str| -> Result<RunReport, LabError> {
        let ns = LabNs::new("lab")?;
        let addr = lo_addr(slot);
        let report = RunReport {
            settings: settings(&ns, &[plain(FIN_TIMEOUT, fin)])?,
            change: graceful.then(|| {
                "the server half-closes (shutdown(SHUT_WR)) and reads until the client's EOF before close()".to_string()
            }),
            ..RunReport::default()
        };
        let meter = Meter::start(&[&ns], vec![addr.into()])?;
        let (app, measured) = ns.run(|| {
            let listener = sock::listener(addr, 16, None)?;
            let mut client = sock::connect(addr).step("connect")?;
            let (server, _) = listener.accept().step("accept")?;
            let mut app = Vec::new();
            let server = if graceful {
                server.shutdown(std::net::Shutdown::Write)?;
                Some(server)
            } else {
                drop(server);
                None
            };
            std::thread::sleep(Duration::from_millis(100));
            app.push(write_outcome(
                &mut client,
                b"late data",
                "client write after the server's close",
            ));
            std::thread::sleep(Duration::from_millis(100));
            app.push(write_outcome(&mut client, b"more", "client second write"));
            app.push(read_outcome(&mut client, "client read"));
            drop(client);
            if let Some(mut server) = server {
                server.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut got = Vec::new();
                server.read_to_end(&mut got).step("server draining")?;
                app.push(format!(
                    "server: read {} bytes, then EOF; close()",
                    got.len()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
            Ok((app, meter.read()?))
        })?;
        Ok(finish_run(report, app, measured))
    };
    let (host, fix) = match &fix_value {
        Some(v) => both(|| run(1, false, &fin_timeout), || run(2, false, v))?,
        None => both(
            || run(1, false, &fin_timeout),
            || run(2, true, &fin_timeout),
        )?,
    };
    Ok(Outcome::Ran(Box::new(Ran {
        host,
        fix,
        fix_description: match &fix_value {
            Some(v) => format!("{FIN_TIMEOUT}={v}"),
            None => "application: close gracefully (shutdown(SHUT_WR), read to EOF, then close()) so late data is read, not reset".into(),
        },
        expected_reason: reason.into(),
        scale: None,
        notes: vec![format!("tcp_fin_timeout={fin_timeout} decides the reason")],
    })))
}

pub(super) fn tw_recycle(ctx: &Ctx) -> Result<Outcome, LabError> {
    // Whether the kernel has the key, whatever value `--with` gives it.
    use crate::host::sysctl::{self, Scope, SysctlError, SysctlKey};
    let key = SysctlKey::parse(TW_RECYCLE, Scope::NetOnly)?;
    let on_this_kernel = !matches!(
        sysctl::read(std::path::Path::new("/"), &key),
        Err(SysctlError::Absent { .. })
    );
    let value = ctx.values.get(TW_RECYCLE).cloned().flatten();
    Ok(Outcome::NotReproducibleOnThisKernel(
        match (on_this_kernel, value) {
            (true, Some(v)) => format!(
                "{TW_RECYCLE}={v} exists here, but the lab cannot build NAT'd clients with different timestamp clocks yet"
            ),
            _ => format!(
                "{TW_RECYCLE} does not exist on this kernel (removed in 4.12): the SYN drops it caused cannot happen here"
            ),
        },
    ))
}
