//! The `snapshot` command: collect the host picture and print or save it.

use std::process::ExitCode;

use crate::cli::{DataFormat, SnapshotArgs};
use crate::host;

/// Run the command.
pub fn run(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
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
        return Ok(ExitCode::SUCCESS);
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
    Ok(ExitCode::SUCCESS)
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
        (DataFormat::Yaml, Some(one)) => yaml_to(w, one)?,
        (DataFormat::Yaml, None) => yaml_to(w, snapshots)?,
    }
    if format == DataFormat::Json {
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// serde_yaml hides a failed write inside its own error: keep the write's error, so that a
/// closed pipe (`rstaudit snapshot --format yaml | head`) is still seen as one.
fn yaml_to<T: serde::Serialize + ?Sized>(
    w: &mut dyn std::io::Write,
    value: &T,
) -> std::io::Result<()> {
    struct Keep<'a> {
        w: &'a mut dyn std::io::Write,
        failed: Option<std::io::Error>,
    }
    impl std::io::Write for Keep<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.w.write(buf).inspect_err(|e| {
                self.failed
                    .get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
            })
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.w.flush()
        }
    }
    let mut keep = Keep { w, failed: None };
    serde_yaml::to_writer(&mut keep, value).map_err(|e| {
        keep.failed
            .take()
            .unwrap_or_else(|| std::io::Error::other(e))
    })
}
