//! The events' `format` files: read safely, and which reason names this kernel has.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

/// Largest tracefs `format` file read (a real one is 1 to 4 KiB; `tcp_send_reset`'s reason
/// table makes it the largest).
pub const MAX_FORMAT_BYTES: usize = 64 * 1024;

/// Why an event's `format` file gave no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// There is no such file: the kernel has no such event (or this is not a tracefs).
    Missing,
    /// The file is there but was not read; says what happened.
    Unreadable(String),
}

/// Read an event's `format` file without trusting the `--tracefs` directory: the last
/// component is not followed if it is a symbolic link, a FIFO or device is refused without
/// blocking (O_NONBLOCK), and at most [`MAX_FORMAT_BYTES`] are read.
pub fn read_format(path: &Path) -> Result<String, FormatError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => FormatError::Missing,
            _ if e.raw_os_error() == Some(libc::ELOOP) => {
                FormatError::Unreadable("is a symbolic link; links are not followed".to_string())
            }
            _ => FormatError::Unreadable(format!("could not be opened: {e}")),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| FormatError::Unreadable(format!("could not be inspected: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(FormatError::Unreadable(
            "is not a regular file (a directory, FIFO, device or socket)".to_string(),
        ));
    }
    let bytes = crate::input::read_small(file, MAX_FORMAT_BYTES)
        .map_err(|e| FormatError::Unreadable(format!("could not be read: {e}")))?
        .ok_or_else(|| {
            FormatError::Unreadable(format!(
                "is larger than {MAX_FORMAT_BYTES} bytes, far more than an event format (a few KiB)"
            ))
        })?;
    String::from_utf8(bytes).map_err(|e| {
        FormatError::Unreadable(format!(
            "is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Which reset tracepoints and reason names this kernel has.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ResetSupport {
    pub send_reset: bool,
    pub receive_reset: bool,
    /// The reason names of `enum sk_rst_reason` on this kernel; `None` when there is no reason field.
    pub reasons: Option<BTreeSet<String>>,
    /// What cannot be told on this kernel, and why.
    pub notes: Vec<String>,
}

/// Why the reason table of a format file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonTableError {
    #[error("the reason field is not printed with __print_symbolic(REC->reason, ...)")]
    NotSymbolic,
    #[error("unterminated string in the reason table")]
    UnterminatedString,
    #[error("unterminated __print_symbolic(REC->reason, ...)")]
    Unterminated,
    #[error("empty reason table in __print_symbolic(REC->reason, ...)")]
    Empty,
}

/// Read the reason names from a `tcp_send_reset` format file.
///
/// `Ok(None)`: the event has no `reason` field. The names come from
/// `__print_symbolic(REC->reason, { 0, "NOT_SPECIFIED" }, ...)` in the print format.
pub fn parse_reason_names(format: &str) -> Result<Option<BTreeSet<String>>, ReasonTableError> {
    let has_field = format
        .lines()
        .any(|l| l.trim_start().starts_with("field:") && l.contains(" reason;"));
    if !has_field {
        return Ok(None);
    }
    let start = format
        .find("__print_symbolic(REC->reason")
        .ok_or(ReasonTableError::NotSymbolic)?;
    let rest = &format[start..];
    let mut names = BTreeSet::new();
    let mut depth = 0i32;
    let mut chars = rest.char_indices();
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            '"' => {
                let from = i + 1;
                let mut to = None;
                for (j, c2) in chars.by_ref() {
                    if c2 == '"' {
                        to = Some(j);
                        break;
                    }
                }
                let to = to.ok_or(ReasonTableError::UnterminatedString)?;
                names.insert(rest[from..to].to_string());
            }
            _ => {}
        }
    }
    if end.is_none() {
        return Err(ReasonTableError::Unterminated);
    }
    if names.is_empty() {
        return Err(ReasonTableError::Empty);
    }
    Ok(Some(names))
}
