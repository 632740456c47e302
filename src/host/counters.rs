//! MIB counters: /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6 as `Group.Name -> u64`.
//!
//! Parsing is separate from reading: the parsers take any `BufRead` (captured text in tests,
//! bytes from a fuzzer) and return errors that name the file and the line. The reader opens
//! the files of the calling thread's namespace (/proc/thread-self/net) or of a copied tree;
//! a file that cannot be opened becomes a note, a file that cannot be parsed is an error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use super::files::{ParseError, Place, parse_error as error};
use super::{CounterSample, Note};
use crate::clock::now_ms;

/// Parse a value; `Ok(None)` for a negative number (constants such as `Tcp.MaxConn -1`).
fn value(file: &str, line: usize, name: &str, text: &str) -> Result<Option<u64>, ParseError> {
    if let Ok(v) = text.parse::<u64>() {
        return Ok(Some(v));
    }
    if text.parse::<i64>().is_ok_and(|v| v < 0) {
        return Ok(None);
    }
    Err(error(
        file,
        line,
        format!("value {text:?} of {name} is not a number"),
    ))
}

/// The counters that say how resets happen (docs/causes.md names them per cause): the packet check
/// follows them, the lab shows those that moved.
pub const RESET_COUNTERS: &[&str] = &[
    "Tcp.OutRsts",
    "Tcp.EstabResets",
    "Tcp.AttemptFails",
    "TcpExt.TCPAbortOnClose",
    "TcpExt.TCPAbortOnData",
    "TcpExt.TCPAbortOnLinger",
    "TcpExt.TCPAbortOnMemory",
    "TcpExt.TCPAbortOnTimeout",
    "TcpExt.TCPAbortFailed",
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.SyncookiesSent",
    "TcpExt.SyncookiesRecv",
    "TcpExt.SyncookiesFailed",
    "TcpExt.EmbryonicRsts",
    "TcpExt.TCPTimeWaitOverflow",
    "TcpExt.TW",
    "TcpExt.TWKilled",
    "TcpExt.TWRecycled",
    "TcpExt.PAWSActive",
    "TcpExt.PAWSEstab",
    "TcpExt.TCPBacklogDrop",
    "TcpExt.TCPKeepAlive",
];

/// The change of `name` from one sample to a later one, when both have it. A counter that
/// went down (the namespace was recreated between the samples) counts as 0.
pub fn change(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    name: &str,
) -> Option<u64> {
    Some(after.get(name)?.saturating_sub(*before.get(name)?))
}

/// The change of every counter present in both samples (see [`change`]).
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .keys()
        .filter_map(|k| Some((k.clone(), change(before, after, k)?)))
        .collect()
}

/// Largest counter file accepted (netstat, snmp, snmp6 are a few KiB on 6.x kernels).
pub const MAX_COUNTER_FILE_BYTES: u64 = 1024 * 1024;

/// Parse the header/value line pairs of /proc/net/netstat or /proc/net/snmp
/// (`TcpExt: SyncookiesSent ...` then `TcpExt: 0 ...`) into `out`.
///
/// Negative values (only the constant `Tcp.MaxConn`, -1 on Linux) are left out.
pub fn parse_pairs(
    reader: impl BufRead,
    file: &str,
    out: &mut BTreeMap<String, u64>,
) -> Result<(), ParseError> {
    let mut header: Option<(usize, String, Vec<String>)> = None;
    for line in super::files::lines(reader, file, Some(MAX_COUNTER_FILE_BYTES)) {
        let (lineno, line) = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (group, rest) = line.split_once(':').ok_or_else(|| {
            error(
                file,
                lineno,
                "expected `Group: ...` (a group name and a colon)",
            )
        })?;
        if group.is_empty() || !group.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(error(
                file,
                lineno,
                format!("{group:?} is not a counter group name"),
            ));
        }
        let fields = rest.split_whitespace();
        match header.take() {
            None => {
                header = Some((
                    lineno,
                    group.to_string(),
                    fields.map(String::from).collect(),
                ))
            }
            Some((hline, hgroup, names)) => {
                if hgroup != group {
                    return Err(error(
                        file,
                        lineno,
                        format!(
                            "expected the values of {hgroup} (names on line {hline}), found group {group}"
                        ),
                    ));
                }
                let values: Vec<&str> = fields.collect();
                if values.len() != names.len() {
                    return Err(error(
                        file,
                        lineno,
                        format!(
                            "{group} has {} names on line {hline} but {} values",
                            names.len(),
                            values.len()
                        ),
                    ));
                }
                for (name, text) in names.iter().zip(values) {
                    let key = format!("{group}.{name}");
                    if let Some(v) = value(file, lineno, &key, text)? {
                        out.insert(key, v);
                    }
                }
            }
        }
    }
    if let Some((hline, group, _)) = header {
        return Err(error(
            file,
            hline,
            format!("the names of {group} are not followed by a line of values (truncated file?)"),
        ));
    }
    Ok(())
}

