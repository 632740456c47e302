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
    /// `seen`: the socket table, once it has gone by (its statistics).
    pub(super) fn new(snap: &'a Snapshot, seen: Option<&super::Seen>) -> Self {
        let stats = seen
            .filter(|_| snap.sockets_source != SocketsSource::None)
            .map(super::Seen::stats);
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
