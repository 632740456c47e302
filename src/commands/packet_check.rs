//! The `packet-check` command: live capture (here) or the lab (`--lab`).

use super::Exit;

use crate::cli::{CauseSourceArg, PacketCheckArgs, PacketFormat, TraceReaderArg};
use crate::host::{CollectOptions, Source};
use crate::live::{self, LiveOptions};
use crate::report::packet_check as render;
use crate::rules::{RuleSet, Selection};
use crate::trace::ftrace::TraceReader;

/// Run the command.
pub fn run(args: PacketCheckArgs) -> anyhow::Result<Exit> {
    if let Some(dir) = &args.tracefs
        && !dir.is_dir()
    {
        anyhow::bail!(
            "--tracefs {}: not a directory (give the directory tracefs is mounted on, e.g. /sys/kernel/tracing)",
            dir.display()
        );
    }
    // Loaded once; a broken rule directory stops here, with every problem named, not as a
    // note at the end.
    let set = super::load_rules(args.rules.as_deref())?;
    if args.lab {
        return super::lab::run(args, &set);
    }
    // Checked once here, so a parameter the rules cannot take stops the run (exit 2) instead
    // of becoming a note of the audit behind the verdicts.
    let params = super::parse_params(&args.set, &set.params())?;
    let opts = LiveOptions {
        netns: args.netns.clone(),
        duration: args.duration,
        iface: args.iface.clone(),
        port: args.port,
        pcap: args.pcap.clone(),
        params: params.clone(),
        tracefs: args.tracefs.clone(),
        max_events: args.max_events,
        events_file: args.events_file.clone(),
        trace_reader: match args.trace_reader {
            TraceReaderArg::Auto => TraceReader::Auto,
            TraceReaderArg::Binary => TraceReader::Binary,
            TraceReaderArg::Text => TraceReader::Text,
        },
        stop: super::signal::stop_on_signals()?,
        cause_source: match args.cause_source {
            CauseSourceArg::Auto => live::CauseMode::Auto,
            CauseSourceArg::Kernel => live::CauseMode::Kernel,
            CauseSourceArg::Derived => live::CauseMode::Derived,
        },
    };
    let mut terminal = Terminal {
        progress: super::terminal::progress_allowed(args.format != PacketFormat::Table),
        bar: None,
    };
    let report = live::run(
        &opts,
        refresh(args.netns.clone(), set, params),
        &mut terminal,
    )
    .map_err(|e| {
        // The typed errors a flag gave are named with it.
        let flag = match &e {
            live::RunError::Input(live::LiveError::Duration(d)) => format!("--duration {d}"),
            live::RunError::Input(live::LiveError::IdleTimeout(v)) => {
                format!("--set idle_timeout={v}")
            }
            live::RunError::Netns(ns) => format!("--netns {}", ns.spec_shown()),
            live::RunError::BinaryTrace(_) => "--trace-reader binary".to_string(),
            _ => return anyhow::Error::new(e),
        };
        anyhow::Error::new(e).context(flag)
    })?;
    let text = match args.format {
        PacketFormat::Table => render::render_table(
            &report,
            super::terminal::term(args.output.is_some()).columns(),
        ),
        PacketFormat::Json => render::render_json(&report)?,
        PacketFormat::Prometheus => render::render_prometheus(&report),
        PacketFormat::Html => render::render_html(&report),
    };
    super::write_output(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Clean)
}

/// Re-read the watched namespace and audit it with the rules loaded once, for the verdicts.
fn refresh(netns: Option<String>, set: RuleSet, params: Vec<(String, String)>) -> live::Refresh {
    let opts = CollectOptions {
        source: Source::Live,
        netns,
        interval: None,
        owners: true,
        options: true,
        scan: crate::host::OwnerScan::Auto,
    };
    let selection = Selection {
        params,
        ..Default::default()
    };
    Box::new(move || {
        let snap = crate::host::collect(&opts)?
            .into_iter()
            .next()
            .ok_or(live::RefreshError::NoSnapshot)?;
        let audit = crate::rules::run(&set, &selection, &snap).map(|o| o.findings);
        Ok((snap, audit))
    })
}

/// The live check on standard error: the announcement (which scripts and tests wait for) and,
/// on a terminal with a table to come, a progress bar over the window.
struct Terminal {
    progress: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl live::Observer for Terminal {
    fn watching(&mut self, netns: &str, seconds: f64) {
        eprintln!(
            "rstaudit: watching TCP resets in namespace {netns} for {seconds} s (Ctrl-C stops early)"
        );
    }

    fn progress(&mut self, p: &live::Progress) {
        if !self.progress {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            // Tenths of a second, so a short window still moves.
            super::terminal::bar(true, (p.total * 10.0).ceil() as u64, "")
        });
        bar.set_position((p.elapsed * 10.0) as u64);
        bar.set_message(progress_line(p));
    }

    fn finished(&mut self) {
        if let Some(bar) = &self.bar {
            super::terminal::done(bar);
        }
    }
}

fn progress_line(p: &live::Progress) -> String {
    let n: u64 = p.by_cause.values().sum();
    let mut causes: Vec<_> = p.by_cause.iter().collect();
    causes.sort_by(|a, b| b.1.cmp(a.1));
    let list: Vec<String> = causes
        .iter()
        .take(4)
        .map(|(c, n)| format!("{} {n}", c.id()))
        .collect();
    format!(
        "{:.0}s window  {n} resets  {}{}",
        p.total,
        list.join(", "),
        if p.drops > 0 {
            format!("  (kernel dropped {})", p.drops)
        } else {
            String::new()
        }
    )
}
