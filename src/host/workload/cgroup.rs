//! /proc/PID/cgroup: which cgroup a process is in, on every hierarchy.
//!
//! Each line is `ID:CONTROLLERS:PATH`: `0::PATH` is the unified (v2) hierarchy, the others
//! are v1 hierarchies (`4:memory:/...`, `1:name=systemd:/...`). A hybrid host has both. The
//! path is relative to the cgroup namespace of the process that reads the file, so it may
//! start with `/..` when the process lies outside the reader's namespace.

use std::io::BufRead;

use crate::host::files::{self, ParseError, parse_error};

/// Longest /proc/PID/cgroup accepted: a line per hierarchy (a dozen on v1), each path
/// well under a KiB on any real host.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// One line of /proc/PID/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// The hierarchy id (0 for the unified hierarchy).
    pub hierarchy: u32,
    /// The v1 controllers (`cpu,cpuacct`, `name=systemd`); empty for the unified hierarchy.
    pub controllers: String,
    /// The cgroup path, without a trailing ` (deleted)`.
    pub path: String,
    /// The kernel marked the cgroup as removed (` (deleted)`).
    pub deleted: bool,
}

impl CgroupLine {
    /// Whether this is the unified (v2) hierarchy.
    pub fn is_unified(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    /// Whether this is systemd's named v1 hierarchy of a legacy or hybrid host.
    pub fn is_systemd_v1(&self) -> bool {
        self.controllers.split(',').any(|c| c == "name=systemd")
    }
}

/// The whole file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcCgroup {
    pub lines: Vec<CgroupLine>,
}

impl ProcCgroup {
    /// The paths to derive labels from, best first: the unified hierarchy's (unless it is
    /// `/`, as it is for every process of a v1-only host that mounts cgroup2 nowhere), then
    /// systemd's named hierarchy, then the v1 controllers in file order. Repeated paths are
    /// given once.
    pub fn paths(&self) -> Vec<&str> {
        let mut order: Vec<&CgroupLine> = Vec::with_capacity(self.lines.len());
        order.extend(
            self.lines
                .iter()
                .filter(|l| l.is_unified() && l.path != "/"),
        );
        order.extend(self.lines.iter().filter(|l| l.is_systemd_v1()));
        order.extend(
            self.lines
                .iter()
                .filter(|l| !l.is_unified() && !l.is_systemd_v1()),
        );
        order.extend(
            self.lines
                .iter()
                .filter(|l| l.is_unified() && l.path == "/"),
        );
        let mut out: Vec<&str> = Vec::with_capacity(order.len());
        for line in order {
            if !out.contains(&line.path.as_str()) {
                out.push(&line.path);
            }
        }
        out
    }
}

/// Parse /proc/PID/cgroup. `file` names the input in errors. An empty file is an error: the
/// kernel always writes one line at least, so an empty read means the process exited while
/// it was read (or the file is a bad copy).
pub fn parse(reader: impl BufRead, file: &str) -> Result<ProcCgroup, ParseError> {
    let mut out = ProcCgroup::default();
    for item in files::lines(reader, file, Some(MAX_FILE_BYTES)) {
        let (n, line) = item?;
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(parse_error(
                file,
                n,
                format!("expected ID:CONTROLLERS:PATH, found {line:?} (a truncated line?)"),
            ));
        };
        let hierarchy = id
            .parse::<u32>()
            .map_err(|_| parse_error(file, n, format!("hierarchy id {id:?} is not a number")))?;
        if !path.starts_with('/') {
            return Err(parse_error(
                file,
                n,
                format!("cgroup path {path:?} does not start with / (a truncated line?)"),
            ));
        }
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (path, false),
        };
        out.lines.push(CgroupLine {
            hierarchy,
            controllers: controllers.to_string(),
            path: path.to_string(),
            deleted,
        });
    }
    if out.lines.is_empty() {
        return Err(parse_error(
            file,
            1,
            "empty: the process exited while it was read, or the file is not a copy of /proc/PID/cgroup",
        ));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Captured on this project's test machine (kernel 6.18, cgroup v1 hybrid: v1 controllers
    /// and name=systemd, cgroup2 at /sys/fs/cgroup/unified): `sleep` in a rootful podman 4.3.1
    /// container run with `--runtime runc` (cgroupfs driver, no systemd as PID 1).
    pub(crate) const PODMAN_CGROUPFS_HYBRID: &str = "\
9:name=systemd:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
8:pids:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
7:blkio:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
6:freezer:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
5:devices:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
4:memory:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
3:cpuset:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
2:cpuacct:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
1:cpu:/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
0::/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf
";

    /// Captured on the same machine: a shell of the test machine's own, outside any
    /// container (its memory cgroup is the sandbox's, a 32-digit id that is no container's).
    pub(crate) const HOST_SHELL_HYBRID: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/e75a396138e93458fa27fd22a3fa6b3b
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn reads_every_hierarchy_of_a_hybrid_host() {
        let got = parse(PODMAN_CGROUPFS_HYBRID.as_bytes(), "cgroup").unwrap();
        assert_eq!(got.lines.len(), 10);
        assert!(got.lines[9].is_unified());
        assert!(got.lines[0].is_systemd_v1());
        assert_eq!(got.lines[4].controllers, "devices");
        assert_eq!(
            got.paths(),
            vec![
                "/libpod_parent/libpod-4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf"
            ]
        );
        let host = parse(HOST_SHELL_HYBRID.as_bytes(), "cgroup").unwrap();
        assert_eq!(
            host.paths(),
            vec!["/", "/process_api/e75a396138e93458fa27fd22a3fa6b3b"],
            "systemd's hierarchy first, the unified `/` gives nothing new"
        );
    }

    #[test]
    fn a_deleted_cgroup_is_marked() {
        let got = parse("0::/system.slice/gone.service (deleted)\n".as_bytes(), "c").unwrap();
        assert_eq!(got.lines[0].path, "/system.slice/gone.service");
        assert!(got.lines[0].deleted);
    }

    #[test]
    fn truncated_or_empty_text_is_an_error_with_the_line() {
        let err = parse("0::/a\n4:memory".as_bytes(), "/proc/9/cgroup").unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("/proc/9/cgroup", 2));
        assert!(err.message.contains("truncated"), "{err}");
        let err = parse("x::/a\n".as_bytes(), "c").unwrap_err();
        assert!(err.message.contains("not a number"), "{err}");
        let err = parse("4:memory:sys\n".as_bytes(), "c").unwrap_err();
        assert!(err.message.contains("does not start with /"), "{err}");
        let err = parse("".as_bytes(), "c").unwrap_err();
        assert!(err.message.contains("exited"), "{err}");
        assert!(parse(&b"0::/\xff\n"[..], "c").is_err());
    }
}
