//! Collectors: what the host looks like, as a [`Snapshot`].
//!
//! Everything here reads the kernel (or a copied tree, or a saved file) and
//! nothing here knows about rules. A fact that could not be read becomes a
//! [`Note`] with the reason; it is never replaced by a silent default.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod counters;
pub mod files;
pub mod kernel;
pub mod netns;
pub mod options;
pub mod owners;
pub mod sockets;
pub mod sysctl;

/// The version of the snapshot format. Bump on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One network namespace of one host at one moment (docs/snapshot.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// When collection started, milliseconds since the Unix epoch.
    pub taken_at_ms: u64,
    /// Where the facts came from: `live`, `root:DIR` or `file:PATH`.
    pub source: String,
    pub kernel: Kernel,
    pub netns: NetnsInfo,
    /// Every readable key under /proc/sys/net, `net.ipv4.tcp_fin_timeout` -> raw text (trimmed).
    /// Global keys read outside the net tree that rules need (none today) would go here too.
    pub sysctls: BTreeMap<String, String>,
    pub counters: Counters,
    /// How the socket table was read.
    pub sockets_source: SocketsSource,
    pub sockets: Vec<Socket>,
    /// Everything that could not be read, and why.
    pub notes: Vec<Note>,
}

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// `uname -r`, e.g. `6.18.44-fc-v445`.
    pub release: String,
    /// Parsed (major, minor, patch), when the release parses.
    pub version: Option<KernelVersion>,
}

/// A parsed kernel version, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// Which network namespace the snapshot describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsInfo {
    /// Inode of the namespace (`ls -L -i /proc/self/ns/net`), when known.
    pub inode: Option<u64>,
    /// A friendly name: `host`, the /run/netns name, or `pid 812 (nginx)`.
    pub name: String,
}

/// MIB counters (TcpExt.*, Tcp.*, Ip6.*, ...), one or two samples.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// The sample taken with the rest of the snapshot.
    pub first: Option<CounterSample>,
    /// With `--interval`: a second sample, later.
    pub second: Option<CounterSample>,
}

/// One reading of /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSample {
    /// When it was read, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `Group.Name` -> value, e.g. `TcpExt.ListenOverflows`.
    pub values: BTreeMap<String, u64>,
}

/// How the socket table was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketsSource {
    /// NETLINK_SOCK_DIAG: full detail, including listener backlog and tcp_info.
    SockDiag,
    /// /proc/net/tcp{,6}: no backlog for listeners, no tcp_info.
    ProcNet,
    /// Not read at all (see notes).
    None,
}

/// Address family of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Inet,
    Inet6,
}

/// TCP state, named as the kernel names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

impl TcpState {
    /// From the kernel's numeric state (include/net/tcp_states.h).
    pub fn from_kernel(n: u8) -> Option<Self> {
        Some(match n {
            1 => Self::Established,
            2 => Self::SynSent,
            3 => Self::SynRecv,
            4 => Self::FinWait1,
            5 => Self::FinWait2,
            6 => Self::TimeWait,
            7 => Self::Close,
            8 => Self::CloseWait,
            9 => Self::LastAck,
            10 => Self::Listen,
            11 => Self::Closing,
            12 => Self::NewSynRecv,
            _ => return None,
        })
    }

    /// The name as `ss` and the kernel print it, e.g. `ESTABLISHED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait1 => "FIN_WAIT1",
            Self::FinWait2 => "FIN_WAIT2",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW_SYN_RECV",
        }
    }
}

/// Which timer is pending on a socket (idiag_timer / the `tr` column of /proc/net/tcp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    None,
    /// Retransmit or probe (1).
    Retransmit,
    /// Keepalive, also the orphan FIN_WAIT2 timer (2).
    Keepalive,
    /// TIME_WAIT (3).
    TimeWait,
    /// Zero-window probe (4).
    ZeroWindowProbe,
}

