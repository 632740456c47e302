//! How well a symptom fits a cause beyond its words: which side saw the reset (it arrived
//! from the other end or a middlebox, this host sent it, or no reset came and a timer ran
//! out) and when in the connection's life it happened (connecting, moving data, after an
//! idle time, at close, after a restart). The text says some of these; each cause file
//! says where its resets show (`fits:`); [`judge`] compares the two.

use serde::Deserialize;

use super::errno::Errno;
use super::words::{Haystack, Needle};

/// When in a connection's life a symptom shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The handshake: connect(), accept(), the first request on a new connection.
    Connect,
    /// Reading or writing on an established connection.
    Transfer,
    /// The first use after the connection sat idle.
    Idle,
    /// At or after close() or shutdown() of one end.
    Close,
    /// After one end restarted or failed over.
    Restart,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connecting",
            Self::Transfer => "reading or writing",
            Self::Idle => "after an idle time",
            Self::Close => "at close",
            Self::Restart => "after a restart",
        }
    }
}

/// Which side saw what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// A reset arrived from the other end or from a middlebox (ECONNRESET, "by peer",
    /// ECONNREFUSED).
    Received,
    /// This host sent the reset.
    Sent,
    /// No reset: a timer of this host ran out (ETIMEDOUT).
    Timeout,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "the reset came from the other end or a middlebox",
            Self::Sent => "this host sent the reset",
            Self::Timeout => "no reset came: a timer ran out",
        }
    }
}

/// Where a cause's symptoms show, as its file says (`fits:`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fits {
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub sides: Vec<Side>,
}

/// What a text says about phase and side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Said {
    pub phases: Vec<Phase>,
    pub sides: Vec<Side>,
}

/// Words that place a symptom in a connection's life.
const PHASE_WORDS: &[(Phase, &[&str])] = &[
    (
        Phase::Connect,
        &[
            "connect",
            "connecting",
            "connect timed out",
            "handshake",
            "syn",
            "accept",
            "new connections",
            "right after connecting",
            "connection refused",
            "dial tcp",
        ],
    ),
    (
        Phase::Transfer,
        &[
            "read",
            "reading",
            "recv",
            "write",
            "writing",
            "send",
            "sending",
            "response",
            "request",
            "upload",
            "download",
            "second write",
            "broken pipe",
        ],
    ),
    (
        Phase::Idle,
        &[
            "idle",
            "keepalive",
            "keep alive",
            "heartbeat",
            "long lived",
            "pool",
            "pooled",
            "overnight",
            "空闲",
        ],
    ),
    (
        Phase::Close,
        &[
            "close",
            "closing",
            "closed",
            "shutdown",
            "after close",
            "nolinger",
        ],
    ),
    (
        Phase::Restart,
        &[
            "restart",
            "restarted",
            "reboot",
            "rebooted",
            "failover",
            "redeploy",
            "crash",
            "crashed",
        ],
    ),
];

/// Words that say which side saw the reset.
const SIDE_WORDS: &[(Side, &[&str])] = &[
    (
        Side::Received,
        &[
            "by peer",
            "connection reset",
            "reset by",
            "received a reset",
            "received rst",
            "rst received",
        ],
    ),
    (
        Side::Sent,
        &[
            "sends rst",
            "sent rst",
            "sending rst",
            "sends a reset",
            "sent a reset",
            "sends resets",
            "sending resets",
            "outrsts",
        ],
    ),
    (Side::Timeout, &["timed out", "timing out"]),
];

/// Errno values that say the side by themselves.
fn side_of(e: &Errno) -> Option<Side> {
    match e.name {
        "ECONNRESET" | "ECONNREFUSED" | "EPIPE" => Some(Side::Received),
        "ETIMEDOUT" => Some(Side::Timeout),
        _ => None,
    }
}

