//! The catalogue: every sysctl key the project reads or writes, the kernels that have it, its
//! type, and the values the kernel gives a meaning.
//!
//! The kernel bounds some keys itself (and refuses a write with EINVAL), but many it takes
//! without complaint (tcp_syncookies=5, tcp_keepalive_time=300000 are accepted on 6.18 and
//! mean nonsense). The bounds here are the kernel's narrowed to what the key means: they come
//! from the kernel's limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPCNT, MAX_TCP_SYNCNT, u8 sysctls,
//! jiffies conversions, SOCK_MIN_RCVBUF) or from what each value does (booleans, modes).
//! Rules, profiles, fixes, `apply`, `verify` and the lab's `--with` all check values here;
//! the other net.* names of the supported kernels are in [`super::names`].

use crate::host::KernelVersion;

/// What a key holds, and which of those values mean something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One integer in `lo..=hi`.
    Int { lo: i64, hi: i64 },
    /// `n` integers, each in `lo..=hi`, in ascending order (min, default or pressure, max).
    Ascending { n: usize, lo: i64, hi: i64 },
    /// A name (letters, digits, `_` and `-`) of at most `max_len` bytes; which names exist
    /// is the kernel's to say (loaded modules).
    Name { max_len: usize },
    /// The kernel's own count: read, never written.
    ReadOnly,
}

/// One key of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub key: &'static str,
    pub kind: Kind,
    /// The first release that has it (`None`: every supported kernel).
    pub since: Option<(u32, u32)>,
    /// The first release that no longer has it.
    pub until: Option<(u32, u32)>,
    /// The module that provides it (absent until the module is loaded in the namespace).
    pub module: Option<&'static str>,
}

const fn int(key: &'static str, lo: i64, hi: i64) -> Spec {
    Spec {
        key,
        kind: Kind::Int { lo, hi },
        since: None,
        until: None,
        module: None,
    }
}

const fn conntrack(key: &'static str, lo: i64, hi: i64) -> Spec {
    Spec {
        module: Some("nf_conntrack"),
        ..int(key, lo, hi)
    }
}

const fn since(spec: Spec, major: u32, minor: u32) -> Spec {
    Spec {
        since: Some((major, minor)),
        ..spec
    }
}

const fn until(spec: Spec, major: u32, minor: u32) -> Spec {
    Spec {
        until: Some((major, minor)),
        ..spec
    }
}

const fn ascending(key: &'static str, n: usize, lo: i64, hi: i64) -> Spec {
    Spec {
        kind: Kind::Ascending { n, lo, hi },
        ..int(key, 0, 0)
    }
}

const INT_MAX: i64 = i32::MAX as i64;
/// Timeouts in seconds that the kernel keeps in jiffies in an int: INT_MAX / 1000 at HZ=1000.
const JIFFIES_SECS: i64 = 2_147_483;