impl Timer {
    /// From the kernel's timer code.
    pub fn from_kernel(n: u8) -> Self {
        match n {
            1 => Self::Retransmit,
            2 => Self::Keepalive,
            3 => Self::TimeWait,
            4 => Self::ZeroWindowProbe,
            _ => Self::None,
        }
    }
}

/// One TCP socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Socket {
    pub family: Family,
    pub state: TcpState,
    pub local_addr: IpAddr,
    pub local_port: u16,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    /// Bytes not yet read by the application (for listeners: the accept-queue length).
    pub rx_queue: u32,
    /// Bytes not yet acknowledged by the peer (for listeners: the effective backlog).
    pub tx_queue: u32,
    /// Listeners: connections waiting in the accept queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_queue: Option<u32>,
    /// Listeners: the effective backlog, min(listen() argument, somaxconn). Unknown from /proc/net/tcp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    pub timer: Timer,
    /// Milliseconds until the timer fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_expires_ms: Option<u64>,
    /// Retransmits (or unanswered probes) of the pending timer.
    pub retransmits: u8,
    pub inode: u64,
    pub uid: u32,
    /// Selected fields of tcp_info (sock_diag only, not for TIME_WAIT / SYN_RECV minisockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfo>,
    /// The process holding the socket, when found in /proc/*/fd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Socket options read from the owner's descriptor (pidfd_getfd + getsockopt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<SockOptions>,
}

/// The parts of `struct tcp_info` the rules use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpInfo {
    /// Milliseconds since the last data was received.
    pub last_data_recv_ms: u32,
    /// Milliseconds since the last data was sent.
    pub last_data_sent_ms: u32,
    /// Milliseconds since the last ACK was received.
    pub last_ack_recv_ms: u32,
    /// Smoothed RTT, microseconds.
    pub rtt_us: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Unanswered keepalive / zero-window probes now.
    pub probes: u8,
}

/// The process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub pid: u32,
    /// Process name (/proc/PID/comm); shared between the sockets of one process.
    pub comm: Arc<str>,
    pub fd: u32,
}

/// Options read from a duplicate of the owner's socket. `None` = not read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SockOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger: Option<Linger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<bool>,
    /// TCP_KEEPIDLE, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepidle: Option<u32>,
    /// TCP_KEEPINTVL, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepintvl: Option<u32>,
    /// TCP_KEEPCNT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepcnt: Option<u32>,
    /// TCP_USER_TIMEOUT, milliseconds (0 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_timeout: Option<u32>,
    /// TCP_LINGER2, seconds (-1 = reset at close in FIN_WAIT2, 0 = tcp_fin_timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger2: Option<i32>,
}

/// SO_LINGER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linger {
    pub on: bool,
    pub seconds: i32,
}

/// Something that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// What part of the picture is affected: `sysctls`, `counters`, `sockets`, `owners`, `options`, `changed`, `netns`, `kernel`.
    pub area: String,
    /// The key, file, process or socket concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What happened and what to do about it.
    pub message: String,
}

impl Note {
    pub fn new(area: &str, subject: Option<String>, message: impl Into<String>) -> Self {
        Self {
            area: area.to_string(),
            subject,
            message: message.into(),
        }
    }
}

impl Snapshot {
    /// A sysctl's raw value, when it was read.
    pub fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctls.get(key).map(String::as_str)
    }

    /// A counter from the latest sample.
    pub fn counter(&self, name: &str) -> Option<u64> {
        let sample = self
            .counters
            .second
            .as_ref()
            .or(self.counters.first.as_ref())?;
        sample.values.get(name).copied()
    }

    /// The seconds between the two counter samples, when there are two.
    pub fn counter_window(&self) -> Option<f64> {
        let a = self.counters.first.as_ref()?;
        let b = self.counters.second.as_ref()?;
        Some(b.at_ms.saturating_sub(a.at_ms) as f64 / 1000.0)
    }

    /// The change of a counter between the two samples, and the window in seconds.
    pub fn counter_delta(&self, name: &str) -> Option<(u64, f64)> {
        let a = self.counters.first.as_ref()?;
        let b = self.counters.second.as_ref()?;
        let delta = b.values.get(name)?.saturating_sub(*a.values.get(name)?);
        Some((delta, self.counter_window()?))
    }
}

