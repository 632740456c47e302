//! The JSON-lines events: one object per line, each with `schema` and `type`.
//! docs/watch.md ("Events") documents every field.

use std::sync::Arc;

use serde::Serialize;

use crate::host::workload::Workload;
use crate::rules::{Exposure, Severity};
use crate::watch::metrics::{Direction, Verdict};

/// The version of the event lines. Bump on incompatible changes (a field removed, renamed
/// or changing meaning); adding a field or a `type` is compatible.
pub const EVENTS_SCHEMA: u32 = 1;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Reset(ResetEvent),
    Finding(FindingEvent),
    /// Written by the sink itself, before the first event after a loss: how many events
    /// were lost since the previous such line.
    Dropped(DroppedEvent),
}

/// A TCP reset seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetEvent {
    /// When it was seen, milliseconds since the Unix epoch.
    pub time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    pub netns: String,
    /// The derived cause (`no-socket`, `linger-zero`, ...), as in `rstaudit_resets_total`.
    pub cause: String,
    /// The kernel's reason (6.10 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ADDRESS:PORT` of this host's end, and of the peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The process that owned the socket, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Its systemd unit, container and pod, from its cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Arc<Workload>>,
    /// The rule the cause belongs to, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// How a finding changed from one audit to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Not in the previous audit.
    Appeared,
    /// In both, with another exposure, verdict or count.
    Changed,
    /// In the previous audit, not in this one.
    Cleared,
}

/// A finding that appeared, changed or cleared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingEvent {
    pub time_ms: u64,
    pub change: Change,
    pub netns: String,
    pub rule: String,
    pub severity: Severity,
    pub exposure: Exposure,
    pub verdict: Verdict,
    /// The audit's one-line message (absent for `cleared`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For a finding about one process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// That process's systemd unit, container and pod, from its cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Box<Workload>>,
}

/// Events lost since the previous `dropped` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DroppedEvent {
    pub time_ms: u64,
    /// Dropped because the writer was behind (the queue was full).
    pub queue_full: u64,
    /// Dropped because the file could not be written or opened.
    pub write_failed: u64,
}

/// What is written: the event with the schema version.
#[derive(Serialize)]
pub(crate) struct Line<'a> {
    pub(crate) schema: u32,
    #[serde(flatten)]
    pub(crate) event: &'a Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::workload::{Container, Runtime};

    #[test]
    fn a_reset_line_has_the_schema_the_type_and_the_workload() {
        let workload = Workload {
            container: Some(Container {
                runtime: Runtime::Podman,
                id: "4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf".into(),
                name: Some("web".into()),
            }),
            cgroup: "/libpod_parent/libpod-4e0a".into(),
            ..Workload::default()
        };
        let event = Event::Reset(ResetEvent {
            time_ms: 1_800_000_000_000,
            direction: Some(Direction::Sent),
            netns: "host".into(),
            cause: "linger-zero".into(),
            reason: None,
            local: Some("127.0.0.1:8080".into()),
            remote: Some("127.0.0.1:41234".into()),
            pid: Some(42),
            comm: Some("nginx".into()),
            workload: Some(Arc::new(workload)),
            rule: Some("linger-zero".into()),
        });
        let line = serde_json::to_string(&Line {
            schema: EVENTS_SCHEMA,
            event: &event,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"schema":1,"type":"reset","time_ms":1800000000000,"direction":"sent","netns":"host","cause":"linger-zero","local":"127.0.0.1:8080","remote":"127.0.0.1:41234","pid":42,"comm":"nginx","workload":{"container":{"runtime":"podman","id":"4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf","name":"web"},"cgroup":"/libpod_parent/libpod-4e0a"},"rule":"linger-zero"}"#
        );
        let gap = Event::Dropped(DroppedEvent {
            time_ms: 5,
            queue_full: 3,
            write_failed: 0,
        });
        let line = serde_json::to_string(&Line {
            schema: 1,
            event: &gap,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"schema":1,"type":"dropped","time_ms":5,"queue_full":3,"write_failed":0}"#
        );
    }
}
