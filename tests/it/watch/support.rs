//! What the watch tests share: a running `rstaudit watch` of the test's own, HTTP requests,
//! a real Prometheus server, and podman containers made from a root filesystem of the test's
//! own (busybox-static and the socket helper with its libraries, as the kernel matrix copies
//! them). Everything is removed however a test ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{require_root, rstaudit, sockhelper_path};

/// One HTTP request on a fresh connection; the status, the headers (lowercase names) and the body.
pub fn get(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// A port nothing listens on now, on 127.0.0.1.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Wait up to `limit` for `done`, every 100 ms; panics with `what` and the last `state`.
pub fn wait_for<T: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> Result<T, String>,
) -> T {
    let until = Instant::now() + limit;
    loop {
        match done() {
            Ok(v) => return v,
            Err(state) => assert!(
                Instant::now() < until,
                "timed out after {limit:?} waiting for {what}: {state}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `rstaudit watch`; killed on drop if still running.
pub struct Watch {
    pub child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    /// Start `rstaudit watch --listen 127.0.0.1:PORT ARGS...` and wait until it watches.
    pub fn start(args: &[&str]) -> Watch {
        Watch::start_as(rstaudit(), args)
    }

    /// As [`Watch::start`], with `command` (the binary, or a program that runs it, such as
    /// `setpriv ... rstaudit`) in place of the binary itself.
    pub fn start_as(mut command: Command, args: &[&str]) -> Watch {
        require_root();
        let addr = free_port();
        let mut child = command
            .arg("watch")
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rstaudit watch");
        let err = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(err).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        let mut w = Watch { child, addr, lines };
        w.wait_line("watching TCP resets", Duration::from_secs(60));
        w
    }

    /// Everything it wrote on standard error so far.
    pub fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Wait for a line of standard error containing `needle`; returns it.
    pub fn wait_line(&mut self, needle: &str, limit: Duration) -> String {
        self.wait_line_since(0, needle, limit)
    }

    /// How many lines it has said so far: a mark for [`Watch::wait_line_since`].
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// As [`Watch::wait_line`], among the lines said after `mark` only (a line said again).
    pub fn wait_line_since(&mut self, mark: usize, needle: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .skip(mark)
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "watch exited ({status}) before saying {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < until,
                "watch did not say {needle:?} within {limit:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The metrics text (Prometheus text format).
    pub fn metrics(&self) -> String {
        let (status, _, body) = get(self.addr, "/metrics", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Send `signal` (`-TERM`, `-HUP`, `-KILL`).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(signal)
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal} {}", self.pid());
    }

    /// SIGTERM, then wait (at most 20 s) for the exit; the status and standard error.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal("-TERM");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.stderr());
            }
            assert!(
                Instant::now() < until,
                "watch did not stop within 20 s of SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of `family`'s samples in `text` whose labels include every pair of `with`.
pub fn sum(text: &str, family: &str, with: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                let (labels, v) = r.rsplit_once("} ")?;
                (labels, v)
            } else {
                ("", rest.strip_prefix(' ')?)
            };
            with.iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.trim().parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The ftrace instances and kprobe events a process `pid` made (both empty once it cleaned up).
pub fn tracing_left_by(pid: u32) -> (bool, Vec<String>) {
    let root = Path::new("/sys/kernel/tracing");
    let instance = root.join("instances").join(format!("rstaudit-{pid}"));
    let probes = std::fs::read_to_string(root.join("kprobe_events")).unwrap_or_default();
    let group = format!("rstaudit_{pid}/");
    let mine = probes
        .lines()
        .filter(|l| l.contains(&group))
        .map(str::to_string)
        .collect();
    (instance.exists(), mine)
}

/// A Prometheus server the test started, stopped however the test ends.
pub struct Prometheus {
    child: Child,
    pub web: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrape `targets` every second; wait until every target is up.
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: rstaudit\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .unwrap();
        let web = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect(
                "prometheus is needed for this test (Debian package `prometheus`, see test.sh)",
            );
        let p = Prometheus { child, web, dir };
        let n = targets.len();
        wait_for(
            "Prometheus to scrape its targets",
            Duration::from_secs(60),
            || {
                // Until its storage is ready Prometheus answers 503.
                let up = TcpStream::connect(p.web)
                    .ok()
                    .and_then(|_| p.try_query("sum(up{job=\"rstaudit\"})").ok());
                match up.as_ref().and_then(|r| r[0]["value"][1].as_str()) {
                    Some(v) if v == n.to_string() => Ok(()),
                    _ => Err(format!("up = {up:?}\n{}", p.log())),
                }
            },
        );
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The `result` of an instant query.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        self.try_query(promql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `result` of an instant query, or the status and answer when it is not 200.
    pub fn try_query(&self, promql: &str) -> Result<serde_json::Value, String> {
        let (status, _, body) = get(
            self.web,
            &format!("/api/v1/query?query={}", encode(promql)),
            None,
        );
        if status != 200 {
            return Err(format!("{promql}: {status} {body}"));
        }
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        Ok(answer["data"]["result"].clone())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encode a query string value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Run a command that must succeed; its standard output, trimmed.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (podman and runc are installed by test.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Shared libraries of `binary` (as ldd lists them), with the dynamic loader.
pub fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next().map(PathBuf::from),
                None => l.split_whitespace().next().map(PathBuf::from),
            }
        })
        .filter(|p| p.is_absolute())
        .collect()
}

/// Copy `from` to `root/to`, making the directories on the way.
pub fn copy_into(root: &Path, from: &Path, to: &Path) {
    let target = root.join(to.strip_prefix("/").unwrap_or(to));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(from, &target).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// An image of the test's own, `podman import`ed from a root filesystem holding busybox-static
/// and the socket helper (with the libraries it links), and the containers run from it.
pub struct Podman {
    pub image: String,
    pub containers: Vec<String>,
    tag: String,
}

impl Podman {
    pub fn new(tag: &str) -> Podman {
        require_root();
        let rootfs = tempfile::tempdir().unwrap();
        copy_into(
            rootfs.path(),
            Path::new("/bin/busybox"),
            Path::new("/bin/busybox"),
        );
        let helper = sockhelper_path();
        copy_into(rootfs.path(), &helper, Path::new("/bin/sockhelper"));
        for lib in libraries(&helper) {
            copy_into(rootfs.path(), &lib, &lib);
        }
        let image = format!("localhost/rstaudit-test:{tag}-{}", std::process::id());
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let archive = tar.stdout.take().unwrap();
        run(Command::new("podman")
            .args(["import", "-", &image])
            .stdin(archive));
        assert!(tar.wait().unwrap().success());
        Podman {
            image,
            containers: Vec::new(),
            tag: tag.to_string(),
        }
    }

    /// Run a container named `rstaudit-TAG-NAME-PID` (`--network none`: a namespace of its own
    /// with loopback only) running `command`; its name and the pid of its process.
    pub fn run(&mut self, name: &str, command: &[&str]) -> (String, u32) {
        let full = format!("rstaudit-{}-{name}-{}", self.tag, std::process::id());
        self.containers.push(full.clone());
        run(Command::new("podman")
            .args([
                "--runtime",
                "runc",
                "run",
                "-d",
                "--name",
                &full,
                "--network",
                "none",
            ])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .arg(&self.image)
            .args(command));
        let pid: u32 = run(Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", &full]))
            .parse()
            .unwrap();
        (full, pid)
    }

    /// Run `command` in the running container `name`, in the background (`podman exec -d`):
    /// in the container's cgroup and namespaces, as the container's own processes are.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(&self, name: &str, command: &[S]) {
        run(Command::new("podman")
            .args(["exec", "-d", name])
            .args(command));
    }

    /// The container's full id (64 hexadecimal digits).
    pub fn id(&self, name: &str) -> String {
        run(Command::new("podman").args(["inspect", "-f", "{{.Id}}", name]))
    }
}

/// In a container of [`Podman`]: the socket helper with these specs, kept running (its
/// standard input a pipe from a long `sleep`, so it holds its sockets and its process stays
/// there to be labelled) under busybox's shell.
pub fn helper_in_container(specs: &[&str]) -> Vec<String> {
    vec![
        "/bin/busybox".into(),
        "sh".into(),
        "-c".into(),
        format!(
            "/bin/busybox sleep 600 | /bin/sockhelper {}",
            specs.join(" ")
        ),
    ]
}

/// The line `watch` says when it starts watching the namespace whose first process is `pid`
/// (a namespace without a name under /run/netns, such as a podman container's, is named
/// after its lowest pid): `pid PID (COMM)`, the friendly name in its metrics and events.
pub fn namespace_of(w: &mut Watch, pid: u32, limit: Duration) -> String {
    let needle = format!("watching namespace pid {pid} (");
    let line = w.wait_line(&needle, limit);
    let at = line.find(&needle).unwrap() + "watching namespace ".len();
    line[at..].trim().to_string()
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", c])
                .output();
        }
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .output();
    }
}

/// A podman API socket: podman's own where its socket unit runs, else a service the test
/// starts on a socket of its own (stopped on drop).
pub struct PodmanApi {
    pub socket: PathBuf,
    service: Option<Child>,
}

impl PodmanApi {
    pub fn start(tag: &str) -> PodmanApi {
        let system = Path::new(rstaudit::host::workload::names::PODMAN_SOCKET);
        if std::os::unix::net::UnixStream::connect(system).is_ok() {
            return PodmanApi {
                socket: system.to_path_buf(),
                service: None,
            };
        }
        let socket =
            std::env::temp_dir().join(format!("rstaudit-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let service = Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service (podman is installed by test.sh)");
        let api = PodmanApi {
            socket,
            service: Some(service),
        };
        wait_for("podman's API to listen", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&api.socket)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        api
    }
}

impl Drop for PodmanApi {
    fn drop(&mut self) {
        if let Some(mut s) = self.service.take() {
            let _ = s.kill();
            let _ = s.wait();
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}
