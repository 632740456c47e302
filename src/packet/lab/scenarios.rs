//! The scenario catalogue: each builds its namespaces, runs an application
//! with the host's values, counts the resets, then runs again with the fix.
//!
//! The two runs of a scenario happen at the same time, each in namespaces of
//! its own (different addresses, so a reset can be told apart by address).
//! Scenario names match the `lab:` field of the rules.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::evidence::{Measured, Meter, nap};
use super::netns::LabNs;
use super::report::{LabSetting, RunReport, ScaleReport};
use super::scale::{self, Scale};
use super::{nft, rtnl, sock};
use crate::rules::raw::SockOpt;

#[path = "option_scenarios.rs"]
mod options;

/// What a scenario gets: the values to reproduce with, parameters, the fix.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The host's value (or the `--with` value) of each key the scenario uses; `None` = absent on this kernel.
    pub values: BTreeMap<String, Option<String>>,
    /// Rule parameters (`--set`), e.g. `idle_timeout`.
    pub params: BTreeMap<String, f64>,
    /// The fix's sysctls from the finding, when the scenario runs for one (replaces the scenario's default fix).
    pub fix_sysctls: Vec<(String, String)>,
}

impl Ctx {
    fn value(&self, key: &str) -> anyhow::Result<&str> {
        match self.values.get(key) {
            Some(Some(v)) => Ok(v),
            Some(None) => anyhow::bail!("{key} does not exist on this kernel"),
            None => anyhow::bail!("{key} was not read for this scenario"),
        }
    }

    fn number(&self, key: &str) -> anyhow::Result<f64> {
        let v = self.value(key)?;
        v.trim()
            .parse::<f64>()
            .with_context(|| format!("{key}={v:?} is not a number"))
    }

    fn param(&self, name: &str, default: f64) -> f64 {
        self.params.get(name).copied().unwrap_or(default)
    }

    /// The fix: the finding's sysctls that this scenario can apply, else the scenario's
    /// default. Returns notes for finding sysctls the scenario does not model.
    fn fix_or(
        &self,
        default: &[(&str, String)],
        applicable: &[&str],
    ) -> (Vec<(String, String)>, Vec<String>) {
        let (usable, skipped): (Vec<_>, Vec<_>) = self
            .fix_sysctls
            .iter()
            .cloned()
            .partition(|(k, _)| applicable.contains(&k.as_str()));
        let mut notes: Vec<String> = skipped
            .iter()
            .map(|(k, v)| format!("the finding's fix {k}={v} is not modelled by this scenario"))
            .collect();
        if usable.is_empty() {
            if !skipped.is_empty() {
                notes.push("the scenario's default fix was used instead".into());
            }
            let default = default
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            (default, notes)
        } else {
            (usable, notes)
        }
    }

    /// The finding's sysctls this scenario can apply (empty: none given).
    fn finding_fix(&self, applicable: &[&str]) -> Vec<(String, String)> {
        self.fix_sysctls
            .iter()
            .filter(|(k, _)| applicable.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// What a scenario produced when it ran.
#[derive(Debug, Clone)]
pub struct Ran {
    pub host: RunReport,
    pub fix: RunReport,
    /// What the fix run changed.
    pub fix_description: String,
    /// The kernel's reason for the resets of this kind.
    pub expected_reason: String,
    pub scale: Option<ScaleReport>,
    pub notes: Vec<String>,
}

/// What a scenario produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran(Box<Ran>),
    /// The kernel cannot show this (a key removed from the kernel).
    NotReproducibleOnThisKernel(String),
}

/// One scenario of the catalogue.
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    /// The sysctls whose host values the scenario copies into the lab.
    pub keys: &'static [&'static str],
    /// The socket options its application sets in the host run (what option rules flag).
    pub options: &'static [SockOpt],
    pub run: fn(&Ctx) -> anyhow::Result<Outcome>,
}

