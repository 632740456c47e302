//! The lab's topologies: a client, a middlebox that forgets idle flows and a server, or a
//! client-server pair, joined by veth pairs with nftables rules of the lab's own.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;

/// Middlebox scenario topology: client -- middlebox -- server over two veth pairs.
pub(super) struct Middlebox {
    pub(super) client: LabNs,
    pub(super) middlebox: LabNs,
    pub(super) server: LabNs,
    pub(super) server_addr: SocketAddrV4,
    pub(super) client_addr: std::net::IpAddr,
    /// The server's endpoint (resets of this run name it as source or destination).
    pub(super) addrs: Vec<std::net::SocketAddr>,
}

pub(super) const LAB_TABLE: &str = "rstaudit_lab";

pub(super) fn build_middlebox(slot: u8, timeout_secs: u64) -> Result<Middlebox, LabError> {
    let client = LabNs::new("client")?;
    let middlebox = LabNs::new("middlebox")?;
    let server = LabNs::new("server")?;
    let a = slot * 2 - 1;
    let b = slot * 2;
    let net = |n: u8, host: u8| Ipv4Addr::new(10, 77, n, host);
    middlebox.run(|| {
        rtnl::new_veth("mb0", 2, "cl0", 2, client.fd())?;
        rtnl::new_veth("mb1", 3, "sv0", 2, server.fd())?;
        rtnl::add_addr(2, net(a, 1), 24)?;
        rtnl::add_addr(3, net(b, 1), 24)?;
        rtnl::set_up(2)?;
        Ok(rtnl::set_up(3)?)
    })?;
    for (ns, n) in [(&client, a), (&server, b)] {
        ns.run(|| {
            rtnl::add_addr(2, net(n, 2), 24)?;
            rtnl::set_up(2)?;
            Ok(rtnl::add_default_route(net(n, 1))?)
        })?;
    }
    middlebox.sysctl("net.ipv4.ip_forward", "1")?;
    middlebox.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")?;
    middlebox.sysctl(
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        &timeout_secs.to_string(),
    )?;
    nft::load(
        &middlebox,
        &format!(
            "table inet {LAB_TABLE} {{\n  chain forward_filter {{\n    type filter hook forward priority 0; policy accept;\n    meta l4proto tcp ct state invalid counter reject with tcp reset\n  }}\n}}\n"
        ),
    )?;
    Ok(Middlebox {
        client,
        middlebox,
        server,
        server_addr: SocketAddrV4::new(net(b, 2), lab_port()),
        client_addr: net(a, 2).into(),
        addrs: vec![SocketAddrV4::new(net(b, 2), lab_port()).into()],
    })
}

/// From now on, drop the first packet of at most 60 bytes (a keepalive probe carries no data)
/// that the client sends through the middlebox, before conntrack sees it.
pub(super) fn lose_next_probe(mb: &Middlebox) -> Result<(), LabError> {
    let client = match mb.client_addr {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => return Err(LabError::Ipv6Middlebox),
    };
    nft::load(
        &mb.middlebox,
        &format!(
            "table inet {LOSE_TABLE} {{\n  chain lose {{\n    type filter hook prerouting priority raw; policy accept;\n    \
             ip saddr {client} meta l4proto tcp quota until 60 bytes counter drop\n  }}\n}}\n"
        ),
    )
}

/// Two namespaces joined by one veth pair: client 10.77.N.2, server 10.77.N.1.
pub(super) fn build_pair(slot: u8) -> Result<(LabNs, LabNs, SocketAddrV4), LabError> {
    let client = LabNs::new("client")?;
    let server = LabNs::new("server")?;
    let n = 100 + slot;
    server.run(|| {
        rtnl::new_veth("sv0", 2, "cl0", 2, client.fd())?;
        rtnl::add_addr(2, Ipv4Addr::new(10, 77, n, 1), 24)?;
        Ok(rtnl::set_up(2)?)
    })?;
    client.run(|| {
        rtnl::add_addr(2, Ipv4Addr::new(10, 77, n, 2), 24)?;
        Ok(rtnl::set_up(2)?)
    })?;
    Ok((
        client,
        server,
        SocketAddrV4::new(Ipv4Addr::new(10, 77, n, 1), lab_port()),
    ))
}

pub(super) const CUT_TABLE: &str = "rstaudit_cut";
