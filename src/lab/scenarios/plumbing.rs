//! Plumbing shared by the scenarios: threads in namespaces, the test applications' reads
//! and writes, how settings and fixes are described.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::*;

/// Run the host run and the fix run at the same time.
pub(super) fn both<A: Send, B: Send>(
    a: impl FnOnce() -> Result<A, LabError> + Send,
    b: impl FnOnce() -> Result<B, LabError> + Send,
) -> Result<(A, B), LabError> {
    std::thread::scope(|scope| {
        let ha = scope.spawn(a);
        let hb = scope.spawn(b);
        let run = |run| {
            move |e| LabError::Run {
                run,
                source: Box::new(e),
            }
        };
        let ra = join(ha).map_err(run("the run with the host's values"))?;
        let rb = join(hb).map_err(run("the run with the fix"))?;
        Ok((ra, rb))
    })
}

pub(super) fn join<T>(h: ScopedJoinHandle<'_, Result<T, LabError>>) -> Result<T, LabError> {
    h.join().map_err(|_| LabError::Panicked("a lab thread"))?
}

/// Spawn a scoped thread inside `ns`.
pub(super) fn spawn_in<'scope, 'env, T, F>(
    scope: &'scope Scope<'scope, 'env>,
    ns: &'env LabNs,
    work: F,
) -> ScopedJoinHandle<'scope, Result<T, LabError>>
where
    T: Send + 'scope,
    F: FnOnce() -> Result<T, LabError> + Send + 'scope,
{
    scope.spawn(move || {
        ns.enter()?;
        work()
    })
}

/// The loopback address of a run (each concurrent run has its own).
pub(super) fn lo_addr(slot: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(127, 77, slot, 1), lab_port())
}

/// The servers' port: differs between concurrent lab processes, so the host-wide reset
/// tracepoints can be matched to this process's runs by address and port.
pub fn lab_port() -> u16 {
    20000 + (std::process::id() % 40000) as u16
}

pub(super) fn read_outcome(s: &mut TcpStream, what: &str) -> String {
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => format!("{what}: EOF (orderly close)"),
        Ok(n) => format!("{what}: {n} bytes"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            format!("{what}: nothing yet (connection alive)")
        }
        Err(e) => format!("{what}: {}", sock::describe(&e)),
    }
}

pub(super) fn write_outcome(s: &mut TcpStream, data: &[u8], what: &str) -> String {
    match s.write_all(data) {
        Ok(()) => format!("{what}: sent {} bytes", data.len()),
        Err(e) => format!("{what}: {}", sock::describe(&e)),
    }
}

pub(super) fn settings(
    ns: &LabNs,
    values: &[(String, String, Option<String>)],
) -> Result<Vec<LabSetting>, LabError> {
    let mut out = Vec::new();
    for (key, value, lab) in values {
        ns.sysctl(key, lab.as_deref().unwrap_or(value))?;
        out.push(LabSetting {
            key: key.clone(),
            value: value.clone(),
            lab_value: lab.clone(),
        });
    }
    Ok(out)
}

pub(super) fn plain(key: &str, value: &str) -> (String, String, Option<String>) {
    (key.to_string(), value.to_string(), None)
}

pub(super) fn describe_fix(fix: &[(String, String)]) -> String {
    fix.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A finished run: what the application saw and what was measured.
pub(super) fn finish_run(mut report: RunReport, app: Vec<String>, measured: Measured) -> RunReport {
    report.app = app;
    measured.apply(&mut report);
    report
}

/// Run `client_work` in `client` while an echo server listens on `addr` in `server`; the
/// server stops when the client is done.
pub(super) fn with_echo_server<T: Send>(
    server: &LabNs,
    client: &LabNs,
    addr: SocketAddrV4,
    client_work: impl FnOnce() -> Result<T, LabError> + Send,
) -> Result<T, LabError> {
    let stop_flag = AtomicBool::new(false);
    let stop = &stop_flag;
    // The client starts once the server listens (a fixed pause was too short under emulation:
    // the client's connect was refused).
    let (listening, ready) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let srv = spawn_in(scope, server, move || {
            let l = sock::listener(addr, 16, None)?;
            let _ = listening.send(());
            echo_server(l, stop)
        });
        let cli = spawn_in(scope, client, move || {
            // Nothing comes when the server could not listen: its error is the run's.
            if ready.recv_timeout(Duration::from_secs(30)).is_err() {
                stop.store(true, Ordering::SeqCst);
                return Err(LabError::ServerNotListening);
            }
            let r = client_work();
            stop.store(true, Ordering::SeqCst);
            r
        });
        let out = join(cli);
        stop.store(true, Ordering::SeqCst);
        join(srv)?;
        out
    })
}

/// An echo server that stops when `stop` is set.
pub(super) fn echo_server(listener: TcpListener, stop: &AtomicBool) -> Result<(), LabError> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).step("accept"),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::SeqCst) {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    Ok(())
}