/// What the text says: phases and sides, each once, in their order. A time in the text
/// (`60 s`) places it after an idle time.
pub fn read(hay: &Haystack, errors: &[&Errno], seconds: Option<u64>) -> Said {
    let mut said = Said::default();
    for (phase, words) in PHASE_WORDS {
        if words
            .iter()
            .filter_map(|w| Needle::of(w))
            .any(|n| n.is_in(hay))
        {
            said.phases.push(*phase);
        }
    }
    if seconds.is_some() && !said.phases.contains(&Phase::Idle) {
        said.phases.push(Phase::Idle);
    }
    for (side, words) in SIDE_WORDS {
        if words
            .iter()
            .filter_map(|w| Needle::of(w))
            .any(|n| n.is_in(hay))
        {
            said.sides.push(*side);
        }
    }
    for side in errors.iter().filter_map(|e| side_of(e)) {
        if !said.sides.contains(&side) {
            said.sides.push(side);
        }
    }
    said.phases.sort_unstable();
    said.sides.sort_unstable();
    said
}

/// Points for each dimension the text names that the cause shares.
pub const FIT_POINTS: i64 = 3;
/// Points taken for each dimension the text names that the cause does not show.
pub const MISFIT_POINTS: i64 = 2;

/// One reason a cause ranks where it does, with the points it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub points: i64,
    pub text: String,
}

/// Compare what the text says with where the cause shows. A dimension the text does not
/// name, or the cause does not declare, gives nothing.
pub fn judge(said: &Said, fits: &Fits) -> Vec<Reason> {
    let mut out = Vec::new();
    if !said.phases.is_empty() && !fits.phases.is_empty() {
        let shared: Vec<&str> = said
            .phases
            .iter()
            .filter(|p| fits.phases.contains(p))
            .map(|p| p.as_str())
            .collect();
        if shared.is_empty() {
            out.push(Reason {
                points: -MISFIT_POINTS,
                text: format!(
                    "does not fit when: the text says {}, this cause shows {}",
                    list(said.phases.iter().map(|p| p.as_str())),
                    list(fits.phases.iter().map(|p| p.as_str()))
                ),
            });
        } else {
            out.push(Reason {
                points: FIT_POINTS,
                text: format!("fits when: {}", shared.join(", ")),
            });
        }
    }
    if !said.sides.is_empty() && !fits.sides.is_empty() {
        match said.sides.iter().find(|s| fits.sides.contains(s)) {
            Some(side) => out.push(Reason {
                points: FIT_POINTS,
                text: format!("fits which side: {}", side.as_str()),
            }),
            None => out.push(Reason {
                points: -MISFIT_POINTS,
                text: format!(
                    "does not fit which side: the text says {}; with this cause {}",
                    list(said.sides.iter().map(|s| s.as_str())),
                    list(fits.sides.iter().map(|s| s.as_str()))
                ),
            }),
        }
    }
    out
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::symptoms::errno::ERRNOS;

    fn said(text: &str) -> Said {
        let hay = Haystack::new(text);
        let errors: Vec<&Errno> = ERRNOS
            .iter()
            .filter(|e| hay.list.contains(&e.name.to_lowercase()))
            .collect();
        read(&hay, &errors, None)
    }

    #[test]
    fn texts_say_when_and_which_side() {
        let s = said("recv() failed (104: Connection reset by peer) while reading response");
        assert_eq!(s.phases, [Phase::Transfer]);
        assert_eq!(s.sides, [Side::Received]);
        let s = said("java.net.SocketTimeoutException: connect timed out");
        assert_eq!(s.phases, [Phase::Connect]);
        assert_eq!(s.sides, [Side::Timeout]);
        let s = said("ECONNRESET");
        assert!(s.phases.is_empty());
        assert_eq!(s.sides, [Side::Received]);
        assert_eq!(
            said("resets only after a server restart").phases,
            [Phase::Restart]
        );
    }

    #[test]
    fn a_cause_that_shows_elsewhere_loses_points_and_says_why() {
        let connect = Fits {
            phases: vec![Phase::Connect],
            sides: vec![Side::Received],
        };
        let r = judge(&said("connection reset after it sat idle"), &connect);
        assert_eq!(r[0].points, -MISFIT_POINTS, "{r:?}");
        assert!(r[0].text.contains("after an idle time"), "{r:?}");
        assert_eq!(r[1].points, FIT_POINTS, "{r:?}");
        assert!(judge(&said("nothing said"), &connect).is_empty());
    }
}