/// The catalogue, in key order.
pub const CATALOGUE: &[Spec] = &[
    int("net.core.netdev_max_backlog", 1, INT_MAX),
    // SOCK_MIN_RCVBUF and SOCK_MIN_SNDBUF (include/net/sock.h; 2304 and 4608 on x86-64).
    int("net.core.rmem_default", 2304, INT_MAX),
    int("net.core.rmem_max", 2304, INT_MAX),
    int("net.core.somaxconn", 1, INT_MAX),
    int("net.core.wmem_default", 4608, INT_MAX),
    int("net.core.wmem_max", 4608, INT_MAX),
    int("net.ipv4.ip_forward", 0, 1),
    // The kernel refuses a range whose end is below its start.
    ascending("net.ipv4.ip_local_port_range", 2, 1, 65535),
    int("net.ipv4.tcp_abort_on_overflow", 0, 1),
    int("net.ipv4.tcp_challenge_ack_limit", 0, INT_MAX),
    Spec {
        kind: Kind::Name { max_len: 15 },
        ..int("net.ipv4.tcp_congestion_control", 0, 0)
    },
    int("net.ipv4.tcp_fin_timeout", 1, 3600),
    int("net.ipv4.tcp_invalid_ratelimit", 0, INT_MAX),
    // MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE (include/net/tcp.h).
    int("net.ipv4.tcp_keepalive_intvl", 1, 32767),
    int("net.ipv4.tcp_keepalive_probes", 1, 127),
    int("net.ipv4.tcp_keepalive_time", 1, 32767),
    int("net.ipv4.tcp_max_orphans", 0, INT_MAX),
    int("net.ipv4.tcp_max_syn_backlog", 1, INT_MAX),
    int("net.ipv4.tcp_max_tw_buckets", 0, INT_MAX),
    // Pages: below low no pressure, above high no more memory; in that order.
    ascending("net.ipv4.tcp_mem", 3, 1, i64::MAX),
    int("net.ipv4.tcp_orphan_retries", 0, 255),
    int("net.ipv4.tcp_retries1", 0, 255),
    int("net.ipv4.tcp_retries2", 0, 255),
    int("net.ipv4.tcp_rfc1337", 0, 1),
    // Bytes: min, default, max (the kernel's lower bound is 1).
    ascending("net.ipv4.tcp_rmem", 3, 1, INT_MAX),
    // TCP_RTO_MAX_SEC * 1000 bounds it (net/ipv4/sysctl_net_ipv4.c).
    since(int("net.ipv4.tcp_rto_max_ms", 1000, 120_000), 6, 15),
    since(int("net.ipv4.tcp_rto_min_us", 1, INT_MAX), 6, 11),
    // Linear SYN retransmissions before doubling (u8, at most MAX_TCP_SYNCNT).
    since(int("net.ipv4.tcp_syn_linear_timeouts", 0, 127), 6, 7),
    // MAX_TCP_SYNCNT; the other retries are u8 sysctls.
    int("net.ipv4.tcp_syn_retries", 1, 127),
    int("net.ipv4.tcp_synack_retries", 0, 255),
    // 0 off, 1 cookies when the SYN queue overflows, 2 always.
    int("net.ipv4.tcp_syncookies", 0, 2),
    // 0 off, 1 on with random offsets, 2 on without.
    int("net.ipv4.tcp_timestamps", 0, 2),
    until(int("net.ipv4.tcp_tw_recycle", 0, 1), 4, 12),
    // 0 off, 1 on, 2 loopback only.
    int("net.ipv4.tcp_tw_reuse", 0, 2),
    // Milliseconds, at most TCP_PAWS_MSL (60 s).
    since(int("net.ipv4.tcp_tw_reuse_delay", 1, 60_000), 6, 14),
    ascending("net.ipv4.tcp_wmem", 3, 1, INT_MAX),
    Spec {
        kind: Kind::ReadOnly,
        ..conntrack("net.netfilter.nf_conntrack_count", 0, 0)
    },
    // 0: no limit.
    conntrack("net.netfilter.nf_conntrack_max", 0, INT_MAX),
    conntrack("net.netfilter.nf_conntrack_tcp_be_liberal", 0, 1),
    conntrack("net.netfilter.nf_conntrack_tcp_loose", 0, 1),
    conntrack(
        "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
        1,
        JIFFIES_SECS,
    ),
    conntrack(
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        1,
        JIFFIES_SECS,
    ),
    conntrack(
        "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
        1,
        JIFFIES_SECS,
    ),
    conntrack(
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        1,
        JIFFIES_SECS,
    ),
    conntrack(
        "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged",
        1,
        JIFFIES_SECS,
    ),
    conntrack("net.nf_conntrack_max", 0, INT_MAX),
];

/// The catalogue's entry for `key` (dotted form).
pub fn spec(key: &str) -> Option<&'static Spec> {
    CATALOGUE
        .binary_search_by(|s| s.key.cmp(key))
        .ok()
        .map(|i| &CATALOGUE[i])
}

/// A value outside what the key means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfRange {
    #[error("{value:?} is not an integer (expected {lo}..={hi})")]
    NotAnInteger { value: String, lo: i64, hi: i64 },
    #[error("{n} is out of range {lo}..={hi}")]
    Outside { n: i64, lo: i64, hi: i64 },
    #[error("{value:?} has {got} field(s); expected {n} integers in ascending order")]
    Fields { value: String, got: usize, n: usize },
    #[error("{value:?} is not in ascending order (each field at least the one before)")]
    NotAscending { value: String },
    #[error("{value:?} is not a name (letters, digits, _ and -, at most {max_len} bytes)")]
    NotAName { value: String, max_len: usize },
    #[error("is read-only: the kernel's own count, never set")]
    ReadOnly,
}

impl Spec {
    /// Check a value (already free of NUL bytes and newlines) against what the key means.
    pub fn check(&self, value: &str) -> Result<(), OutOfRange> {
        let trimmed = value.trim();
        let integer = |text: &str, lo: i64, hi: i64| -> Result<(), OutOfRange> {
            let n: i64 = text.parse().map_err(|_| OutOfRange::NotAnInteger {
                value: text.to_string(),
                lo,
                hi,
            })?;
            if n < lo || n > hi {
                return Err(OutOfRange::Outside { n, lo, hi });
            }
            Ok(())
        };
        match self.kind {
            Kind::Int { lo, hi } => integer(trimmed, lo, hi),
            Kind::Ascending { n, lo, hi } => {
                let fields: Vec<&str> = trimmed.split_whitespace().collect();
                if fields.len() != n {
                    return Err(OutOfRange::Fields {
                        value: trimmed.to_string(),
                        got: fields.len(),
                        n,
                    });
                }
                let mut last = i64::MIN;
                for f in fields {
                    integer(f, lo, hi)?;
                    let v: i64 = f.parse().unwrap_or(lo);
                    if v < last {
                        return Err(OutOfRange::NotAscending {
                            value: trimmed.to_string(),
                        });
                    }
                    last = v;
                }
                Ok(())
            }
            Kind::Name { max_len } => {
                let ok = !trimmed.is_empty()
                    && trimmed.len() <= max_len
                    && trimmed
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if ok {
                    Ok(())
                } else {
                    Err(OutOfRange::NotAName {
                        value: trimmed.to_string(),
                        max_len,
                    })
                }
            }
            Kind::ReadOnly => Err(OutOfRange::ReadOnly),
        }
    }

