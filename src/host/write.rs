//! Writing one snapshot while its sockets are read: the same text serde writes for the
//! whole snapshot (pretty JSON or YAML), produced a socket at a time, so that `snapshot`
//! never holds the table.
//!
//! The fields before `sockets` are final when the sink is made ([`super::collect_into`]);
//! `sockets_source` and `notes`, which come after it, are written from the final snapshot
//! by [`Writer::finish`].

use std::io::Write;

use super::{Snapshot, Socket, SocketSink};

/// The text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// Where serde puts the (empty) socket list of a snapshot: top-level keys are at the
/// start of a line (YAML) or indented by two spaces (JSON); nested keys are deeper.
const JSON_EMPTY: &str = "\n  \"sockets\": [],\n";
const YAML_EMPTY: &str = "\nsockets: []\n";

/// A [`SocketSink`] that writes each socket into the snapshot's text as it comes.
pub struct Writer<'w> {
    out: Option<&'w mut (dyn Write + Send)>,
    format: Format,
    written: u64,
    /// The first error; nothing is written after it.
    failed: Option<std::io::Error>,
}

impl<'w> Writer<'w> {
    /// Write `header` (a snapshot whose sockets are still to come) up to its socket list.
    /// `None`: no writer is left for this namespace (only one snapshot is written this way).
    pub fn new(out: Option<&'w mut (dyn Write + Send)>, format: Format, header: &Snapshot) -> Self {
        let mut writer = Self {
            failed: out.is_none().then(|| {
                std::io::Error::other("only one snapshot can be written as its sockets are read")
            }),
            out,
            format,
            written: 0,
        };
        match writer.halves(header) {
            Ok((before, _)) => {
                let open = match format {
                    Format::Json => "\n  \"sockets\": [",
                    Format::Yaml => "\nsockets:",
                };
                writer.write(&[before.as_bytes(), open.as_bytes()]);
            }
            Err(e) => writer.fail(e),
        }
        writer
    }

