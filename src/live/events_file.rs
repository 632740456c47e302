//! `--events-file`: every reset event as one JSON line, written as it is seen.

use std::io::Write;
use std::path::PathBuf;

use super::error::EventsFileError;
use super::event::ResetEvent;

/// `--events-file`: every event as one JSON line, written as it is seen.
pub struct EventStream {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
    error: Option<String>,
}

impl EventStream {
    pub fn create(path: &std::path::Path) -> Result<Self, EventsFileError> {
        let file = crate::output::create(path).map_err(|source| EventsFileError {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
            written: 0,
            error: None,
        })
    }

    pub fn write(&mut self, e: &ResetEvent) {
        if self.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, e)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        match r {
            Ok(()) => self.written += 1,
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Flush; a note if anything could not be written.
    pub fn finish(mut self) -> Option<String> {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e.to_string());
        }
        self.error.map(|e| {
            format!(
                "writing the events file {} stopped after {} events: {e}",
                self.path.display(),
                self.written
            )
        })
    }
}
