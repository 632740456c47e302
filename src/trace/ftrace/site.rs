//! Where in the kernel a reset was sent: the function (a kprobe on it saw the call), the
//! functions above it on the kernel's stack, and what the probe read from the socket. Kernels
//! before 6.10 give no reason for a reset, and their `tcp:tcp_send_reset` fires only for full
//! sockets; the three functions below send every TCP reset, and their callers tell the
//! reasons apart (6.10 and later pass a reason at each of those calls). Pure types and
//! names; the probes are defined in `probes.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;
use smallvec::SmallVec;

use super::{SendReset, TaskContext};

/// The function a reset was sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SiteFn {
    /// `tcp_v4_send_reset`: a reset answering an IPv4 segment.
    #[serde(rename = "tcp_v4_send_reset")]
    V4Reply,
    /// `tcp_v6_send_reset`: a reset answering an IPv6 segment.
    #[serde(rename = "tcp_v6_send_reset")]
    V6Reply,
    /// `tcp_send_active_reset`: a reset the socket's owner or a timer sends (close, abort).
    #[serde(rename = "tcp_send_active_reset")]
    Active,
}

impl SiteFn {
    pub const ALL: [SiteFn; 3] = [Self::V4Reply, Self::V6Reply, Self::Active];

    /// The kernel's name of the function.
    pub fn kernel_name(self) -> &'static str {
        match self {
            Self::V4Reply => "tcp_v4_send_reset",
            Self::V6Reply => "tcp_v6_send_reset",
            Self::Active => "tcp_send_active_reset",
        }
    }

    /// The name of its kprobe event (in the group of the run).
    pub fn event_name(self) -> &'static str {
        match self {
            Self::V4Reply => "rst_v4",
            Self::V6Reply => "rst_v6",
            Self::Active => "rst_active",
        }
    }

    /// The site whose kprobe event has this name.
    pub fn from_event_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.event_name() == name)
    }

    /// Whether the reset answers a segment (rather than being sent by the socket's owner).
    pub fn answers_packet(self) -> bool {
        !matches!(self, Self::Active)
    }

    /// The `stacktrace` trigger of its kprobe event. The stack is recorded only where the
    /// callers tell causes apart: for every active reset, and for a reply only when a listener
    /// sends it (an embryonic reset from tcp_check_req, or the answer to a bare ACK). A reply
    /// without a socket, or for a TIME_WAIT entry or a closing socket, is told by its state
    /// alone, and a flood of them (a port scan) costs no stack unwinding in the kernel.
    pub fn stack_trigger(self) -> &'static str {
        match self {
            Self::Active => "stacktrace",
            // TCP_LISTEN is 10 (include/net/tcp_states.h); `state` is garbage when `sk` is 0,
            // and a stack recorded then by chance is harmless.
            Self::V4Reply | Self::V6Reply => "stacktrace if state == 10",
        }
    }
}

macro_rules! callers {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// Kernel functions above a reset site whose presence tells its reasons apart.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Caller {
            $(#[serde(rename = $name)] $variant,)*
            /// Any other function.
            #[serde(rename = "other")]
            Other,
        }

        impl Caller {
            /// Every function this module names, with its kernel name.
            pub const NAMED: &[(Caller, &'static str)] = &[$((Caller::$variant, $name)),*];
        }
    };
}

callers! {
    TcpV4Rcv = "tcp_v4_rcv",
    TcpV6Rcv = "tcp_v6_rcv",
    TcpV4DoRcv = "tcp_v4_do_rcv",
    TcpV6DoRcv = "tcp_v6_do_rcv",
    TcpCheckReq = "tcp_check_req",
    TcpRcvStateProcess = "tcp_rcv_state_process",
    TcpTimewaitStateProcess = "tcp_timewait_state_process",
    TcpCloseInner = "__tcp_close",
    TcpClose = "tcp_close",
    TcpDisconnect = "tcp_disconnect",
    TcpKeepaliveTimer = "tcp_keepalive_timer",
    TcpOutOfResources = "tcp_out_of_resources",
    TcpWriteTimeout = "tcp_write_timeout",
    InetChildForget = "inet_child_forget",
    InetCskListenStop = "inet_csk_listen_stop",
    TcpAbort = "tcp_abort",
    InetStreamConnect = "__inet_stream_connect",
    MptcpSubflowReset = "mptcp_subflow_reset",
}

impl Caller {
    /// The caller with this kernel name (a frame printed as `name+0x1f/0x80` is named by
    /// `name`), or [`Caller::Other`].
    pub fn from_name(name: &str) -> Self {
        let name = name.split('+').next().unwrap_or(name).trim();
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(Self::Other, |(c, _)| *c)
    }

    pub fn name(self) -> &'static str {
        Self::NAMED
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("other", |(_, n)| n)
    }
}

