//! What stops a window of the live check ([`RunError`]), by the stage it came from: what the
//! caller asked for ([`LiveError`]), the privileges, the namespace, the trace, the capture,
//! the files it writes, its threads. Nothing here names a flag: the command matches the
//! variants its flags gave (`Input`, `Netns`, `BinaryTrace`) and names them.

use std::path::PathBuf;

use super::LiveError;
use crate::host::netns::{EnterError, NetnsError};
use crate::trace::caps::MissingCaps;
use crate::trace::capture::CaptureError;
use crate::trace::ftrace::TraceError;
use crate::trace::pcap::PcapError;

/// Why a window could not be watched or reported.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Input(#[from] LiveError),
    #[error(transparent)]
    Privileges(#[from] MissingCaps),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Enter(#[from] EnterError),
    #[error(transparent)]
    BinaryTrace(#[from] BinaryTraceRefused),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("reading the capture ring")]
    CaptureRing(#[source] std::io::Error),
    #[error("reading PACKET_STATISTICS")]
    CaptureStats(#[source] std::io::Error),
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error(transparent)]
    EventsFile(#[from] EventsFileError),
    #[error("starting the {what} thread")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The trace was asked for as binary records and cannot be read so: it is not silently
/// read as text instead.
#[derive(Debug, thiserror::Error)]
#[error("the kernel trace cannot be read as binary records")]
pub struct BinaryTraceRefused(#[source] pub TraceError);

/// The events file could not be created.
#[derive(Debug, thiserror::Error)]
#[error("creating the events file {}", path.display())]
pub struct EventsFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Why a refresh gave no socket table of the watched namespace.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Collect(#[from] crate::host::CollectError),
    #[error("the namespace gave no snapshot")]
    NoSnapshot,
}
