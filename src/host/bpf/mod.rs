//! Owners and options of every TCP socket of the machine, read in the kernel.
//!
//! A BPF iterator over every task's open files (`iter/task_file`, Linux 5.8; with
//! bpf_sock_from_file, 5.11) writes one record per TCP socket: the process, the descriptor,
//! the socket's inode and the fields getsockopt(2) computes the seven options from. One
//! read(2) loop replaces, per socket, a readlinkat of /proc/PID/fd/N, a pidfd_getfd, an fstat,
//! seven getsockopt calls and a close; no descriptor of another process is ever duplicated.
//!
//! The program is assembled at run time from the offsets in the kernel's BTF
//! (/sys/kernel/btf/vmlinux), so nothing but this binary is needed to build or run it. Before
//! its records are used, two probe sockets of our own (one with every option set, one with
//! none) must read back exactly as getsockopt reads them; the first also gives the kernel's
//! HZ. Anything missing or different (no BTF, not root, a kernel without the helpers, a field
//! of another type, a pid namespace of our own) is an [`Err`] with the reason, and the caller
//! reads /proc instead.

pub mod btf;
mod by_inode;
mod program;
mod sys;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::SockOptions;
use by_inode::ByInode;
use program::{Layout, RECORD, Record};

/// Why the kernel's socket iterator cannot be used here.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "rstaudit runs in a pid namespace of its own, and the kernel iterator names processes \
         by their pids outside it"
    )]
    PidNamespace,
    #[error(
        "loading a BPF program needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; {}",
        crate::host::process::privilege_hint("them")
    )]
    NotPermitted,
    #[error("it needs Linux 5.11 or later (the helper bpf_sock_from_file), and this kernel is {0}")]
    OldKernel(String),
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")]
    NoBtf,
    #[error("/sys/kernel/btf/vmlinux: {0}")]
    Btf(#[from] btf::BtfError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// The iterator ran, but what it read does not agree with getsockopt.
    #[error("{0}")]
    Probe(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Unavailable {
    move |source| Unavailable::Io { what, source }
}

/// The iterator, loaded and checked: it can be run again (each run reads every process anew).
pub struct Reader {
    link: OwnedFd,
    bits: (u32, u32),
    hz: u64,
}

/// The TCP sockets every process holds, as one run of the iterator saw them, indexed by
/// socket inode.
pub struct TaskSockets {
    raws: Vec<Record>,
    index: ByInode,
    hz: u64,
}

/// One socket held by one process (a copy of its record).
#[derive(Debug, Clone, Copy)]
pub struct Held {
    raw: Record,
    hz: u64,
}

impl Held {
    pub fn pid(&self) -> u32 {
        self.raw.pid()
    }
    pub fn fd(&self) -> u32 {
        self.raw.fd()
    }
    pub fn inode(&self) -> u64 {
        self.raw.inode()
    }
    /// The socket's TCP state when the iterator read it.
    pub fn state(&self) -> Option<crate::host::TcpState> {
        crate::host::TcpState::from_kernel(self.raw.state())
    }
    /// Its options, as getsockopt(2) would read them.
    pub fn options(&self) -> SockOptions {
        self.raw.options(self.hz)
    }
}

impl TaskSockets {
    fn new(raws: Vec<Record>, hz: u64) -> Self {
        let index = ByInode::new(&raws);
        TaskSockets { raws, index, hz }
    }

    fn held(&self, at: u32) -> Option<Held> {
        self.raws
            .get(at as usize)
            .map(|&raw| Held { raw, hz: self.hz })
    }

    /// Every socket, in the iterator's order (processes by pid, descriptors ascending).
    pub fn iter(&self) -> impl Iterator<Item = Held> + '_ {
        self.raws.iter().map(|&raw| Held { raw, hz: self.hz })
    }

    /// The socket of inode `inode` as its first holder has it: the lowest pid holding it,
    /// at its lowest descriptor (as /proc order finds it).
    pub fn first(&self, inode: u64) -> Option<Held> {
        self.index.find(inode).and_then(|at| self.held(at))
    }

    /// [`TaskSockets::first`] of each of `inodes`, in order, into `out` (cleared first).
    /// Looked up together: the memory of many is fetched at once, where one lookup after
    /// the other would wait for each (`positions` is scratch space, kept by the caller).
    pub fn first_of_each(
        &self,
        inodes: &[u64],
        positions: &mut Vec<Option<u32>>,
        out: &mut Vec<Option<Held>>,
    ) {
        self.index.find_all(inodes, positions);
        out.clear();
        out.extend(positions.iter().map(|at| at.and_then(|at| self.held(at))));
    }
}

impl Reader {
    /// Run the iterator again.
    pub fn read(&self) -> Result<TaskSockets, Unavailable> {
        Ok(TaskSockets::new(
            read_records(&self.link, self.bits)?,
            self.hz,
        ))
    }
}

/// The initial pid namespace's inode (PROC_PID_INIT_INO): the iterator names processes by
/// their pid there, which is the pid /proc shows only in that namespace.
const INIT_PID_NS: &str = "pid:[4026531836]";

/// The iterator loaded and attached, with its probe sockets open: [`Loaded::read`] runs it
/// the first time and checks what it reads.
pub struct Loaded {
    link: OwnedFd,
    bits: (u32, u32),
    probes: Probes,
}

/// Load the iterator and run it once: every TCP socket of every process, or why it cannot
/// be done here.
pub fn read() -> Result<(Reader, TaskSockets), Unavailable> {
    load()?.read()
}

/// Load and attach the iterator, or say why it cannot be done here.
pub fn load() -> Result<Loaded, Unavailable> {
    let ns = std::fs::read_link("/proc/self/ns/pid").map_err(io("reading /proc/self/ns/pid"))?;
    if ns.as_os_str() != INIT_PID_NS {
        return Err(Unavailable::PidNamespace);
    }
    let kernel = crate::host::kernel::running();
    if let Some(v) = kernel.version
        && (v.major, v.minor) < (5, 11)
    {
        return Err(Unavailable::OldKernel(format!(
            "{}.{}.{}",
            v.major, v.minor, v.patch
        )));
    }
    if !may_trace() {
        return Err(Unavailable::NotPermitted);
    }
    let data = btf::read_vmlinux().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Unavailable::NoBtf,
        _ => io("reading /sys/kernel/btf/vmlinux")(e),
    })?;
    let btf = btf::Btf::parse(&data, program::WANTED)?;
    let layout = Layout::from_btf(&btf)?;
    drop(data);
    load_layout(&layout)
}

