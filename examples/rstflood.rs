//! Benchmark load for `packet-check` (bench/packet-check-flood.sh), within the benchmark's own
//! namespaces only.
//!
//!   rstflood rst SECONDS [PORT]   send bare ACKs from 127.0.0.1 to 127.0.0.1:PORT (default 9,
//!                                 nothing listens) as fast as possible, or at RATE segments a
//!                                 second when the environment sets RATE: the kernel answers each
//!                                 with a reset (NO_SOCKET). Prints how many were sent. SRC and
//!                                 DST (IPv4 addresses) replace 127.0.0.1: the benchmark's veth
//!                                 pair between two namespaces it made.
//!   rstflood bulk SECONDS         stream data over one loopback TCP connection (no resets).
//!
//! Run it inside a network namespace made for the benchmark, for a bounded time.

#[path = "common/raw_ack.rs"]
mod raw_ack;

use raw_ack::RawAcks;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn rst_flood(seconds: f64, port: u16) {
    let addr = |var: &str| -> [u8; 4] {
        std::env::var(var)
            .ok()
            .map(|a| {
                a.parse::<Ipv4Addr>()
                    .unwrap_or_else(|_| panic!("{var}={a}: not an IPv4 address"))
            })
            .unwrap_or(Ipv4Addr::LOCALHOST)
            .octets()
    };
    let (src_ip, dst_ip) = (addr("SRC"), addr("DST"));
    let raw = RawAcks::to(dst_ip);
    // Pre-build the packets for 16k source ports.
    let packets: Vec<Vec<u8>> = (0..16384u16)
        .map(|i| raw_ack::ack(src_ip, 20000 + i, dst_ip, port, 1))
        .collect();
    // RATE: segments a second (paced every 256 segments); unset or 0: as fast as possible.
    let rate: f64 = std::env::var("RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.0);
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    'outer: loop {
        for p in &packets {
            if raw.send(p) {
                sent += 1;
            }
            if sent.is_multiple_of(256) && rate > 0.0 {
                let due = Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if sent.is_multiple_of(1024) && start.elapsed() >= limit {
                break 'outer;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} segments in {secs:.2} s ({:.0}/s)",
        sent as f64 / secs
    );
}

fn bulk(seconds: f64) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut c = TcpStream::connect(addr).expect("connect");
    let buf = vec![7u8; 1 << 16];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        c.write_all(&buf).expect("write");
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let total = reader.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "moved {:.0} MB in {secs:.2} s ({:.0} MB/s)",
        total as f64 / 1e6,
        total as f64 / 1e6 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    match args.first().map(String::as_str) {
        Some("rst") => rst_flood(
            seconds,
            args.get(2).and_then(|s| s.parse().ok()).unwrap_or(9),
        ),
        Some("bulk") => bulk(seconds),
        _ => {
            eprintln!("usage: rstflood rst SECONDS [PORT] | rstflood bulk SECONDS");
            std::process::exit(2);
        }
    }
}