/// Parse /proc/net/snmp6 (`Ip6InReceives    12345`) into `out` as `Ip6.InReceives`.
pub fn parse_snmp6(
    reader: impl BufRead,
    file: &str,
    out: &mut BTreeMap<String, u64>,
) -> Result<(), ParseError> {
    for line in super::files::lines(reader, file, Some(MAX_COUNTER_FILE_BYTES)) {
        let (lineno, line) = line?;
        let mut fields = line.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let (Some(text), None) = (fields.next(), fields.next()) else {
            return Err(error(file, lineno, "expected `Name value`"));
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(error(
                file,
                lineno,
                format!("{name:?} is not a counter name"),
            ));
        }
        // Ip6InReceives -> Ip6.InReceives, Icmp6InType1 -> Icmp6.InType1, UdpLite6... likewise.
        let key = match name.find('6') {
            Some(i) if i + 1 < name.len() => format!("{}.{}", &name[..=i], &name[i + 1..]),
            _ => format!("Snmp6.{name}"),
        };
        if let Some(v) = value(file, lineno, &key, text)? {
            out.insert(key, v);
        }
    }
    Ok(())
}

/// Read one sample of all three files. Files that cannot be opened become notes;
/// `Ok(None)` when none could be read.
pub fn read_sample(
    place: Place<'_>,
    notes: &mut Vec<Note>,
) -> Result<Option<CounterSample>, ParseError> {
    let at_ms = now_ms();
    let mut values = BTreeMap::new();
    let mut read_any = false;
    for name in ["netstat", "snmp", "snmp6"] {
        let path = place.proc_net(name);
        let shown = path.display().to_string();
        let file = match place.open(&path) {
            Ok(f) => f,
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "absent (IPv6 disabled, or not in the copied tree)".to_string()
                } else {
                    e.to_string()
                };
                notes.push(Note::new(
                    "counters",
                    Some(shown),
                    format!("not read: {why}"),
                ));
                continue;
            }
        };
        let mut reader = BufReader::new(file);
        if super::files::is_empty(&mut reader) {
            notes.push(Note::new(
                "counters",
                Some(shown),
                "not read: empty (absent on the copied host, or the copy is truncated)",
            ));
            continue;
        }
        if name == "snmp6" {
            parse_snmp6(reader, &shown, &mut values)?;
        } else {
            parse_pairs(reader, &shown, &mut values)?;
        }
        read_any = true;
    }
    Ok(read_any.then_some(CounterSample { at_ms, values }))
}

/// Why the counters of the calling thread's namespace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("the MIB counters could not be read: {0}")]
    Unreadable(String),
    #[error("reading {path}: {err}")]
    Io {
        path: &'static str,
        err: std::io::Error,
    },
}