/// Load and attach the program for `layout`, and open the probe sockets.
fn load_layout(layout: &Layout) -> Result<Loaded, Unavailable> {
    let prog =
        sys::load_iter_program(&program::program(layout), layout.target).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EPERM) => Unavailable::NotPermitted,
                _ => io("the kernel refused the socket iterator program")(e),
            }
        })?;
    let link =
        sys::attach_iter(&prog).map_err(io("the kernel refused to attach the socket iterator"))?;
    let probes = Probes::new().map_err(io("creating the probe sockets"))?;
    Ok(Loaded {
        link,
        bits: (layout.linger_bit, layout.keepopen_bit),
        probes,
    })
}

impl Loaded {
    /// Run the iterator the first time; its records are used only if the probe sockets
    /// read back as getsockopt reads them.
    pub fn read(self) -> Result<(Reader, TaskSockets), Unavailable> {
        let Loaded { link, bits, probes } = self;
        let raws = read_records(&link, bits)?;
        let hz = probes.check(&raws)?;
        let me = std::process::id();
        let raws = raws
            .into_iter()
            .filter(|r| !(r.pid() == me && probes.holds(r.fd())))
            .collect();
        Ok((Reader { link, bits, hz }, TaskSockets::new(raws, hz)))
    }
}

/// Whether this process holds the capabilities a tracing program needs to load: CAP_BPF
/// and CAP_PERFMON (38, 39), or CAP_SYS_ADMIN (21) on kernels before 5.8. Said before the
/// 5 MB of BTF is read for nothing.
fn may_trace() -> bool {
    use crate::host::process::{cap, effective_caps, has_cap};
    // Unknown: let the kernel answer.
    effective_caps().is_none_or(|eff| {
        (has_cap(eff, cap::PERFMON) && has_cap(eff, cap::BPF)) || has_cap(eff, cap::SYS_ADMIN)
    })
}