/// Where to read the host picture from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The running kernel (/proc, netlink, /proc/PID/fd).
    Live,
    /// A copied tree: ROOT/proc/sys/net, ROOT/proc/net, ROOT/proc/sys/kernel/osrelease.
    Root(std::path::PathBuf),
    /// A saved snapshot file (JSON or YAML; one snapshot or a list).
    File(std::path::PathBuf),
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub source: Source,
    /// `--netns NAME|PATH|all` (live only).
    pub netns: Option<String>,
    /// `--interval SECONDS`: sample counters twice.
    pub interval: Option<f64>,
    /// Map sockets to processes (/proc/*/fd).
    pub owners: bool,
    /// Read socket options through pidfd_getfd (implies owners).
    pub options: bool,
}

/// Collect one snapshot per network namespace asked for (one, unless `--netns all`).
///
/// Facts that cannot be read become notes; an error means nothing useful could be
/// collected (unreadable or malformed input, a namespace that cannot be entered).
pub fn collect(opts: &CollectOptions) -> anyhow::Result<Vec<Snapshot>> {
    match &opts.source {
        // The command line refuses these combinations before they get here.
        Source::File(path) => {
            if opts.interval.is_some() {
                anyhow::bail!(
                    "a sampling interval needs the live host; a saved snapshot holds the samples it was taken with"
                );
            }
            load(path)
        }
        Source::Root(dir) => {
            if opts.interval.is_some() || opts.netns.is_some() {
                anyhow::bail!(
                    "a sampling interval or a namespace needs the live host, not a copied tree"
                );
            }
            Ok(vec![collect_root(dir, opts)?])
        }
        Source::Live => collect_live(opts),
    }
}

/// Read snapshots saved by `rstaudit snapshot` (JSON or YAML; one snapshot or a list).
pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<Snapshot>> {
    use anyhow::Context;
    let text = crate::input::read_data(path)
        .with_context(|| format!("reading snapshot {}", path.display()))?;
    parse_saved(&text, path)
}

