//! Why a lab run could not reach its verdict ([`LabError`], and [`NftError`] for the `nft`
//! program). The message, with its causes, is the summary of the scenario's `error` verdict
//! ([`LabError::summary`]). Only rtnl.rs's `NetlinkError` lives elsewhere: this file imports
//! no other file of the lab that imports it.

use std::path::PathBuf;

use crate::host::counters::SampleError;
use crate::host::netns::EnterError;
use crate::host::sysctl::SysctlError;
use crate::trace::capture::CaptureError;

use super::rtnl::NetlinkError;

/// What stopped a scenario, or the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A step of a scenario failed (a socket call, a read, a write, setting a sysctl): which
    /// step, and the error it met.
    #[error("{step}")]
    Step {
        step: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error(transparent)]
    Enter(#[from] EnterError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Counters(#[from] SampleError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(
        "creating a network namespace needs CAP_SYS_ADMIN; {}",
        crate::host::process::privilege_hint("CAP_SYS_ADMIN")
    )]
    NeedsRoot,
    #[error("creating a network namespace: {0}")]
    Unshare(nix::errno::Errno),
    #[error("bringing up loopback in the lab")]
    Loopback(#[source] NetlinkError),
    /// A key the scenario copies from the host, absent on this kernel.
    #[error("{key} does not exist on this kernel")]
    Absent { key: String },
    /// A key the scenario did not list among those it copies.
    #[error("{key} was not read for this scenario")]
    NotRead { key: String },
    #[error("{key}={value:?} is not a number")]
    NotANumber {
        key: String,
        value: String,
        source: std::num::ParseFloatError,
    },
    #[error("the lab's middlebox is IPv4 only")]
    Ipv6Middlebox,
    #[error("no client could connect to the lab's listener")]
    NoClientConnected,
    #[error("the lab's server did not start listening")]
    ServerNotListening,
    /// One of the two runs of a scenario (`the run with the host's values`, `the run with the
    /// fix`) failed.
    #[error("{run}")]
    Run {
        run: &'static str,
        source: Box<LabError>,
    },
    /// A thread of the lab panicked (`a lab thread`, `the scenario`, ...).
    #[error("{0} panicked")]
    Panicked(&'static str),
    #[error("{0} lock poisoned")]
    Poisoned(&'static str),
    /// A scenario's wait was cut short by the stop token.
    #[error("interrupted")]
    Interrupted,
    /// The lab was stopped; what it built is gone.
    #[error("interrupted; the lab's namespaces and trace instance are gone")]
    Stopped,
}

/// Why `nft` could not be found, run, or understood.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "the lab needs the `nft` program (nftables) in {} for its middlebox and path-cut \
         scenarios; install it with `apt-get install nftables` (Debian/Ubuntu) or `dnf install \
         nftables`",
        dirs.join(", ")
    )]
    NotFound { dirs: &'static [&'static str] },
    #[error("starting {}", program.display())]
    Start {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("nft stdin")]
    NoStdin,
    #[error("writing the ruleset to nft")]
    Feed(#[source] std::io::Error),
    #[error("waiting for nft")]
    Wait(#[source] std::io::Error),
    #[error("nft {args} in the lab's {role} namespace failed: {stderr}")]
    Failed {
        args: String,
        role: &'static str,
        stderr: String,
    },
    #[error("reading `nft -j list table` output")]
    Output(#[source] serde_json::Error),
}

impl LabError {
    /// The message with its causes, each after a colon.
    pub fn summary(&self) -> String {
        crate::error::chain(self)
    }
}

/// Name the step a failure happened at: `listener.accept().step("accept")?`.
pub trait Step<T> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Step<T> for Result<T, E> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError> {
        self.map_err(|e| LabError::Step {
            step: step.into(),
            source: Box::new(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_holds_every_cause() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let err: Result<(), _> = Err(refused);
        let step = err.step("connect").unwrap_err();
        let run = LabError::Run {
            run: "the run with the fix",
            source: Box::new(step),
        };
        assert_eq!(
            run.summary(),
            "the run with the fix: connect: Connection refused (os error 111)"
        );
        let nix: Result<(), _> = Err(nix::errno::Errno::EPERM);
        assert_eq!(
            nix.step("entering the lab's client namespace")
                .unwrap_err()
                .summary(),
            "entering the lab's client namespace: EPERM: Operation not permitted"
        );
    }
}
