//! Names a rule may use: counters, RST reasons, causes and lab scenarios (sysctl keys are
//! the catalogue's, [`crate::valid`]). A rule naming anything else is refused at load time,
//! so a typo never becomes a rule that silently never fires.

/// MIB counters rules may name (`Group.Name`, as in /proc/net/netstat and /proc/net/snmp).
pub const COUNTERS: &[&str] = &[
    "Tcp.ActiveOpens",
    "Tcp.AttemptFails",
    "Tcp.CurrEstab",
    "Tcp.EstabResets",
    "Tcp.InErrs",
    "Tcp.InSegs",
    "Tcp.OutRsts",
    "Tcp.OutSegs",
    "Tcp.PassiveOpens",
    "Tcp.RetransSegs",
    "TcpExt.EmbryonicRsts",
    "TcpExt.ListenDrops",
    "TcpExt.ListenOverflows",
    "TcpExt.PAWSActive",
    "TcpExt.PAWSEstab",
    "TcpExt.PAWSPassive",
    "TcpExt.PAWSTimewait",
    "TcpExt.SyncookiesFailed",
    "TcpExt.SyncookiesRecv",
    "TcpExt.SyncookiesSent",
    "TcpExt.TCPAbortFailed",
    "TcpExt.TCPAbortOnClose",
    "TcpExt.TCPAbortOnData",
    "TcpExt.TCPAbortOnLinger",
    "TcpExt.TCPAbortOnMemory",
    "TcpExt.TCPAbortOnTimeout",
    "TcpExt.TCPBacklogDrop",
    "TcpExt.TCPKeepAlive",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPSynRetrans",
    "TcpExt.TCPTimeouts",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.TW",
    "TcpExt.TWKilled",
    "TcpExt.TWRecycled",
];

/// `sk_rst_reason` names (include/net/rstreason.h) a rule may cite as evidence.
pub const RST_REASONS: &[&str] = &[
    "NOT_SPECIFIED",
    "NO_SOCKET",
    "TCP_INVALID_ACK_SEQUENCE",
    "TCP_RFC7323_PAWS",
    "TCP_TOO_OLD_ACK",
    "TCP_ACK_UNSENT_DATA",
    "TCP_OLD_ACK",
    "TCP_FLAGS",
    "TCP_ABORT_ON_DATA",
    "TCP_TIMEWAIT_SOCKET",
    "INVALID_SYN",
    "TCP_ABORT_ON_CLOSE",
    "TCP_ABORT_ON_LINGER",
    "TCP_ABORT_ON_MEMORY",
    "TCP_STATE",
    "TCP_KEEPALIVE_TIMEOUT",
    "TCP_DISCONNECT_WITH_DATA",
    "MPTCP_RST_EUNSPEC",
    "MPTCP_RST_EMPTCP",
    "MPTCP_RST_ERESOURCE",
    "MPTCP_RST_EPROHIBIT",
    "MPTCP_RST_EWQ2BIG",
    "MPTCP_RST_EBADPERF",
    "MPTCP_RST_EMIDDLEBOX",
    "ERROR",
];

/// The causes of resets, by their stable names, in the order of the catalogue
/// (docs/causes.md). Every output names a cause this way.
pub const CAUSES: &[&str] = &[
    "packet-loss",
    "port-not-open",
    "accept-overflow",
    "unread-close",
    "mobile-idle",
    "middlebox-idle",
    "linger-zero",
    "retransmit-timeout",
    "time-wait",
    "connect-timeout",
    "invalid-packets",
    "keepalive-timeout",
    "write-after-close",
    "half-open",
    "orphans",
];

/// The number each cause has in the article the catalogue started from (docs/causes.md),
/// accepted wherever a cause is named (`cause: "3"` in a rule, `rstaudit explain 3`), never
/// printed in its place.
pub const CAUSE_NUMBERS: &[(&str, &str)] = &[
    ("0", "packet-loss"),
    ("2", "port-not-open"),
    ("2b", "accept-overflow"),
    ("3", "unread-close"),
    ("4", "mobile-idle"),
    ("5", "middlebox-idle"),
    ("6", "linger-zero"),
    ("7", "retransmit-timeout"),
    ("8", "time-wait"),
    ("9", "connect-timeout"),
    ("10", "invalid-packets"),
    ("11", "keepalive-timeout"),
    ("13", "write-after-close"),
    ("14", "half-open"),
];

/// The stable name of the cause `text` names: its name, or its number as an alias
/// (`3`, `2B`), either case. None when it names no cause.
pub fn cause(text: &str) -> Option<&'static str> {
    let t = text.trim().to_ascii_lowercase();
    CAUSES
        .iter()
        .find(|c| **c == t)
        .copied()
        .or_else(|| CAUSE_NUMBERS.iter().find(|(n, _)| *n == t).map(|(_, c)| *c))
}

/// The article's number of a cause, if it has one.
pub fn cause_number(name: &str) -> Option<&'static str> {
    CAUSE_NUMBERS
        .iter()
        .find(|(_, c)| *c == name)
        .map(|(n, _)| *n)
}

/// Lab scenarios (`packet-check --lab`) a rule may name.
pub const LAB_SCENARIOS: &[&str] = &[
    "closed-port",
    "unread-close",
    "linger-zero",
    "accept-overflow",
    "idle-middlebox",
    "lost-keepalive-probe",
    "keepalive-timeout",
    "write-after-close",
    "idle-no-keepalive",
    "linger2-abort",
    "user-timeout",
    "tw-recycle",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_valid_and_unique() {
        for list in [COUNTERS, RST_REASONS, CAUSES, LAB_SCENARIOS] {
            let mut v = list.to_vec();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), list.len());
        }
        assert!(COUNTERS.iter().all(|c| c.split_once('.').is_some()));
    }

    #[test]
    fn every_cause_number_is_an_alias_of_a_named_cause() {
        for (number, name) in CAUSE_NUMBERS {
            assert!(CAUSES.contains(name), "{number} -> {name}");
            assert_eq!(cause(number), Some(*name));
            assert_eq!(cause_number(name), Some(*number));
            assert!(!CAUSES.contains(number), "{number} is also a name");
        }
        for name in CAUSES {
            assert_eq!(cause(name), Some(*name));
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
        }
        assert_eq!(cause("2B"), Some("accept-overflow"));
        assert_eq!(cause("12"), None);
        assert_eq!(cause("Seed cause 13"), None);
    }

    #[test]
    fn the_counters_the_packet_check_follows_are_counters_rules_may_name() {
        for c in crate::host::counters::RESET_COUNTERS {
            assert!(
                COUNTERS.contains(c),
                "{c} is followed but unknown to the rules"
            );
        }
    }
}
