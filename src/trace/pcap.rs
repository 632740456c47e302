//! Write captured frames to a pcap file for Wireshark or tcpdump (`--pcap FILE`).
//!
//! Frames from different link types (ethernet, loopback, tun) end up in one
//! file, so every frame is written as a Linux "cooked" frame (LINKTYPE_LINUX_SLL,
//! what `tcpdump -i any` writes): a 16-byte header with the packet type
//! (sent/received), the link type and address, and the ethertype, then the IP
//! packet. The direction stays visible in Wireshark.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use super::capture::Frame;

/// Why the pcap file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("creating {}: {err}", .path.display())]
    Create {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
    #[error("writing {}: {err}", .path.display())]
    Write {
        path: std::path::PathBuf,
        err: pcap_file::PcapError,
    },
    #[error("writing {}: {err}", .path.display())]
    Flush {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
}

/// An open pcap file.
pub struct PcapSink {
    writer: PcapWriter<BufWriter<File>>,
    path: std::path::PathBuf,
    snaplen: u32,
    /// Frames written.
    pub written: u64,
}

impl PcapSink {
    /// Create (truncate) FILE and write the pcap header.
    pub fn create(path: &Path, snaplen: u32) -> Result<Self, PcapError> {
        let file = crate::output::create(path).map_err(|err| PcapError::Create {
            path: path.to_path_buf(),
            err,
        })?;
        let header = PcapHeader {
            datalink: DataLink::LINUX_SLL,
            snaplen: snaplen + 16,
            ..Default::default()
        };
        let writer = PcapWriter::with_header(BufWriter::new(file), header).map_err(|err| {
            PcapError::Write {
                path: path.to_path_buf(),
                err,
            }
        })?;
        Ok(Self {
            writer,
            path: path.to_path_buf(),
            snaplen,
            written: 0,
        })
    }

    /// Append one frame.
    pub fn write(&mut self, frame: &Frame<'_>) -> Result<(), PcapError> {
        let data = sll_frame(frame);
        let orig_len = frame
            .orig_len
            .saturating_sub(frame.link_header_len)
            .max(frame.ip.len() as u32)
            + 16;
        let len = data.len().min(self.snaplen as usize + 16);
        self.writer
            .write_packet(&PcapPacket::new(frame.ts, orig_len, &data[..len]))
            .map_err(|err| PcapError::Write {
                path: self.path.clone(),
                err,
            })?;
        self.written += 1;
        Ok(())
    }

    /// Flush buffered frames to the file.
    pub fn finish(self) -> Result<u64, PcapError> {
        let written = self.written;
        let path = self.path.clone();
        let mut inner = self.writer.into_writer();
        inner
            .flush()
            .map_err(|err| PcapError::Flush { path, err })?;
        Ok(written)
    }
}

/// The LINKTYPE_LINUX_SLL header followed by the IP packet.
pub fn sll_frame(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + frame.ip.len());
    out.extend_from_slice(&u16::from(frame.pkttype).to_be_bytes());
    out.extend_from_slice(&frame.hatype.to_be_bytes());
    out.extend_from_slice(&(frame.link_addr.len() as u16).to_be_bytes());
    let mut addr = [0u8; 8];
    addr[..frame.link_addr.len().min(8)]
        .copy_from_slice(&frame.link_addr[..frame.link_addr.len().min(8)]);
    out.extend_from_slice(&addr);
    out.extend_from_slice(&frame.protocol.to_be_bytes());
    out.extend_from_slice(frame.ip);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        let ip = [0x45u8; 40];
        let frame = Frame {
            ts: Duration::from_secs(5),
            ifindex: 1,
            pkttype: 4,
            hatype: 772,
            link_addr: &[0; 6],
            protocol: 0x0800,
            ip: &ip,
            orig_len: 54,
            link_header_len: 14,
        };
        let mut sink = PcapSink::create(&path, 256).unwrap();
        sink.write(&frame).unwrap();
        assert_eq!(sink.finish().unwrap(), 1);
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().datalink, DataLink::LINUX_SLL);
        let pkt = reader.next_packet().unwrap().unwrap();
        assert_eq!(pkt.data.len(), 56);
        assert_eq!(&pkt.data[0..2], &[0, 4]);
        assert_eq!(&pkt.data[14..16], &[0x08, 0x00]);
    }
}
