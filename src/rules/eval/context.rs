//! Host-level facts shared by every rule: sysctls, counters (one sample or a window),
//! statistics of the socket table.

use super::*;

/// Host-level facts shared by every rule.
pub(super) struct HostCtx<'a> {
    pub(super) snap: &'a Snapshot,
    pub(super) stats: Option<HashMap<Stat, f64>>,
    pub(super) two_samples: bool,
    pub(super) window: Option<f64>,
}

impl<'a> HostCtx<'a> {
    pub(super) fn new(snap: &'a Snapshot) -> Self {
        let stats = (snap.sockets_source != SocketsSource::None).then(|| stats(&snap.sockets));
        let window = snap.counter_window();
        Self {
            snap,
            stats,
            two_samples: window.is_some(),
            window,
        }
    }

    pub(super) fn note_for(&self, subject: &str) -> Option<&str> {
        self.snap
            .notes
            .iter()
            .find(|n| n.subject.as_deref() == Some(subject))
            .map(|n| n.message.as_str())
    }

    pub(super) fn sysctl(&self, key: &str) -> Result<f64, Unknown> {
        match self.snap.sysctl(key) {
            Some(v) => v
                .split_whitespace()
                .next()
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| Unknown::SysctlNotANumber {
                    key: key.to_string(),
                    value: v.to_string(),
                }),
            None => Err(match self.note_for(key) {
                Some(note) => Unknown::SysctlNoted {
                    key: key.to_string(),
                    note: note.to_string(),
                },
                None => Unknown::SysctlAbsent {
                    key: key.to_string(),
                },
            }),
        }
    }

    pub(super) fn counter(&self, name: &str, measure: Measure) -> Result<f64, Unknown> {
        let missing = || match self.note_for(name).or_else(|| self.area_note("counters")) {
            Some(note) => Unknown::CounterNoted {
                name: name.to_string(),
                note: note.to_string(),
            },
            None => Unknown::CounterAbsent {
                name: name.to_string(),
            },
        };
        let use_delta = match measure {
            Measure::Auto => self.two_samples,
            Measure::Change => {
                if !self.two_samples {
                    return Err(Unknown::OneSample {
                        name: name.to_string(),
                    });
                }
                true
            }
            Measure::Total => false,
            Measure::Rate => {
                return match (self.two_samples, self.window) {
                    (true, Some(w)) if w > 0.0 => self
                        .snap
                        .counter_delta(name)
                        .map(|(d, _)| d as f64 / w)
                        .ok_or_else(missing),
                    _ => Ok(0.0),
                };
            }
        };
        if use_delta {
            self.snap
                .counter_delta(name)
                .map(|(d, _)| d as f64)
                .ok_or_else(missing)
        } else {
            self.snap
                .counter(name)
                .map(|v| v as f64)
                .ok_or_else(missing)
        }
    }

    pub(super) fn area_note(&self, area: &str) -> Option<&str> {
        self.snap
            .notes
            .iter()
            .find(|n| n.area == area)
            .map(|n| n.message.as_str())
    }

    pub(super) fn stat(&self, s: Stat) -> Result<f64, Unknown> {
        match &self.stats {
            Some(map) => Ok(map.get(&s).copied().unwrap_or(0.0)),
            None => Err(self.sockets_missing()),
        }
    }

    pub(super) fn sockets_missing(&self) -> Unknown {
        match self.area_note("sockets") {
            Some(note) => Unknown::SocketsNoted {
                note: note.to_string(),
            },
            None => Unknown::Sockets,
        }
    }
}

/// Host statistics in one pass.
pub(super) fn stats(sockets: &[Socket]) -> HashMap<Stat, f64> {
    let (mut listeners, mut est, mut tw, mut cw, mut orphans, mut maxb) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u32);
    for s in sockets {
        match s.state {
            TcpState::Listen => {
                listeners += 1;
                maxb = maxb.max(s.backlog.unwrap_or(0));
            }
            TcpState::Established => est += 1,
            TcpState::TimeWait => tw += 1,
            TcpState::CloseWait => cw += 1,
            TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing | TcpState::LastAck
                if s.inode == 0 =>
            {
                orphans += 1
            }
            _ => {}
        }
    }
    HashMap::from([
        (Stat::Sockets, sockets.len() as f64),
        (Stat::Listeners, listeners as f64),
        (Stat::Established, est as f64),
        (Stat::TimeWait, tw as f64),
        (Stat::CloseWait, cw as f64),
        (Stat::Orphans, orphans as f64),
        (Stat::MaxListenerBacklog, f64::from(maxb)),
    ])
}
