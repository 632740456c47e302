//! The three bpf(2) commands the iterator needs: load a program, attach it as an iterator
//! (a link), and open an iterator to read. `union bpf_attr` is built as bytes at the
//! offsets of include/uapi/linux/bpf.h; anything past the fields set is zero, as the kernel
//! requires.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;

/// A bpf(2) command's attributes: `LEN` bytes, zero where not set.
struct Attr<const LEN: usize>([u8; LEN]);

impl<const LEN: usize> Attr<LEN> {
    fn new() -> Self {
        Attr([0; LEN])
    }
    fn u32(mut self, at: usize, v: u32) -> Self {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(mut self, at: usize, v: u64) -> Self {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn call(&mut self, cmd: libc::c_long) -> std::io::Result<OwnedFd> {
        // SAFETY: bpf(cmd, attr, size) reads at most `LEN` bytes of `attr` (and writes the
        // log buffer it points to, whose size it was given); it returns a new descriptor.
        let rc =
            unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_mut_ptr(), LEN as libc::c_uint) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: rc is a descriptor the kernel just gave us.
        Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
    }
}

/// Load `insns` as a task_file iterator program (`target`: BTF id of bpf_iter_task_file).
/// On a verifier refusal the error carries the end of the verifier's log.
pub fn load_iter_program(insns: &[u64], target: u32) -> Result<OwnedFd, std::io::Error> {
    let license = c"Dual MIT/GPL";
    let name = *b"rstaudit_socks\0\0";
    let attr = |log: Option<&mut Vec<u8>>| {
        let mut a = Attr::<120>::new()
            .u32(0, BPF_PROG_TYPE_TRACING)
            .u32(4, insns.len() as u32)
            .u64(8, insns.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .u32(68, BPF_TRACE_ITER)
            .u32(108, target);
        a.0[48..64].copy_from_slice(&name);
        if let Some(log) = log {
            a = a
                .u32(24, 1)
                .u32(28, log.len() as u32)
                .u64(32, log.as_mut_ptr() as u64);
        }
        a
    };
    match attr(None).call(BPF_PROG_LOAD) {
        Ok(fd) => Ok(fd),
        Err(e)
            if e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EINVAL) =>
        {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 16];
            let again = attr(Some(&mut log)).call(BPF_PROG_LOAD);
            let text =
                String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)])
                    .into_owned();
            let last: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = last[last.len().saturating_sub(3)..].join(" / ");
            match again {
                Ok(fd) => Ok(fd),
                Err(_) => Err(std::io::Error::new(
                    e.kind(),
                    format!("{e}; the verifier said: {tail}"),
                )),
            }
        }
        Err(e) => Err(e),
    }
}

/// Attach a loaded iterator program: the link iterators are opened from.
pub fn attach_iter(prog: &OwnedFd) -> std::io::Result<OwnedFd> {
    Attr::<32>::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(8, BPF_TRACE_ITER)
        .call(BPF_LINK_CREATE)
}

/// Open one pass of the iterator: reading the descriptor runs the program over every
/// task's files.
pub fn open_iter(link: &OwnedFd) -> std::io::Result<OwnedFd> {
    Attr::<8>::new()
        .u32(0, link.as_raw_fd() as u32)
        .call(BPF_ITER_CREATE)
}