/// Run the iterator once and collect its records.
fn read_records(link: &OwnedFd, bits: (u32, u32)) -> Result<Vec<Record>, Unavailable> {
    let iter = sys::open_iter(link).map_err(io("opening the socket iterator"))?;
    let mut file = std::fs::File::from(iter);
    let mut buf = vec![0u8; 1 << 16];
    let mut filled = 0;
    let mut raws = Vec::new();
    loop {
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("reading the socket iterator")(e)),
        };
        if n == 0 {
            break;
        }
        filled += n;
        let whole = filled / RECORD * RECORD;
        raws.extend(
            buf[..whole]
                .chunks_exact(RECORD)
                .filter_map(|b| Record::from_bytes(b, bits)),
        );
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    if filled != 0 {
        return Err(Unavailable::Probe(format!(
            "the socket iterator ended inside a record ({filled} bytes)"
        )));
    }
    Ok(raws)
}

/// Two TCP sockets of our own whose options are known: one with every option set, one with
/// none. They exist while the iterator runs, so their records show whether the layout and
/// the decoding agree with getsockopt (and their inodes with fstat) on this kernel; the pid
/// and descriptor are checked by finding them.
struct Probes {
    set: OwnedFd,
    plain: OwnedFd,
}

/// SO_LINGER of the probe with options: the kernel keeps it as this many seconds times HZ.
const PROBE_LINGER: i32 = 3;

impl Probes {
    fn new() -> std::io::Result<Self> {
        let set = tcp_socket()?;
        let plain = tcp_socket()?;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: PROBE_LINGER,
        };
        setopt(&set, libc::SOL_SOCKET, libc::SO_LINGER, linger)?;
        for (level, name, value) in [
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 7),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 11),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 5),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 1234),
            (libc::IPPROTO_TCP, libc::TCP_LINGER2, 13),
        ] {
            setopt(&set, level, name, value as libc::c_int)?;
        }
        Ok(Probes { set, plain })
    }

    fn holds(&self, fd: u32) -> bool {
        fd == self.set.as_raw_fd() as u32 || fd == self.plain.as_raw_fd() as u32
    }

    /// HZ, from the probe with options, once both probes decode to what getsockopt reads.
    fn check(&self, raws: &[Record]) -> Result<u64, Unavailable> {
        let me = std::process::id();
        let find = |fd: &OwnedFd| {
            raws.iter()
                .find(|r| r.pid() == me && r.fd() == fd.as_raw_fd() as u32)
                .ok_or_else(|| {
                    Unavailable::Probe(
                        "the socket iterator did not show the probe sockets of this process"
                            .to_string(),
                    )
                })
        };
        let (set, plain) = (find(&self.set)?, find(&self.plain)?);
        let jiffies = set.lingertime();
        let hz = jiffies / PROBE_LINGER as u64;
        if hz == 0 || !jiffies.is_multiple_of(PROBE_LINGER as u64) {
            return Err(Unavailable::Probe(format!(
                "the probe socket's SO_LINGER of {PROBE_LINGER} s read back as {jiffies} jiffies"
            )));
        }
        for (what, raw, fd) in [("with", set, &self.set), ("without", plain, &self.plain)] {
            if !super::options::same_socket(fd, raw.inode()) {
                return Err(Unavailable::Probe(format!(
                    "the probe socket {what} options read back with inode {}, which fstat does \
                     not give it",
                    raw.inode()
                )));
            }
            let seen = raw.options(hz);
            let truth = super::options::read_options(fd);
            if seen != truth {
                return Err(Unavailable::Probe(format!(
                    "the probe socket {what} options read back as {seen:?}, getsockopt says \
                     {truth:?}"
                )));
            }
        }
        Ok(hz)
    }
}

fn tcp_socket() -> std::io::Result<OwnedFd> {
    for family in [libc::AF_INET, libc::AF_INET6] {
        // SAFETY: socket(2) with constant arguments; returns a new descriptor or -1.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd >= 0 {
            // SAFETY: fd is a descriptor we just received and own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(std::io::Error::last_os_error())
}

fn setopt<T>(fd: &OwnedFd, level: i32, name: i32, value: T) -> std::io::Result<()> {
    // SAFETY: value is a readable T of the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
