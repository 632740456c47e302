//! Kprobe events on the three functions that send every TCP reset (see `site.rs`), defined in
//! tracefs's `kprobe_events` with the socket and packet fields each reads, at offsets taken
//! from the kernel's own type information (BTF). They are global to the kernel (the instance
//! only enables them): their group is named after this process (`rstaudit_PID`), like the
//! instance, and a run removes the groups of processes that are gone.
//!
//! `kprobe_events` is shared with every other user of the kernel's probes: it is only ever
//! opened to append (opening it with O_TRUNC would delete every probe on the system), and only
//! this tool's own groups are removed.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::host::bpf::btf::{self, Btf, BtfError};

use super::{SiteFn, Tracefs};

/// Prefix of the kprobe groups this tool defines.
pub const GROUP_PREFIX: &str = "rstaudit_";

/// Why the reset sites cannot be probed here.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "{} is missing: this kernel has no kprobe events (CONFIG_KPROBE_EVENTS, or CONFIG_KPROBES, is not set)",
        .0.display()
    )]
    NoKprobeEvents(PathBuf),
    #[error("the kernel refused the probe on {function}: {err}{log}")]
    Refused {
        function: &'static str,
        err: io::Error,
        /// The kernel's own words from tracefs's `error_log`, when it wrote any.
        log: String,
    },
    #[error(
        "the kernel's type information (/sys/kernel/btf/vmlinux) is needed for the probes' offsets: {0}"
    )]
    NoBtf(io::Error),
    #[error("the kernel's type information: {0}")]
    Btf(#[from] BtfError),
    #[error("{}: {err}", .path.display())]
    Io { path: PathBuf, err: io::Error },
}

/// Structs whose members the probes read.
pub const WANTED: &[(&str, &str)] = &[
    ("struct", "sock_common"),
    ("struct", "inet_sock"),
    ("struct", "tcp_sock"),
    ("struct", "sk_buff"),
];

/// Byte offsets of what the probes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub state: u32,
    pub family: u32,
    pub dport: u32,
    pub daddr: u32,
    pub rcv_saddr: u32,
    pub v6_daddr: u32,
    pub v6_rcv_saddr: u32,
    /// `inet_sock.inet_sport`: the local port in network order (`skc_num` is cleared when the
    /// socket is unhashed, before an active reset is sent).
    pub sport: u32,
    pub rcv_nxt: u32,
    pub copied_seq: u32,
    pub linger2: u32,
    /// `sk_buff.data`: the segment being answered, at its TCP header.
    pub skb_data: u32,
}

impl Offsets {
    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        let sk = |m: &str| btf.member("sock_common", m).map(|f| f.offset);
        let tp = |m: &str| btf.member("tcp_sock", m).map(|f| f.offset);
        Ok(Self {
            state: sk("skc_state")?,
            family: sk("skc_family")?,
            dport: sk("skc_dport")?,
            daddr: sk("skc_daddr")?,
            rcv_saddr: sk("skc_rcv_saddr")?,
            v6_daddr: sk("skc_v6_daddr")?,
            v6_rcv_saddr: sk("skc_v6_rcv_saddr")?,
            sport: btf.member("inet_sock", "inet_sport")?.offset,
            rcv_nxt: tp("rcv_nxt")?,
            copied_seq: tp("copied_seq")?,
            linger2: tp("linger2")?,
            skb_data: btf.member("sk_buff", "data")?.offset,
        })
    }

    /// Read the running kernel's BTF.
    pub fn running() -> Result<Self, ProbeError> {
        let data = btf::read_vmlinux().map_err(ProbeError::NoBtf)?;
        let btf = Btf::parse(&data, WANTED)?;
        Ok(Self::from_btf(&btf)?)
    }
}

