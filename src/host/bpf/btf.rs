//! The few facts the socket iterator needs from the kernel's own type information
//! (/sys/kernel/btf/vmlinux, BTF): the id of the iterator's target function, the offsets and
//! sizes of a dozen struct members, and the values of two enum constants.
//!
//! A small reader of its own, not the btf-rs crate: btf-rs indexes every type first, which
//! took 116-144 ms (its cache backend) or 15 ms (its mmap backend, which needs a kernel that
//! lets this file be mapped, newer than 6.12) on this project's 6.18 kernel, where a whole
//! audit of a typical host takes about 18 ms. This reader walks the 5 MB once, remembering where each type starts
//! and which named structs, enums and functions it was asked about (about 3 ms). Every read
//! is bounds-checked: a truncated or foreign file is an error, never a panic.

use std::collections::HashMap;

/// BTF_KIND_* (include/uapi/linux/btf.h).
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const FWD: u32 = 7;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const VAR: u32 = 14;
const DATASEC: u32 = 15;
const FLOAT: u32 = 16;
const DECL_TAG: u32 = 17;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

/// Where the running kernel publishes its type information.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel's type information (the bytes [`Btf::parse`] reads).
pub fn read_vmlinux() -> std::io::Result<Vec<u8>> {
    std::fs::read(VMLINUX)
}

/// What is missing or wrong in the type information, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BtfError(pub String);

fn err(message: impl Into<String>) -> BtfError {
    BtfError(message.into())
}

/// A struct member found by [`Btf::member`]: where it is and how wide it is, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// Parsed type information: the raw bytes, where each type starts, and the ids of the
/// named types asked for.
#[derive(Debug)]
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset in `types` of type id `i + 1`.
    starts: Vec<u32>,
    /// (kind, name) -> type id, for the names asked for.
    named: HashMap<(u32, &'a str), u32>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| err("BTF data ends inside a type"))
}

/// Bytes that follow a type's 12-byte header.
fn extra_len(kind: u32, vlen: u32) -> Result<usize, BtfError> {
    let vlen = vlen as usize;
    Ok(match kind {
        INT | VAR | DECL_TAG => 4,
        PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
        ARRAY => 12,
        STRUCT | UNION | DATASEC | ENUM64 => 12 * vlen,
        ENUM | FUNC_PROTO => 8 * vlen,
        other => {
            return Err(err(format!(
                "BTF type kind {other} is unknown to this reader"
            )));
        }
    })
}