/// Parse the text of a saved snapshot file; `path` names it in messages. Takes the text so
/// tests and fuzzers can feed it directly.
pub fn parse_saved(text: &str, path: &std::path::Path) -> anyhow::Result<Vec<Snapshot>> {
    let shown = path.display();
    let trimmed = text.trim_start();
    let what = "is not an rstaudit snapshot";
    // The nesting guard of `input::read_data` decides the syntax the same way.
    let snapshots: Vec<Snapshot> = if crate::input::looks_like_json(text) {
        let json_err = |e: serde_json::Error| {
            anyhow::anyhow!(
                "{shown}:{}:{}: {what}: {}",
                e.line(),
                e.column(),
                crate::input::parser_message(&e)
            )
        };
        // The common case first: a well-formed file parses straight into the typed
        // snapshot (a generic Value of 100,000 sockets would take ten times the memory).
        // Anything else goes the slow way below, for the same checks and messages.
        let typed = if trimmed.starts_with('[') {
            serde_json::from_str::<Vec<Snapshot>>(text).ok()
        } else {
            serde_json::from_str::<Snapshot>(text).ok().map(|s| vec![s])
        };
        if let Some(snapshots) = typed {
            check_schema(
                path,
                snapshots
                    .iter()
                    .map(|s| Some(u64::from(s.schema)))
                    .collect(),
            )?;
            return non_empty(snapshots, path);
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
        if !value.is_object() && !value.is_array() {
            anyhow::bail!(
                "{shown}: {what}: expected an object with \"schema\": {SCHEMA_VERSION} (or a list of them)"
            );
        }
        check_schema(
            path,
            value.as_array().map_or_else(
                || vec![value.get("schema").and_then(serde_json::Value::as_u64)],
                |a| {
                    a.iter()
                        .map(|v| v.get("schema").and_then(serde_json::Value::as_u64))
                        .collect()
                },
            ),
        )?;
        let typed = if value.is_array() {
            serde_json::from_str::<Vec<Snapshot>>(text)
        } else {
            serde_json::from_str::<Snapshot>(text).map(|s| vec![s])
        };
        typed.map_err(json_err)?
    } else {
        let yaml_err = |e: serde_yaml::Error| match e.location() {
            Some(l) => anyhow::anyhow!(
                "{shown}:{}:{}: {what}: {}",
                l.line(),
                l.column(),
                crate::input::parser_message(&e)
            ),
            None => anyhow::anyhow!("{shown}: {what}: {e}"),
        };
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(yaml_err)?;
        if !value.is_mapping() && !value.is_sequence() {
            anyhow::bail!(
                "{shown}: {what}: expected a mapping with `schema: {SCHEMA_VERSION}` (or a list of them)"
            );
        }
        let schema_of = |v: &serde_yaml::Value| v.get("schema").and_then(serde_yaml::Value::as_u64);
        check_schema(
            path,
            match value.as_sequence() {
                Some(seq) => seq.iter().map(schema_of).collect(),
                None => vec![schema_of(&value)],
            },
        )?;
        if value.is_sequence() {
            serde_yaml::from_str::<Vec<Snapshot>>(text).map_err(yaml_err)?
        } else {
            vec![serde_yaml::from_str::<Snapshot>(text).map_err(yaml_err)?]
        }
    };
    non_empty(snapshots, path)
}

fn non_empty(snapshots: Vec<Snapshot>, path: &std::path::Path) -> anyhow::Result<Vec<Snapshot>> {
    if snapshots.is_empty() {
        anyhow::bail!("{}: holds an empty list, not a snapshot", path.display());
    }
    Ok(snapshots)
}

/// Whether a saved snapshot file holds a list (as `--netns all` writes) rather than one
/// snapshot, so that converting it keeps its shape. False when it cannot be read.
pub fn file_holds_list(path: &std::path::Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Only the start of the file decides; opened without blocking (a FIFO put in its place
    // since it was read must not hang), read at most 64 KiB.
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let mut head = Vec::new();
    if file.take(64 * 1024).read_to_end(&mut head).is_err() {
        return false;
    }
    text_holds_list(&String::from_utf8_lossy(&head))
}

/// Whether snapshot text (JSON, or YAML as `rstaudit snapshot` writes it) starts a list: its
/// first line that is not blank, a comment, a directive or `---` opens a JSON array, a YAML
/// flow sequence (`[`) or a block sequence (`-` in the first column).
fn text_holds_list(text: &str) -> bool {
    let first = text.lines().find(|l| {
        let t = l.trim();
        !(t.is_empty() || t.starts_with('#') || t.starts_with('%') || t == "---")
    });
    first.is_some_and(|l| {
        let t = l.trim_start();
        t.starts_with('[') || l == "-" || l.starts_with("- ") || l.starts_with("-\t")
    })
}

fn check_schema(path: &std::path::Path, schemas: Vec<Option<u64>>) -> anyhow::Result<()> {
    for schema in schemas.into_iter().flatten() {
        if schema != u64::from(SCHEMA_VERSION) {
            anyhow::bail!(
                "{}: snapshot schema {schema} is not supported (this rstaudit reads schema {SCHEMA_VERSION})",
                path.display()
            );
        }
    }
    Ok(())
}

fn check_interval(interval: Option<f64>) -> anyhow::Result<Option<std::time::Duration>> {
    match interval {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.1..=3600.0).contains(&s) => {
            Ok(Some(std::time::Duration::from_secs_f64(s)))
        }
        Some(s) => anyhow::bail!("--interval {s}: expected a number of seconds from 0.1 to 3600"),
    }
}

fn collect_root(dir: &std::path::Path, opts: &CollectOptions) -> anyhow::Result<Snapshot> {
    use files::Place;
    if !dir.is_dir() {
        anyhow::bail!("--root {}: not a directory", dir.display());
    }
    if !dir.join("proc/sys/net").exists() && !dir.join("proc/net").exists() {
        anyhow::bail!(
            "--root {}: holds neither proc/sys/net nor proc/net; give the directory that contains the copied proc/",
            dir.display()
        );
    }
    let place = Place::Root(dir);
    let mut notes = Vec::new();
    let taken_at_ms = files::now_ms();
    let osrelease = dir.join("proc/sys/kernel/osrelease");
    let read = files::open_in_tree(dir, &osrelease).and_then(|f| {
        let bytes = files::read_small(f, 256)?.ok_or_else(|| {
            std::io::Error::other("longer than 256 bytes, more than any kernel release")
        })?;
        String::from_utf8(bytes)
            .ok()
            .filter(|t| !t.contains('\0'))
            .ok_or_else(|| std::io::Error::other("not text (not UTF-8, or a NUL byte)"))
    });
    let release = match read {
        Ok(text) => text.trim().to_string(),
        Err(e) => {
            notes.push(Note::new(
                "kernel",
                Some(osrelease.display().to_string()),
                format!("kernel release unknown: {e}"),
            ));
            String::new()
        }
    };
    // Optional: the distribution's patch level when the release hides it (Debian).
    let proc_version = files::open_in_tree(dir, &dir.join("proc/version"))
        .and_then(|f| files::read_small(f, 1024))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let sysctls = sysctl::walk_net(place, &mut notes);
    let first = counters::read_sample(place, &mut notes)?;
    let (sockets_source, sockets) = sockets::read(place, &mut notes)?;
    if opts.owners || opts.options {
        notes.push(Note::new(
            "owners",
            None,
            "socket owners and options are not read from a copied tree",
        ));
    }
    Ok(Snapshot {
        schema: SCHEMA_VERSION,
        taken_at_ms,
        source: format!("root:{}", dir.display()),
        kernel: kernel::from_texts(&release, proc_version.as_deref()),
        netns: NetnsInfo {
            inode: None,
            name: format!("root:{}", dir.display()),
        },
        sysctls,
        counters: Counters {
            first,
            second: None,
        },
        sockets_source,
        sockets,
        notes,
    })
}

/// One namespace to collect in.
struct Target {
    name: String,
    inode: Option<u64>,
    /// The namespace file; `None` = the caller's own namespace, entered by nobody.
    path: Option<std::path::PathBuf>,
    /// Found by `--netns all`: skip it quietly if it is gone by the time we get to it.
    optional: bool,
}

/// Run `work` in the target's namespace. The namespace file is opened only for the
/// duration of the work, so a run does not keep other namespaces alive. `Ok(None)`: an
/// optional namespace that is gone (its process exited, or the pid now names another one).
fn in_target<T: Send>(
    target: &Target,
    work: impl FnOnce() -> T + Send,
) -> anyhow::Result<Option<T>> {
    use anyhow::Context;
    use std::os::unix::fs::MetadataExt;
    let Some(path) = &target.path else {
        return Ok(Some(work()));
    };
    // Opened without blocking, and checked to be a network namespace: a path can have been
    // replaced by anything (a FIFO included) since it was listed or resolved.
    let file = match netns::open(path) {
        Ok(file) => file,
        Err(_) if target.optional => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("opening network namespace {}", path.display()));
        }
    };
    let kind = netns::check_net_ns(&file);
    if target.optional && (file.metadata().map(|m| m.ino()).ok() != target.inode || kind.is_err()) {
        return Ok(None);
    }
    kind.map_err(|why| {
        anyhow::anyhow!(
            "network namespace {}: {} is not a network namespace file ({why})",
            target.name,
            path.display()
        )
    })?;
    netns::run_in_file(&file, &target.name, work).map(Some)
}