/// The reset-related MIB counters ([`RESET_COUNTERS`]) of the calling thread's namespace.
pub fn read_reset_sample() -> Result<CounterSample, SampleError> {
    let mut notes = Vec::new();
    match read_sample(super::files::Place::Live, &mut notes)? {
        Some(mut s) => {
            s.values.retain(|k, _| RESET_COUNTERS.contains(&k.as_str()));
            Ok(s)
        }
        None => Err(SampleError::Unreadable(
            notes
                .iter()
                .map(|n| n.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

/// Tcp.* and TcpExt.* of the calling thread's namespace (snmp and netstat, not snmp6).
pub fn read_tcp_counters() -> Result<BTreeMap<String, u64>, SampleError> {
    let mut out = BTreeMap::new();
    for path in [
        "/proc/thread-self/net/snmp",
        "/proc/thread-self/net/netstat",
    ] {
        let f = std::fs::File::open(path).map_err(|err| SampleError::Io { path, err })?;
        parse_pairs(BufReader::new(f), path, &mut out)?;
    }
    Ok(out)
}

/// Tcp.OutRsts alone, read from the calling thread's /proc/thread-self/net/snmp with one
/// read, and the wall-clock time right after it: the baseline that the live check's captured
/// frames are cut against (a full counter read takes long enough for resets to fall between
/// its files).
pub fn read_out_rsts() -> Option<(u64, std::time::Duration)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let i = names.split_whitespace().position(|n| n == "OutRsts")?;
    let v = values.split_whitespace().nth(i)?.parse().ok()?;
    Some((v, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from kernel 6.18.44 inside a fresh network namespace (after a few loopback
    // connections), with `cat /proc/net/{netstat,snmp,snmp6}`.
    const NETSTAT: &str = include_str!("testdata/netstat-6.18.txt");
    const SNMP: &str = include_str!("testdata/snmp-6.18.txt");
    const SNMP6: &str = include_str!("testdata/snmp6-6.18.txt");

    #[test]
    fn parses_captured_netstat_and_snmp() {
        let mut out = BTreeMap::new();
        parse_pairs(NETSTAT.as_bytes(), "netstat", &mut out).unwrap();
        parse_pairs(SNMP.as_bytes(), "snmp", &mut out).unwrap();
        assert_eq!(out.get("TcpExt.ListenOverflows"), Some(&18));
        assert_eq!(out.get("TcpExt.TW"), Some(&2));
        assert!(out.contains_key("TcpExt.TCPAbortOnData"));
        assert!(out.contains_key("IpExt.InOctets"));
        assert_eq!(out.get("Tcp.ActiveOpens"), Some(&10));
        assert_eq!(out.get("Tcp.OutRsts"), Some(&1));
        assert_eq!(out.get("Tcp.RtoMax"), Some(&120000));
        // -1 is a constant, not a counter.
        assert_eq!(out.get("Tcp.MaxConn"), None);
        assert_eq!(out.get("Ip.Forwarding"), Some(&2));
    }

    #[test]
    fn parses_captured_snmp6() {
        let mut out = BTreeMap::new();
        parse_snmp6(SNMP6.as_bytes(), "snmp6", &mut out).unwrap();
        assert_eq!(out.get("Ip6.InReceives"), Some(&5));
        assert!(out.contains_key("Icmp6.InMsgs"));
        assert!(out.contains_key("Udp6.InDatagrams"));
        assert!(out.contains_key("UdpLite6.InDatagrams"));
        assert!(out.keys().all(|k| !k.starts_with("Snmp6.")), "{out:?}");
    }

    #[test]
    fn damaged_input_never_panics() {
        let mut seed: u64 = 11;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for text in [NETSTAT, SNMP, SNMP6] {
            for _ in 0..500 {
                let mut bytes = text.as_bytes().to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = next() % bytes.len();
                    bytes[at] = next() as u8;
                }
                let cut = next() % (bytes.len() + 1);
                let mut out = BTreeMap::new();
                let _ = parse_pairs(&bytes[..cut], "f", &mut out);
                let _ = parse_snmp6(&bytes[..cut], "f", &mut out);
            }
        }
    }

    #[test]
    fn garbled_input_names_file_and_line() {
        let mut out = BTreeMap::new();
        let err = parse_pairs(
            "TcpExt: A B\nTcpExt: 1 x\n".as_bytes(),
            "/r/proc/net/netstat",
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string().starts_with("/r/proc/net/netstat:2: "),
            "{err}"
        );

        let truncated = NETSTAT.lines().next().unwrap();
        let err = parse_pairs(truncated.as_bytes(), "netstat", &mut out).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.to_string().contains("truncated"), "{err}");

        let err = parse_pairs("TcpExt: A B\nTcpExt: 1\n".as_bytes(), "f", &mut out).unwrap_err();
        assert!(err.to_string().contains("2 names"), "{err}");
        let err = parse_pairs("TcpExt: A\nIpExt: 1\n".as_bytes(), "f", &mut out).unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_pairs("garbage without colon\n".as_bytes(), "f", &mut out).unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse_pairs(&b"TcpExt: A\n\xff\xfe\n"[..], "f", &mut out).unwrap_err();
        assert_eq!(err.line, 2);
        let err = parse_snmp6("Ip6InReceives 1 2\n".as_bytes(), "snmp6", &mut out).unwrap_err();
        assert_eq!(err.to_string(), "snmp6:1: expected `Name value`");
        let err = parse_snmp6("Ip6InReceives x\n".as_bytes(), "snmp6", &mut out).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }
}