/// The `kprobe_events` line defining the probe of `site` in `group`. Ports and addresses are
/// read as stored (network order); the decoder turns them around.
pub fn definition(group: &str, site: SiteFn, o: &Offsets) -> String {
    let sock = format!("sk=$arg1:x64 state=+{}($arg1):u8", o.state);
    // The segment answered: its TCP header at skb->data, the IP header just before it (20
    // bytes for IPv4 without options, 40 for IPv6 without extension headers; the decoder checks
    // the version and length byte, and the next-header byte).
    let d = format!("+{}($arg2)", o.skb_data);
    let rest = match site {
        SiteFn::V4Reply => format!(
            "th_sport=+0({d}):u16 th_dport=+2({d}):u16 ip_vihl=-20({d}):u8 ip_saddr=-8({d}):u32 ip_daddr=-4({d}):u32"
        ),
        SiteFn::V6Reply => format!(
            "th_sport=+0({d}):u16 th_dport=+2({d}):u16 ip_vtc=-40({d}):u8 ip_nexthdr=-34({d}):u8 \
             ip_saddr_hi=-32({d}):x64 ip_saddr_lo=-24({d}):x64 ip_daddr_hi=-16({d}):x64 ip_daddr_lo=-8({d}):x64"
        ),
        SiteFn::Active => format!(
            "family=+{}($arg1):u16 sport=+{}($arg1):u16 dport=+{}($arg1):u16 saddr=+{}($arg1):u32 \
             daddr=+{}($arg1):u32 saddr6_hi=+{}($arg1):x64 saddr6_lo=+{}($arg1):x64 \
             daddr6_hi=+{}($arg1):x64 daddr6_lo=+{}($arg1):x64 rcv_nxt=+{}($arg1):u32 \
             copied_seq=+{}($arg1):u32 linger2=+{}($arg1):s32",
            o.family,
            o.sport,
            o.dport,
            o.rcv_saddr,
            o.daddr,
            o.v6_rcv_saddr,
            o.v6_rcv_saddr + 8,
            o.v6_daddr,
            o.v6_daddr + 8,
            o.rcv_nxt,
            o.copied_seq,
            o.linger2
        ),
    };
    format!(
        "p:{group}/{} {} {sock} {rest}",
        site.event_name(),
        site.kernel_name()
    )
}

/// The probes of this run, defined in `kprobe_events`. Removed by [`SiteProbes::remove`] or on
/// drop, which must come after the instance that enables them is gone (the kernel keeps a
/// probe that an instance still uses: EBUSY).
#[derive(Debug)]
pub struct SiteProbes {
    root: PathBuf,
    group: String,
    defined: Vec<SiteFn>,
}

/// The group name of process `pid` (with its PID namespace's tag,
/// [`crate::host::process::pid_ns_tag`]).
pub fn group_of(pid: u32) -> String {
    format!("{GROUP_PREFIX}{}{pid}", crate::host::process::pid_ns_tag())
}

fn append(path: &Path, line: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}

