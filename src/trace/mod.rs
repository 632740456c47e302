//! Where reset events come from: the kernel's trace (a private tracefs instance with the reset
//! tracepoints and their reasons, [`ftrace`]), the AF_PACKET capture of TCP segments with RST
//! set ([`capture`]) and the pcap file it can write ([`pcap`]); and what each of those needs from
//! the process's capabilities ([`caps`]).
//!
//! This module knows kernels, not rules: it turns tracefs files, trace records and captured
//! frames into typed events and says what this kernel offers. It may import `host` (the host's
//! facts: capabilities, processes, namespaces) and nothing above it: never `rules`, `live`,
//! `lab`, `report` or the command layer. It installs no signal handler (the caller passes a
//! stop token) and prints nothing.

pub mod caps;
pub mod capture;
pub mod ftrace;
pub mod pcap;
