//! Known value ranges of the sysctls that shape resets.
//!
//! The kernel bounds some keys itself (and refuses a write with EINVAL), but
//! many it takes without complaint (tcp_syncookies=5, tcp_keepalive_time=300000
//! are accepted on 6.18 and mean nonsense). This table refuses such values
//! before anything is written. Bounds come from the kernel (MAX_TCP_KEEPIDLE,
//! MAX_TCP_KEEPCNT, MAX_TCP_SYNCNT, u8 sysctls, jiffies conversions) or from
//! what the key means (booleans).

/// `(key, min, max)` for single-integer keys.
const RANGES: &[(&str, i64, i64)] = &[
    ("net.ipv4.tcp_syncookies", 0, 2),
    ("net.ipv4.tcp_abort_on_overflow", 0, 1),
    ("net.ipv4.tcp_timestamps", 0, 2),
    ("net.ipv4.tcp_tw_reuse", 0, 2),
    ("net.ipv4.tcp_rfc1337", 0, 1),
    ("net.ipv4.tcp_fin_timeout", 1, 3600),
    // MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT (include/net/tcp.h).
    ("net.ipv4.tcp_keepalive_time", 1, 32767),
    ("net.ipv4.tcp_keepalive_intvl", 1, 32767),
    ("net.ipv4.tcp_keepalive_probes", 1, 127),
    // MAX_TCP_SYNCNT; the retries are u8 sysctls.
    ("net.ipv4.tcp_syn_retries", 1, 127),
    ("net.ipv4.tcp_synack_retries", 0, 255),
    ("net.ipv4.tcp_retries1", 0, 255),
    ("net.ipv4.tcp_retries2", 0, 255),
    ("net.ipv4.tcp_orphan_retries", 0, 255),
    // TCP_RTO_MAX_MS is bounded to [1 s, TCP_RTO_MAX] (6.15, net/ipv4/sysctl_net_ipv4.c).
    ("net.ipv4.tcp_rto_max_ms", 1000, 120_000),
    ("net.ipv4.tcp_rto_min_us", 1, i32::MAX as i64),
    ("net.core.somaxconn", 1, i32::MAX as i64),
    ("net.ipv4.tcp_max_syn_backlog", 1, i32::MAX as i64),
    ("net.ipv4.tcp_max_tw_buckets", 0, i32::MAX as i64),
    ("net.ipv4.tcp_challenge_ack_limit", 0, i32::MAX as i64),
    ("net.ipv4.tcp_invalid_ratelimit", 0, i32::MAX as i64),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", 0, 1),
    ("net.netfilter.nf_conntrack_tcp_loose", 0, 1),
    // Timeouts are seconds converted to jiffies in an int: INT_MAX / 1000 at HZ=1000.
    (
        "net.netfilter.nf_conntrack_tcp_timeout_established",
        1,
        2_147_483,
    ),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_time_wait",
        1,
        2_147_483,
    ),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
        1,
        2_147_483,
    ),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
        1,
        2_147_483,
    ),
    (
        "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged",
        1,
        2_147_483,
    ),
];

/// The known range of a key, if any.
pub fn range_of(key: &str) -> Option<(i64, i64)> {
    RANGES
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, lo, hi)| (lo, hi))
}

/// A value outside the key's known range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfRange {
    #[error("{value:?} is not an integer (expected {lo}..={hi})")]
    NotAnInteger { value: String, lo: i64, hi: i64 },
    #[error("{n} is out of range {lo}..={hi}")]
    Outside { n: i64, lo: i64, hi: i64 },
}

/// Check a value against the key's known range. Keys without a known range pass.
pub fn check(key: &str, value: &str) -> Result<(), OutOfRange> {
    let Some((lo, hi)) = range_of(key) else {
        return Ok(());
    };
    let trimmed = value.trim();
    let n: i64 = trimmed.parse().map_err(|_| OutOfRange::NotAnInteger {
        value: trimmed.to_string(),
        lo,
        hi,
    })?;
    if n < lo || n > hi {
        return Err(OutOfRange::Outside { n, lo, hi });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert!(check("net.ipv4.tcp_syncookies", "1").is_ok());
        assert!(check("net.ipv4.tcp_syncookies", "5").is_err());
        assert!(check("net.ipv4.tcp_syncookies", "yes").is_err());
        assert!(check("net.ipv4.tcp_keepalive_time", "300000").is_err());
        assert!(check("net.ipv4.tcp_keepalive_probes", "0").is_err());
        assert!(check("net.ipv4.tcp_congestion_control", "cubic").is_ok());
    }

    #[test]
    fn table_has_no_duplicates() {
        let mut keys: Vec<_> = RANGES.iter().map(|r| r.0).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len());
        assert!(RANGES.iter().all(|r| r.1 <= r.2));
    }
}
