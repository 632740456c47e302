//! The scrape endpoint: `GET /metrics` and `GET /healthz` on a listening socket, on a thread
//! of its own, until the caller's [`Stop`] is set.
//!
//! Each connection is served on its own short-lived thread, at most
//! [`Endpoint::MAX_CLIENTS`] at once (one more is answered 503 and closed), with a deadline
//! for reading the request and a timeout on every write, so a slow or stuck client holds one
//! slot for at most that long and never the caller: the caller only updates the shared
//! [`Metrics`] and [`Health`], and the metrics are rendered into memory before a byte is sent.
//! One request per connection (`Connection: close`), parsed by httparse.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::health::Health;
use super::metrics::{Format, Metrics};
use crate::stop::Stop;

/// Longest request head read (a scraper's is a few hundred bytes).
const MAX_HEAD: usize = 8 * 1024;
/// How often the accepting thread looks at the stop token.
const POLL: Duration = Duration::from_millis(50);

/// What the endpoint serves.
#[derive(Debug, Clone)]
pub struct Served {
    pub metrics: Arc<Metrics>,
    pub health: Health,
}

/// A running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

/// Bind `addr` (`127.0.0.1:9945`, `[::1]:0`); the error names the address.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("listening on {addr}: {e}")))
}

impl Endpoint {
    /// Clients served at once.
    pub const MAX_CLIENTS: usize = 16;
    /// The deadline for a client's request, and the timeout of each write to it.
    pub const TIMEOUT: Duration = Duration::from_secs(5);

    /// Serve on `listener` until `stop` is set.
    pub fn start(listener: TcpListener, served: Served, stop: Stop) -> io::Result<Endpoint> {
        Self::start_with(listener, served, stop, Self::TIMEOUT)
    }

    /// [`Endpoint::start`] with another client timeout (tests use a short one).
    pub fn start_with(
        listener: TcpListener,
        served: Served,
        stop: Stop,
        timeout: Duration,
    ) -> io::Result<Endpoint> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let thread = std::thread::Builder::new()
            .name("rstaudit-http".into())
            .spawn(move || accept_loop(listener, served, stop, timeout))?;
        Ok(Endpoint { addr, thread })
    }

    /// Where it listens (the port chosen, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait for the accepting thread to end (after the stop token was set). Connections
    /// being served finish on their own threads within the timeout.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

fn accept_loop(listener: TcpListener, served: Served, stop: Stop, timeout: Duration) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.is_stopped() {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            // ECONNABORTED and the like concern one client; EMFILE passes when descriptors
            // are freed. Neither ends the endpoint.
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err()
            || stream.set_write_timeout(Some(timeout)).is_err()
        {
            continue;
        }
        if active.fetch_add(1, Ordering::SeqCst) >= Endpoint::MAX_CLIENTS {
            active.fetch_sub(1, Ordering::SeqCst);
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = respond(
                &mut stream,
                503,
                "text/plain; charset=utf-8",
                b"busy: too many clients\n",
                false,
            );
            continue;
        }
        let served = served.clone();
        let slot = active.clone();
        let spawned = std::thread::Builder::new()
            .name("rstaudit-http-client".into())
            .spawn(move || {
                let mut stream = stream;
                let _ = handle(&mut stream, &served, timeout);
                slot.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn handle(stream: &mut TcpStream, served: &Served, timeout: Duration) -> io::Result<()> {
    let head = match read_head(stream, timeout)? {
        Some(h) => h,
        None => return Ok(()),
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(&head), Ok(httparse::Status::Complete(_))) {
        return respond(
            stream,
            400,
            "text/plain; charset=utf-8",
            b"bad request\n",
            false,
        );
    }
    let method = request.method.unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            stream,
            405,
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n",
            false,
        );
    }
    let path = request.path.unwrap_or("/");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match path {
        "/metrics" => {
            let accept = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("accept"))
                .and_then(|h| std::str::from_utf8(h.value).ok());
            let format = Format::negotiate(accept);
            let body = served.metrics.encode(format);
            respond(
                stream,
                200,
                format.content_type(),
                body.as_bytes(),
                head_only,
            )
        }
        "/healthz" => {
            let problems = served.health.problems();
            if problems.is_empty() {
                respond(stream, 200, "text/plain; charset=utf-8", b"ok\n", head_only)
            } else {
                let body = problems.join("\n") + "\n";
                respond(
                    stream,
                    503,
                    "text/plain; charset=utf-8",
                    body.as_bytes(),
                    head_only,
                )
            }
        }
        _ => respond(
            stream,
            404,
            "text/plain; charset=utf-8",
            b"not found: try /metrics or /healthz\n",
            head_only,
        ),
    }
}

/// The request head, read within `timeout` in all (not per read: a client that sends a byte
/// now and then is cut off at the deadline all the same). `None` when the client closed or
/// ran out of time, or sent a head larger than [`MAX_HEAD`].
fn read_head(stream: &mut TcpStream, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + timeout;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            let _ = respond(
                stream,
                431,
                "text/plain; charset=utf-8",
                b"request head too large\n",
                false,
            );
            return Ok(None);
        }
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}