    /// End the socket list and write the rest of `snapshot` (its sockets left out), ending
    /// with a newline (serde's JSON has none; `snapshot` adds it).
    pub fn finish(mut self, snapshot: &Snapshot) -> std::io::Result<()> {
        match self.halves(snapshot) {
            Ok((_, mut after)) => {
                if self.format == Format::Json {
                    after.push('\n');
                }
                let close = match (self.format, self.written) {
                    (Format::Json, 0) => "],\n",
                    (Format::Json, _) => "\n  ],\n",
                    (Format::Yaml, 0) => " []\n",
                    (Format::Yaml, _) => "\n",
                };
                self.write(&[close.as_bytes(), after.as_bytes()]);
            }
            Err(e) => self.fail(e),
        }
        match self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The text of `snapshot` (its sockets left out) before and after its socket list.
    fn halves(&self, snapshot: &Snapshot) -> std::io::Result<(String, String)> {
        // Every field but the sockets (not cloned: a table in hand can be large).
        let empty = Snapshot {
            schema: snapshot.schema,
            taken_at_ms: snapshot.taken_at_ms,
            source: snapshot.source.clone(),
            kernel: snapshot.kernel.clone(),
            netns: snapshot.netns.clone(),
            host: snapshot.host.clone(),
            sysctls: snapshot.sysctls.clone(),
            counters: snapshot.counters.clone(),
            sockets: Vec::new(),
            sockets_source: snapshot.sockets_source,
            notes: snapshot.notes.clone(),
        };
        let (text, key) = match self.format {
            Format::Json => (
                serde_json::to_string_pretty(&empty).map_err(std::io::Error::other)?,
                JSON_EMPTY,
            ),
            Format::Yaml => (
                crate::yaml::to_string(&empty).map_err(std::io::Error::other)?,
                YAML_EMPTY,
            ),
        };
        let at = text
            .find(key)
            .ok_or_else(|| std::io::Error::other("the snapshot's text has no socket list"))?;
        Ok((text[..at].to_string(), text[at + key.len()..].to_string()))
    }

    fn write(&mut self, parts: &[&[u8]]) {
        if self.failed.is_some() {
            return;
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        for part in parts {
            if let Err(e) = out.write_all(part) {
                self.failed = Some(e);
                return;
            }
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        self.failed.get_or_insert(e);
    }
}

impl SocketSink for Writer<'_> {
    fn socket(&mut self, socket: Socket) {
        if self.failed.is_some() {
            return;
        }
        let text = match self.format {
            Format::Json => serde_json::to_string_pretty(&socket).map_err(std::io::Error::other),
            Format::Yaml => crate::yaml::to_string(&socket).map_err(std::io::Error::other),
        };
        let text = match text {
            Ok(text) => text,
            Err(e) => return self.fail(e),
        };
        let (first, rest) = match self.format {
            Format::Json if self.written == 0 => ("\n    ", "\n    "),
            Format::Json => (",\n    ", "\n    "),
            Format::Yaml => ("\n- ", "\n  "),
        };
        let mut chunk = String::with_capacity(text.len() + text.len() / 4);
        for (i, line) in text.trim_end().lines().enumerate() {
            chunk.push_str(if i == 0 { first } else { rest });
            chunk.push_str(line);
        }
        self.write(&[chunk.as_bytes()]);
        self.written += 1;
    }

    fn restart(&mut self) {
        // What was written cannot be taken back: say so rather than list sockets twice.
        if self.written > 0 {
            self.fail(std::io::Error::other(
                "the socket dump failed after part of the table was written; run again",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::test_support::socket;
    use crate::host::{CounterSample, Counters, Kernel, NetnsInfo, Note, SocketsSource, TcpInfo};

    fn snapshot(sockets: Vec<Socket>) -> Snapshot {
        Snapshot {
            schema: crate::host::SCHEMA_VERSION,
            taken_at_ms: 1,
            source: "live".to_string(),
            kernel: Kernel {
                release: "6.18.0".to_string(),
                version: None,
            },
            netns: NetnsInfo {
                inode: Some(4026531840),
                name: "host".to_string(),
            },
            host: None,
            sysctls: [("net.ipv4.tcp_fin_timeout".to_string(), "60".to_string())].into(),
            counters: Counters {
                first: Some(CounterSample {
                    at_ms: 1,
                    values: [("Tcp.OutRsts".to_string(), 3)].into(),
                }),
                second: None,
            },
            sockets_source: SocketsSource::SockDiag,
            sockets,
            notes: vec![Note::new("owners", None, "pid 1: \"denied\"\nsecond line")],
        }
    }

    fn streamed(whole: &Snapshot, format: Format) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        let mut header = whole.clone();
        header.sockets.clear();
        header.notes.clear();
        header.sockets_source = SocketsSource::None;
        let mut w = Writer::new(Some(&mut out), format, &header);
        for s in &whole.sockets {
            w.socket(s.clone());
        }
        let mut last = whole.clone();
        last.sockets.clear();
        w.finish(&last).unwrap();
        out
    }

    /// Byte for byte what serde writes for the whole snapshot, with no socket, one, and
    /// several (nested tcp_info, owner and options included), in both formats.
    #[test]
    fn writes_what_serde_writes_for_the_whole_snapshot() {
        let mut full = socket(7);
        full.tcp_info = Some(TcpInfo::default());
        full.owner = Some(crate::host::Owner {
            pid: 9,
            comm: "nginx".into(),
            fd: 4,
        });
        full.options = Some(Default::default());
        for sockets in [vec![], vec![socket(1)], vec![socket(1), full, socket(0)]] {
            let whole = snapshot(sockets);
            let json = serde_json::to_string_pretty(&whole).unwrap() + "\n";
            assert_eq!(
                String::from_utf8(streamed(&whole, Format::Json)).unwrap(),
                json
            );
            let yaml = crate::yaml::to_string(&whole).unwrap();
            assert_eq!(
                String::from_utf8(streamed(&whole, Format::Yaml)).unwrap(),
                yaml
            );
        }
    }

    /// Sockets already written cannot be taken back: a restart after them is an error, one
    /// before them is not.
    #[test]
    fn a_restart_after_sockets_were_written_is_an_error() {
        let whole = snapshot(vec![socket(1)]);
        let mut out: Vec<u8> = Vec::new();
        let mut w = Writer::new(Some(&mut out), Format::Json, &whole);
        w.restart();
        w.socket(socket(1));
        assert!(w.finish(&whole).is_ok());
        let mut out: Vec<u8> = Vec::new();
        let mut w = Writer::new(Some(&mut out), Format::Json, &whole);
        w.socket(socket(1));
        w.restart();
        let e = w.finish(&whole).unwrap_err();
        assert!(e.to_string().contains("run again"), "{e}");
        let w = Writer::new(None, Format::Yaml, &whole);
        assert!(w.finish(&whole).is_err());
    }
}
