//! The `watch` command: the flags and the config file's `watch:` keys into options, the rules
//! loaded (and loaded again on SIGHUP), the endpoint, the event output and the signals; then
//! the check runs until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

use crate::cli::{CauseSourceArg, DEFAULT_LISTEN, TraceReaderArg, WatchArgs};
use crate::host::workload::{Runtime, RuntimeApi, WorkloadConfig, Workloads};
use crate::live::{self, TraceStart};
use crate::trace::ftrace::TraceReader;
use rstaudit::watch::check::audit::AuditSetup;
use rstaudit::watch::check::{self, Control, Log, WatchOptions};
use rstaudit::watch::events::{EventCounters, EventSink, Opener, append_to};
use rstaudit::watch::health::Health;
use rstaudit::watch::http::{Endpoint, Served, bind};
use rstaudit::watch::metrics::{Limits, Metrics, MetricsOptions};

/// Events queued for the writer before the next are dropped and counted.
const EVENT_QUEUE: usize = 65_536;

/// What the flags and the config file settle.
struct Settings {
    listen: SocketAddr,
    events: Option<PathBuf>,
    audit_every: Duration,
    window: Duration,
    limits: Limits,
    /// The runtime APIs asked for container names, the first of each runtime first.
    apis: Vec<RuntimeApi>,
}

/// Run the command.
pub fn run(args: WatchArgs) -> anyhow::Result<super::Exit> {
    crate::trace::caps::check_watch_privileges()?;
    if let Some(dir) = &args.tracefs
        && !dir.is_dir()
    {
        anyhow::bail!(
            "--tracefs {}: not a directory (give the directory tracefs is mounted on, e.g. /sys/kernel/tracing)",
            dir.display()
        );
    }
    let (setup, settings) = load(&args)?;
    let counters = Arc::new(EventCounters::default());
    let metrics = Arc::new(Metrics::new(MetricsOptions {
        limits: settings.limits,
        events: counters.clone(),
    }));
    let events = match &settings.events {
        None => None,
        Some(path) => Some(Arc::new(
            EventSink::start(opener(path), EVENT_QUEUE, counters)
                .with_context(|| format!("--events {}", path.display()))?,
        )),
    };
    let control = Control {
        stop: super::signal::stop_on_signals()?,
        reload: super::signal::flag_on_hangup()?,
    };
    let health = Health::new();
    let listener = bind(settings.listen).context("--listen")?;
    let endpoint = Endpoint::start(
        listener,
        Served {
            metrics: metrics.clone(),
            health: health.clone(),
        },
        control.stop.clone(),
    )
    .context("starting the endpoint")?;
    eprintln!(
        "rstaudit: serving /metrics and /healthz on http://{}",
        endpoint.local_addr()
    );
    let opts = WatchOptions {
        trace: TraceStart {
            tracefs: args.tracefs.clone(),
            reader: match args.trace_reader {
                TraceReaderArg::Auto => TraceReader::Auto,
                TraceReaderArg::Binary => TraceReader::Binary,
                TraceReaderArg::Text => TraceReader::Text,
            },
            cause_source: match args.cause_source {
                CauseSourceArg::Auto => live::CauseMode::Auto,
                CauseSourceArg::Kernel => live::CauseMode::Kernel,
                CauseSourceArg::Derived => live::CauseMode::Derived,
            },
        },
        window: settings.window,
        audit_every: settings.audit_every,
        ..WatchOptions::default()
    };
    let outputs = check::Outputs {
        metrics,
        health,
        events: events.clone(),
        workloads: Arc::new(Mutex::new(Workloads::new(WorkloadConfig {
            apis: settings.apis.clone(),
            ..WorkloadConfig::default()
        }))),
    };
    let reload: check::Reload = Box::new(move || {
        let (setup, changed) = load(&args)?;
        if changed.listen != settings.listen
            || changed.events != settings.events
            || changed.audit_every != settings.audit_every
            || changed.window != settings.window
            || changed.apis != settings.apis
        {
            eprintln!(
                "rstaudit: note: listen, events, audit_every, window and runtime_sockets \
                 changed in the config file take effect at the next start"
            );
        }
        Ok(setup)
    });
    let result = check::run(&opts, setup, reload, outputs, control.clone(), &mut Stderr);
    // The endpoint and the writer stop whatever the check's outcome.
    control.stop.stop();
    endpoint.join();
    if let Some(sink) = events.and_then(|e| Arc::try_unwrap(e).ok()) {
        sink.close();
    }
    for note in result.map_err(|e| e.context("watch"))? {
        eprintln!("rstaudit: note: {note}");
    }
    eprintln!("rstaudit: stopped; the tracing instance is removed");
    Ok(super::Exit::Clean)
}

