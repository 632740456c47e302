//! The `packet-check` command: live capture (here) or the lab (`--lab`).

use std::process::ExitCode;

use crate::cli::{PacketCheckArgs, PacketFormat};
use crate::packet::live::{self, LiveOptions};
use crate::report::packet_check as render;

/// Run the command.
pub fn run(args: PacketCheckArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &args.tracefs
        && !dir.is_dir()
    {
        anyhow::bail!(
            "--tracefs {}: not a directory (give the directory tracefs is mounted on, e.g. /sys/kernel/tracing)",
            dir.display()
        );
    }
    // A broken rule directory stops here, with every problem named, not as a note at the end.
    crate::rules::load::load(args.rules.as_deref())?;
    if args.lab {
        return super::lab::run(args);
    }
    let opts = LiveOptions {
        netns: args.netns.clone(),
        duration: args.duration,
        iface: args.iface.clone(),
        port: args.port,
        pcap: args.pcap.clone(),
        params: super::parse_assignments(&args.set, "--set")?,
        progress: true,
        tracefs: args.tracefs.clone(),
        rules: args.rules.clone(),
        max_events: args.max_events,
        events_file: args.events_file.clone(),
    };
    let report = live::run(&opts)?;
    let text = match args.format {
        PacketFormat::Table => render::render_table(&report),
        PacketFormat::Json => render::render_json(&report)?,
        PacketFormat::Prometheus => render::render_prometheus(&report),
        PacketFormat::Html => render::render_html(&report),
    };
    super::write_output(args.output.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
