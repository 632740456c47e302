//! The processes rstaudit meets outside the socket scan: its own capabilities, and the process
//! and name of a task that a trace event ran in. Read through procfs, which parses
//! /proc/PID/status and /proc/PID/stat.

use procfs::process::Process;

/// Capability numbers (include/uapi/linux/capability.h).
pub mod cap {
    pub const NET_ADMIN: u32 = 12;
    pub const NET_RAW: u32 = 13;
    pub const SYS_ADMIN: u32 = 21;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
}

/// This process's effective capability set (CapEff); `None` when it cannot be read.
pub fn effective_caps() -> Option<u64> {
    Process::myself()
        .and_then(|p| p.status())
        .ok()
        .map(|s| s.capeff)
}

/// What to tell a user who lacks `what` (a capability, or root's access to a file): run as
/// root, unless this process is root already; then it lacks `what` for another reason (a
/// container, a user namespace or a security module), and running as root would not help.
pub fn privilege_hint(what: &str) -> String {
    if nix::unistd::geteuid().is_root() {
        format!(
            "this process runs as root and still lacks {what}: a container, a user namespace \
             or a security module withholds it"
        )
    } else {
        format!("run as root for {what}")
    }
}

/// Whether capability `cap` is in the effective set `caps`.
pub fn has_cap(caps: u64, cap: u32) -> bool {
    caps >> cap & 1 == 1
}

/// The process (thread group) of thread `tid`; `None` when the thread is gone or unreadable.
pub fn process_of_thread(tid: u32) -> Option<u32> {
    let tid = i32::try_from(tid).ok()?;
    let tgid = Process::new(tid).and_then(|p| p.status()).ok()?.tgid;
    u32::try_from(tgid).ok()
}

/// The name (`comm`) of process `pid`; `None` when it is gone, unreadable or empty.
pub fn name_of(pid: u32) -> Option<String> {
    let pid = i32::try_from(pid).ok()?;
    let comm = Process::new(pid).and_then(|p| p.stat()).ok()?.comm;
    (!comm.is_empty()).then_some(comm)
}

/// The inode of the initial PID namespace (the kernel's PROC_PID_INIT_INO).
const INITIAL_PID_NS: u64 = 0xEFFF_FFFC;

/// What names of this process's tracing instances and probes carry after their prefix and
/// before its pid: nothing in the host's PID namespace; `ns<INODE>_` in another one (a
/// container without the host's PIDs), whose pids name other processes than the host's. A run
/// then treats as stale only the names of its own PID namespace, whose pids it can check, and
/// the host's runs leave its names alone.
pub fn pid_ns_tag() -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(m) if m.ino() != INITIAL_PID_NS => format!("ns{}_", m.ino()),
        _ => String::new(),
    }
}

/// The pid in `rest`, what follows a tracing instance's or probe group's prefix, when the name
/// is of PID namespace `tag` ([`pid_ns_tag`]); `None` for another namespace's names and others.
pub fn pid_in_name(rest: &str, tag: &str) -> Option<u32> {
    rest.strip_prefix(tag)?.parse().ok()
}

/// Whether a process with this id exists.
pub fn exists(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(|pid| Process::new(pid).ok())
        .is_some_and(|p| p.is_alive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_another_pid_namespace_are_not_read_as_this_ones() {
        assert_eq!(pid_in_name("123", ""), Some(123));
        assert_eq!(pid_in_name("ns4026532001_123", ""), None);
        assert_eq!(pid_in_name("ns4026532001_123", "ns4026532001_"), Some(123));
        assert_eq!(pid_in_name("123", "ns4026532001_"), None);
        assert_eq!(pid_in_name("ns4026532002_123", "ns4026532001_"), None);
        // This test runs in the host's PID namespace (CI, the README test command).
        assert_eq!(pid_ns_tag(), "");
    }

    #[test]
    fn our_own_thread_process_and_name() {
        let me = std::process::id();
        assert_eq!(process_of_thread(me), Some(me));
        let tid = std::thread::spawn(|| nix::unistd::gettid().as_raw() as u32)
            .join()
            .unwrap();
        // The thread has exited: its process is no longer known under its id.
        assert_ne!(process_of_thread(tid), Some(tid));
        assert!(name_of(me).is_some_and(|n| !n.is_empty()));
        assert!(exists(me));
        assert!(effective_caps().is_some());
    }

    #[test]
    fn a_process_that_exited_is_gone() {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        assert!(!exists(pid));
        assert_eq!(name_of(pid), None);
        assert_eq!(process_of_thread(pid), None);
    }

    #[test]
    fn capability_bits() {
        assert!(has_cap(1 << cap::NET_RAW, cap::NET_RAW));
        assert!(!has_cap(1 << cap::NET_RAW, cap::NET_ADMIN));
    }
}
