//! Shared support for integration tests: namespaces the test creates and
//! always removes, and real helper processes with real sockets.
//!
//! Tests that need root call [`require_root`], which fails loudly (never
//! skips) when the capability is missing.

pub mod fixture;
pub mod server;
pub mod transcript;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Fail the test loudly unless it runs as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it creates network namespaces): run the README test command as root"
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace created for one test and deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Create `rsta-PREFIX-PID-N` with loopback up.
    pub fn new(prefix: &str) -> Self {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rsta-{prefix}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// Create `rsta-PREFIX-PID-N` (as [`Netns::new`]) and set these sysctls in it.
    pub fn with_sysctls(prefix: &str, sysctls: &[(&str, &str)]) -> Self {
        let ns = Self::new(prefix);
        for (k, v) in sysctls {
            ns.sysctl(k, v);
        }
        ns
    }

    /// A command that runs inside the namespace (`ip netns exec NAME PROGRAM`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A command that runs inside the namespace as PID 1 of a PID namespace of its own (`ip
    /// netns exec NAME unshare --pid --fork --kill-child --mount-proc PROGRAM`), as a
    /// container's init runs: rstaudit takes the namespace its PID 1 runs in for the initial
    /// one, so what only the initial namespace may do (`apply --persist`) is tested in a
    /// namespace the test created. Killing the command kills PROGRAM too.
    pub fn as_init(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.command("unshare");
        cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .arg(program);
        cmd
    }

    /// Set a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        run(self
            .command("sysctl")
            .args(["-q", "-w", &format!("{key}={value}")]));
    }

    /// Read a sysctl inside the namespace.
    pub fn read_sysctl(&self, key: &str) -> String {
        let out = self
            .command("sysctl")
            .args(["-n", key])
            .output()
            .expect("sysctl");
        assert!(
            out.status.success(),
            "sysctl -n {key} failed in {}",
            self.name
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Start the socket helper inside the namespace with these specs.
    pub fn helper(&self, specs: &[&str]) -> Helper {
        Helper::spawn(self.command(sockhelper_path()).args(specs))
    }

    /// The socket helper under another program name (`comm`, at most 15 bytes), so that a
    /// test which reads resets host-wide can tell its own helper's from other tests'.
    pub fn helper_named(&self, comm: &str, specs: &[&str]) -> Helper {
        assert!(comm.len() <= 15, "{comm}: a comm has at most 15 bytes");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(comm);
        std::fs::copy(sockhelper_path(), &copy).unwrap();
        let mut helper = Helper::spawn(self.command(&copy).args(specs));
        helper.copy = Some(dir);
        helper
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// What an apply / rollback test starts from: a namespace with these sysctls set, an empty
/// `--state-dir`, and a scratch directory for profiles and persist files.
pub struct ApplySetup {
    pub ns: Netns,
    pub state: tempfile::TempDir,
    pub dir: tempfile::TempDir,
}

impl ApplySetup {
    pub fn new(prefix: &str, sysctls: &[(&str, &str)]) -> Self {
        Self {
            ns: Netns::with_sysctls(prefix, sysctls),
            state: tempfile::tempdir().unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// The exit status, stdout and stderr of a finished command, for failure messages and searches.
pub fn text(out: &Output) -> String {
    format!(
        "--- status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Assert the exit code (showing the whole output otherwise) and return the output's text.
#[track_caller]
pub fn exits(out: &Output, code: i32) -> String {
    let t = text(out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    t
}

/// Write `body` to DIR/NAME, making the directories on the way, and return the path.
pub fn write_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, body).unwrap();
    path
}

/// The top-level commands; `cli::help` checks that `rstaudit --help` lists exactly these.
pub const COMMANDS: &[&str] = &[
    "audit",
    "snapshot",
    "fix",
    "apply",
    "verify",
    "rollback",
    "profiles",
    "rules",
    "explain",
    "report",
    "packet-check",
    "watch",
    "completions",
    "man",
];

/// Run a command and panic with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The path of the `sockhelper` example (built by `cargo test`, but not by `cargo test --test
/// it`: `cargo test --no-run` builds it for the runs of one module).
pub fn sockhelper_path() -> PathBuf {
    example_path("sockhelper")
}

/// An example program of this package, built by `cargo test`.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/TEST-HASH -> target/debug/examples/NAME
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo test --no-run` (`cargo test` builds the examples, \
         `cargo test --test it` alone does not)",
        path.display()
    );
    path
}

/// A copied `/proc` tree under `dir` from the captured kernel text in src/host/testdata:
/// `proc/net/NAME` from `NAME-6.18.txt` for each of `net_files`, `tcp_fin_timeout` = 60, and
/// `osrelease` as the kernel release. Copying again over an existing tree restores it.
pub fn copied_proc_tree(dir: &Path, net_files: &[&str], osrelease: &str) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/host/testdata");
    let net = dir.join("proc/net");
    std::fs::create_dir_all(&net).unwrap();
    for name in net_files {
        std::fs::copy(data.join(format!("{name}-6.18.txt")), net.join(name)).unwrap();
    }
    let ipv4 = dir.join("proc/sys/net/ipv4");
    std::fs::create_dir_all(&ipv4).unwrap();
    std::fs::write(ipv4.join("tcp_fin_timeout"), "60\n").unwrap();
    let kernel = dir.join("proc/sys/kernel");
    std::fs::create_dir_all(&kernel).unwrap();
    std::fs::write(kernel.join("osrelease"), format!("{osrelease}\n")).unwrap();
}

/// The command line between the backticks after `before` in `text`, as words.
pub fn hint_after(text: &str, before: &str) -> Vec<String> {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in: {text}"))
        + before.len();
    let rest = &text[start..];
    let open = rest.find('`').expect("an opening backtick") + 1;
    let close = rest[open..].find('`').expect("a closing backtick") + open;
    shlex::split(&rest[open..close]).expect("a command line the shell reads")
}

/// The rstaudit binary under test.
/// RSTAUDIT_CONFIG is empty, so no test reads the host's /etc/rstaudit/config.yaml.
pub fn rstaudit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rstaudit"));
    cmd.env("RSTAUDIT_CONFIG", "");
    cmd
}

/// The rstaudit binary under test, run inside `ns` as its PID 1 (see [`Netns::as_init`]): the
/// namespace is then the initial one as rstaudit sees it, and `apply --persist` may run.
pub fn rstaudit_as_init(ns: &Netns) -> Command {
    let mut cmd = ns.as_init(env!("CARGO_BIN_EXE_rstaudit"));
    cmd.env("RSTAUDIT_CONFIG", "");
    cmd
}

/// A running helper process; killed on drop.
pub struct Helper {
    pub child: Child,
    pub pid: u32,
    /// The directory of the helper's renamed copy, removed with it.
    copy: Option<tempfile::TempDir>,
}

impl Helper {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning sockhelper");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("reading sockhelper");
        let pid = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("sockhelper did not start: {line:?}"));
        Self {
            child,
            pid,
            copy: None,
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// YAML flow collections `levels` deep (`[[[...]]]`).
pub fn deep_flow(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// "Billion laughs": nine levels of aliases, each nine times the one before (9^9 expansions),
/// as the indented body of a YAML mapping.
pub const LAUGHS: &str = "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
";

/// The run could not go on: exit 2, no panic, and every one of `needles` in standard error.
#[track_caller]
pub fn refused(out: &Output, needles: &[&str]) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in stderr: {all}");
    }
}

/// Spawn `cmd` (an `rstaudit packet-check ...`) with standard error piped and wait until it
/// says it is watching; its standard error is handed back for the rest of the run.
// The child is handed to the caller, who waits for it; on the way out before that it is
// killed and waited for here. The lint cannot follow a child that is returned.
#[allow(clippy::zombie_processes)]
pub fn start_watching(cmd: &mut Command) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting rstaudit");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let status = child.wait();
            panic!("rstaudit exited before watching ({status:?})");
        }
        if line.contains("watching TCP resets") {
            return (child, err);
        }
    }
}

/// Wait for the end of a command started with [`start_watching`]; its standard output (empty
/// when it was not piped). Fails, with the rest of its standard error, unless it succeeded.
pub fn finish_watching(mut child: Child, mut err: BufReader<std::process::ChildStderr>) -> String {
    use std::io::Read;
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).expect("reading stdout");
    }
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    let status = child.wait().expect("waiting for rstaudit");
    assert!(
        status.success(),
        "rstaudit failed: {status}; stderr: {rest}"
    );
    out
}