/// One frame of a kernel stack, as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Frame {
    Site(SiteFn),
    Caller(Caller),
}

impl Frame {
    /// The frame of a function with this kernel name.
    pub fn from_name(name: &str) -> Self {
        let bare = name.split('+').next().unwrap_or(name).trim();
        match SiteFn::ALL.into_iter().find(|s| s.kernel_name() == bare) {
            Some(s) => Self::Site(s),
            None => Self::Caller(Caller::from_name(bare)),
        }
    }
}

/// Every kernel name a frame can be told by: the sites, then the callers (the order
/// [`frame_of_index`] reads).
pub fn frame_names() -> Vec<&'static str> {
    SiteFn::ALL
        .iter()
        .map(|s| s.kernel_name())
        .chain(Caller::NAMED.iter().map(|(_, n)| *n))
        .collect()
}

/// The frame named by index `i` of [`frame_names`] (`None`: any other function).
pub fn frame_of_index(i: Option<usize>) -> Frame {
    match i {
        Some(i) if i < SiteFn::ALL.len() => Frame::Site(SiteFn::ALL[i]),
        Some(i) => Frame::Caller(
            Caller::NAMED
                .get(i - SiteFn::ALL.len())
                .map_or(Caller::Other, |(c, _)| *c),
        ),
        None => Frame::Caller(Caller::Other),
    }
}

/// The kernel's stack recorded right after a site's event (its `stacktrace` trigger), on CPU
/// `cpu`, nearest frame first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelStack {
    pub cpu: u32,
    pub frames: Vec<Frame>,
}

/// Callers kept per reset, nearest first.
pub const CALLERS_KEPT: usize = 8;

/// Where a reset was sent, as its kprobe saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetSite {
    pub function: SiteFn,
    /// The functions that called it, nearest first (at most [`CALLERS_KEPT`]); empty when no
    /// stack came with the event.
    pub callers: SmallVec<[Caller; CALLERS_KEPT]>,
    /// The stack came with the event (a stack of only unnamed functions still counts).
    pub stack: bool,
    /// For an active reset: the socket's rcv_nxt - copied_seq, the bytes received and not read
    /// by the application, counting a FIN as one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
    /// For an active reset: the socket's TCP_LINGER2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linger2: Option<i32>,
}

impl ResetSite {
    /// Whether its event is followed by a kernel stack (see [`SiteFn::stack_trigger`]): `state`
    /// is the socket's, as the event names it.
    pub fn expects_stack(&self, state: Option<&str>) -> bool {
        match self.function {
            SiteFn::Active => true,
            SiteFn::V4Reply | SiteFn::V6Reply => state == Some("TCP_LISTEN"),
        }
    }

    /// Take in the stack recorded after the event: the frames above the site's own function
    /// (the ones below it are the probe's machinery).
    pub fn take_stack(&mut self, stack: &KernelStack) {
        let own = stack
            .frames
            .iter()
            .position(|f| *f == Frame::Site(self.function));
        let above = match own {
            Some(i) => &stack.frames[i + 1..],
            None => &stack.frames[..],
        };
        self.callers = above
            .iter()
            .map(|f| match f {
                Frame::Caller(c) => *c,
                Frame::Site(_) => Caller::Other,
            })
            .take(CALLERS_KEPT)
            .collect();
        // Unnamed frames past the last named one say nothing.
        while self.callers.last() == Some(&Caller::Other) {
            self.callers.pop();
        }
        self.stack = true;
    }

