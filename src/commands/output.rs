//! Where the command layer writes a rendered report: to FILE (atomically: a temporary file
//! renamed) or to standard output, and whether standard output has had one.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Whether a report went to standard output (then an error after it is text on standard
/// error, not a JSON object after the report).
static STDOUT_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether anything was written to standard output through [`write_output_with`].
pub fn stdout_used() -> bool {
    STDOUT_USED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Write a rendered report to FILE (atomically: temp file + rename) or to standard output.
pub fn write_output(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    write_output_with(path, |w| w.write_all(bytes))
}

/// Like [`write_output`], with the text produced by `write` straight into the destination
/// (buffered), so a large report is never held whole in memory. A file is still written
/// to a temporary name and renamed only when `write` succeeded.
pub fn write_output_with(
    path: Option<&Path>,
    write: impl FnOnce(&mut (dyn Write + Send)) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    match path {
        None => {
            STDOUT_USED.store(true, std::sync::atomic::Ordering::Relaxed);
            // Stdout, not its lock: the writer may be handed to another thread (`snapshot`).
            #[expect(
                clippy::disallowed_methods,
                reason = "the command layer writes the output"
            )]
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
            write(&mut out).context("writing to standard output")?;
            out.flush().context("writing to standard output")?;
        }
        Some(path) => crate::output::replace(path, 0o644, |file| {
            let mut f = std::io::BufWriter::with_capacity(1 << 16, file);
            write(&mut f)?;
            f.flush()
        })
        .with_context(|| format!("writing {}", path.display()))?,
    }
    Ok(())
}
