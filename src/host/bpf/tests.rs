use super::*;
use crate::host::test_support::{inode_of, set_int};

#[test]
fn reads_our_sockets_as_getsockopt_does() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let fd = stream.as_raw_fd();
    set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 33);
    set_int(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 5000);
    set_int(
        accepted.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_LINGER2,
        -1,
    );
    let (iterator, first) =
        read().expect("the BPF socket iterator (root, BTF, Linux 5.11) is needed");
    // A second run reads the same sockets (no probes this time, nothing else changed here).
    let sockets = iterator.read().unwrap();
    let me_in = |s: &TaskSockets| {
        let mut v: Vec<(u32, u64)> = s
            .iter()
            .filter(|h| h.pid() == std::process::id())
            .map(|h| (h.fd(), h.inode()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(me_in(&first), me_in(&sockets));
    let me = std::process::id();
    for (fd, socket) in [
        (listener.as_raw_fd(), "listener"),
        (fd, "client"),
        (accepted.as_raw_fd(), "accepted"),
    ] {
        let inode = inode_of(fd);
        let held: Vec<_> = sockets.iter().filter(|h| h.inode() == inode).collect();
        assert_eq!(held.len(), 1, "{socket}");
        assert_eq!((held[0].pid(), held[0].fd()), (me, fd as u32), "{socket}");
        let state = if socket == "listener" {
            crate::host::TcpState::Listen
        } else {
            crate::host::TcpState::Established
        };
        assert_eq!(held[0].state(), Some(state), "{socket}");
        // SAFETY: fd stays open (owned by the std socket) for this borrow.
        let borrowed = unsafe { OwnedFd::from_raw_fd(fd) };
        let truth = crate::host::options::read_options(&borrowed);
        std::mem::forget(borrowed);
        assert_eq!(held[0].options(), truth, "{socket}");
    }
}

/// A program reading the wrong field (as one built from the wrong offsets would) is caught
/// by the probe sockets before anything it read is used.
#[test]
fn a_wrong_layout_is_caught_by_the_probes() {
    let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("the kernel's BTF is needed");
    let btf = btf::Btf::parse(&data, program::WANTED).unwrap();
    // Word 5 is keepalive_time, word 4 sk_lingertime, word 2 the inode number.
    for (word, by) in [(5, 4), (4, 8), (2, 8)] {
        let mut layout = Layout::from_btf(&btf).unwrap();
        layout.shift_word(word, by);
        match load_layout(&layout).and_then(Loaded::read) {
            Err(Unavailable::Probe(why)) => assert!(why.contains("probe socket"), "{why}"),
            // Past the end of a member the verifier refuses the program itself.
            Err(Unavailable::Io { what, .. }) if word == 2 => {
                assert!(
                    what.contains("refused the socket iterator program"),
                    "{what}"
                )
            }
            Err(other) => panic!("word {word}: not a probe error: {other}"),
            Ok(_) => panic!("word {word} read {by} bytes off was not caught"),
        }
    }
}

/// Only TCP sockets of IPv4 and IPv6 are records: not UDP, not a Unix stream, not a raw socket
/// whose protocol number is TCP's (its struct is no tcp_sock).
#[test]
fn only_tcp_sockets_are_read() {
    use std::os::fd::AsFd;
    let v6 = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (unix, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let raw = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Raw,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        nix::sys::socket::SockProtocol::Tcp,
    )
    .expect("a raw socket (root) is needed");
    let (_, sockets) = read().expect("the BPF socket iterator (root, BTF, Linux 5.11) is needed");
    let held = |fd: std::os::fd::BorrowedFd<'_>| {
        let inode = inode_of(fd.as_raw_fd());
        sockets.iter().filter(|h| h.inode() == inode).count()
    };
    assert_eq!(held(v6.as_fd()), 1, "the IPv6 listener");
    assert_eq!(held(udp.as_fd()), 0, "UDP");
    assert_eq!(held(unix.as_fd()), 0, "a Unix stream");
    assert_eq!(held(raw.as_fd()), 0, "a raw socket of protocol 6");
}
