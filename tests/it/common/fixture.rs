//! Compact builders for [`Snapshot`] fixtures: a healthy host by default,
//! then only what a test is about.

use std::net::IpAddr;
use std::sync::Arc;

use rstaudit::host::{
    CounterSample, Counters, Family, Kernel, KernelVersion, Linger, NetnsInfo, Note, Owner,
    Snapshot, SockOptions, Socket, SocketsSource, TcpInfo, TcpState, Timer,
};

/// Kernel defaults (6.12) for the keys the rules read, on a host with conntrack loaded.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_abort_on_overflow", "0"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_intvl", "75"),
    ("net.ipv4.tcp_keepalive_probes", "9"),
    ("net.ipv4.tcp_keepalive_time", "200"),
    ("net.ipv4.tcp_max_orphans", "65536"),
    ("net.ipv4.tcp_max_syn_backlog", "4096"),
    ("net.ipv4.tcp_max_tw_buckets", "262144"),
    ("net.ipv4.tcp_retries2", "15"),
    ("net.ipv4.tcp_rfc1337", "1"),
    ("net.ipv4.tcp_syn_retries", "6"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.ipv4.tcp_tw_reuse", "2"),
    ("net.netfilter.nf_conntrack_count", "10"),
    ("net.netfilter.nf_conntrack_max", "262144"),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        "432000",
    ),
];

/// A snapshot under construction.
pub struct Snap(pub Snapshot);

/// A healthy host: every rule quiet (keepalive_time is below the default idle timeout).
pub fn host() -> Snap {
    Snap(Snapshot {
        schema: rstaudit::host::SCHEMA_VERSION,
        taken_at_ms: 1_700_000_000_000,
        source: "fixture".to_string(),
        kernel: Kernel {
            release: "6.12.0".to_string(),
            version: Some(KernelVersion {
                major: 6,
                minor: 12,
                patch: 0,
            }),
        },
        netns: NetnsInfo {
            inode: Some(4026531840),
            name: "host".to_string(),
        },
        host: None,
        sysctls: DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        counters: Counters {
            first: Some(CounterSample {
                at_ms: 1_700_000_000_000,
                values: rstaudit::rules::known::COUNTERS
                    .iter()
                    .map(|c| (c.to_string(), 0))
                    .collect(),
            }),
            second: None,
        },
        sockets_source: SocketsSource::SockDiag,
        sockets: Vec::new(),
        notes: Vec::new(),
    })
}

impl Snap {
    pub fn sysctl(mut self, key: &str, value: &str) -> Self {
        self.0.sysctls.insert(key.to_string(), value.to_string());
        self
    }
    pub fn without(mut self, key: &str) -> Self {
        self.0.sysctls.remove(key);
        self
    }
    pub fn kernel(mut self, release: &str) -> Self {
        self.0.kernel = Kernel {
            release: release.to_string(),
            version: rstaudit::host::kernel::parse_release(release),
        };
        self
    }
    /// A counter read once (a total since boot).
    pub fn counter(mut self, name: &str, v: u64) -> Self {
        self.0
            .counters
            .first
            .as_mut()
            .unwrap()
            .values
            .insert(name.to_string(), v);
        if let Some(s) = self.0.counters.second.as_mut() {
            s.values.insert(name.to_string(), v);
        }
        self
    }
    /// A counter read twice, 10 s apart.
    pub fn counter2(mut self, name: &str, a: u64, b: u64) -> Self {
        let first = self.0.counters.first.clone().unwrap();
        let second = self.0.counters.second.get_or_insert_with(|| CounterSample {
            at_ms: first.at_ms + 10_000,
            values: first.values.clone(),
        });
        second.values.insert(name.to_string(), b);
        self.0
            .counters
            .first
            .as_mut()
            .unwrap()
            .values
            .insert(name.to_string(), a);
        self
    }
    pub fn note(mut self, area: &str, subject: Option<&str>, msg: &str) -> Self {
        self.0
            .notes
            .push(Note::new(area, subject.map(str::to_string), msg));
        self
    }
    pub fn socket(mut self, s: Sock) -> Self {
        self.0.sockets.push(s.0);
        self
    }
    pub fn sockets(mut self, n: usize, f: impl Fn(usize) -> Sock) -> Self {
        self.0.sockets.extend((0..n).map(|i| f(i).0));
        self
    }
    pub fn build(self) -> Snapshot {
        self.0
    }
}