    /// Whether a single number is one of the key's values (for `at_least` / `at_most`):
    /// integer keys only.
    pub fn check_bound(&self, n: i64) -> Result<(), OutOfRange> {
        match self.kind {
            Kind::Int { .. } | Kind::ReadOnly => self.check(&n.to_string()),
            Kind::Ascending { n: fields, .. } => Err(OutOfRange::Fields {
                value: n.to_string(),
                got: 1,
                n: fields,
            }),
            Kind::Name { max_len } => Err(OutOfRange::NotAName {
                value: n.to_string(),
                max_len,
            }),
        }
    }

    /// Why this kernel may lack the key (`None`: every supported kernel has it, so its
    /// absence is a problem, not a property of the kernel).
    pub fn absence(&self, kernel: Option<KernelVersion>) -> Option<String> {
        // An unknown version could be either side of a bound.
        let version = kernel.map(|k| (k.major, k.minor));
        if let Some((a, b)) = self.until
            && version.is_none_or(|v| v >= (a, b))
        {
            return Some(format!("removed in Linux {a}.{b}"));
        }
        if let Some((a, b)) = self.since
            && version.is_none_or(|v| v < (a, b))
        {
            return Some(format!("added in Linux {a}.{b}"));
        }
        self.module
            .map(|m| format!("it comes with the {m} module, not loaded here"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, value: &str) -> Result<(), OutOfRange> {
        spec(key).map_or(Ok(()), |s| s.check(value))
    }

    #[test]
    fn bounds_are_enforced() {
        assert!(check("net.ipv4.tcp_syncookies", "1").is_ok());
        assert!(check("net.ipv4.tcp_syncookies", "5").is_err());
        assert!(check("net.ipv4.tcp_syncookies", "yes").is_err());
        assert!(check("net.ipv4.tcp_keepalive_time", "300000").is_err());
        assert!(check("net.ipv4.tcp_keepalive_time", "-4").is_err());
        assert!(check("net.ipv4.tcp_keepalive_probes", "0").is_err());
        assert!(check("net.ipv4.tcp_congestion_control", "cubic").is_ok());
        assert!(check("net.ipv4.tcp_congestion_control", "cu bic").is_err());
        assert!(check("net.ipv4.tcp_rmem", "4096 131072 6291456").is_ok());
        assert!(check("net.ipv4.tcp_rmem", "4096 131072").is_err());
        assert!(check("net.ipv4.tcp_rmem", "8192 4096 6291456").is_err());
        assert!(check("net.ipv4.ip_local_port_range", "32768 60999").is_ok());
        assert!(check("net.ipv4.ip_local_port_range", "60999 32768").is_err());
        assert!(check("net.ipv4.ip_local_port_range", "0 100").is_err());
        assert!(check("net.netfilter.nf_conntrack_count", "5").is_err());
        assert_eq!(
            check("net.ipv4.tcp_syncookies", "7")
                .unwrap_err()
                .to_string(),
            "7 is out of range 0..=2"
        );
    }

    #[test]
    fn the_catalogue_is_sorted_unique_and_every_range_holds_a_value() {
        assert!(CATALOGUE.windows(2).all(|w| w[0].key < w[1].key));
        for s in CATALOGUE {
            let k =
                crate::host::sysctl::SysctlKey::parse(s.key, crate::host::sysctl::Scope::NetOnly)
                    .expect(s.key);
            assert_eq!(k.as_str(), s.key);
            match s.kind {
                Kind::Int { lo, hi } | Kind::Ascending { lo, hi, .. } => {
                    assert!(lo <= hi, "{}", s.key)
                }
                Kind::Name { max_len } => assert!(max_len > 0),
                Kind::ReadOnly => {}
            }
            if let (Some(a), Some(b)) = (s.since, s.until) {
                assert!(a < b, "{}", s.key);
            }
        }
    }

    #[test]
    fn absence_is_explained_by_the_kernel_or_the_module() {
        let v = |major, minor| {
            Some(KernelVersion {
                major,
                minor,
                patch: 0,
            })
        };
        let recycle = spec("net.ipv4.tcp_tw_recycle").unwrap();
        assert_eq!(
            recycle.absence(v(6, 1)).as_deref(),
            Some("removed in Linux 4.12")
        );
        let rto = spec("net.ipv4.tcp_rto_min_us").unwrap();
        assert_eq!(rto.absence(v(6, 1)).as_deref(), Some("added in Linux 6.11"));
        let ct = spec("net.netfilter.nf_conntrack_max").unwrap();
        assert!(ct.absence(v(6, 18)).unwrap().contains("nf_conntrack"));
        assert_eq!(
            rto.absence(v(6, 18)),
            None,
            "6.18 has it: its absence is a problem"
        );
        assert_eq!(spec("net.core.somaxconn").unwrap().absence(v(6, 18)), None);
    }
}
