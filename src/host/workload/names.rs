//! A container's name from its runtime's API: `GET /containers/ID/json` over the runtime's
//! unix socket (Docker's Engine API, which podman also serves), answer's `Name`.
//!
//! The client is as small as the one question needs, and bounded: one HTTP/1.0 request per
//! connection (so the server sends the body plainly and closes), a timeout on the connect,
//! every read and write and on the whole exchange, and a cap on the answer's size. The
//! response head is parsed by httparse; a chunked body (which an HTTP/1.0 request should
//! never get) is decoded with its chunk-size parser all the same.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Runtime;

/// Largest answer read. An inspect answer is a few KiB (3.7 KiB from podman 4.3 for a
/// container with no mounts); a container with many mounts and labels stays far below.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Where podman's rootful API listens when its socket unit is enabled.
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";
/// Where dockerd listens by default.
pub const DOCKER_SOCKET: &str = "/run/docker.sock";

/// One runtime's API socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeApi {
    pub runtime: Runtime,
    pub socket: PathBuf,
    /// For the whole exchange: connect, request, answer.
    pub timeout: Duration,
}

/// Why a name could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{runtime} API at {socket}: {source}")]
    Io {
        runtime: &'static str,
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{runtime} API at {socket}: {message}")]
    Protocol {
        runtime: &'static str,
        socket: PathBuf,
        message: String,
    },
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "Name")]
    name: String,
}

impl RuntimeApi {
    /// The API of `runtime` at `socket`, with a 2 s timeout.
    pub fn new(runtime: Runtime, socket: impl Into<PathBuf>) -> Self {
        RuntimeApi {
            runtime,
            socket: socket.into(),
            timeout: Duration::from_secs(2),
        }
    }

    /// podman's and docker's default sockets.
    pub fn defaults() -> Vec<RuntimeApi> {
        vec![
            RuntimeApi::new(Runtime::Podman, PODMAN_SOCKET),
            RuntimeApi::new(Runtime::Docker, DOCKER_SOCKET),
        ]
    }

    /// The name of container `id` (64 hexadecimal digits), without the leading `/` the
    /// Engine API puts before it; `None` when the runtime does not know the container (404:
    /// it was removed).
    pub fn container_name(&self, id: &str) -> Result<Option<String>, ApiError> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.protocol(format!("{id:?} is not a container id")));
        }
        let answer = self.get(&format!("/containers/{id}/json"))?;
        let (status, body) = parse_answer(&answer).map_err(|m| self.protocol(m.0))?;
        match status {
            200 => {}
            404 => return Ok(None),
            _ => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                return Err(self.protocol(format!("status {status}: {}", text.trim())));
            }
        }
        let inspect: Inspect = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("inspect answer: {e}")))?;
        let name = inspect.name.trim_start_matches('/');
        Ok((!name.is_empty()).then(|| name.to_string()))
    }

    fn get(&self, target: &str) -> Result<Vec<u8>, ApiError> {
        let deadline = Instant::now() + self.timeout;
        let io = |source| self.io(source);
        let mut stream = connect(&self.socket, self.timeout).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let request =
            format!("GET {target} HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).map_err(io)?;
        let mut answer = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no whole answer within {:?}", self.timeout),
                )));
            }
            stream.set_read_timeout(Some(left)).map_err(io)?;
            let n = stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Ok(answer);
            }
            if answer.len() + n > MAX_ANSWER_BYTES {
                return Err(self.protocol(format!("answer larger than {MAX_ANSWER_BYTES} bytes")));
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    }

    fn io(&self, source: io::Error) -> ApiError {
        ApiError::Io {
            runtime: self.runtime.as_str(),
            socket: self.socket.clone(),
            source,
        }
    }

    fn protocol(&self, message: String) -> ApiError {
        ApiError::Protocol {
            runtime: self.runtime.as_str(),
            socket: self.socket.clone(),
            message,
        }
    }
}

