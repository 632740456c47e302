//! The `watch` command: the flags and the config file's `watch:` keys into options, the rules
//! loaded (and loaded again on SIGHUP), the endpoint, the event output and the signals; then
//! the check runs until SIGINT or SIGTERM.

use std::io::Write;

use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::cli::{CauseSourceArg, TraceReaderArg, WatchArgs};
use crate::host::workload::{WorkloadConfig, Workloads};
use crate::live::{self, TraceStart};
use crate::trace::ftrace::TraceReader;
use rstaudit::watch::check::{self, Control, Log, WatchOptions};
use rstaudit::watch::events::{EventCounters, EventSink, Opener, append_to};
use rstaudit::watch::health::Health;
use rstaudit::watch::http::{Endpoint, Served, bind};
use rstaudit::watch::metrics::{Metrics, MetricsOptions};

mod settings;

use settings::load;

/// Events queued for the writer before the next are dropped and counted.
const EVENT_QUEUE: usize = 65_536;

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
        let (setup, changed) = load(&args).map_err(|e| check::ReloadError(format!("{e:#}")))?;
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
    let notes = result.map_err(|e| {
        let flag = matches!(e, live::RunError::BinaryTrace(_)).then_some("--trace-reader binary");
        let e = anyhow::Error::new(e);
        match flag {
            Some(flag) => e.context(flag),
            None => e.context("watch"),
        }
    })?;
    for note in notes {
        eprintln!("rstaudit: note: {note}");
    }
    eprintln!("rstaudit: stopped; the tracing instance is removed");
    Ok(super::Exit::Clean)
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
