//! Socket set-up for the lab's applications (listeners with a chosen
//! backlog, SO_LINGER, keepalive, TCP_DEFER_ACCEPT) and how their errors are
//! named in the report.

use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, setsockopt, socket,
    sockopt,
};

use super::LabError;
use super::error::Step;

/// A listener on `addr` with `backlog`, optionally with TCP_DEFER_ACCEPT (seconds).
pub fn listener(
    addr: SocketAddrV4,
    backlog: i32,
    defer_accept: Option<i32>,
) -> Result<TcpListener, LabError> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .step("socket")?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).step("SO_REUSEADDR")?;
    if let Some(secs) = defer_accept {
        set_int(&fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs).step("TCP_DEFER_ACCEPT")?;
    }
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr)).step(format!("bind {addr}"))?;
    listen(&fd, Backlog::new(backlog).step("backlog")?).step(format!("listen {addr}"))?;
    Ok(TcpListener::from(fd))
}

fn set_int(fd: &impl AsFd, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: `value` is a live i32 for the duration of the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SO_LINGER {on = 1, linger = 0}: close() sends a reset.
pub fn set_linger_zero(s: &TcpStream) -> Result<(), LabError> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(s, sockopt::Linger, &l).step("SO_LINGER")?;
    Ok(())
}

/// SO_KEEPALIVE on, with the namespace's tcp_keepalive_* values.
pub fn set_keepalive(s: &TcpStream) -> Result<(), LabError> {
    setsockopt(s, sockopt::KeepAlive, &true).step("SO_KEEPALIVE")?;
    Ok(())
}

/// Connect with a timeout (the lab's paths are short; seconds mean something is wrong).
pub fn connect(addr: SocketAddrV4) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    Ok(s)
}

/// `ECONNRESET (Connection reset by peer)`, the way the report names what an application saw.
pub fn describe(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{:?} ({})", nix::errno::Errno::from_raw(code), err.kind()),
        None => err.to_string(),
    }
}

/// The errno name of an error, when it has one (`ECONNRESET`).
pub fn errno_name(err: &std::io::Error) -> Option<String> {
    err.raw_os_error()
        .map(|code| format!("{:?}", nix::errno::Errno::from_raw(code)))
}

/// TCP_LINGER2 (seconds; -1: close() in FIN_WAIT2 resets at once).
pub fn set_linger2(s: &TcpStream, secs: i32) -> Result<(), LabError> {
    set_int(s, libc::IPPROTO_TCP, libc::TCP_LINGER2, secs).step("TCP_LINGER2")
}

/// TCP_USER_TIMEOUT (milliseconds; 0: the kernel's retransmission limits).
pub fn set_user_timeout(s: &TcpStream, ms: u32) -> Result<(), LabError> {
    let ms = i32::try_from(ms).step("TCP_USER_TIMEOUT out of range")?;
    set_int(s, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms).step("TCP_USER_TIMEOUT")
}

/// SO_KEEPALIVE with this socket's own TCP_KEEPIDLE and TCP_KEEPINTVL (seconds).
pub fn set_keepalive_idle(s: &TcpStream, idle: i32, intvl: i32) -> Result<(), LabError> {
    set_keepalive(s)?;
    set_int(s, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle).step("TCP_KEEPIDLE")?;
    set_int(s, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, intvl).step("TCP_KEEPINTVL")
}
