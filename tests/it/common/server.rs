//! Real servers from Debian's packages, each started in a network namespace of the test's
//! own with its files in a temporary directory, and what the tests read of the namespace (its
//! TCP table and counters).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use super::Netns;

/// A server in a namespace; its files live in `dir`; killed on drop.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    /// Write `config` (with `{dir}` replaced by the temporary directory) to `dir/NAME` and
    /// start `binary` in `ns` with `args` (`{config}` replaced by that file's path, `{dir}` by
    /// the directory).
    pub fn start(
        ns: &Netns,
        (binary, package): (&str, &str),
        name: &str,
        config: &str,
        args: &[&str],
    ) -> Self {
        assert!(
            Path::new(binary).is_file(),
            "{binary} is missing: this test runs the real server; install the Debian package \
             {package} (apt-get install {package})"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        let config_path = dir.path().join(name);
        std::fs::write(&config_path, config.replace("{dir}", &d)).unwrap();
        let log = dir.path().join("output.log");
        let out = std::fs::File::create(&log).unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{config}", config_path.to_str().unwrap())
                    .replace("{dir}", &d)
            })
            .collect();
        // A process group of its own: the server's workers (nginx, PostgreSQL) go with it.
        let child = ns
            .command(binary)
            .args(&args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        // `ip netns exec` execs the program: the child is the server.
        let pid = child.id();
        Self {
            child,
            pid,
            dir,
            log,
        }
    }

    pub fn output(&self) -> String {
        let mut all = std::fs::read_to_string(&self.log).unwrap_or_default();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "log") && p != self.log {
                all += &std::fs::read_to_string(&p).unwrap_or_default();
            }
        }
        all
    }

    /// Wait until the server listens on `port` in `ns` (read from the namespace's
    /// /proc/net/tcp, so no probe connection disturbs the counters).
    pub fn wait_listening(&mut self, ns: &Netns, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tcp_table(ns)
                .iter()
                .any(|s| s.state == LISTEN && s.local_port == port)
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}): {}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "the server does not listen on {port} after 10 s: {}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    /// Kill the server's whole process group: a worker whose master is killed alone lives on.
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Run `f` in a thread that entered `ns` (sockets it creates belong to `ns`).
pub fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).unwrap();
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("the namespace thread panicked")
    })
}

pub const LISTEN: u8 = 0x0A;
pub const CLOSE_WAIT: u8 = 0x08;

pub struct TcpRow {
    pub state: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub rx_queue: u32,
}

/// The namespace's IPv4 TCP table (/proc/net/tcp, read from inside it).
pub fn tcp_table(ns: &Netns) -> Vec<TcpRow> {
    let text = in_ns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap()
    });
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            let (_, rx) = f.get(4)?.split_once(':')?;
            Some(TcpRow {
                local_port: port(f.get(1)?)?,
                remote_port: port(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                rx_queue: u32::from_str_radix(rx, 16).ok()?,
            })
        })
        .collect()
}

/// The namespace's MIB counters (`TcpExt.X`, `Tcp.X`).
pub fn counters(ns: &Netns) -> BTreeMap<String, u64> {
    let text = in_ns(ns, || {
        ["netstat", "snmp"]
            .map(|f| std::fs::read_to_string(format!("/proc/thread-self/net/{f}")).unwrap())
            .join("")
    });
    let lines: Vec<&str> = text.lines().collect();
    let mut out = BTreeMap::new();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (group, names) = names.split_once(": ").unwrap();
        let values = values.split_once(": ").unwrap().1;
        for (n, v) in names.split(' ').zip(values.split(' ')) {
            if let Ok(v) = v.parse() {
                out.insert(format!("{group}.{n}"), v);
            }
        }
    }
    out
}

pub fn counter(ns: &Netns, name: &str) -> u64 {
    *counters(ns)
        .get(name)
        .unwrap_or_else(|| panic!("no counter {name}"))
}
