//! The iterator program: for every open file of every process that is a TCP socket, one
//! fixed record with the process, the descriptor, the socket's inode and the raw fields
//! getsockopt(2) reads its seven options from. The program is assembled here from the
//! offsets the kernel's BTF gives ([`Layout`]), so no compiler or object file is needed at
//! build time; what it reads is turned into options by [`Raw::options`], exactly as
//! sk_getsockopt and do_tcp_getsockopt compute them.

use super::btf::{Btf, BtfError, Field};
use crate::host::{Linger, SockOptions};

/// Helper ids (include/uapi/linux/bpf.h, `__BPF_FUNC_MAPPER`): fixed by the kernel's ABI.
const PROBE_READ_KERNEL: i32 = 113;
const SEQ_WRITE: i32 = 127;
const SOCK_FROM_FILE: i32 = 162;

/// What makes a socket TCP, as the kernel's sk_is_tcp tests it: an IPv4 or IPv6 family,
/// SOCK_STREAM and IPPROTO_TCP (include/linux/socket.h, in.h). bpf_skc_to_tcp_sock tested the
/// protocol only, so a raw socket of protocol 6 passed.
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
const SOCK_STREAM: i32 = 1;
const IPPROTO_TCP: i32 = 6;

/// Words of one record, in this order.
pub const WORDS: usize = 15;
/// Bytes of one record.
pub const RECORD: usize = WORDS * 8;

/// Where the program finds what it reads, from the kernel's BTF.
pub struct Layout {
    /// BTF id of `bpf_iter_task_file`, the iterator's attach target.
    pub target: u32,
    ctx_meta: Field,
    ctx_task: Field,
    ctx_file: Field,
    meta_seq: Field,
    /// Offsets of `file.f_inode` and `sock.__sk_common.skc_net.net`, the two pointers
    /// followed to the inode and to the socket's network namespace.
    f_inode: u32,
    sk_net: u32,
    /// Offset of `socket.sk`: bpf_sock_from_file gives the struct socket.
    socket_sk: u32,
    /// `sock` fields that tell a TCP socket: family, type, protocol.
    sk_family: Field,
    sk_type: Field,
    sk_protocol: Field,
    /// The fields read into the record's words, in order: (base register, field).
    words: Vec<(Base, Field)>,
    /// Bit numbers of SOCK_LINGER and SOCK_KEEPOPEN in `sk_flags`.
    pub linger_bit: u32,
    pub keepopen_bit: u32,
}

/// What a record word is read from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Base {
    Task,
    Ctx,
    Inode,
    Sock,
    Tcp,
    Net,
}

/// The types the layout needs, for [`Btf::parse`].
pub const WANTED: &[(&str, &str)] = &[
    ("func", "bpf_iter_task_file"),
    ("struct", "bpf_iter__task_file"),
    ("struct", "bpf_iter_meta"),
    ("struct", "task_struct"),
    ("struct", "file"),
    ("struct", "inode"),
    ("struct", "socket"),
    ("struct", "sock"),
    ("struct", "tcp_sock"),
    ("struct", "net"),
    ("enum", "sock_flags"),
];

