//! Fixtures the tests share: a plain socket record, the inode of one of our descriptors, an
//! integer socket option, and a child process holding one of our sockets.
//!
//! Compiled for the unit tests and, with the `test-support` feature that every `cargo test`
//! turns on (Cargo.toml), for the integration tests; never into the built library.

use std::os::fd::RawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;

use super::{Family, Socket, TcpState, Timer};

/// An established 127.0.0.1:1 -> 127.0.0.1:2 socket with `inode`, no owner, no options.
pub fn socket(inode: u64) -> Socket {
    Socket {
        family: Family::Inet,
        state: TcpState::Established,
        local_addr: "127.0.0.1".parse().unwrap(),
        local_port: 1,
        remote_addr: "127.0.0.1".parse().unwrap(),
        remote_port: 2,
        rx_queue: 0,
        tx_queue: 0,
        accept_queue: None,
        backlog: None,
        timer: Timer::None,
        timer_expires_ms: None,
        retransmits: 0,
        inode,
        uid: 0,
        tcp_info: None,
        owner: None,
        options: None,
    }
}

/// The inode of this process's descriptor `fd`.
pub fn inode_of(fd: RawFd) -> u64 {
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

/// Set an integer socket option on `fd`.
pub fn set_int(fd: RawFd, level: i32, name: i32, v: libc::c_int) {
    // SAFETY: v is a c_int of the given size.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&v as *const libc::c_int).cast(), 4) };
    assert_eq!(rc, 0);
}

/// `sleep 30`, inheriting our descriptor `fd`, returned once it has exec'd and holds it.
pub fn sleeper_holding(fd: RawFd) -> std::process::Child {
    let inode = inode_of(fd);
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    // SAFETY: only async-signal-safe fcntl in the child, before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let holds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .any(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode))
        })
    };
    for _ in 0..200 {
        if holds()
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}