/// The note for a namespace found by `--netns all` that was gone before it could be read.
pub const GONE_NETNS: &str =
    "went away while rstaudit ran (its last process exited, or its name was deleted): not read";

fn targets(spec: Option<&str>, notes: &mut Vec<Note>) -> anyhow::Result<Vec<Target>> {
    match spec {
        None => Ok(vec![Target {
            name: netns::own_name(netns::current_inode().ok()),
            inode: netns::current_inode().ok(),
            path: None,
            optional: false,
        }]),
        Some("all") => {
            let own = netns::current_inode().ok();
            Ok(netns::list_all(notes)
                .into_iter()
                .map(|ns| Target {
                    path: (Some(ns.inode) != own).then_some(ns.path),
                    name: ns.name,
                    inode: Some(ns.inode),
                    optional: true,
                })
                .collect())
        }
        Some(spec) => {
            let ns = netns::resolve(spec)?;
            Ok(vec![Target {
                name: ns.name,
                inode: Some(ns.inode),
                path: Some(ns.path),
                optional: false,
            }])
        }
    }
}

/// Sysctls, counters and sockets of the calling thread's namespace.
fn collect_here(kernel: &Kernel, target: &Target) -> anyhow::Result<Snapshot> {
    use files::Place;
    let mut notes = Vec::new();
    let taken_at_ms = files::now_ms();
    let first = counters::read_sample(Place::Live, &mut notes)?;
    let (sockets_source, sockets) = sockets::read(Place::Live, &mut notes)?;
    let sysctls = sysctl::walk_net(Place::Live, &mut notes);
    Ok(Snapshot {
        schema: SCHEMA_VERSION,
        taken_at_ms,
        source: "live".to_string(),
        kernel: kernel.clone(),
        netns: NetnsInfo {
            inode: target.inode,
            name: target.name.clone(),
        },
        sysctls,
        counters: Counters {
            first,
            second: None,
        },
        sockets_source,
        sockets,
        notes,
    })
}

