//! The scenario catalogue: each builds its namespaces, runs an application
//! with the host's values, counts the resets, then runs again with the fix.
//!
//! The two runs of a scenario happen at the same time, each in namespaces of
//! its own (different addresses, so a reset can be told apart by address).
//! Scenario names match the `lab:` field of the rules.
//!
//! Here: the catalogue and what a scenario gets and gives. `local` holds the scenarios on one
//! host's own sockets, `middlebox` those through a middlebox or a cut path, `options` those
//! about a socket option the application sets; `topology` builds the namespaces and their
//! links, `plumbing` the threads and test applications they share.

use std::collections::BTreeMap;

use super::evidence::{Measured, Meter, nap};
use super::netns::LabNs;
use super::report::{LabSetting, RunReport, ScaleReport};
use super::scale::{self, Scale};
use super::{LabError, Step, nft, rtnl, sock};
use crate::rules::raw::SockOpt;

mod local;
mod middlebox;
mod options;
mod plumbing;
mod topology;

use local::*;
#[cfg(test)]
pub(crate) use middlebox::keepalive_keeps_flow;
use middlebox::*;
use plumbing::*;
use topology::*;

/// What a scenario gets: the values to reproduce with, parameters, the fix.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The host's value (or the `--with` value) of each key the scenario uses; `None` = absent on this kernel.
    pub values: BTreeMap<String, Option<String>>,
    /// Rule parameters (`--set`), e.g. `idle_timeout`.
    pub params: BTreeMap<String, f64>,
    /// The fix's sysctls from the finding, when the scenario runs for one (replaces the scenario's default fix).
    pub fix_sysctls: Vec<(String, String)>,
}

impl Ctx {
    fn value(&self, key: &str) -> Result<&str, LabError> {
        match self.values.get(key) {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(LabError::Absent {
                key: key.to_string(),
            }),
            None => Err(LabError::NotRead {
                key: key.to_string(),
            }),
        }
    }

    fn number(&self, key: &str) -> Result<f64, LabError> {
        let v = self.value(key)?;
        v.trim()
            .parse::<f64>()
            .map_err(|source| LabError::NotANumber {
                key: key.to_string(),
                value: v.to_string(),
                source,
            })
    }

    fn param(&self, name: &str, default: f64) -> f64 {
        self.params.get(name).copied().unwrap_or(default)
    }

    /// The fix: the finding's sysctls that this scenario can apply, else the scenario's
    /// default. Returns notes for finding sysctls the scenario does not model.
    fn fix_or(
        &self,
        default: &[(&str, String)],
        applicable: &[&str],
    ) -> (Vec<(String, String)>, Vec<String>) {
        let (usable, skipped): (Vec<_>, Vec<_>) = self
            .fix_sysctls
            .iter()
            .cloned()
            .partition(|(k, _)| applicable.contains(&k.as_str()));
        let mut notes: Vec<String> = skipped
            .iter()
            .map(|(k, v)| format!("the finding's fix {k}={v} is not modelled by this scenario"))
            .collect();
        if usable.is_empty() {
            if !skipped.is_empty() {
                notes.push("the scenario's default fix was used instead".into());
            }
            let default = default
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            (default, notes)
        } else {
            (usable, notes)
        }
    }

    /// The finding's sysctls this scenario can apply (empty: none given).
    fn finding_fix(&self, applicable: &[&str]) -> Vec<(String, String)> {
        self.fix_sysctls
            .iter()
            .filter(|(k, _)| applicable.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// What a scenario produced when it ran.
#[derive(Debug, Clone)]
pub struct Ran {
    pub host: RunReport,
    pub fix: RunReport,
    /// What the fix run changed.
    pub fix_description: String,
    /// The kernel's reason for the resets of this kind.
    pub expected_reason: String,
    pub scale: Option<ScaleReport>,
    pub notes: Vec<String>,
}

/// What a scenario produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ran(Box<Ran>),
    /// The kernel cannot show this (a key removed from the kernel).
    NotReproducibleOnThisKernel(String),
}

/// One scenario of the catalogue.
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    /// The sysctls whose host values the scenario copies into the lab.
    pub keys: &'static [&'static str],
    /// The socket options its application sets in the host run (what option rules flag).
    pub options: &'static [SockOpt],
    pub run: fn(&Ctx) -> Result<Outcome, LabError>,
}