impl<'a> Btf<'a> {
    /// Parse `data` (little-endian BTF, as /sys/kernel/btf/vmlinux is on this machine's
    /// architectures), remembering the ids of the types named in `wanted` (kind, name);
    /// kinds are `"struct"`, `"enum"` and `"func"`.
    pub fn parse(data: &'a [u8], wanted: &[(&str, &'a str)]) -> Result<Self, BtfError> {
        let magic = data.get(0..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if magic != Some(0xEB9F) {
            return Err(err("not little-endian BTF data (bad magic)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let field = |i: usize| u32_at(data, 8 + 4 * i).map(|v| v as usize);
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let section = |off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|start| Some(start..start.checked_add(len)?))
                .and_then(|r| data.get(r))
                .ok_or_else(|| err("BTF header points past the end of the data"))
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let wanted: Vec<(u32, &str)> = wanted
            .iter()
            .map(|&(kind, name)| {
                let k = match kind {
                    "struct" => STRUCT,
                    "enum" => ENUM,
                    _ => FUNC,
                };
                (k, name)
            })
            .collect();
        let mut btf = Btf {
            types,
            strings,
            starts: Vec::with_capacity(types.len() / 40),
            named: HashMap::new(),
        };
        let mut at = 0usize;
        while at < types.len() {
            let name_off = u32_at(types, at)?;
            let info = u32_at(types, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let next = at + 12 + extra_len(kind, info & 0xffff)?;
            if next > types.len() {
                return Err(err("BTF data ends inside a type"));
            }
            btf.starts.push(at as u32);
            if name_off != 0 && matches!(kind, STRUCT | ENUM | FUNC) {
                // Compared as bytes where they are: most types are not asked for, and
                // decoding every name would be a fifth of a small host's whole audit.
                let here = btf.strings.get(name_off as usize..).unwrap_or_default();
                let asked = wanted.iter().find(|&&(k, name)| {
                    k == kind
                        && here.len() > name.len()
                        && here[name.len()] == 0
                        && here.starts_with(name.as_bytes())
                });
                if let Some(&(kind, name)) = asked {
                    // The first of a name wins, as for the kernel's own lookups.
                    let id = btf.starts.len() as u32;
                    btf.named.entry((kind, name)).or_insert(id);
                }
            }
            at = next;
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> Result<&'a str, BtfError> {
        let rest = self
            .strings
            .get(off as usize..)
            .ok_or_else(|| err("BTF name offset past the strings"))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| err("BTF name without its terminating NUL"))?;
        std::str::from_utf8(&rest[..end]).map_err(|_| err("BTF name is not UTF-8"))
    }

    /// (kind, vlen, kind_flag, size_or_type, start of the extra bytes) of type `id`.
    fn header(&self, id: u32) -> Result<(u32, u32, bool, u32, usize), BtfError> {
        let at = id
            .checked_sub(1)
            .and_then(|i| self.starts.get(i as usize))
            .ok_or_else(|| err(format!("BTF type id {id} does not exist")))?;
        let at = *at as usize;
        let info = u32_at(self.types, at + 4)?;
        Ok((
            (info >> 24) & 0x1f,
            info & 0xffff,
            info >> 31 == 1,
            u32_at(self.types, at + 8)?,
            at + 12,
        ))
    }

    fn id_of(&self, kind: u32, name: &str) -> Result<u32, BtfError> {
        self.named
            .get(&(kind, name))
            .copied()
            .ok_or_else(|| err(format!("the kernel's BTF has no {name}")))
    }

    /// The id of function `name` (asked for with kind `"func"` in [`Btf::parse`]).
    pub fn func(&self, name: &str) -> Result<u32, BtfError> {
        self.id_of(FUNC, name)
    }

    /// The value of constant `constant` of enum `name`.
    pub fn enum_value(&self, name: &str, constant: &str) -> Result<u32, BtfError> {
        let (_, vlen, _, _, extra) = self.header(self.id_of(ENUM, name)?)?;
        for i in 0..vlen as usize {
            let at = extra + 8 * i;
            if self.name(u32_at(self.types, at)?)? == constant {
                return u32_at(self.types, at + 4);
            }
        }
        Err(err(format!("the kernel's enum {name} has no {constant}")))
    }

    /// Skip typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..32 {
            let (kind, _, _, next, _) = self.header(id)?;
            match kind {
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => id = next,
                _ => return Ok(id),
            }
        }
        Err(err("BTF typedef chain too long"))
    }

    fn size_of(&self, id: u32) -> Result<u32, BtfError> {
        let id = self.resolve(id)?;
        let (kind, _, _, size, extra) = self.header(id)?;
        match kind {
            INT | STRUCT | UNION | ENUM | ENUM64 | FLOAT => Ok(size),
            PTR => Ok(8),
            ARRAY => {
                let elem = self.size_of(u32_at(self.types, extra)?)?;
                elem.checked_mul(u32_at(self.types, extra + 8)?)
                    .ok_or_else(|| err("BTF array too large"))
            }
            other => Err(err(format!("BTF type {id} (kind {other}) has no size"))),
        }
    }

    /// Find member `name` of the struct or union `id`, looking into anonymous members:
    /// (bit offset from the start of `id`, member type).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Result<Option<(u32, u32)>, BtfError> {
        let (kind, vlen, kind_flag, _, extra) = self.header(self.resolve(id)?)?;
        if !matches!(kind, STRUCT | UNION) || depth > 8 {
            return Ok(None);
        }
        for i in 0..vlen as usize {
            let at = extra + 12 * i;
            let name_off = u32_at(self.types, at)?;
            let ty = u32_at(self.types, at + 4)?;
            let raw = u32_at(self.types, at + 8)?;
            // With kind_flag set, the top 8 bits are a bitfield's width: a bitfield member
            // cannot be read with a plain load.
            let (bits, bitfield) = if kind_flag {
                (raw & 0x00ff_ffff, raw >> 24 != 0)
            } else {
                (raw, false)
            };
            if name_off == 0 {
                if let Some((inner, t)) = self.find_member(ty, name, depth + 1)? {
                    let at = bits
                        .checked_add(inner)
                        .ok_or_else(|| err(format!("{name} lies past 4 GiB")))?;
                    return Ok(Some((at, t)));
                }
            } else if self.name(name_off)? == name {
                if bitfield {
                    return Err(err(format!("{name} is a bitfield in this kernel")));
                }
                return Ok(Some((bits, ty)));
            }
        }
        Ok(None)
    }

    /// Offset and size of `path` (members separated by dots, e.g. `inet_conn.icsk_user_timeout`)
    /// in struct `name`, counted from the start of the struct.
    pub fn member(&self, name: &str, path: &str) -> Result<Field, BtfError> {
        let mut id = self.id_of(STRUCT, name)?;
        let mut bits = 0u32;
        for part in path.split('.') {
            let (offset, ty) = self
                .find_member(id, part, 0)?
                .ok_or_else(|| err(format!("the kernel's struct {name} has no {path}")))?;
            bits = bits
                .checked_add(offset)
                .ok_or_else(|| err(format!("{name}.{path} lies past 4 GiB")))?;
            id = ty;
        }
        if !bits.is_multiple_of(8) {
            return Err(err(format!("{name}.{path} does not start on a byte")));
        }
        Ok(Field {
            offset: bits / 8,
            size: self.size_of(id)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob built by hand: the header, then `types`, then `strings`.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xEB9Fu16.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        let type_len = (types.len() * 4) as u32;
        for v in [24u32, 0, type_len, type_len, strings.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for t in types {
            b.extend_from_slice(&t.to_le_bytes());
        }
        b.extend_from_slice(strings);
        b
    }

    fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
        (kind << 24) | vlen | if kind_flag { 1 << 31 } else { 0 }
    }

    // Strings: 0 "", 1 "int", 5 "outer", 11 "a", 13 "b", 15 "inner", 21 "flags", 27 "F_ONE",
    // 33 "fn", 36 "bits".
    const STRINGS: &[u8] = b"\0int\0outer\0a\0b\0inner\0flags\0F_ONE\0fn\0bits\0";

    fn sample() -> Vec<u32> {
        vec![
            // 1: int, 4 bytes.
            1,
            info(INT, 0, false),
            4,
            32,
            // 2: struct inner { int b; } at bit 0 ... size 4.
            15,
            info(STRUCT, 1, false),
            4,
            13,
            1,
            0,
            // 3: typedef of 2 (anonymous name).
            0,
            info(TYPEDEF, 0, false),
            2,
            // 4: struct outer { int a; union { inner x; }; } a at 0, anonymous union at 64 bits.
            5,
            info(STRUCT, 2, false),
            16,
            11,
            1,
            0,
            0,
            5,
            64,
            // 5: anonymous union { typedef inner (named "inner"); } at 0.
            0,
            info(UNION, 1, false),
            4,
            15,
            3,
            0,
            // 6: enum flags { F_ONE = 7 }.
            21,
            info(ENUM, 1, false),
            4,
            27,
            7,
            // 7: func fn.
            33,
            info(FUNC, 0, false),
            0,
            // 8: struct with a bitfield member "bits" (width 3 at bit 8).
            36,
            info(STRUCT, 1, true),
            4,
            36,
            1,
            (3 << 24) | 8,
        ]
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_typedefs() {
        let data = blob(&sample(), STRINGS);
        let wanted = [
            ("struct", "outer"),
            ("enum", "flags"),
            ("func", "fn"),
            ("struct", "bits"),
        ];
        let btf = Btf::parse(&data, &wanted).unwrap();
        assert_eq!(
            btf.member("outer", "a").unwrap(),
            Field { offset: 0, size: 4 }
        );
        assert_eq!(
            btf.member("outer", "inner.b").unwrap(),
            Field { offset: 8, size: 4 }
        );
        assert_eq!(
            btf.member("outer", "inner").unwrap(),
            Field { offset: 8, size: 4 }
        );
        assert!(btf.member("outer", "c").unwrap_err().0.contains("has no c"));
        assert_eq!(btf.enum_value("flags", "F_ONE").unwrap(), 7);
        assert!(btf.enum_value("flags", "F_TWO").is_err());
        assert_eq!(btf.func("fn").unwrap(), 7);
        // Not asked for: not found, even though it is there.
        assert!(btf.member("inner", "b").is_err());
        assert!(
            btf.member("bits", "bits")
                .unwrap_err()
                .0
                .contains("bitfield")
        );
    }

    #[test]
    fn truncated_or_foreign_data_is_an_error_not_a_panic() {
        let data = blob(&sample(), STRINGS);
        let wanted = [("struct", "outer")];
        for len in 0..data.len() {
            // Every prefix: the header's lengths then point past the end.
            assert!(
                Btf::parse(&data[..len], &wanted).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut bad = data.clone();
        bad[0] = 0;
        assert!(Btf::parse(&bad, &wanted).unwrap_err().0.contains("magic"));
        // An unknown kind stops the walk with a message.
        let mut types = sample();
        types.extend([0, info(30, 0, false), 0]);
        let strange = blob(&types, STRINGS);
        assert!(
            Btf::parse(&strange, &wanted)
                .unwrap_err()
                .0
                .contains("kind 30")
        );
        // A member pointing at a type that does not exist.
        let mut types = sample();
        types[17] = 99;
        let dangling = blob(&types, STRINGS);
        let btf = Btf::parse(&dangling, &wanted).unwrap();
        assert!(btf.member("outer", "a").unwrap_err().0.contains("99"));
    }

    #[test]
    fn reads_this_kernels_btf() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux")
            .expect("/sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF) is needed by this test");
        let wanted = [
            ("struct", "tcp_sock"),
            ("func", "bpf_iter_task_file"),
            ("enum", "sock_flags"),
        ];
        let btf = Btf::parse(&data, &wanted).unwrap();
        assert!(btf.func("bpf_iter_task_file").unwrap() > 0);
        let probes = btf.member("tcp_sock", "keepalive_probes").unwrap();
        assert_eq!(probes.size, 1);
        let user_timeout = btf
            .member("tcp_sock", "inet_conn.icsk_user_timeout")
            .unwrap();
        assert_eq!(user_timeout.size, 4);
        assert!(btf.enum_value("sock_flags", "SOCK_LINGER").is_ok());
    }
}
