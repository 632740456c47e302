//! Which kernel function an address lies in, for the few functions a caller asks about: read
//! from /proc/kallsyms, so that the return addresses of a kernel stack recorded in the trace
//! (binary records carry addresses, not names) can be named.
//!
//! Only function symbols (`t`/`T`) are kept, and of each only its start and whether it is one
//! of the functions asked for: an address belongs to the function with the greatest start at
//! or below it. Where the kernel hides addresses (kptr_restrict, or a reader without
//! CAP_SYSLOG sees zeros) nothing can be named, and [`Symbols::load`] says so.

use std::io::BufRead;

/// Function starts, sorted, each with the index of the wanted name it is (or none).
#[derive(Debug, Default)]
pub struct Symbols {
    starts: Vec<u64>,
    /// Index into the wanted names, `u16::MAX` for a function not asked about.
    tags: Vec<u16>,
}

/// Why the addresses cannot be named.
#[derive(Debug, thiserror::Error)]
pub enum KallsymsError {
    #[error("reading /proc/kallsyms: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "/proc/kallsyms shows every address as 0 (kernel.kptr_restrict, or no CAP_SYSLOG): kernel stacks cannot be named"
    )]
    Hidden,
}

const NONE: u16 = u16::MAX;

impl Symbols {
    /// Read /proc/kallsyms, keeping the functions named in `wanted`.
    pub fn load(wanted: &[&str]) -> Result<Self, KallsymsError> {
        let file = std::fs::File::open("/proc/kallsyms")?;
        Self::parse(std::io::BufReader::with_capacity(1 << 16, file), wanted)
    }

    /// Parse kallsyms text (`ADDRESS TYPE NAME [MODULE]` lines).
    pub fn parse(reader: impl BufRead, wanted: &[&str]) -> Result<Self, KallsymsError> {
        let mut pairs: Vec<(u64, u16)> = Vec::with_capacity(1 << 17);
        let mut nonzero = false;
        for line in reader.split(b'\n') {
            let line = line?;
            let mut parts = line
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|p| !p.is_empty());
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !matches!(kind, b"t" | b"T") {
                continue;
            }
            let Some(addr) = std::str::from_utf8(addr)
                .ok()
                .and_then(|a| u64::from_str_radix(a, 16).ok())
            else {
                continue;
            };
            nonzero |= addr != 0;
            let tag = wanted
                .iter()
                .position(|w| w.as_bytes() == name)
                .map_or(NONE, |i| i as u16);
            pairs.push((addr, tag));
        }
        if !nonzero {
            return Err(KallsymsError::Hidden);
        }
        // A function listed twice (aliases at one address) keeps the name asked about.
        pairs.sort_unstable_by_key(|&(addr, tag)| (addr, tag));
        pairs.dedup_by_key(|p| p.0);
        let (starts, tags) = pairs.into_iter().unzip();
        Ok(Self { starts, tags })
    }

    /// The index in the wanted names of the function `addr` lies in, if it is one of them.
    pub fn lookup(&self, addr: u64) -> Option<usize> {
        let i = self.starts.partition_point(|&s| s <= addr).checked_sub(1)?;
        let tag = self.tags[i];
        (tag != NONE).then_some(usize::from(tag))
    }

    /// How many functions are known.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of /proc/kallsyms as Debian's 5.10.223 prints them (abridged, addresses as seen in
    /// a guest).
    const KALLSYMS: &str = "\
ffffffff8a78fe20 T tcp_send_active_reset
ffffffff8a78ffa0 T tcp_send_synack
ffffffff8a795190 t tcp_v4_send_reset
ffffffff8a7958f0 t tcp_v4_send_ack
ffffffff8a796e70 T tcp_v4_rcv
ffffffff8a797e00 T tcp_v4_early_demux
ffffffff8a79c000 d tcp_hashinfo
ffffffffc01d6000 t nf_hook_slow\t[nf_tables]
";

    #[test]
    fn addresses_inside_the_wanted_functions_are_named() {
        let wanted = ["tcp_v4_rcv", "tcp_send_active_reset", "tcp_v4_send_reset"];
        let s = Symbols::parse(KALLSYMS.as_bytes(), &wanted).unwrap();
        assert_eq!(s.len(), 7, "data symbols are left out");
        assert_eq!(s.lookup(0xffffffff8a796e70), Some(0), "the start itself");
        assert_eq!(
            s.lookup(0xffffffff8a797123),
            Some(0),
            "a return address inside"
        );
        assert_eq!(s.lookup(0xffffffff8a78fe21), Some(1));
        assert_eq!(s.lookup(0xffffffff8a795200), Some(2));
        assert_eq!(
            s.lookup(0xffffffff8a7958f5),
            None,
            "tcp_v4_send_ack is not asked about"
        );
        assert_eq!(
            s.lookup(0xffffffff8a797e01),
            None,
            "past the end of tcp_v4_rcv"
        );
        assert_eq!(s.lookup(0x1000), None, "below every function");
        assert_eq!(s.lookup(0xffffffffc01d6010), None, "a module's function");
    }

    #[test]
    fn hidden_addresses_are_said() {
        let hidden: String = KALLSYMS
            .lines()
            .map(|l| format!("0000000000000000{}\n", &l[16..]))
            .collect();
        assert!(matches!(
            Symbols::parse(hidden.as_bytes(), &["tcp_v4_rcv"]),
            Err(KallsymsError::Hidden)
        ));
    }

    #[test]
    fn this_machines_kallsyms_names_a_tcp_function() {
        let s = Symbols::load(&["tcp_v4_rcv"]).expect("root reads /proc/kallsyms");
        assert!(s.len() > 1000, "{} functions", s.len());
    }
}
