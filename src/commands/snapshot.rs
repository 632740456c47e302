//! The `snapshot` command: collect the host picture and print or save it.

use super::Exit;

use crate::cli::{DataFormat, SnapshotArgs};
use crate::host;

/// Run the command.
pub fn run(args: SnapshotArgs) -> anyhow::Result<Exit> {
    let opts = super::collect_options(&args.source);
    let as_list = args.source.netns.as_deref() == Some("all")
        || args
            .source
            .snapshot
            .as_deref()
            .is_some_and(host::file_holds_list);
    if as_list {
        let snapshots = host::collect(&opts).map_err(super::name_flag)?;
        super::write_output_with(args.output.as_deref(), |w| {
            write(w, &snapshots, true, args.format)
        })?;
        return Ok(Exit::Clean);
    }
    // One snapshot: written as its sockets are read (docs/snapshot.md, "Streaming").
    let format = match args.format {
        DataFormat::Json => host::write::Format::Json,
        DataFormat::Yaml => host::write::Format::Yaml,
    };
    let mut collect_error = None;
    let written = super::write_output_with(args.output.as_deref(), |w| {
        let mut out = Some(w);
        let collected = host::collect_into(&opts, &mut |header| {
            host::write::Writer::new(out.take(), format, header)
        });
        let mut collected = match collected {
            Ok(collected) => collected,
            Err(e) => {
                collect_error = Some(e);
                return Err(std::io::Error::other("nothing collected"));
            }
        };
        let Some((snapshot, writer)) = collected.pop().filter(|_| collected.is_empty()) else {
            return Err(std::io::Error::other(
                "expected one snapshot, and not a list, from this source",
            ));
        };
        writer.finish(&snapshot)
    });
    if let Some(e) = collect_error {
        return Err(super::name_flag(e));
    }
    written?;
    Ok(Exit::Clean)
}

/// Serialise one snapshot (or, for `--netns all`, the list) into `w`, ending with a newline.
pub fn write(
    w: &mut dyn std::io::Write,
    snapshots: &[host::Snapshot],
    as_list: bool,
    format: DataFormat,
) -> std::io::Result<()> {
    let one = snapshots.first().filter(|_| !as_list);
    match (format, one) {
        (DataFormat::Json, Some(one)) => serde_json::to_writer_pretty(&mut *w, one)?,
        (DataFormat::Json, None) => serde_json::to_writer_pretty(&mut *w, snapshots)?,
        (DataFormat::Yaml, Some(one)) => crate::yaml::to_writer(w, one)?,
        (DataFormat::Yaml, None) => crate::yaml::to_writer(w, snapshots)?,
    }
    if format == DataFormat::Json {
        w.write_all(b"\n")?;
    }
    Ok(())
}
