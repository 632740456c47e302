//! Bare TCP ACKs sent on a raw IPv4 socket (root), for the examples that make the kernel answer
//! with resets (rstflood, sockhelper's stray-ack). Loopback or the benchmark's own namespaces only.

/// A raw IPv4 socket sending to one address.
pub struct RawAcks {
    fd: libc::c_int,
    dst: libc::sockaddr_in,
}

impl RawAcks {
    /// A raw socket (IPPROTO_RAW: the segments carry their own IP header) sending to `dst`.
    pub fn to(dst: [u8; 4]) -> Self {
        // SAFETY: plain socket(2); the descriptor is closed on drop.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let dst = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst),
            },
            sin_zero: [0; 8],
        };
        Self { fd, dst }
    }

    /// Send one segment made by [`ack`]; false when the kernel refused it.
    pub fn send(&self, segment: &[u8]) -> bool {
        // SAFETY: segment is a valid buffer, dst a valid sockaddr_in, fd ours.
        let rc = unsafe {
            libc::sendto(
                self.fd,
                segment.as_ptr().cast(),
                segment.len(),
                0,
                (&self.dst as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        rc > 0
    }
}

impl Drop for RawAcks {
    fn drop(&mut self) {
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// An IPv4 segment with only ACK set (acknowledging 1), from `src:sport` to `dst:dport`.
pub fn ack(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, seq: u32) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4(src, dst, 64)
        .tcp(sport, dport, seq, 1024)
        .ack(1);
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).expect("building a segment");
    out
}
