//! Finding tracefs (mounting it where it is not mounted) and its layout.

use std::io;
use std::path::{Path, PathBuf};

use super::*;

/// Where tracefs is usually mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The older place, under debugfs.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";
/// Prefix of the instances this tool creates.
pub const INSTANCE_PREFIX: &str = "rstaudit-";

/// A tracefs mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    pub root: PathBuf,
}

/// Why tracing could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(
        "tracefs access denied at {path}: the reset reasons need root (CAP_SYS_ADMIN to mount tracefs, write access to {path}): {err}"
    )]
    Permission { path: PathBuf, err: io::Error },
    #[error("tracefs is not available: {0}")]
    Unavailable(String),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    /// The kernel kept the instance (EBUSY while something still reads it).
    #[error("removing ftrace instance {}: {err}", .path.display())]
    Remove { path: PathBuf, err: io::Error },
    /// The reset sites cannot be probed here (asked for with `TraceOptions::sites`).
    #[error("the reset sites cannot be probed: {0}")]
    Sites(super::probes::ProbeError),
}

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> TraceError + '_ {
    move |err| match err.kind() {
        io::ErrorKind::PermissionDenied => TraceError::Permission {
            path: path.to_path_buf(),
            err,
        },
        _ => TraceError::Io {
            path: path.to_path_buf(),
            err,
        },
    }
}

impl Tracefs {
    /// Use a tracefs tree at `root` (tests point this at a temporary directory).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The tracefs the user named (`--tracefs DIR`), or else [`Tracefs::find_or_mount`].
    pub fn locate(named: Option<&Path>) -> Result<Self, TraceError> {
        match named {
            Some(root) => Ok(Self::at(root)),
            None => Self::find_or_mount(),
        }
    }

    /// Find the mounted tracefs, or mount it on /sys/kernel/tracing.
    pub fn find_or_mount() -> Result<Self, TraceError> {
        for root in [TRACEFS, DEBUGFS_TRACING] {
            if Path::new(root).join("instances").is_dir() {
                return Ok(Self::at(root));
            }
        }
        nix::mount::mount(
            Some("tracefs"),
            TRACEFS,
            Some("tracefs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|errno| {
            let err = io::Error::from(errno);
            if matches!(errno, nix::errno::Errno::EPERM | nix::errno::Errno::EACCES) {
                TraceError::Permission {
                    path: PathBuf::from(TRACEFS),
                    err,
                }
            } else {
                TraceError::Unavailable(format!("mounting tracefs on {TRACEFS}: {err}"))
            }
        })?;
        if Path::new(TRACEFS).join("instances").is_dir() {
            Ok(Self::at(TRACEFS))
        } else {
            Err(TraceError::Unavailable(format!(
                "{TRACEFS} has no instances/ directory after mounting tracefs"
            )))
        }
    }

    fn event_dir(&self, event: &str) -> PathBuf {
        self.root.join("events/tcp").join(event)
    }

    /// What this kernel offers for resets (from the events' format files).
    pub fn reset_support(&self) -> ResetSupport {
        let read = |event: &str| read_format(&self.event_dir(event).join("format"));
        let send = read("tcp_send_reset");
        let receive = read("tcp_receive_reset");
        let mut notes = Vec::new();
        let unreadable =
            |path: &Path, why: &str, what: &str| format!("{}: {why}; {what}", path.display());
        let send_path = self.event_dir("tcp_send_reset").join("format");
        let reasons = match &send {
            Err(FormatError::Missing) => {
                notes.push(format!(
                    "{} is missing: the kernel has no tcp:tcp_send_reset tracepoint (before 4.15, or \
                     tracing disabled) or this is not a tracefs; the reason for resets sent here \
                     cannot be told",
                    self.event_dir("tcp_send_reset").display()
                ));
                None
            }
            Err(FormatError::Unreadable(why)) => {
                notes.push(unreadable(
                    &send_path,
                    why,
                    "tcp:tcp_send_reset is not used: the reason for resets sent here cannot be told",
                ));
                None
            }
            Ok(text) => match parse_reason_names(text) {
                Ok(Some(names)) => Some(names),
                Ok(None) => {
                    notes.push(
                        "this kernel does not report reasons (before 6.10): tcp:tcp_send_reset has no reason \
                         field, so why a reset was sent here cannot be told; its addresses, socket state \
                         and sending task are still used"
                            .to_string(),
                    );
                    None
                }
                Err(e) => {
                    notes.push(format!(
                        "{}: {e}; reasons are not used",
                        send_path.display()
                    ));
                    None
                }
            },
        };
        match &receive {
            Ok(_) => {}
            Err(FormatError::Missing) => notes.push(format!(
                "{} is missing: the kernel has no tcp:tcp_receive_reset tracepoint; whether a local \
                 socket accepted a received reset cannot be told",
                self.event_dir("tcp_receive_reset").display()
            )),
            Err(FormatError::Unreadable(why)) => notes.push(unreadable(
                &self.event_dir("tcp_receive_reset").join("format"),
                why,
                "tcp:tcp_receive_reset is not used: whether a local socket accepted a received \
                 reset cannot be told",
            )),
        }
        ResetSupport {
            send_reset: send.is_ok(),
            receive_reset: receive.is_ok(),
            reasons,
            notes,
        }
    }
}
