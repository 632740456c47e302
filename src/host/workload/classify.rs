//! From a cgroup path to the systemd unit, container and Kubernetes pod it names.
//!
//! Pure string work on the path's components, innermost first, so that the same rules read
//! a path wherever its root lies (the host's, or a private cgroup namespace's, which shows
//! paths outside it as `/../...`). The forms, by runtime and cgroup driver:
//!
//! | runtime | systemd driver | cgroupfs driver |
//! |---|---|---|
//! | podman (libpod) | `machine.slice/libpod-ID.scope[/container]` | `libpod_parent/libpod-ID` |
//! | docker | `system.slice/docker-ID.scope` | `docker/ID` |
//! | containerd (CRI) | `kubepods...-podUID.slice/cri-containerd-ID.scope` | `kubepods/[QOS/]podUID/ID` |
//! | CRI-O | `kubepods...-podUID.slice/crio-ID.scope[/container]` | `kubepods/[QOS/]podUID/crio-ID` |
//!
//! IDs are 64 hexadecimal digits. Under the cgroupfs driver a Kubernetes container's
//! directory is its bare id, which does not say which CRI runtime made it ([`Runtime::Cri`]).
//! The runtimes' monitors (`libpod-conmon-ID.scope`, `crio-conmon-ID.scope`) are not the
//! container: their scope is the unit.

use super::{Container, Pod, Qos, Runtime, Workload};

/// Derive the labels of one cgroup path.
pub fn classify(path: &str) -> Workload {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let outside = parts.first() == Some(&"..");
    parts.retain(|p| *p != "..");
    let mut w = Workload {
        cgroup: path.to_string(),
        outside_namespace: outside,
        ..Workload::default()
    };
    for (i, part) in parts.iter().enumerate().rev() {
        if w.container.is_none()
            && let Some(c) = container_of(&parts[..i], part)
        {
            w.container = Some(c);
            continue;
        }
        if w.pod.is_none()
            && let Some(p) = pod_of(&parts[..i], part)
        {
            w.pod = Some(p);
            continue;
        }
        if let Some(uid) = user_of(part) {
            if part.ends_with(".service") {
                w.user_unit = w.unit.is_some();
            }
            w.user.get_or_insert(uid);
        }
        if part.ends_with(".slice") {
            w.slice.get_or_insert_with(|| part.to_string());
        } else if (part.ends_with(".service") || part.ends_with(".scope")) && w.unit.is_none() {
            // Components are read innermost first: a unit inside a container (systemd run
            // in one) is kept, a unit around it (a runtime's own service) is not the owner's.
            if w.container.is_none() && w.pod.is_none() {
                w.unit = Some(part.to_string());
            }
        }
    }
    w
}

/// A 64-digit lowercase hexadecimal container id.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn container_of(outer: &[&str], part: &str) -> Option<Container> {
    let scoped = |prefix: &str| -> Option<String> {
        let rest = part.strip_prefix(prefix)?;
        let id = rest.strip_suffix(".scope").unwrap_or(rest);
        is_id(id).then(|| id.to_string())
    };
    let found = |runtime, id| Some(Container::new(runtime, id));
    if let Some(id) = scoped("libpod-") {
        return found(Runtime::Podman, id);
    }
    if let Some(id) = scoped("docker-") {
        return found(Runtime::Docker, id);
    }
    if let Some(id) = scoped("cri-containerd-") {
        return found(Runtime::Containerd, id);
    }
    if let Some(id) = scoped("crio-") {
        return found(Runtime::CriO, id);
    }
    if is_id(part) {
        let parent = outer.last().copied().unwrap_or("");
        if parent == "docker" {
            return found(Runtime::Docker, part.to_string());
        }
        if parent.starts_with("pod") && outer.iter().any(|p| p.contains("kubepods")) {
            return found(Runtime::Cri, part.to_string());
        }
    }
    None
}

fn pod_of(outer: &[&str], part: &str) -> Option<Pod> {
    if let Some(slice) = part.strip_suffix(".slice")
        && slice.contains("kubepods")
    {
        // kubepods-pod<UID>.slice, kubepods-burstable-pod<UID>.slice, with the UID's dashes
        // written as underscores (a dash separates slice levels in systemd).
        let (head, uid) = slice.rsplit_once("-pod")?;
        let uid = uid.replace('_', "-");
        let qos = if head.ends_with("-burstable") {
            Qos::Burstable
        } else if head.ends_with("-besteffort") {
            Qos::BestEffort
        } else {
            Qos::Guaranteed
        };
        return is_uid(&uid).then_some(Pod { uid, qos });
    }
    let uid = part.strip_prefix("pod")?;
    if !is_uid(uid) {
        return None;
    }
    let qos = match outer {
        [.., k, q] if k.contains("kubepods") && *q == "burstable" => Qos::Burstable,
        [.., k, q] if k.contains("kubepods") && *q == "besteffort" => Qos::BestEffort,
        [.., k] if k.contains("kubepods") => Qos::Guaranteed,
        _ => return None,
    };
    Some(Pod {
        uid: uid.to_string(),
        qos,
    })
}