impl Layout {
    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        let ctx = |m: &str| btf.member("bpf_iter__task_file", m);
        let words = vec![
            (Base::Task, btf.member("task_struct", "tgid")?),
            (Base::Ctx, ctx("fd")?),
            (Base::Inode, btf.member("inode", "i_ino")?),
            // sk_flags moved into sock_common (as skc_flags) in later kernels.
            (
                Base::Sock,
                btf.member("sock", "sk_flags")
                    .or_else(|_| btf.member("sock", "__sk_common.skc_flags"))?,
            ),
            (Base::Sock, btf.member("sock", "sk_lingertime")?),
            (Base::Tcp, btf.member("tcp_sock", "keepalive_time")?),
            (Base::Tcp, btf.member("tcp_sock", "keepalive_intvl")?),
            (Base::Tcp, btf.member("tcp_sock", "keepalive_probes")?),
            (Base::Tcp, btf.member("tcp_sock", "linger2")?),
            (
                Base::Tcp,
                btf.member("tcp_sock", "inet_conn.icsk_user_timeout")?,
            ),
            (
                Base::Net,
                btf.member("net", "ipv4.sysctl_tcp_keepalive_time")?,
            ),
            (
                Base::Net,
                btf.member("net", "ipv4.sysctl_tcp_keepalive_intvl")?,
            ),
            (
                Base::Net,
                btf.member("net", "ipv4.sysctl_tcp_keepalive_probes")?,
            ),
            (Base::Net, btf.member("net", "ipv4.sysctl_tcp_fin_timeout")?),
            // The TCP state when the options were read (tcp_states.h numbering).
            (Base::Sock, btf.member("sock", "__sk_common.skc_state")?),
        ];
        debug_assert_eq!(words.len(), WORDS);
        let layout = Layout {
            target: btf.func("bpf_iter_task_file")?,
            ctx_meta: ctx("meta")?,
            ctx_task: ctx("task")?,
            ctx_file: ctx("file")?,
            meta_seq: btf.member("bpf_iter_meta", "seq")?,
            f_inode: pointer(btf, "file", "f_inode")?,
            sk_net: pointer(btf, "sock", "__sk_common.skc_net.net")?,
            socket_sk: pointer(btf, "socket", "sk")?,
            sk_family: btf.member("sock", "__sk_common.skc_family")?,
            sk_type: btf.member("sock", "sk_type")?,
            sk_protocol: btf.member("sock", "sk_protocol")?,
            words,
            linger_bit: btf.enum_value("sock_flags", "SOCK_LINGER")?,
            keepopen_bit: btf.enum_value("sock_flags", "SOCK_KEEPOPEN")?,
        };
        // Pointers the program follows, checked here so that `program` cannot fail.
        for (what, f) in [
            ("bpf_iter__task_file.meta", layout.ctx_meta),
            ("bpf_iter__task_file.task", layout.ctx_task),
            ("bpf_iter__task_file.file", layout.ctx_file),
            ("bpf_iter_meta.seq", layout.meta_seq),
        ] {
            if f.size != 8 {
                return Err(BtfError(format!(
                    "{what} is not a 64-bit pointer in this kernel"
                )));
            }
        }
        for f in layout.words.iter().map(|(_, f)| f).chain([
            &layout.sk_family,
            &layout.sk_type,
            &layout.sk_protocol,
        ]) {
            width(f.size)?;
        }
        if layout.linger_bit >= 64 || layout.keepopen_bit >= 64 {
            return Err(BtfError(
                "SOCK_LINGER or SOCK_KEEPOPEN is not a bit of sk_flags".to_string(),
            ));
        }
        Ok(layout)
    }
}

impl Layout {
    /// The record's fields that lie in `tcp_sock` beyond `struct sock`.
    fn tcp_fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.words
            .iter()
            .filter(|(base, _)| *base == Base::Tcp)
            .map(|&(_, f)| f)
    }
}

/// The offset of a pointer member.
fn pointer(btf: &Btf, name: &str, path: &str) -> Result<u32, BtfError> {
    let f = btf.member(name, path)?;
    if f.size != 8 {
        return Err(BtfError(format!(
            "{name}.{path} is not a 64-bit pointer in this kernel"
        )));
    }
    Ok(f.offset)
}

#[cfg(test)]
impl Layout {
    /// Read word `i` of the record `by` bytes further on: a layout that is wrong for this
    /// kernel, as one built from a mismatched BTF would be.
    pub fn shift_word(&mut self, i: usize, by: u32) {
        self.words[i].1.offset += by;
    }
}

/// BPF_SIZE of a load of `size` bytes.
fn width(size: u32) -> Result<u8, BtfError> {
    Ok(match size {
        1 => 0x10,
        2 => 0x08,
        4 => 0x00,
        8 => 0x18,
        other => {
            return Err(BtfError(format!(
                "a field of {other} bytes cannot be loaded"
            )));
        }
    })
}

/// One instruction (struct bpf_insn), as the kernel reads it.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const FP: u8 = 10;

/// dst = *(size *)(src + off)
fn load(size: u32, dst: u8, src: u8, off: u32) -> u64 {
    // Sizes and offsets were checked by Layout::from_btf; struct offsets fit in i16 (the
    // verifier's own limit for these loads).
    insn(0x61 | width(size).unwrap_or(0), dst, src, off as i16, 0)
}
fn store64(dst: u8, off: i16, src: u8) -> u64 {
    insn(0x7b, dst, src, off, 0)
}
fn mov(dst: u8, src: u8) -> u64 {
    insn(0xbf, dst, src, 0, 0)
}
fn mov_imm(dst: u8, imm: i32) -> u64 {
    insn(0xb7, dst, 0, 0, imm)
}
fn add_imm(dst: u8, imm: i32) -> u64 {
    insn(0x07, dst, 0, 0, imm)
}
fn call(helper: i32) -> u64 {
    insn(0x85, 0, 0, 0, helper)
}

/// One bpf_probe_read_kernel of the socket: `len` bytes from `start`, to the stack at `at`.
struct Copy {
    start: u32,
    len: u32,
    at: i16,
}

