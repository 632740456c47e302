//! Sockets and numbers as people read them, in finding messages and exposure reasons.

use std::net::IpAddr;

use crate::host::{Socket, TcpState};

fn fmt_addr(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// `10.0.0.5:443 -> 10.0.0.9:51234 ESTABLISHED`
pub fn describe_socket(s: &Socket) -> String {
    if s.state == TcpState::Listen {
        format!("{} LISTEN", fmt_addr(s.local_addr, s.local_port))
    } else {
        format!(
            "{} -> {} {}",
            fmt_addr(s.local_addr, s.local_port),
            fmt_addr(s.remote_addr, s.remote_port),
            s.state.as_str()
        )
    }
}

/// `1204` -> `1,204`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