/// A socket under construction.
pub struct Sock(pub Socket);

fn addr(s: &str) -> (IpAddr, u16) {
    let (ip, port) = s.rsplit_once(':').expect("ADDR:PORT");
    (
        ip.trim_matches(['[', ']']).parse().expect("ip"),
        port.parse().expect("port"),
    )
}

/// A socket in `state` between `local` and `remote` (`10.0.0.5:443`), with an inode and tcp_info.
pub fn sock(state: TcpState, local: &str, remote: &str) -> Sock {
    let (la, lp) = addr(local);
    let (ra, rp) = addr(remote);
    Sock(Socket {
        family: if la.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        },
        state,
        local_addr: la,
        local_port: lp,
        remote_addr: ra,
        remote_port: rp,
        rx_queue: 0,
        tx_queue: 0,
        accept_queue: None,
        backlog: None,
        timer: Timer::None,
        timer_expires_ms: None,
        retransmits: 0,
        inode: 1000,
        uid: 0,
        tcp_info: Some(TcpInfo::default()),
        owner: None,
        options: None,
    })
}

/// A socket from `local` to `remote_ip:port`: one of a fleet built with [`Snap::sockets`].
pub fn peer(state: TcpState, local: &str, remote_ip: &str, port: usize) -> Sock {
    sock(state, local, &format!("{remote_ip}:{port}"))
}

/// Client `i` of the nginx (pid 812) server on 10.0.0.5:443 that closes with
/// SO_LINGER {1, 0}: an established socket to 10.0.0.9, port 10000 + `i`.
pub fn nginx_linger0(i: usize) -> Sock {
    peer(TcpState::Established, "10.0.0.5:443", "10.0.0.9", 10000 + i)
        .owner(812, "nginx")
        .linger0()
}

/// A listener on `local` with this accept queue and backlog.
pub fn listener(local: &str, accept: u32, backlog: u32) -> Sock {
    let mut s = sock(TcpState::Listen, local, "0.0.0.0:0");
    s.0.accept_queue = Some(accept);
    s.0.backlog = Some(backlog);
    s.0.rx_queue = accept;
    s.0.tx_queue = backlog;
    s.0.tcp_info = None;
    s
}

impl Sock {
    pub fn owner(mut self, pid: u32, comm: &str) -> Self {
        self.0.owner = Some(Owner {
            pid,
            comm: Arc::from(comm),
            fd: 3,
        });
        self.0.options.get_or_insert_with(SockOptions::default);
        self
    }
    pub fn orphan(mut self) -> Self {
        self.0.inode = 0;
        self.0.owner = None;
        self
    }
    pub fn opts(mut self, f: impl FnOnce(&mut SockOptions)) -> Self {
        f(self.0.options.get_or_insert_with(SockOptions::default));
        self
    }
    pub fn linger0(self) -> Self {
        self.opts(|o| {
            o.linger = Some(Linger {
                on: true,
                seconds: 0,
            })
        })
    }
    pub fn keepalive(self, on: bool, idle: u32) -> Self {
        self.opts(|o| {
            o.keepalive = Some(on);
            o.keepidle = Some(idle);
            o.keepintvl = Some(75);
            o.keepcnt = Some(9);
        })
    }
    pub fn rx(mut self, bytes: u32) -> Self {
        self.0.rx_queue = bytes;
        self
    }
    pub fn idle_ms(mut self, ms: u32) -> Self {
        let info = self.0.tcp_info.get_or_insert_with(TcpInfo::default);
        info.last_data_recv_ms = ms;
        info.last_data_sent_ms = ms;
        self
    }
    pub fn retransmits(mut self, n: u8) -> Self {
        self.0.retransmits = n;
        self.0.timer = Timer::Retransmit;
        self
    }
}