/// Bytes one copy may span: fields closer than this share a read.
const COPY_SPAN: u32 = 64;

/// The reads that copy every TCP field, placed on the stack below `below`. Each starts at
/// an 8-byte boundary, so a field aligned in the socket is aligned in its copy (the verifier
/// wants aligned stack loads). At most 5 fields of 64 bytes each: within the 512-byte stack.
fn tcp_copies(layout: &Layout, below: i16) -> Vec<Copy> {
    let mut fields: Vec<Field> = layout.tcp_fields().collect();
    fields.sort_by_key(|f| f.offset);
    let mut spans: Vec<(u32, u32)> = Vec::new();
    for f in fields {
        let end = f.offset + f.size;
        match spans.last_mut() {
            Some((start, last)) if end - *start <= COPY_SPAN => *last = (*last).max(end),
            _ => spans.push((f.offset & !7, end)),
        }
    }
    let mut at = below;
    spans
        .into_iter()
        .map(|(start, end)| {
            let len = end - start;
            at -= len.next_multiple_of(8) as i16;
            Copy { start, len, at }
        })
        .collect()
}

/// if dst == imm goto out / if dst != imm goto out (the offset is patched once the end is
/// known).
const JEQ_IMM: u8 = 0x15;
const JNE_IMM: u8 = 0x55;
const EXIT: u8 = 0x95;