const KEEPALIVE_TIME: &str = "net.ipv4.tcp_keepalive_time";
const KEEPALIVE_INTVL: &str = "net.ipv4.tcp_keepalive_intvl";
const KEEPALIVE_PROBES: &str = "net.ipv4.tcp_keepalive_probes";
const ABORT_ON_OVERFLOW: &str = "net.ipv4.tcp_abort_on_overflow";
const FIN_TIMEOUT: &str = "net.ipv4.tcp_fin_timeout";
const TW_RECYCLE: &str = "net.ipv4.tcp_tw_recycle";
const KEEPALIVE_KEYS: &[&str] = &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES];

/// Every scenario, in the order `--all` runs them.
pub const CATALOGUE: &[Scenario] = &[
    Scenario {
        name: "closed-port",
        title: "connect to a port with no listener (NO_SOCKET)",
        keys: &[],
        options: &[],
        run: closed_port,
    },
    Scenario {
        name: "unread-close",
        title: "server closes with unread data (TCP_ABORT_ON_CLOSE)",
        keys: &[],
        options: &[],
        run: unread_close,
    },
    Scenario {
        name: "linger-zero",
        title: "close with SO_LINGER {1,0}",
        keys: &[],
        options: &[SockOpt::LingerOn, SockOpt::LingerSeconds],
        run: linger_zero,
    },
    Scenario {
        name: "accept-overflow",
        title: "accept queue overflows with tcp_abort_on_overflow (INVALID_SYN)",
        keys: &[ABORT_ON_OVERFLOW],
        options: &[],
        run: accept_overflow,
    },
    Scenario {
        name: "idle-middlebox",
        title: "a middlebox forgets an idle flow and resets it",
        keys: &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES],
        options: &[SockOpt::Keepalive],
        run: idle_middlebox,
    },
    Scenario {
        name: "lost-keepalive-probe",
        title: "the first keepalive probe is lost; the retry comes after the middlebox forgot the flow",
        keys: &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES],
        options: &[SockOpt::Keepalive],
        run: lost_keepalive_probe,
    },
    Scenario {
        name: "keepalive-timeout",
        title: "keepalive gives up during a path outage (TCP_KEEPALIVE_TIMEOUT)",
        keys: &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES],
        options: &[SockOpt::Keepalive],
        run: keepalive_timeout,
    },
    Scenario {
        name: "write-after-close",
        title: "the peer writes after a close (TCP_TIMEWAIT_SOCKET / TCP_ABORT_ON_DATA)",
        keys: &[FIN_TIMEOUT],
        options: &[],
        run: write_after_close,
    },
    Scenario {
        name: "idle-no-keepalive",
        title: "an idle connection without SO_KEEPALIVE is forgotten by a middlebox and reset",
        keys: &[],
        options: &[SockOpt::Keepalive],
        run: options::idle_no_keepalive,
    },
    Scenario {
        name: "linger2-abort",
        title: "close() in FIN_WAIT2 with TCP_LINGER2 -1 (TCP_ABORT_ON_LINGER)",
        keys: &[],
        options: &[SockOpt::Linger2],
        run: options::linger2_abort,
    },
    Scenario {
        name: "user-timeout",
        title: "a short TCP_USER_TIMEOUT drops the connection during a stall; the peer's next write is reset",
        keys: &[],
        options: &[SockOpt::UserTimeout],
        run: options::user_timeout,
    },
    Scenario {
        name: "tw-recycle",
        title: "tcp_tw_recycle with NAT'd clients (PAWS)",
        keys: &[TW_RECYCLE],
        options: &[],
        run: tw_recycle,
    },
];

/// The scenario with this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOGUE.iter().find(|s| s.name == name)
}

// ---- plumbing shared by the scenarios ----

/// Run the host run and the fix run at the same time.
fn both<A: Send, B: Send>(
    a: impl FnOnce() -> anyhow::Result<A> + Send,
    b: impl FnOnce() -> anyhow::Result<B> + Send,
) -> anyhow::Result<(A, B)> {
    std::thread::scope(|scope| {
        let ha = scope.spawn(a);
        let hb = scope.spawn(b);
        let ra = join(ha).context("the run with the host's values")?;
        let rb = join(hb).context("the run with the fix")?;
        Ok((ra, rb))
    })
}

