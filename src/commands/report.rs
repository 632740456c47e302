//! `rstaudit report FILE... | DIR`: read many hosts' JSON audits and render one view of
//! the fleet (docs/fleet.md). Exit 0 when nothing across the fleet is at or above
//! `--fail-on`, 1 when something is, 2 when it could not run (no usable audit).
//!
//! The files are read and parsed on a few threads (each keeps only the fields the fleet
//! view needs, never the whole file); building and rendering is `report::fleet`.

use super::Exit;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{ReportArgs, ReportFormat};
use crate::report::fleet::{self, FleetOptions, HostInput, ReadError, build::Parsed};

/// Largest audit file read (an audit of every namespace of a busy host stays far below).
const MAX_AUDIT_BYTES: u64 = 256 * 1024 * 1024;

/// Run the command.
pub fn run(args: ReportArgs) -> anyhow::Result<Exit> {
    let files = list_files(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "no audit file: the directories given hold no *.json (write them with `rstaudit audit --format json -o HOST.json`)"
        );
    }
    let show = super::terminal::progress_allowed(args.format != ReportFormat::Table);
    let bar = super::terminal::bar(show, files.len() as u64, "report: reading audits");
    let parsed = read_all(files, &bar);
    super::terminal::done(&bar);
    let opts = FleetOptions {
        now_ms: crate::clock::now_ms(),
        max_age_seconds: args.max_age,
        fail_on: args.fail_on.0,
    };
    let report = fleet::build(parsed, &opts);
    let bytes = match args.format {
        ReportFormat::Table => {
            fleet::table::table(&report, super::terminal::term(args.output.is_some()))
        }
        ReportFormat::Json => fleet::json(&report),
        ReportFormat::Html => fleet::html::html(&report).into_bytes(),
        ReportFormat::Prometheus => fleet::prometheus::prometheus(&report),
    };
    super::write_output(args.output.as_deref(), &bytes)?;
    if report.summary.audited == 0 {
        eprintln!(
            "rstaudit: error: none of the {} file(s) holds a usable audit (listed under Failed)",
            report.summary.failed
        );
        return Ok(Exit::CouldNotRun);
    }
    Ok(if report.summary.failing {
        Exit::Findings
    } else {
        Exit::Clean
    })
}

/// The files named, and every *.json of the directories named (sorted by name), each with
/// the earlier entry it is the same file as (given twice, or directly and through its
/// directory: same device and inode), if any. A path that does not exist stays in the
/// list: reading it fails and makes it a row of `failed`.
fn list_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Option<String>)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json") && !f.is_dir())
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    // stat(2) only: it never opens, so a FIFO cannot block here.
    let mut seen: std::collections::HashMap<(u64, u64), String> = Default::default();
    Ok(out
        .into_iter()
        .map(|f| {
            let same = std::fs::metadata(&f).ok().and_then(|m| {
                let shown = f.display().to_string();
                match seen.entry((m.dev(), m.ino())) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(e.get().clone()),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(shown);
                        None
                    }
                }
            });
            (f, same)
        })
        .collect())
}

/// Read and parse every file on up to 4 threads, keeping the order given.
fn read_all(files: Vec<(PathBuf, Option<String>)>, bar: &indicatif::ProgressBar) -> Vec<Parsed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(f, same)| {
                            let parsed = fleet::build::parse_input(read_one(f, same.clone()));
                            bar.inc(1);
                            parsed
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a reader thread panicked"))
            .collect()
    })
}

/// Read one audit file: a regular file only (a FIFO, a device such as /dev/zero or a
/// directory is refused at once), at most [`MAX_AUDIT_BYTES`]. A file that is the same as an
/// earlier one is not read again.
fn read_one(path: &Path, same_file_as: Option<String>) -> HostInput {
    let host = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into(),
    );
    let mut modified_ms = None;
    let content = if same_file_as.is_some() {
        Ok(Vec::new())
    } else {
        crate::input::open_regular(path)
            .and_then(|f| {
                let meta = f.metadata()?;
                modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                let mut bytes = Vec::with_capacity(meta.len().min(MAX_AUDIT_BYTES) as usize);
                f.take(MAX_AUDIT_BYTES + 1).read_to_end(&mut bytes)?;
                if bytes.len() as u64 > MAX_AUDIT_BYTES {
                    return Err(std::io::Error::other(format!(
                        "larger than {} MiB",
                        MAX_AUDIT_BYTES >> 20
                    )));
                }
                Ok(bytes)
            })
            .map_err(|e| ReadError(e.to_string()))
    };
    HostInput {
        host,
        file: path.display().to_string(),
        modified_ms,
        content,
        same_file_as,
    }
}
