//! The few rtnetlink requests the lab needs: veth pairs, link up, IPv4
//! addresses and a default route, all in the calling thread's namespace.
//!
//! Call these only from a thread inside a lab namespace ([`super::netns::LabNs`]):
//! the netlink socket belongs to the namespace of the thread that opens it,
//! so the host's namespace is never addressed. Interfaces are created with
//! fixed indexes (the lab's namespaces are empty: loopback is 1), which
//! spares a name lookup.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Why a request failed: the socket, or the request (`what` says which) and its answer.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// `step` is `opening`, `binding` or `connecting`.
    #[error("{step} a netlink socket")]
    Socket {
        step: &'static str,
        source: std::io::Error,
    },
    /// Sending the request failed, or the kernel refused it.
    #[error("netlink: {what}")]
    Refused {
        what: String,
        source: std::io::Error,
    },
    #[error("netlink: {what}: reading the answer")]
    Answer {
        what: String,
        source: std::io::Error,
    },
    #[error("netlink: {what}: bad answer: {why}")]
    BadAnswer { what: String, why: String },
}

/// Send one request and wait for its acknowledgement.
fn request(message: RouteNetlinkMessage, what: &str) -> Result<(), NetlinkError> {
    let socket_step = |step| move |source| NetlinkError::Socket { step, source };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(socket_step("opening"))?;
    socket.bind_auto().map_err(socket_step("binding"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(socket_step("connecting"))?;
    let refused = |source| NetlinkError::Refused {
        what: what.to_string(),
        source,
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    header.sequence_number = 1;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0).map_err(refused)?;
    let mut reply = vec![0u8; 8192];
    loop {
        let n = socket
            .recv(&mut &mut reply[..], 0)
            .map_err(|source| NetlinkError::Answer {
                what: what.to_string(),
                source,
            })?;
        let mut offset = 0;
        while offset < n {
            let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[offset..n])
                .map_err(|e| NetlinkError::BadAnswer {
                    what: what.to_string(),
                    why: e.to_string(),
                })?;
            let len = parsed.header.length as usize;
            if let NetlinkPayload::Error(err) = parsed.payload {
                return match err.code {
                    None => Ok(()),
                    Some(_) => Err(refused(err.to_io())),
                };
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

/// Bring the interface with this index up.
pub fn set_up(index: u32) -> Result<(), NetlinkError> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    request(
        RouteNetlinkMessage::SetLink(link),
        &format!("setting link {index} up"),
    )
}

/// Create a veth pair: `name` (index `index`) here, its peer `peer_name`
/// (index `peer_index`) in the namespace `peer_ns`.
pub fn new_veth(
    name: &str,
    index: u32,
    peer_name: &str,
    peer_index: u32,
    peer_ns: BorrowedFd<'_>,
) -> Result<(), NetlinkError> {
    let mut peer = LinkMessage::default();
    peer.header.index = peer_index;
    peer.attributes = vec![
        LinkAttribute::IfName(peer_name.to_string()),
        LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
    ];
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.attributes = vec![
        LinkAttribute::IfName(name.to_string()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]),
    ];
    request(
        RouteNetlinkMessage::NewLink(link),
        &format!("creating veth pair {name}/{peer_name}"),
    )
}

/// Add `addr/prefix` to the interface with this index.
pub fn add_addr(index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetlinkError> {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = prefix;
    msg.header.index = index;
    msg.attributes = vec![
        AddressAttribute::Local(addr.into()),
        AddressAttribute::Address(addr.into()),
    ];
    request(
        RouteNetlinkMessage::NewAddress(msg),
        &format!("adding {addr}/{prefix} to link {index}"),
    )
}

/// Add a default route via `gateway`.
pub fn add_default_route(gateway: Ipv4Addr) -> Result<(), NetlinkError> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Static;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet(gateway))];
    request(
        RouteNetlinkMessage::NewRoute(msg),
        &format!("adding a default route via {gateway}"),
    )
}