/// Connect with a timeout: a unix socket's connect blocks only while the listener's backlog
/// is full, so a non-blocking connect that would block is retried until the deadline.
fn connect(socket: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// What is wrong with an answer, for [`ApiError::Protocol`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadAnswer(String);

impl From<&str> for BadAnswer {
    fn from(s: &str) -> Self {
        BadAnswer(s.to_string())
    }
}

impl From<String> for BadAnswer {
    fn from(s: String) -> Self {
        BadAnswer(s)
    }
}

/// The status and body of a whole HTTP/1.x answer.
fn parse_answer(answer: &[u8]) -> Result<(u16, Vec<u8>), BadAnswer> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err("the answer ended inside its head".into());
        }
        Err(e) => return Err(format!("bad answer head: {e}").into()),
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let body = &answer[head..];
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return dechunk(body).map(|b| (status, b));
    }
    match header("content-length") {
        Some(len) => {
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad Content-Length {len:?}"))?;
            if body.len() < len {
                return Err(
                    format!("the answer ended after {} of its {len} bytes", body.len()).into(),
                );
            }
            Ok((status, body[..len].to_vec()))
        }
        None => Ok((status, body.to_vec())),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, BadAnswer> {
    let mut out = Vec::new();
    loop {
        let (skip, size) = match httparse::parse_chunk_size(body) {
            Ok(httparse::Status::Complete(got)) => got,
            Ok(httparse::Status::Partial) => {
                return Err("the answer ended inside a chunk size".into());
            }
            Err(_) => return Err("bad chunk size".into()),
        };
        let size = usize::try_from(size).map_err(|_| "chunk too large".to_string())?;
        body = &body[skip..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("the answer ended inside a chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// The head podman 4.3.1 sent here for `GET /containers/ID/json HTTP/1.0` (its compat
    /// API; the body, 3740 bytes, is cut down to the field read).
    const PODMAN_HEAD: &str = "HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nLibpod-Api-Version: 4.3.1\r\nServer: Libpod/4.3.1 (linux)\r\nX-Reference-Id: 0xc0000150c0\r\nDate: Tue, 08 Dec 2026 00:47:58 GMT\r\n\r\n";

    #[test]
    fn answers_plain_sized_and_chunked() {
        let plain = format!("{PODMAN_HEAD}{{\"Id\":\"x\",\"Name\":\"/probe1\"}}\n");
        let (status, body) = parse_answer(plain.as_bytes()).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"{\"Id\":\"x\",\"Name\":\"/probe1\"}\n");
        // podman's 404 for an unknown container, as sent here.
        let missing = "HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"cause\":1}\n";
        assert_eq!(parse_answer(missing.as_bytes()).unwrap().0, 404);
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Nam\r\n10\r\ne\":\"/web-1\"}    \r\n0\r\n\r\n";
        let (_, body) = parse_answer(chunked.as_bytes()).unwrap();
        assert_eq!(body, b"{\"Name\":\"/web-1\"}    ");
        assert!(
            parse_answer(b"HTTP/1.0 200 OK\r\nConte")
                .unwrap_err()
                .0
                .contains("inside its head")
        );
        let short = "HTTP/1.0 200 OK\r\nContent-Length: 50\r\n\r\n{}";
        assert!(
            parse_answer(short.as_bytes())
                .unwrap_err()
                .0
                .contains("2 of its 50")
        );
        assert!(parse_answer(b"SSH-2.0-x\r\n\r\n").is_err());
        let cut = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n50\r\nabc";
        assert!(parse_answer(cut.as_bytes()).is_err());
    }

    fn serve_once(
        answer: &'static [u8],
    ) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = vec![0u8; 4096];
            let n = s.read(&mut req).unwrap();
            req.truncate(n);
            s.write_all(answer).unwrap();
            req
        });
        (dir, path, server)
    }

    #[test]
    fn asks_for_the_container_and_strips_the_slash() {
        let (_dir, path, server) = serve_once(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"Name\":\"/web-1\",\"Id\":\"x\"}",
        );
        let id = "4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf";
        let api = RuntimeApi::new(Runtime::Docker, &path);
        assert_eq!(api.container_name(id).unwrap().as_deref(), Some("web-1"));
        let req = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            req.starts_with(&format!("GET /containers/{id}/json HTTP/1.0\r\n")),
            "{req}"
        );
        let err = api.container_name("../../etc").unwrap_err();
        assert!(err.to_string().contains("not a container id"), "{err}");
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stuck.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        let mut api = RuntimeApi::new(Runtime::Podman, &path);
        api.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let err = api.container_name(&"a".repeat(64)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let ApiError::Io { source, .. } = &err else {
            panic!("{err}")
        };
        assert!(
            matches!(
                source.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{err}"
        );
        let err = RuntimeApi::new(Runtime::Docker, dir.path().join("absent.sock"))
            .container_name(&"a".repeat(64))
            .unwrap_err();
        assert!(err.to_string().contains("absent.sock"), "{err}");
    }
}