fn join<T>(h: ScopedJoinHandle<'_, anyhow::Result<T>>) -> anyhow::Result<T> {
    h.join()
        .map_err(|_| anyhow::anyhow!("a lab thread panicked"))?
}

/// Spawn a scoped thread inside `ns`.
fn spawn_in<'scope, 'env, T, F>(
    scope: &'scope Scope<'scope, 'env>,
    ns: &'env LabNs,
    work: F,
) -> ScopedJoinHandle<'scope, anyhow::Result<T>>
where
    T: Send + 'scope,
    F: FnOnce() -> anyhow::Result<T> + Send + 'scope,
{
    scope.spawn(move || {
        ns.enter()?;
        work()
    })
}

/// The loopback address of a run (each concurrent run has its own).
fn lo_addr(slot: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(127, 77, slot, 1), lab_port())
}

/// The servers' port: differs between concurrent lab processes, so the host-wide reset
/// tracepoints can be matched to this process's runs by address and port.
pub fn lab_port() -> u16 {
    20000 + (std::process::id() % 40000) as u16
}

fn read_outcome(s: &mut TcpStream, what: &str) -> String {
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

fn write_outcome(s: &mut TcpStream, data: &[u8], what: &str) -> String {
    match s.write_all(data) {
        Ok(()) => format!("{what}: sent {} bytes", data.len()),
        Err(e) => format!("{what}: {}", sock::describe(&e)),
    }
}

fn settings(
    ns: &LabNs,
    values: &[(String, String, Option<String>)],
) -> anyhow::Result<Vec<LabSetting>> {
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

fn plain(key: &str, value: &str) -> (String, String, Option<String>) {
    (key.to_string(), value.to_string(), None)
}

fn describe_fix(fix: &[(String, String)]) -> String {
    fix.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- the scenarios ----

fn closed_port(_ctx: &Ctx) -> anyhow::Result<Outcome> {
    let run = |slot: u8, listening: bool| -> anyhow::Result<RunReport> {
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
                        let (mut server, _) = listener.accept().context("accept")?;
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
fn close_scenario(
    slot: u8,
    sent: usize,
    change: Option<&str>,
    close: impl FnOnce(TcpStream) -> anyhow::Result<()> + Send,
) -> anyhow::Result<RunReport> {
    let ns = LabNs::new("lab")?;
    let addr = lo_addr(slot);
    let report = RunReport {
        change: change.map(str::to_string),
        ..RunReport::default()
    };
    let meter = Meter::start(&[&ns], vec![addr.into()])?;
    let (app, measured) = ns.run(|| {
        let listener = sock::listener(addr, 16, None)?;
        let mut client = sock::connect(addr).context("connect")?;
        let (server, _) = listener.accept().context("accept")?;
        let mut app = Vec::new();
        if sent > 0 {
            client
                .write_all(&vec![b'x'; sent])
                .context("client write")?;
            app.push(format!("client: sent {sent} bytes"));
            server.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut b = [0u8; 1];
            server
                .peek(&mut b)
                .context("waiting for the client's bytes")?;
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

fn unread_close(_ctx: &Ctx) -> anyhow::Result<Outcome> {
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
                    s.read_exact(&mut buf).context("draining")?;
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

fn linger_zero(_ctx: &Ctx) -> anyhow::Result<Outcome> {
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

fn accept_overflow(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let host_value = ctx.value(ABORT_ON_OVERFLOW)?.to_string();
    let (fix, fix_notes) = ctx.fix_or(
        &[(ABORT_ON_OVERFLOW, "0".to_string())],
        &[ABORT_ON_OVERFLOW],
    );
    let run =
        |slot: u8, values: Vec<(String, String, Option<String>)>| -> anyhow::Result<RunReport> {
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
                let mut clients = (0..4)
                    .map(|i| sock::connect(addr).with_context(|| format!("client {i} connect")))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                for c in &mut clients {
                    c.write_all(b"hello").context("client write")?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::sleep(Duration::from_millis(500));
                let mut app = Vec::new();
                for (i, c) in clients.iter_mut().enumerate() {
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

/// Keepalive values of a run at real scale, and how they are written at lab scale.
fn keepalive_settings(
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

fn keepalive_values(ctx: &Ctx) -> anyhow::Result<BTreeMap<String, String>> {
    [KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES]
        .iter()
        .map(|k| Ok((k.to_string(), ctx.value(k)?.to_string())))
        .collect()
}

fn with_fix(
    values: &BTreeMap<String, String>,
    fix: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out = values.clone();
    for (k, v) in fix {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn num(values: &BTreeMap<String, String>, key: &str) -> f64 {
    values
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Middlebox scenario topology: client -- middlebox -- server over two veth pairs.
struct Middlebox {
    client: LabNs,
    middlebox: LabNs,
    server: LabNs,
    server_addr: SocketAddrV4,
    client_addr: std::net::IpAddr,
    /// The server's endpoint (resets of this run name it as source or destination).
    addrs: Vec<std::net::SocketAddr>,
}

const LAB_TABLE: &str = "rstaudit_lab";

fn build_middlebox(slot: u8, timeout_secs: u64) -> anyhow::Result<Middlebox> {
    let client = LabNs::new("client")?;
    let middlebox = LabNs::new("middlebox")?;
    let server = LabNs::new("server")?;
    let a = slot * 2 - 1;
    let b = slot * 2;
    let net = |n: u8, host: u8| Ipv4Addr::new(10, 77, n, host);
    middlebox.run(|| {
        rtnl::new_veth("mb0", 2, "cl0", 2, client.fd())?;
        rtnl::new_veth("mb1", 3, "sv0", 2, server.fd())?;
        rtnl::add_addr(2, net(a, 1), 24)?;
        rtnl::add_addr(3, net(b, 1), 24)?;
        rtnl::set_up(2)?;
        rtnl::set_up(3)
    })?;
    for (ns, n) in [(&client, a), (&server, b)] {
        ns.run(|| {
            rtnl::add_addr(2, net(n, 2), 24)?;
            rtnl::set_up(2)?;
            rtnl::add_default_route(net(n, 1))
        })?;
    }
    middlebox.sysctl("net.ipv4.ip_forward", "1")?;
    middlebox.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")?;
    middlebox.sysctl(
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        &timeout_secs.to_string(),
    )?;
    nft::load(
        &middlebox,
        &format!(
            "table inet {LAB_TABLE} {{\n  chain forward_filter {{\n    type filter hook forward priority 0; policy accept;\n    meta l4proto tcp ct state invalid counter reject with tcp reset\n  }}\n}}\n"
        ),
    )?;
    Ok(Middlebox {
        client,
        middlebox,
        server,
        server_addr: SocketAddrV4::new(net(b, 2), lab_port()),
        client_addr: net(a, 2).into(),
        addrs: vec![SocketAddrV4::new(net(b, 2), lab_port()).into()],
    })
}

/// A finished run: what the application saw and what was measured.
fn finish_run(mut report: RunReport, app: Vec<String>, measured: Measured) -> RunReport {
    report.app = app;
    measured.apply(&mut report);
    report
}

/// Run `client_work` in `client` while an echo server listens on `addr` in `server`; the
/// server stops when the client is done.
fn with_echo_server<T: Send>(
    server: &LabNs,
    client: &LabNs,
    addr: SocketAddrV4,
    client_work: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let srv = spawn_in(scope, server, || {
            let l = sock::listener(addr, 16, None)?;
            echo_server(l, &stop)
        });
        std::thread::sleep(Duration::from_millis(50));
        let cli = spawn_in(scope, client, || {
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
fn echo_server(listener: TcpListener, stop: &AtomicBool) -> anyhow::Result<()> {
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
            Err(e) => return Err(e).context("accept"),
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

/// Client side of the idle scenarios: say hello, let `pause` run, then write and read again.
fn idle_client(
    addr: SocketAddrV4,
    pause: impl FnOnce() -> anyhow::Result<Vec<String>>,
    measure: impl FnOnce() -> anyhow::Result<Measured>,
) -> anyhow::Result<(Vec<String>, Measured)> {
    let mut c = sock::connect(addr).with_context(|| format!("connect {addr}"))?;
    sock::set_keepalive(&c)?;
    c.write_all(b"hello").context("first write")?;
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).context("first echo")?;
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

fn idle_middlebox(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let idle_timeout = ctx.param("idle_timeout", 300.0);
    let default_fix = vec![(
        KEEPALIVE_TIME,
        ((idle_timeout / 2.0).floor().max(1.0)).to_string(),
    )];
    middlebox_scenario(ctx, idle_timeout, default_fix, false)
}

fn lost_keepalive_probe(ctx: &Ctx) -> anyhow::Result<Outcome> {
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
const LOSE_TABLE: &str = "rstaudit_lose";

/// The client idles past the middlebox's idle timeout, with keepalive as `values` say (and,
/// with `lose_first_probe`, the first probe lost on the way).
fn middlebox_scenario(
    ctx: &Ctx,
    idle_timeout: f64,
    default_fix: Vec<(&str, String)>,
    lose_first_probe: bool,
) -> anyhow::Result<Outcome> {
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
    let run = |slot: u8, values: &BTreeMap<String, String>| -> anyhow::Result<RunReport> {
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

/// From now on, drop the first packet of at most 60 bytes (a keepalive probe carries no data)
/// that the client sends through the middlebox, before conntrack sees it.
fn lose_next_probe(mb: &Middlebox) -> anyhow::Result<()> {
    let client = match mb.client_addr {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => anyhow::bail!("the lab's middlebox is IPv4 only"),
    };
    nft::load(
        &mb.middlebox,
        &format!(
            "table inet {LOSE_TABLE} {{\n  chain lose {{\n    type filter hook prerouting priority raw; policy accept;\n    \
             ip saddr {client} meta l4proto tcp quota until 60 bytes counter drop\n  }}\n}}\n"
        ),
    )
}

/// Two namespaces joined by one veth pair: client 10.77.N.2, server 10.77.N.1.
fn build_pair(slot: u8) -> anyhow::Result<(LabNs, LabNs, SocketAddrV4)> {
    let client = LabNs::new("client")?;
    let server = LabNs::new("server")?;
    let n = 100 + slot;
    server.run(|| {
        rtnl::new_veth("sv0", 2, "cl0", 2, client.fd())?;
        rtnl::add_addr(2, Ipv4Addr::new(10, 77, n, 1), 24)?;
        rtnl::set_up(2)
    })?;
    client.run(|| {
        rtnl::add_addr(2, Ipv4Addr::new(10, 77, n, 2), 24)?;
        rtnl::set_up(2)
    })?;
    Ok((
        client,
        server,
        SocketAddrV4::new(Ipv4Addr::new(10, 77, n, 1), lab_port()),
    ))
}

const CUT_TABLE: &str = "rstaudit_cut";

fn keepalive_timeout(ctx: &Ctx) -> anyhow::Result<Outcome> {
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
    let run = |slot: u8, values: &BTreeMap<String, String>| -> anyhow::Result<RunReport> {
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

fn write_after_close(ctx: &Ctx) -> anyhow::Result<Outcome> {
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
    let run = |slot: u8, graceful: bool, fin: &str| -> anyhow::Result<RunReport> {
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
            let mut client = sock::connect(addr).context("connect")?;
            let (server, _) = listener.accept().context("accept")?;
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
                server.read_to_end(&mut got).context("server draining")?;
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

fn tw_recycle(ctx: &Ctx) -> anyhow::Result<Outcome> {
    // Whether the kernel has the key, whatever value `--with` gives it.
    let key =
        crate::host::sysctl::SysctlKey::parse(TW_RECYCLE, crate::host::sysctl::Scope::NetOnly)?;
    let on_this_kernel = key.path(std::path::Path::new("/")).exists();
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
