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