/// The rules, profile and parameters of the audit, and the watch settings: the flags over the
/// config file. Errors name the file, line and column, or the flag.
fn load(args: &WatchArgs) -> anyhow::Result<(AuditSetup, Settings)> {
    let mut select = args.select.clone();
    // The config file's accept file and fail_on are checked as the audit checks them; the
    // findings and their verdicts are exported whatever their severity.
    let (mut accept, mut fail_on) = (None, None);
    let super::config::Inputs {
        set: rules,
        selection,
        config,
        ..
    } = super::config::inputs(super::config::Flags {
        config: args.config.as_deref(),
        select: &mut select,
        accept: &mut accept,
        fail_on: &mut fail_on,
    })?;
    // Checked now, so that a bad id or parameter stops here and not at the first audit.
    selection.plan(&rules)?;
    live::idle_timeout(&selection.params).map_err(|e| {
        let v = match &e {
            live::LiveError::IdleTimeout(v) => v.clone(),
            live::LiveError::Duration(d) => d.to_string(),
        };
        anyhow::Error::new(e).context(format!("idle_timeout={v}"))
    })?;
    let file = config.map(|c| c.watch).unwrap_or_default();
    let default_limits = Limits::default();
    let settings = Settings {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address")),
        events: args.events.clone().or(file.events),
        audit_every: args
            .audit_every
            .or(file.audit_every)
            .unwrap_or(Duration::from_secs(300)),
        window: args
            .window
            .or(file.window)
            .unwrap_or(Duration::from_secs(300)),
        limits: Limits {
            values_per_label: args
                .values_per_label
                .map(|n| n as usize)
                .or(file.values_per_label)
                .unwrap_or(default_limits.values_per_label),
            max_series: args
                .max_series
                .map(|n| n as usize)
                .or(file.max_series)
                .unwrap_or(default_limits.max_series),
            idle: default_limits.idle,
        },
        apis: runtime_apis(&args.runtime_socket, &file.runtime_sockets)?,
    };
    Ok((AuditSetup { rules, selection }, settings))
}

/// `--runtime-socket RUNTIME=PATH` (all of them replace the file's), then the defaults.
fn runtime_apis(flags: &[String], file: &[(String, PathBuf)]) -> anyhow::Result<Vec<RuntimeApi>> {
    let mut given: Vec<(String, PathBuf)> = Vec::new();
    for item in flags {
        match item.split_once('=') {
            Some((r, p)) if !p.trim().is_empty() => {
                given.push((r.trim().to_string(), PathBuf::from(p.trim())))
            }
            _ => anyhow::bail!(
                "--runtime-socket {item:?}: expected RUNTIME=PATH, e.g. podman=/run/user/1000/podman/podman.sock"
            ),
        }
    }
    if given.is_empty() {
        given = file.to_vec();
    }
    let mut apis = Vec::new();
    for (runtime, path) in given {
        let runtime = match runtime.as_str() {
            "podman" => Runtime::Podman,
            "docker" => Runtime::Docker,
            other => anyhow::bail!(
                "--runtime-socket {other}={}: {other:?} is not a runtime whose API is asked (podman or docker)",
                path.display()
            ),
        };
        apis.push(RuntimeApi::new(runtime, path));
    }
    apis.extend(RuntimeApi::defaults());
    Ok(apis)
}

/// Where event lines go: `-` is standard output, anything else a file appended to.
fn opener(path: &std::path::Path) -> Opener {
    if path == std::path::Path::new("-") {
        Box::new(|| {
            #[expect(
                clippy::disallowed_methods,
                reason = "the command layer writes the events to standard output"
            )]
            let out = std::io::stdout();
            Ok(Box::new(out) as Box<dyn Write + Send>)
        })
    } else {
        append_to(path)
    }
}

/// The check's lines on standard error.
struct Stderr;

impl Log for Stderr {
    fn watching(&mut self, namespaces: usize) {
        eprintln!(
            "rstaudit: watching TCP resets in {namespaces} network namespaces (SIGINT or SIGTERM stops, SIGHUP reloads)"
        );
    }

    fn note(&mut self, line: &str) {
        eprintln!("rstaudit: {line}");
    }
}