/// The program's instructions.
///
/// The struct sock is read through plain loads, which the verifier allows on any pointer it
/// walked to. Its TCP fields lie beyond struct sock, so they are copied with
/// bpf_probe_read_kernel once the socket is known to be TCP: kernels that mark the walked
/// `socket.sk` untrusted (seen on 6.18.44-fc-v1045) refuse it to bpf_skc_to_tcp_sock, and the
/// probe's copy is the same bytes a load would read.
pub fn program(layout: &Layout) -> Vec<u64> {
    let mut p = Vec::with_capacity(96);
    let mut to_out = Vec::new();
    let mut out_if = |p: &mut Vec<u64>, code: u8, reg: u8, imm: i32| {
        to_out.push(p.len());
        p.push(insn(code, reg, 0, 0, imm));
    };
    p.push(mov(R6, R1));
    p.push(load(8, R7, R6, layout.ctx_file.offset));
    out_if(&mut p, JEQ_IMM, R7, 0);
    p.push(load(8, R8, R6, layout.ctx_task.offset));
    out_if(&mut p, JEQ_IMM, R8, 0);
    p.push(mov(R1, R7));
    p.push(call(SOCK_FROM_FILE));
    out_if(&mut p, JEQ_IMM, R0, 0);
    // R0: struct socket; its sk, the struct sock.
    p.push(load(8, R9, R0, layout.socket_sk));
    out_if(&mut p, JEQ_IMM, R9, 0);
    // TCP only: protocol, type, and an IPv4 or IPv6 family.
    p.push(load(
        layout.sk_protocol.size,
        R1,
        R9,
        layout.sk_protocol.offset,
    ));
    out_if(&mut p, JNE_IMM, R1, IPPROTO_TCP);
    p.push(load(layout.sk_type.size, R1, R9, layout.sk_type.offset));
    out_if(&mut p, JNE_IMM, R1, SOCK_STREAM);
    p.push(load(layout.sk_family.size, R1, R9, layout.sk_family.offset));
    p.push(insn(JEQ_IMM, R1, 0, 1, AF_INET));
    out_if(&mut p, JNE_IMM, R1, AF_INET6);
    // R9: sock (a tcp_sock), R8: task, R7: file, R6: context. The TCP fields are copied
    // below the record first (bpf_probe_read_kernel), as few reads as they allow.
    let record = -(RECORD as i16);
    let copies = tcp_copies(layout, record);
    for c in &copies {
        p.push(mov(R1, FP));
        p.push(add_imm(R1, i32::from(c.at)));
        p.push(mov_imm(R2, c.len as i32));
        p.push(mov(R3, R9));
        p.push(add_imm(R3, c.start as i32));
        p.push(call(PROBE_READ_KERNEL));
    }
    // R2 holds the inode, then the socket's network namespace.
    let mut in_r2 = None;
    for (i, &(base, field)) in layout.words.iter().enumerate() {
        let slot = record + 8 * i as i16;
        let (src, off) = match base {
            Base::Task => (R8, field.offset),
            Base::Ctx => (R6, field.offset),
            Base::Sock => (R9, field.offset),
            Base::Tcp => {
                let c = copies
                    .iter()
                    .find(|c| (c.start..c.start + c.len).contains(&field.offset))
                    .expect("every TCP field is in a copy");
                // A negative stack offset, as the 16-bit two's complement a load carries.
                let at = c.at + (field.offset - c.start) as i16;
                (FP, u32::from(at as u16))
            }
            Base::Inode | Base::Net => {
                if in_r2 != Some(base) {
                    p.push(match base {
                        Base::Inode => load(8, R2, R7, layout.f_inode),
                        _ => load(8, R2, R9, layout.sk_net),
                    });
                    in_r2 = Some(base);
                }
                (R2, field.offset)
            }
        };
        p.push(load(field.size, R1, src, off));
        p.push(store64(FP, slot, R1));
    }
    p.push(load(8, R1, R6, layout.ctx_meta.offset));
    p.push(load(8, R1, R1, layout.meta_seq.offset));
    p.push(mov(R2, FP));
    p.push(add_imm(R2, i32::from(record)));
    p.push(mov_imm(R3, RECORD as i32));
    p.push(call(SEQ_WRITE));
    let out = p.len();
    p.push(mov_imm(R0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    for at in to_out {
        let off = (out - at - 1) as i16;
        p[at] = p[at] & !(0xffff << 16) | u64::from(off as u16) << 16;
    }
    p
}

/// One record, kept compact (48 bytes where the program writes 112): what the options
/// are computed from, each socket's own value or its namespace's already chosen as the
/// kernel chooses it, still in jiffies (HZ is known only once the probes are read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pid: u32,
    fd: u32,
    inode: u64,
    /// sk_lingertime, jiffies.
    lingertime: u64,
    /// keepalive_time, keepalive_intvl (jiffies), the socket's or else its namespace's.
    keepidle: u32,
    keepintvl: u32,
    /// linger2 (jiffies): negative as set, else the socket's or else tcp_fin_timeout.
    linger2: i32,
    /// icsk_user_timeout, milliseconds.
    user_timeout: u32,
    /// keepalive_probes, the socket's or else its namespace's.
    keepcnt: u8,
    linger_on: bool,
    keepalive: bool,
    /// skc_state when the record was written.
    state: u8,
}

impl Record {
    /// Decode the program's words (`bits`: SOCK_LINGER and SOCK_KEEPOPEN).
    pub fn from_bytes(b: &[u8], bits: (u32, u32)) -> Option<Record> {
        let mut w = [0u64; WORDS];
        for (i, word) in w.iter_mut().enumerate() {
            *word = u64::from_ne_bytes(b.get(8 * i..8 * i + 8)?.try_into().ok()?);
        }
        let own_or = |own: u64, net: u64| if own != 0 { own } else { net };
        let linger2 = w[8] as u32 as i32;
        Some(Record {
            pid: w[0] as u32,
            fd: w[1] as u32,
            inode: w[2],
            lingertime: w[4],
            keepidle: own_or(w[5], w[10]) as u32,
            keepintvl: own_or(w[6], w[11]) as u32,
            linger2: if linger2 < 0 {
                linger2
            } else {
                own_or(linger2 as u64, w[13]) as u32 as i32
            },
            user_timeout: w[9] as u32,
            keepcnt: own_or(w[7], w[12]) as u8,
            linger_on: w[3] >> bits.0 & 1 == 1,
            keepalive: w[3] >> bits.1 & 1 == 1,
            state: w[14] as u8,
        })
    }
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn fd(&self) -> u32 {
        self.fd
    }
    pub fn inode(&self) -> u64 {
        self.inode
    }
    /// The socket's TCP state when the record was written (include/net/tcp_states.h).
    pub fn state(&self) -> u8 {
        self.state
    }
    /// The raw `sk_lingertime`, in jiffies.
    pub fn lingertime(&self) -> u64 {
        self.lingertime
    }

    /// The options as getsockopt(2) returns them, for a kernel ticking `hz` times a second:
    /// SO_LINGER is (SOCK_LINGER, sk_lingertime / HZ); each keepalive parameter and
    /// TCP_LINGER2 is the socket's own value or, when that is 0, its namespace's sysctl,
    /// in seconds; TCP_USER_TIMEOUT is kept in milliseconds; a negative TCP_LINGER2 is
    /// returned as it is.
    pub fn options(&self, hz: u64) -> SockOptions {
        let seconds = |jiffies: u32| u32::try_from(u64::from(jiffies) / hz).ok();
        SockOptions {
            linger: Some(Linger {
                on: self.linger_on,
                // The kernel assigns an unsigned long quotient to an int.
                seconds: (self.lingertime / hz) as i32,
            }),
            keepalive: Some(self.keepalive),
            keepidle: seconds(self.keepidle),
            keepintvl: seconds(self.keepintvl),
            keepcnt: Some(u32::from(self.keepcnt)),
            user_timeout: u32::try_from(self.user_timeout as i32).ok(),
            linger2: Some(if self.linger2 < 0 {
                self.linger2
            } else {
                (self.linger2 as u64 / hz) as i32
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TCP fields are copied in fewer reads than fields where they lie close (this
    /// kernel: keepalive time, interval and linger2 are neighbours), each field inside one
    /// read, every read 8-byte aligned and on the stack below the record.
    #[test]
    fn tcp_fields_are_copied_in_few_aligned_reads() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("the kernel's BTF is needed");
        let layout = Layout::from_btf(&Btf::parse(&data, WANTED).unwrap()).unwrap();
        let record = -(RECORD as i16);
        let copies = tcp_copies(&layout, record);
        let tcp: Vec<Field> = layout.tcp_fields().collect();
        assert!(copies.len() < tcp.len(), "{} reads", copies.len());
        for f in &tcp {
            let holding: Vec<&Copy> = copies
                .iter()
                .filter(|c| c.start <= f.offset && f.offset + f.size <= c.start + c.len)
                .collect();
            assert_eq!(holding.len(), 1, "field at {}", f.offset);
        }
        let mut below = record;
        for c in &copies {
            assert_eq!(c.start % 8, 0);
            assert!(c.len <= COPY_SPAN);
            assert!(c.at % 8 == 0 && c.at + c.len as i16 <= below, "overlaps");
            below = c.at;
        }
        assert!(below >= -512, "the stack is 512 bytes");
    }

    fn record(words: [u64; WORDS]) -> Record {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        Record::from_bytes(&bytes, (13, 3)).unwrap()
    }

    /// What getsockopt computes, at HZ 250: the socket's own values where set, else its
    /// namespace's, a negative TCP_LINGER2 as it is, SO_LINGER's flag from sk_flags.
    #[test]
    fn decodes_as_getsockopt_computes() {
        let hz = 250;
        // pid, fd, inode, flags, lingertime, keepalive time, intvl, probes, linger2,
        // user timeout, then the namespace's keepalive time, intvl, probes, fin timeout,
        // and the TCP state (1, ESTABLISHED).
        let own = record([
            7,
            3,
            99,
            1 << 13 | 1 << 3,
            5 * hz,
            60 * hz,
            10 * hz,
            4,
            20 * hz,
            1500,
            7200 * hz,
            75 * hz,
            9,
            60 * hz,
            1,
        ]);
        assert_eq!(
            (own.pid(), own.fd(), own.inode(), own.state()),
            (7, 3, 99, 1)
        );
        assert_eq!(
            own.options(hz),
            SockOptions {
                linger: Some(Linger {
                    on: true,
                    seconds: 5
                }),
                keepalive: Some(true),
                keepidle: Some(60),
                keepintvl: Some(10),
                keepcnt: Some(4),
                user_timeout: Some(1500),
                linger2: Some(20),
            }
        );
        let defaults = record([
            8,
            4,
            100,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            7200 * hz,
            75 * hz,
            9,
            60 * hz,
            1,
        ]);
        assert_eq!(
            defaults.options(hz),
            SockOptions {
                linger: Some(Linger {
                    on: false,
                    seconds: 0
                }),
                keepalive: Some(false),
                keepidle: Some(7200),
                keepintvl: Some(75),
                keepcnt: Some(9),
                user_timeout: Some(0),
                linger2: Some(60),
            }
        );
        // TCP_LINGER2 -1 (reset in FIN_WAIT2) is stored as -1 and read back as -1.
        let negative = record([
            8,
            4,
            100,
            0,
            0,
            0,
            0,
            0,
            u64::from(u32::MAX),
            0,
            0,
            0,
            0,
            60 * hz,
            1,
        ]);
        assert_eq!(negative.options(hz).linger2, Some(-1));
        // SO_LINGER above the kernel's cap is stored as MAX_SCHEDULE_TIMEOUT (LONG_MAX); the
        // kernel's int assignment truncates the quotient, and so does the decoding.
        let capped = record([
            8,
            4,
            100,
            1 << 13,
            i64::MAX as u64,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
        ]);
        assert_eq!(
            capped.options(hz).linger.unwrap().seconds,
            (i64::MAX as u64 / hz) as i32
        );
        // A short record is not a record.
        assert_eq!(Record::from_bytes(&[0; RECORD - 1], (13, 3)), None);
    }
}