/// The standard error of a command that must refuse to run: exit 2 and nothing on standard
/// output (the diagnostics of a broken input file).
pub fn refused_stderr(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    assert!(out.stdout.is_empty(), "{}", text(out));
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Load `page` in headless Chromium with `probe` (a `<script>` that writes its answer as JSON
/// into the document's title) before `</body>`, and return the probe's answer.
pub fn browse(page: &str, probe: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.html");
    let probed = page.replacen("</body>", &format!("{probe}</body>"), 1);
    assert_ne!(probed, page, "page has no </body>");
    std::fs::write(&file, probed).unwrap();
    let profile = dir.path().join("profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect(
            "chromium is needed for this test (Debian package `chromium`, installed by ./test.sh)",
        );
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let title = dom
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(t, _)| {
            t.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
        })
        .unwrap_or_else(|| panic!("no title in the DOM chromium dumped:\n{dom}"));
    serde_json::from_str(&title)
        .unwrap_or_else(|e| panic!("the probe did not run ({e}); title: {title}"))
}

/// A valid rule file, for tests that break it one way at a time.
pub const GOOD_RULE: &str = r#"id: my-rule
title: A rule
severity: low
cause: "2"
subject: host
when:
  sysctl: net.ipv4.tcp_syncookies
  eq: 0
message: syncookies off
fix:
  sysctls:
    net.ipv4.tcp_syncookies: 1
explanation: Because.
"#;