    /// The nearest caller, when the stack came.
    pub fn caller(&self) -> Option<Caller> {
        self.callers.first().copied()
    }

    /// Whether `c` is among the callers.
    pub fn called_from(&self, c: Caller) -> bool {
        self.callers.contains(&c)
    }
}

/// The values a reset site's kprobe read (see `probes::definition`), as stored: ports and
/// addresses in network order, read as little-endian numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SiteValues {
    pub sk: u64,
    pub state: u64,
    /// The segment answered (replies): its TCP ports and IP header.
    pub th_sport: u64,
    pub th_dport: u64,
    /// IPv4: version and header length (0x45); IPv6: version and traffic class (0x6_).
    pub ip_first: u64,
    /// IPv6: the next header (6 for TCP).
    pub ip_nexthdr: u64,
    pub ip_saddr: u64,
    pub ip_daddr: u64,
    pub ip_saddr6: (u64, u64),
    pub ip_daddr6: (u64, u64),
    /// The socket (active resets).
    pub family: u64,
    pub sport: u64,
    pub dport: u64,
    pub saddr: u64,
    pub daddr: u64,
    pub saddr6: (u64, u64),
    pub daddr6: (u64, u64),
    pub rcv_nxt: u64,
    pub copied_seq: u64,
    pub linger2: i64,
}

fn port(stored: u64) -> u16 {
    (stored as u16).swap_bytes()
}

fn v4(stored: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from((stored as u32).to_le_bytes()))
}

fn v6((hi, lo): (u64, u64)) -> IpAddr {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_le_bytes());
    b[8..].copy_from_slice(&lo.to_le_bytes());
    IpAddr::V6(Ipv6Addr::from(b))
}

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;

impl SiteValues {
    /// The reset event these values describe: its ends (a reply goes back to where the
    /// segment came from; where the IP header is not where it is expected, only the ports are
    /// known and the address is left unspecified), the socket's state, the site.
    pub fn event(&self, function: SiteFn, task: TaskContext, states: &[&'static str]) -> SendReset {
        let state_name = |n: u64| {
            states
                .get(n as usize)
                .copied()
                .unwrap_or_else(|| super::intern::name(&format!("0x{n:x}")))
        };
        let (src, dst, state) = match function {
            SiteFn::V4Reply | SiteFn::V6Reply => {
                let (from, to) = match function {
                    SiteFn::V4Reply if self.ip_first == 0x45 => {
                        (v4(self.ip_saddr), v4(self.ip_daddr))
                    }
                    SiteFn::V6Reply if self.ip_first >> 4 == 6 && self.ip_nexthdr == 6 => {
                        (v6(self.ip_saddr6), v6(self.ip_daddr6))
                    }
                    SiteFn::V4Reply => (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::UNSPECIFIED.into()),
                    _ => (Ipv6Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()),
                };
                (
                    SocketAddr::new(to, port(self.th_dport)),
                    SocketAddr::new(from, port(self.th_sport)),
                    // Without a socket the state read is whatever lay at address 18: none.
                    if self.sk == 0 {
                        "UNKNOWN"
                    } else {
                        state_name(self.state)
                    },
                )
            }
            SiteFn::Active => {
                let (local, remote) = match self.family {
                    AF_INET6 => (v6(self.saddr6), v6(self.daddr6)),
                    AF_INET => (v4(self.saddr), v4(self.daddr)),
                    _ => (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::UNSPECIFIED.into()),
                };
                (
                    SocketAddr::new(local, port(self.sport)),
                    SocketAddr::new(remote, port(self.dport)),
                    state_name(self.state),
                )
            }
        };
        let active = function == SiteFn::Active;
        SendReset {
            task,
            has_skb: !active,
            has_sock: self.sk != 0,
            src: Some(src),
            dst: Some(dst),
            state: Some(state),
            reason: None,
            site: Some(Box::new(ResetSite {
                function,
                callers: SmallVec::new(),
                stack: false,
                unread: active.then(|| (self.rcv_nxt as u32).wrapping_sub(self.copied_seq as u32)),
                linger2: active.then_some(self.linger2 as i32),
            })),
        }
    }
}

/// Joins each reset site's event with the stack its trigger records right after it on the same
/// CPU. An event that expects a stack waits for it until the next such event on its CPU, or for
/// two reads of the trace (the stack may lie on the next page); then it goes on without one.
/// An event that expects none goes on at once.
#[derive(Debug, Default)]
pub struct StackJoin {
    held: Vec<(SendReset, u8)>,
}

impl StackJoin {
    /// Take in one event; what is ready goes to `out`.
    pub fn push(&mut self, ev: super::TraceEvent, out: &mut Vec<super::TraceEvent>) {
        use super::TraceEvent;
        match ev {
            TraceEvent::SendReset(s)
                if s.site
                    .as_ref()
                    .is_some_and(|site| site.expects_stack(s.state)) =>
            {
                if let Some(before) = self.take(s.task.cpu) {
                    out.push(TraceEvent::SendReset(before));
                }
                self.held.push((s, 0));
            }
            TraceEvent::Stack(stack) => {
                // A stack whose event went on without it is dropped.
                if let Some(mut s) = self.take(stack.cpu) {
                    if let Some(site) = s.site.as_mut() {
                        site.take_stack(&stack);
                    }
                    out.push(TraceEvent::SendReset(s));
                }
            }
            other => out.push(other),
        }
    }