const KEEPALIVE_TIME: &str = "net.ipv4.tcp_keepalive_time";
const KEEPALIVE_INTVL: &str = "net.ipv4.tcp_keepalive_intvl";
const KEEPALIVE_PROBES: &str = "net.ipv4.tcp_keepalive_probes";
const ABORT_ON_OVERFLOW: &str = "net.ipv4.tcp_abort_on_overflow";
const FIN_TIMEOUT: &str = "net.ipv4.tcp_fin_timeout";
const TW_RECYCLE: &str = "net.ipv4.tcp_tw_recycle";
const KEEPALIVE_KEYS: &[&str] = &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES];

/// Every scenario, in the order `--all` runs them.
pub const CATALOGUE: &[Scenario] = &[
    Scenario {
        name: "closed-port",
        title: "connect to a port with no listener (NO_SOCKET)",
        keys: &[],
        options: &[],
        run: closed_port,
    },
    Scenario {
        name: "unread-close",
        title: "server closes with unread data (TCP_ABORT_ON_CLOSE)",
        keys: &[],
        options: &[],
        run: unread_close,
    },
    Scenario {
        name: "linger-zero",
        title: "close with SO_LINGER {1,0}",
        keys: &[],
        options: &[SockOpt::LingerOn, SockOpt::LingerSeconds],
        run: linger_zero,
    },
    Scenario {
        name: "accept-overflow",
        title: "accept queue overflows with tcp_abort_on_overflow (INVALID_SYN)",
        keys: &[ABORT_ON_OVERFLOW],
        options: &[],
        run: accept_overflow,
    },
    Scenario {
        name: "idle-middlebox",
        title: "a middlebox forgets an idle flow and resets it",
        keys: &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES],
        options: &[SockOpt::Keepalive],
        run: idle_middlebox,
    },
    Scenario {
        name: "lost-keepalive-probe",
        title: "the first keepalive probe is lost; the retry comes after the middlebox forgot the flow",
        keys: &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES],
        options: &[SockOpt::Keepalive],
        run: lost_keepalive_probe,
    },
    Scenario {
        name: "keepalive-timeout",
        title: "keepalive gives up during a path outage (TCP_KEEPALIVE_TIMEOUT)",
        keys: &[KEEPALIVE_TIME, KEEPALIVE_INTVL, KEEPALIVE_PROBES],
        options: &[SockOpt::Keepalive],
        run: keepalive_timeout,
    },
    Scenario {
        name: "write-after-close",
        title: "the peer writes after a close (TCP_TIMEWAIT_SOCKET / TCP_ABORT_ON_DATA)",
        keys: &[FIN_TIMEOUT],
        options: &[],
        run: write_after_close,
    },
    Scenario {
        name: "idle-no-keepalive",
        title: "an idle connection without SO_KEEPALIVE is forgotten by a middlebox and reset",
        keys: &[],
        options: &[SockOpt::Keepalive],
        run: options::idle_no_keepalive,
    },
    Scenario {
        name: "linger2-abort",
        title: "close() in FIN_WAIT2 with TCP_LINGER2 -1 (TCP_ABORT_ON_LINGER)",
        keys: &[],
        options: &[SockOpt::Linger2],
        run: options::linger2_abort,
    },
    Scenario {
        name: "user-timeout",
        title: "a short TCP_USER_TIMEOUT drops the connection during a stall; the peer's next write is reset",
        keys: &[],
        options: &[SockOpt::UserTimeout],
        run: options::user_timeout,
    },
    Scenario {
        name: "tw-recycle",
        title: "tcp_tw_recycle with NAT'd clients (PAWS)",
        keys: &[TW_RECYCLE],
        options: &[],
        run: tw_recycle,
    },
];

/// The scenario with this name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    CATALOGUE.iter().find(|s| s.name == name)
}