impl SiteProbes {
    /// Define the three probes in `group`. On failure nothing stays defined.
    pub fn define(tracefs: &Tracefs, group: &str, o: &Offsets) -> Result<Self, ProbeError> {
        let events = tracefs.root.join("kprobe_events");
        if !events.exists() {
            return Err(ProbeError::NoKprobeEvents(events));
        }
        let mut probes = Self {
            root: tracefs.root.clone(),
            group: group.to_string(),
            defined: Vec::new(),
        };
        for site in SiteFn::ALL {
            if let Err(err) = append(&events, &definition(group, site, o)) {
                let log = std::fs::read_to_string(tracefs.root.join("error_log"))
                    .ok()
                    .and_then(|l| {
                        l.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(str::to_string)
                    })
                    .map(|l| format!(" ({})", l.trim()))
                    .unwrap_or_default();
                return Err(ProbeError::Refused {
                    function: site.kernel_name(),
                    err,
                    log,
                });
            }
            probes.defined.push(site);
        }
        Ok(probes)
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// The event directory of `site` under an `events/` tree (of an instance).
    pub fn event_dir(&self, events: &Path, site: SiteFn) -> PathBuf {
        events.join(&self.group).join(site.event_name())
    }

    /// Delete the probes (each tried, the first failure reported).
    pub fn remove(mut self) -> Result<(), ProbeError> {
        self.delete()
    }

    fn delete(&mut self) -> Result<(), ProbeError> {
        let events = self.root.join("kprobe_events");
        let mut first = None;
        for site in std::mem::take(&mut self.defined) {
            if let Err(err) = delete_probe(&events, &self.group, site.event_name()) {
                first.get_or_insert(ProbeError::Io {
                    path: events.clone(),
                    err,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for SiteProbes {
    fn drop(&mut self) {
        let _ = self.delete();
    }
}

/// `-:GROUP/NAME`, retried for a moment while the kernel still holds the event (an instance
/// being torn down).
fn delete_probe(events: &Path, group: &str, name: &str) -> io::Result<()> {
    let mut last = None;
    for _ in 0..25 {
        match append(events, &format!("-:{group}/{name}")) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// The (group, event) pairs of this tool's probes in `kprobe_events` text
/// (`p:GROUP/EVENT FUNCTION ARGS...` lines).
pub fn own_probes(kprobe_events: &str) -> Vec<(String, String)> {
    kprobe_events
        .lines()
        .filter_map(|l| {
            let def = l.split_whitespace().next()?;
            let (_, name) = def.split_once(':')?;
            let (group, event) = name.split_once('/')?;
            group
                .starts_with(GROUP_PREFIX)
                .then(|| (group.to_string(), event.to_string()))
        })
        .collect()
}

/// Delete the probes of groups `rstaudit_PID` whose process is gone (left by a run that was
/// killed). Call it after the stale instances are removed: a probe an instance enables cannot
/// be deleted. Returns the groups removed.
pub fn clean_stale_probes(
    tracefs: &Tracefs,
    alive: impl Fn(u32) -> bool,
) -> Result<Vec<String>, ProbeError> {
    let tag = crate::host::process::pid_ns_tag();
    let events = tracefs.root.join("kprobe_events");
    let text = match std::fs::read_to_string(&events) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(ProbeError::Io { path: events, err }),
    };
    let mut removed: Vec<String> = Vec::new();
    for (group, event) in own_probes(&text) {
        let Some(pid) = group
            .strip_prefix(GROUP_PREFIX)
            .and_then(|rest| crate::host::process::pid_in_name(rest, &tag))
        else {
            continue;
        };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        delete_probe(&events, &group, &event).map_err(|err| ProbeError::Io {
            path: events.clone(),
            err,
        })?;
        if !removed.contains(&group) {
            removed.push(group);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets of Debian's 5.10.223 (read from its BTF with bpftool).
    const OFFSETS_5_10: Offsets = Offsets {
        state: 18,
        family: 16,
        dport: 12,
        daddr: 0,
        rcv_saddr: 4,
        v6_daddr: 56,
        v6_rcv_saddr: 72,
        sport: 776,
        rcv_nxt: 1416,
        copied_seq: 1420,
        linger2: 2112,
        skb_data: 200,
    };

    #[test]
    fn definitions_read_the_socket_and_the_segment() {
        let v4 = definition("rstaudit_7", SiteFn::V4Reply, &OFFSETS_5_10);
        assert_eq!(
            v4,
            "p:rstaudit_7/rst_v4 tcp_v4_send_reset sk=$arg1:x64 state=+18($arg1):u8 \
             th_sport=+0(+200($arg2)):u16 th_dport=+2(+200($arg2)):u16 ip_vihl=-20(+200($arg2)):u8 \
             ip_saddr=-8(+200($arg2)):u32 ip_daddr=-4(+200($arg2)):u32"
        );
        let active = definition("rstaudit_7", SiteFn::Active, &OFFSETS_5_10);
        assert!(active.starts_with("p:rstaudit_7/rst_active tcp_send_active_reset sk=$arg1:x64"));
        assert!(active.contains("sport=+776($arg1):u16"), "{active}");
        assert!(active.contains("saddr6_lo=+80($arg1):x64"), "{active}");
        assert!(active.contains("linger2=+2112($arg1):s32"), "{active}");
        let v6 = definition("rstaudit_7", SiteFn::V6Reply, &OFFSETS_5_10);
        assert!(v6.contains("ip_daddr_lo=-8(+200($arg2)):x64"), "{v6}");
    }

    #[test]
    fn only_this_tools_groups_are_listed() {
        let text = "p:rstaudit_12/rst_v4 tcp_v4_send_reset sk=$arg1:x64\n\
                    p:kprobes/myprobe do_sys_open\n\
                    r:rstaudit_x/ret tcp_close\n\
                    p:rstaudit_12/rst_active tcp_send_active_reset sk=$arg1:x64\n";
        assert_eq!(
            own_probes(text),
            [
                ("rstaudit_12".to_string(), "rst_v4".to_string()),
                ("rstaudit_x".to_string(), "ret".to_string()),
                ("rstaudit_12".to_string(), "rst_active".to_string()),
            ]
        );
    }

    #[test]
    fn a_tracefs_without_kprobe_events_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            SiteProbes::define(&Tracefs::at(dir.path()), "rstaudit_1", &OFFSETS_5_10).unwrap_err();
        assert!(matches!(err, ProbeError::NoKprobeEvents(_)), "{err}");
        assert!(err.to_string().contains("CONFIG_KPROBE_EVENTS"), "{err}");
        // Nothing to clean either.
        assert_eq!(
            clean_stale_probes(&Tracefs::at(dir.path()), |_| false).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_running_kernels_offsets_are_read_from_its_btf() {
        let o = Offsets::running().expect("this machine's kernel has BTF");
        assert_eq!(
            o.state, 18,
            "skc_state has sat at 18 in sock_common for years"
        );
        assert!(
            o.sport > o.v6_rcv_saddr && o.linger2 > o.copied_seq,
            "{o:?}"
        );
    }
}
