//! The `snapshot` command: collect the host picture and print or save it.

use std::process::ExitCode;

use anyhow::Context;
use serde::ser::Error as _;

use crate::cli::{DataFormat, SnapshotArgs};
use crate::host;

/// Run the command.
pub fn run(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let opts = super::collect_options(&args.source);
    let snapshots = host::collect(&opts)?;
    let as_list = args.source.netns.as_deref() == Some("all")
        || snapshots.len() != 1
        || args
            .source
            .snapshot
            .as_deref()
            .is_some_and(host::file_holds_list);
    let bytes = render(&snapshots, as_list, args.format)?;
    super::write_output(args.output.as_deref(), &bytes)?;
    Ok(ExitCode::SUCCESS)
}

/// Serialise one snapshot (or, for `--netns all`, the list).
pub fn render(
    snapshots: &[host::Snapshot],
    as_list: bool,
    format: DataFormat,
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = match (format, as_list, snapshots.first()) {
        (DataFormat::Json, false, Some(one)) => serde_json::to_vec_pretty(one),
        (DataFormat::Json, _, _) => serde_json::to_vec_pretty(snapshots),
        (DataFormat::Yaml, false, Some(one)) => serde_yaml::to_string(one)
            .map(String::into_bytes)
            .map_err(serde_json::Error::custom),
        (DataFormat::Yaml, _, _) => serde_yaml::to_string(snapshots)
            .map(String::into_bytes)
            .map_err(serde_json::Error::custom),
    }
    .context("serialising the snapshot")?;
    if !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    Ok(bytes)
}
