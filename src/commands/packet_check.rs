//! The `packet-check` command: live capture (here) or the lab (`--lab`).

use std::process::ExitCode;

use crate::cli::{PacketCheckArgs, PacketFormat};
use crate::host::{CollectOptions, Source};
use crate::packet::live::{self, LiveOptions};
use crate::report::packet_check as render;
use crate::rules::{RuleSet, Selection};

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
    // Loaded once; a broken rule directory stops here, with every problem named, not as a
    // note at the end.
    let set = super::load_rules(args.rules.as_deref())?;
    if args.lab {
        return super::lab::run(args, &set);
    }
    let params = super::parse_assignments(&args.set, "--set")?;
    let opts = LiveOptions {
        netns: args.netns.clone(),
        duration: args.duration,
        iface: args.iface.clone(),
        port: args.port,
        pcap: args.pcap.clone(),
        params: params.clone(),
        progress: true,
        tracefs: args.tracefs.clone(),
        max_events: args.max_events,
        events_file: args.events_file.clone(),
    };
    let report =
        live::run(&opts, refresh(args.netns.clone(), set, params)).map_err(super::name_flag)?;
    let text = match args.format {
        PacketFormat::Table => render::render_table(&report),
        PacketFormat::Json => render::render_json(&report)?,
        PacketFormat::Prometheus => render::render_prometheus(&report),
        PacketFormat::Html => render::render_html(&report),
    };
    super::write_output(args.output.as_deref(), text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Re-read the watched namespace and audit it with the rules loaded once, for the verdicts.
fn refresh(netns: Option<String>, set: RuleSet, params: Vec<(String, String)>) -> live::Refresh {
    let opts = CollectOptions {
        source: Source::Live,
        netns,
        interval: None,
        owners: true,
        options: true,
    };
    let selection = Selection {
        params,
        ..Default::default()
    };
    Box::new(move || {
        let snap = crate::host::collect(&opts)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the namespace gave no snapshot"))?;
        let audit = crate::rules::run(&set, &selection, &snap).map(|o| o.findings);
        Ok((snap, audit))
    })
}