    /// One read of the trace is over: events that waited for two go on without a stack.
    pub fn tick(&mut self, out: &mut Vec<super::TraceEvent>) {
        let mut i = 0;
        while i < self.held.len() {
            self.held[i].1 += 1;
            if self.held[i].1 >= 2 {
                out.push(super::TraceEvent::SendReset(self.held.swap_remove(i).0));
            } else {
                i += 1;
            }
        }
    }

    /// The trace has ended: everything held goes on.
    pub fn finish(&mut self, out: &mut Vec<super::TraceEvent>) {
        out.extend(
            self.held
                .drain(..)
                .map(|(s, _)| super::TraceEvent::SendReset(s)),
        );
    }

    fn take(&mut self, cpu: u32) -> Option<SendReset> {
        let i = self.held.iter().position(|(s, _)| s.task.cpu == cpu)?;
        Some(self.held.swap_remove(i).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in SiteFn::ALL {
            assert_eq!(SiteFn::from_event_name(s.event_name()), Some(s));
            assert_eq!(Frame::from_name(s.kernel_name()), Frame::Site(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.kernel_name())
            );
        }
        for (c, n) in Caller::NAMED {
            assert_eq!(Caller::from_name(n), *c);
            assert_eq!(c.name(), *n);
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(n));
        }
        assert_eq!(
            Caller::from_name("tcp_v4_rcv+0x9fd/0xc40"),
            Caller::TcpV4Rcv
        );
        assert_eq!(Caller::from_name("kprobe_trace_func"), Caller::Other);
        let names = frame_names();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(frame_of_index(Some(i)), Frame::from_name(n));
        }
        assert_eq!(frame_of_index(None), Frame::Caller(Caller::Other));
    }

    #[test]
    fn the_callers_are_the_frames_above_the_site() {
        // The stack of a SO_LINGER {1, 0} close on 5.10.223 (kprobe machinery first).
        let stack = KernelStack {
            cpu: 0,
            frames: [
                "kprobe_trace_func",
                "kprobe_dispatcher",
                "kprobe_ftrace_handler",
                "ftrace_ops_list_func",
                "ftrace_regs_call",
                "tcp_send_active_reset",
                "tcp_disconnect",
                "__tcp_close",
                "tcp_close",
                "inet_release",
            ]
            .iter()
            .map(|n| Frame::from_name(n))
            .collect(),
        };
        let mut site = ResetSite {
            function: SiteFn::Active,
            callers: SmallVec::new(),
            stack: false,
            unread: Some(0),
            linger2: Some(0),
        };
        assert_eq!(site.caller(), None);
        site.take_stack(&stack);
        assert!(site.stack);
        assert_eq!(site.caller(), Some(Caller::TcpDisconnect));
        assert_eq!(
            &site.callers[..],
            [
                Caller::TcpDisconnect,
                Caller::TcpCloseInner,
                Caller::TcpClose,
            ]
        );
        assert!(site.called_from(Caller::TcpCloseInner));
    }
}
