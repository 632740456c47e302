//! Which service, container or pod a process belongs to, from its cgroup.
//!
//! [`cgroup`] parses /proc/PID/cgroup (v1, v2 and hybrid hosts), [`classify`] reads a cgroup
//! path into a [`Workload`] (systemd unit, container id and runtime, Kubernetes pod),
//! [`names`] asks a container runtime's API for a container's name, and [`cache`] keeps the
//! answers per process, bounded, so that a process that exited keeps the labels it had.
//! Nothing here knows about metrics or rules; a fact that could not be read is an error or
//! a note for the caller.

pub mod cache;
pub mod cgroup;
pub mod classify;
pub mod names;

use serde::{Deserialize, Serialize};

pub use cache::{WorkloadConfig, WorkloadError, Workloads};
pub use cgroup::{CgroupLine, ProcCgroup};
pub use classify::classify;
pub use names::{ApiError, RuntimeApi};

/// The container runtime that made a container, as its cgroup path tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    /// podman (libpod).
    Podman,
    /// containerd's CRI plugin (`cri-containerd-ID.scope`).
    Containerd,
    CriO,
    /// A Kubernetes container under kubelet's cgroupfs driver, whose directory (the bare
    /// id) does not say whether containerd or another CRI runtime made it.
    Cri,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Cri => "cri",
        }
    }
}

/// A container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub runtime: Runtime,
    /// The full id (64 hexadecimal digits).
    pub id: String,
    /// The name the runtime's API gave, when it was asked and answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Container {
    pub fn new(runtime: Runtime, id: String) -> Self {
        Container {
            runtime,
            id,
            name: None,
        }
    }

    /// The id as `docker ps` and `podman ps` show it (its first 12 digits).
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// The name, or the short id where the name is not known: what a label shows.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or_else(|| self.short_id())
    }
}

/// A pod's Kubernetes quality-of-service class, as kubelet files its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// A Kubernetes pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pod {
    /// The pod's UID (`metadata.uid`), with dashes.
    pub uid: String,
    pub qos: Qos,
}

/// What a process's cgroup says about it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The innermost systemd service or scope that is not a container's own
    /// (`nginx.service`, `session-3.scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The innermost slice (`system.slice`, `user-1000.slice`, `machine.slice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
    /// The login user, from `user-UID.slice` or `user@UID.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<u32>,
    /// `unit` is a unit of a user's service manager (below `user@UID.service`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_unit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// The cgroup path the labels come from.
    pub cgroup: String,
    /// The path began with `/..`: the process lies outside the cgroup namespace of the
    /// reader, and the path is relative to the reader's own cgroup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_namespace: bool,
}

impl Workload {
    /// Whether it names a unit, a container or a pod (what labels show).
    pub fn is_labelled(&self) -> bool {
        self.unit.is_some() || self.container.is_some() || self.pod.is_some()
    }

    /// Where the process runs, in words for a report: `container web`, `pod UID`,
    /// `nginx.service`; `None` when it has no labels.
    pub fn placement(&self) -> Option<String> {
        match (&self.container, &self.pod, &self.unit) {
            (Some(c), Some(p), _) => Some(format!("container {} of pod {}", c.label(), p.uid)),
            (Some(c), None, _) => Some(format!("container {}", c.label())),
            (None, Some(p), _) => Some(format!("pod {}", p.uid)),
            (None, None, Some(u)) => Some(u.clone()),
            (None, None, None) => None,
        }
    }
}

/// The labels of a whole /proc/PID/cgroup: the first path (in [`ProcCgroup::paths`] order)
/// that names a container or pod gives those, the first that names a unit, slice or user
/// gives that.
pub fn derive(file: &ProcCgroup) -> Workload {
    let mut out: Option<Workload> = None;
    for path in file.paths() {
        let w = classify(path);
        let Some(got) = out.as_mut() else {
            out = Some(w);
            continue;
        };
        if got.container.is_none()
            && got.pod.is_none()
            && (w.container.is_some() || w.pod.is_some())
        {
            got.container = w.container;
            got.pod = w.pod;
            got.cgroup = w.cgroup;
        }
        if got.unit.is_none() && got.container.is_none() && got.pod.is_none() {
            got.unit = w.unit;
            got.user_unit = w.user_unit;
        }
        got.slice = got.slice.take().or(w.slice);
        got.user = got.user.or(w.user);
        got.outside_namespace |= w.outside_namespace;
    }
    out.unwrap_or_default()
}
