//! Names a rule may use: counters, RST reasons, seed causes and lab scenarios (sysctl keys
//! are the catalogue's, [`crate::valid`]). A rule naming anything else is refused at load
//! time, so a typo never becomes a rule that silently never fires.

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

/// The seed's causes (rst-causes.md section 6).
pub const CAUSES: &[&str] = &[
    "0", "2", "2b", "3", "4", "5", "6", "7", "8", "9", "10", "11", "13", "14", "orphans",
];

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
    fn the_counters_the_packet_check_follows_are_counters_rules_may_name() {
        for c in crate::host::counters::RESET_COUNTERS {
            assert!(
                COUNTERS.contains(c),
                "{c} is followed but unknown to the rules"
            );
        }
    }
}