fn live_kernel() -> Kernel {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let proc_version = std::fs::File::open("/proc/version")
        .and_then(|f| files::read_small(f, 1024))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    kernel::from_texts(&release, proc_version.as_deref())
}

fn collect_live(opts: &CollectOptions) -> anyhow::Result<Vec<Snapshot>> {
    let interval = check_interval(opts.interval)?;
    let mut listing_notes = Vec::new();
    let targets = targets(opts.netns.as_deref(), &mut listing_notes)?;
    let kernel = live_kernel();
    let want_owners = opts.owners || opts.options;
    std::thread::scope(|scope| -> anyhow::Result<Vec<Snapshot>> {
        // The owner scan does not depend on the namespace: run it once, on the other core,
        // while the namespaces are read.
        let owner_scan =
            want_owners.then(|| scope.spawn(|| owners::scan(std::path::Path::new("/proc"))));
        let mut snapshots = Vec::with_capacity(targets.len());
        let mut taken = Vec::with_capacity(targets.len());
        for target in &targets {
            let start = std::time::Instant::now();
            match in_target(target, || collect_here(&kernel, target))? {
                Some(snapshot) => {
                    snapshots.push(snapshot?);
                    taken.push((target, start));
                }
                // Found by `--netns all`, gone before its turn: said, not silently dropped.
                None => {
                    listing_notes.push(Note::new("netns", Some(target.name.clone()), GONE_NETNS))
                }
            }
        }
        if let Some(interval) = interval {
            for (snapshot, (target, start)) in snapshots.iter_mut().zip(&taken) {
                std::thread::sleep(
                    (*start + interval).saturating_duration_since(std::time::Instant::now()),
                );
                let mut notes = Vec::new();
                match in_target(target, || {
                    counters::read_sample(files::Place::Live, &mut notes)
                })? {
                    Some(second) => snapshot.counters.second = second?,
                    None => notes.push(Note::new(
                        "counters",
                        Some(target.name.clone()),
                        "no second sample: the namespace was gone before it could be taken",
                    )),
                }
                for note in notes {
                    if !snapshot.notes.contains(&note) {
                        snapshot.notes.push(note);
                    }
                }
            }
        }
        if let Some(first) = snapshots.first_mut() {
            first.notes.extend(listing_notes);
        }
        if let Some(handle) = owner_scan {
            let map = handle
                .join()
                .map_err(|_| anyhow::anyhow!("the socket owner scan panicked"))?;
            for snapshot in &mut snapshots {
                for socket in &mut snapshot.sockets {
                    if socket.inode != 0 {
                        socket.owner = map.by_inode.get(&socket.inode).cloned();
                    }
                }
                snapshot.notes.extend(map.notes.iter().cloned());
                if opts.options {
                    let notes = options::read_all(&mut snapshot.sockets);
                    snapshot.notes.extend(notes);
                }
            }
        }
        Ok(snapshots)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_or_single_is_told_from_the_start_of_the_text() {
        let one = minimal();
        let list = vec![minimal(), minimal()];
        let cases = [
            (serde_json::to_string_pretty(&one).unwrap(), false),
            (serde_json::to_string_pretty(&list).unwrap(), true),
            (serde_json::to_string(&list).unwrap(), true),
            (serde_yaml::to_string(&one).unwrap(), false),
            (serde_yaml::to_string(&list).unwrap(), true),
            (
                format!("# saved\n---\n{}", serde_yaml::to_string(&list).unwrap()),
                true,
            ),
            ("\n\n  [ {\"schema\": 1} ]".to_string(), true),
            ("schema: 1\nsockets:\n- a\n".to_string(), false),
            ("-1".to_string(), false),
            (String::new(), false),
        ];
        for (text, is_list) in cases {
            assert_eq!(text_holds_list(&text), is_list, "{text:.80}");
            // And agrees with what the parser takes the text for.
            if let Ok(parsed) = parse_saved(&text, std::path::Path::new("t")) {
                assert_eq!(parsed.len() > 1, is_list, "{text:.80}");
            }
        }
    }

    fn minimal() -> Snapshot {
        Snapshot {
            schema: SCHEMA_VERSION,
            taken_at_ms: 1,
            source: "live".to_string(),
            kernel: Kernel {
                release: "6.1.0".to_string(),
                version: kernel::parse_release("6.1.0"),
            },
            netns: NetnsInfo {
                inode: None,
                name: "host".to_string(),
            },
            sysctls: BTreeMap::new(),
            counters: Counters::default(),
            sockets_source: SocketsSource::None,
            sockets: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn well_formed_files_load_directly_and_still_have_their_schema_checked() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.json");
        std::fs::write(&one, serde_json::to_vec_pretty(&minimal()).unwrap()).unwrap();
        assert_eq!(load(&one).unwrap(), vec![minimal()]);
        let list = dir.path().join("list.json");
        let two = vec![minimal(), minimal()];
        std::fs::write(&list, serde_json::to_vec(&two).unwrap()).unwrap();
        assert_eq!(load(&list).unwrap(), two);
        // A newer schema that otherwise parses is refused all the same.
        let mut newer = minimal();
        newer.schema = SCHEMA_VERSION + 1;
        let path = dir.path().join("newer.json");
        std::fs::write(&path, serde_json::to_vec(&newer).unwrap()).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("is not supported"), "{err}");
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, "[]").unwrap();
        let err = load(&empty).unwrap_err().to_string();
        assert!(err.contains("empty list"), "{err}");
    }
}