/// A pod UID: a UUID (`8a0f...-...`), or the 32 hexadecimal digits kubelet gives a static
/// pod (a hash of its manifest).
fn is_uid(s: &str) -> bool {
    let hex = s.bytes().filter(u8::is_ascii_hexdigit).count();
    let dashes = s.bytes().filter(|&b| b == b'-').count();
    hex == 32 && hex + dashes == s.len() && (dashes == 0 || dashes == 4)
}

/// The uid of `user-1000.slice` or `user@1000.service`.
fn user_of(part: &str) -> Option<u32> {
    let rest = part
        .strip_prefix("user-")
        .and_then(|r| r.strip_suffix(".slice"))
        .or_else(|| {
            part.strip_prefix("user@")
                .and_then(|r| r.strip_suffix(".service"))
        })?;
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::parse;
    use super::*;

    const ID: &str = "4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf";

    fn container(w: &Workload) -> Option<(Runtime, &str)> {
        w.container.as_ref().map(|c| (c.runtime, c.id.as_str()))
    }

    fn from_file(text: &str) -> Workload {
        super::super::derive(&parse(text.as_bytes(), "cgroup").unwrap())
    }

    #[test]
    fn podman_cgroupfs_captured_here() {
        let w = from_file(super::super::cgroup::tests::PODMAN_CGROUPFS_HYBRID);
        assert_eq!(container(&w), Some((Runtime::Podman, ID)));
        assert_eq!((w.unit.as_deref(), w.pod.as_ref()), (None, None));
        assert!(!w.outside_namespace);
    }

    #[test]
    fn a_host_process_is_no_container() {
        // The sandbox's own memory cgroup holds a 32-digit id: not a container id.
        let w = from_file(super::super::cgroup::tests::HOST_SHELL_HYBRID);
        assert_eq!(
            (&w.container, &w.pod, &w.unit),
            (&None, &None, &None),
            "{w:?}"
        );
        assert!(!w.outside_namespace);
    }

    /// Captured on this project's test machine: `cat /proc/1/cgroup` run by a process that
    /// made its own cgroup namespace (`unshare -C`) while in a child cgroup of the unified
    /// and pids hierarchies; PID 1 lies above that namespace's root.
    #[test]
    fn paths_above_a_private_cgroup_namespace_are_marked() {
        let text = "9:name=systemd:/\n8:pids:/..\n7:blkio:/\n4:memory:/../..\n0::/..\n";
        let w = from_file(text);
        assert!(w.outside_namespace, "{w:?}");
        assert_eq!(w.container, None);
        // A container seen from a DaemonSet pod with a private cgroup namespace: the path
        // climbs out of the pod's cgroup and down into the other one, and still names it.
        let w = classify(&format!(
            "/../../kubepods-besteffort-pod0c3f2e2a_8a1b_4a45_9d7e_1f1d2b3c4d5e.slice/cri-containerd-{ID}.scope"
        ));
        assert!(w.outside_namespace);
        assert_eq!(container(&w), Some((Runtime::Containerd, ID)));
        assert_eq!(w.pod.unwrap().uid, "0c3f2e2a-8a1b-4a45-9d7e-1f1d2b3c4d5e");
    }

    /// The systemd driver's forms of podman (rootful and rootless, and the `container` leaf
    /// podman creates on cgroup v2), as podman 4 names its scopes (libpod's systemd cgroup
    /// manager: `libpod-ID.scope` in `machine.slice`, `libpod-conmon-ID.scope` beside it).
    /// Not captured: this test machine has no systemd as PID 1.
    #[test]
    fn podman_systemd_forms() {
        let w = classify(&format!("/machine.slice/libpod-{ID}.scope/container"));
        assert_eq!(container(&w), Some((Runtime::Podman, ID)));
        assert_eq!(w.slice.as_deref(), Some("machine.slice"));
        assert_eq!(w.unit, None, "the container's own scope is not its unit");
        let w = classify(&format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
        ));
        assert_eq!(container(&w), Some((Runtime::Podman, ID)));
        assert_eq!(w.user, Some(1000));
        let w = classify(&format!("/machine.slice/libpod-conmon-{ID}.scope"));
        assert_eq!(
            w.container, None,
            "conmon is the monitor, not the container"
        );
        assert_eq!(w.unit, Some(format!("libpod-conmon-{ID}.scope")));
    }

    /// Docker's two drivers: `system.slice/docker-ID.scope` (systemd; CentOS, Fedora, and
    /// Debian/Ubuntu on cgroup v2) and `/docker/ID` on every v1 controller (cgroupfs; older
    /// Debian and Ubuntu defaults), as dockerd names them (daemon/cgroupdriver). Not
    /// captured: no Docker engine runs on this test machine.
    #[test]
    fn docker_forms() {
        let text = format!(
            "12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n2:cpu,cpuacct:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
        );
        assert_eq!(container(&from_file(&text)), Some((Runtime::Docker, ID)));
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        let w = from_file(&text);
        assert_eq!(container(&w), Some((Runtime::Docker, ID)));
        assert_eq!(
            (w.slice.as_deref(), w.unit.as_deref()),
            (Some("system.slice"), None)
        );
        // dockerd itself is a service, and a bare 64-digit name elsewhere is no container.
        assert_eq!(
            classify("/system.slice/docker.service").unit.as_deref(),
            Some("docker.service")
        );
        assert_eq!(classify(&format!("/mine/{ID}")).container, None);
    }

    /// Kubernetes, every QoS class in both of kubelet's drivers (kubelet's cgroup names:
    /// `kubepods[-QOS]-podUID.slice` with the UID's dashes as underscores under systemd,
    /// `kubepods[/QOS]/podUID` under cgroupfs), with containerd's and CRI-O's container
    /// cgroups (`cri-containerd-ID.scope`, `crio-ID.scope` and its v2 `container` leaf,
    /// `crio-ID` under cgroupfs). Not captured: no kubelet runs on this test machine.
    #[test]
    fn kubernetes_forms() {
        let uid = "0c3f2e2a-8a1b-4a45-9d7e-1f1d2b3c4d5e";
        let und = uid.replace('-', "_");
        let cases = [
            (
                format!("/kubepods.slice/kubepods-pod{und}.slice/cri-containerd-{ID}.scope"),
                Qos::Guaranteed,
                Runtime::Containerd,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{und}.slice/cri-containerd-{ID}.scope"
                ),
                Qos::Burstable,
                Runtime::Containerd,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{und}.slice/crio-{ID}.scope/container"
                ),
                Qos::BestEffort,
                Runtime::CriO,
            ),
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{und}.slice/cri-containerd-{ID}.scope"
                ),
                Qos::BestEffort,
                Runtime::Containerd,
            ),
            (
                format!("/kubepods/pod{uid}/{ID}"),
                Qos::Guaranteed,
                Runtime::Cri,
            ),
            (
                format!("/kubepods/burstable/pod{uid}/{ID}"),
                Qos::Burstable,
                Runtime::Cri,
            ),
            (
                format!("/kubepods/besteffort/pod{uid}/crio-{ID}"),
                Qos::BestEffort,
                Runtime::CriO,
            ),
        ];
        for (path, qos, runtime) in cases {
            let w = classify(&path);
            assert_eq!(container(&w), Some((runtime, ID)), "{path}");
            let pod = w.pod.as_ref().unwrap_or_else(|| panic!("no pod in {path}"));
            assert_eq!((pod.uid.as_str(), pod.qos), (uid, qos), "{path}");
            assert_eq!(w.unit, None, "{path}");
        }
        // The pod's own cgroup (the pause process under cgroupfs is in a container too), and
        // a static pod's UID, which is a 32-digit hash.
        let w = classify("/kubepods/burstable/pod5e0c0a6e7c1bb5b0bda8b0e8b0c6a2b1");
        assert_eq!(w.pod.unwrap().uid, "5e0c0a6e7c1bb5b0bda8b0e8b0c6a2b1");
        assert_eq!(w.container, None);
        let w = classify(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{und}.slice/crio-conmon-{ID}.scope"
        ));
        assert_eq!(w.container, None);
        assert!(w.pod.is_some());
        // "pod" directories outside kubepods are not pods.
        assert_eq!(classify(&format!("/pods/pod{uid}/{ID}")).pod, None);
    }

    /// systemd's own forms: services, the user manager and its units, login sessions
    /// (systemd.special(7), systemd-logind). Not captured here (no systemd as PID 1).
    #[test]
    fn systemd_units() {
        let w = classify("/system.slice/nginx.service");
        assert_eq!(
            (w.unit.as_deref(), w.slice.as_deref()),
            (Some("nginx.service"), Some("system.slice"))
        );
        assert!(!w.user_unit);
        let w = classify("/system.slice/system-getty.slice/getty@tty1.service");
        assert_eq!(w.unit.as_deref(), Some("getty@tty1.service"));
        assert_eq!(w.slice.as_deref(), Some("system-getty.slice"));
        let w = classify("/user.slice/user-1000.slice/session-3.scope");
        assert_eq!(
            (w.unit.as_deref(), w.user),
            (Some("session-3.scope"), Some(1000))
        );
        let w = classify(
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope",
        );
        assert_eq!(w.unit.as_deref(), Some("app-gnome-firefox-4242.scope"));
        assert_eq!((w.user, w.user_unit), (Some(1000), true));
        assert_eq!(w.slice.as_deref(), Some("app.slice"));
        let w = classify("/user.slice/user-1000.slice/user@1000.service/init.scope");
        assert_eq!((w.unit.as_deref(), w.user_unit), (Some("init.scope"), true));
        let w = classify("/user.slice/user-1000.slice/user@1000.service");
        assert_eq!(
            (w.unit.as_deref(), w.user_unit),
            (Some("user@1000.service"), false)
        );
        assert_eq!(classify("/init.scope").unit.as_deref(), Some("init.scope"));
    }
}
