//! The labels of processes, kept: read once per process, bounded, and still there after the
//! process exited, so that a reset it caused is labelled with what it was.
//!
//! A process is known by its pid and its start time (from /proc/PID/stat), so a pid reused
//! by a new process is read again. Container names come from the runtime's API
//! ([`RuntimeApi`]) once per container; an API that cannot answer is asked again after
//! [`WorkloadConfig::name_retry`], and what it said is kept as a note.

use std::fs::File;
use std::io::{self, BufReader};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use procfs::FromRead;

use super::names::RuntimeApi;
use super::{Workload, cgroup, derive};
use crate::host::files::ParseError;

/// How the cache reads and how much it keeps.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Where /proc is (`/proc` on the live host).
    pub proc_root: PathBuf,
    /// The runtime APIs to ask for container names, at most one per runtime (the first).
    pub apis: Vec<RuntimeApi>,
    /// Processes kept (the least recently used goes first).
    pub max_processes: NonZeroUsize,
    /// Container names kept.
    pub max_containers: NonZeroUsize,
    /// How long a runtime API that could not answer is left alone before it is asked again.
    pub name_retry: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            proc_root: PathBuf::from("/proc"),
            apis: RuntimeApi::defaults(),
            max_processes: NonZeroUsize::new(8192).expect("not zero"),
            max_containers: NonZeroUsize::new(1024).expect("not zero"),
            name_retry: Duration::from_secs(60),
        }
    }
}

/// Why a process's labels could not be had.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The process exited before it was read, and was never read before.
    #[error("process {pid} exited before its cgroup was read")]
    Gone { pid: u32 },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {message}")]
    Stat { path: PathBuf, message: String },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

struct Entry {
    start_time: u64,
    workload: Arc<Workload>,
    /// When the process was last seen to be the same one (its start time read).
    checked_at: Instant,
}

struct Name {
    name: Option<String>,
    /// When the API could not answer: when it was asked.
    failed_at: Option<Instant>,
}

/// The cache. Not shared: one owner calls [`Workloads::lookup`].
pub struct Workloads {
    config: WorkloadConfig,
    by_pid: LruCache<u32, Entry>,
    names: LruCache<String, Name>,
    /// The last problem of each API, for the caller to show.
    api_notes: Vec<(PathBuf, String)>,
}

impl Workloads {
    pub fn new(config: WorkloadConfig) -> Self {
        Workloads {
            by_pid: LruCache::new(config.max_processes),
            names: LruCache::new(config.max_containers),
            config,
            api_notes: Vec::new(),
        }
    }

    /// The labels of `pid`: read now (and kept) when the process is new, or the kept ones
    /// when it was read before, also when it has exited since. A container's name is asked
    /// of its runtime's API here, which may take up to that API's timeout the first time.
    pub fn lookup(&mut self, pid: u32) -> Result<Arc<Workload>, WorkloadError> {
        let dir = self.config.proc_root.join(pid.to_string());
        let start_time = match read_start_time(&dir) {
            Ok(t) => t,
            Err(StartTime::Gone) => {
                return self
                    .by_pid
                    .get(&pid)
                    .map(|e| e.workload.clone())
                    .ok_or(WorkloadError::Gone { pid });
            }
            Err(StartTime::Bad(e)) => return Err(e),
        };
        if let Some(entry) = self.by_pid.get_mut(&pid)
            && entry.start_time == start_time
        {
            entry.checked_at = Instant::now();
            let workload = entry.workload.clone();
            return Ok(self.renamed(pid, workload));
        }
        let path = dir.join("cgroup");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if gone(&e) => return Err(WorkloadError::Gone { pid }),
            Err(source) => return Err(WorkloadError::Read { path, source }),
        };
        let parsed = cgroup::parse(BufReader::new(file), &path.display().to_string())?;
        let mut workload = derive(&parsed);
        if let Some(c) = workload.container.as_mut() {
            c.name = self.name_of(c.runtime, &c.id);
        }
        let workload = Arc::new(workload);
        self.by_pid.put(
            pid,
            Entry {
                start_time,
                workload: workload.clone(),
                checked_at: Instant::now(),
            },
        );
        Ok(workload)
    }

    /// The labels of `pid` as [`Workloads::lookup`] gives them, but without reading anything
    /// when the process was read or checked within `fresh` (a caller asking once per reset
    /// pays a lookup in memory, not a read of /proc/PID/stat, while a pid is not reused that
    /// fast).
    pub fn recent(&mut self, pid: u32, fresh: Duration) -> Result<Arc<Workload>, WorkloadError> {
        if let Some(entry) = self.by_pid.get(&pid)
            && entry.checked_at.elapsed() < fresh
        {
            return Ok(entry.workload.clone());
        }
        self.lookup(pid)
    }

    /// The labels of `pid` when it has any (a unit, a container or a pod): what a report shows
    /// beside a process. A process that cannot be read has none.
    pub fn labels(&mut self, pid: u32) -> Option<Arc<Workload>> {
        self.recent(pid, Duration::from_secs(1))
            .ok()
            .filter(|w| w.is_labelled())
    }

    /// The kept labels of `pid`, without reading anything.
    pub fn cached(&self, pid: u32) -> Option<Arc<Workload>> {
        self.by_pid.peek(&pid).map(|e| e.workload.clone())
    }

    /// Processes kept.
    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// What the runtime APIs said when they could not answer (one line per socket, the
    /// latest), for the caller to show.
    pub fn notes(&self) -> Vec<String> {
        self.api_notes.iter().map(|(_, n)| n.clone()).collect()
    }

    /// A kept workload whose container has no name yet gets one when its API can be asked
    /// again.
    fn renamed(&mut self, pid: u32, workload: Arc<Workload>) -> Arc<Workload> {
        let Some(c) = workload.container.as_ref().filter(|c| c.name.is_none()) else {
            return workload;
        };
        let due = match self.names.peek(&c.id) {
            Some(Name {
                failed_at: Some(at),
                ..
            }) => at.elapsed() >= self.config.name_retry,
            _ => false,
        };
        if !due {
            return workload;
        }
        self.names.pop(&c.id);
        let name = self.name_of(c.runtime, &c.id.clone());
        if name.is_none() {
            return workload;
        }
        let mut fresh = (*workload).clone();
        if let Some(c) = fresh.container.as_mut() {
            c.name = name;
        }
        let fresh = Arc::new(fresh);
        if let Some(e) = self.by_pid.get_mut(&pid) {
            e.workload = fresh.clone();
        }
        fresh
    }

    fn name_of(&mut self, runtime: super::Runtime, id: &str) -> Option<String> {
        if let Some(known) = self.names.get(id) {
            return known.name.clone();
        }
        let api = self
            .config
            .apis
            .iter()
            .find(|a| a.runtime == runtime)?
            .clone();
        let (name, failed_at) = match api.container_name(id) {
            Ok(name) => {
                self.api_notes.retain(|(s, _)| s != &api.socket);
                (name, None)
            }
            Err(e) => {
                let note = format!("{e}: container names are not known, ids are shown");
                match self.api_notes.iter_mut().find(|(s, _)| s == &api.socket) {
                    Some(slot) => slot.1 = note,
                    None => self.api_notes.push((api.socket.clone(), note)),
                }
                (None, Some(Instant::now()))
            }
        };
        self.names.put(
            id.to_string(),
            Name {
                name: name.clone(),
                failed_at,
            },
        );
        name
    }
}

enum StartTime {
    Gone,
    Bad(WorkloadError),
}

fn gone(e: &io::Error) -> bool {
    // ESRCH: the process exited between the open and the read.
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// The process's start time (clock ticks after boot), the 22nd field of /proc/PID/stat.
fn read_start_time(dir: &Path) -> Result<u64, StartTime> {
    let path = dir.join("stat");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if gone(&e) => return Err(StartTime::Gone),
        Err(source) => return Err(StartTime::Bad(WorkloadError::Read { path, source })),
    };
    match procfs::process::Stat::from_read(BufReader::new(file)) {
        Ok(stat) => Ok(stat.starttime),
        Err(procfs::ProcError::NotFound(_)) => Err(StartTime::Gone),
        Err(e) => Err(StartTime::Bad(WorkloadError::Stat {
            path,
            message: e.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Runtime;
    use super::*;

    const ID: &str = "4e0af92ea79ac765c59589c317b23d8793465e509ba2a41c44b90a95d4a77edf";

    /// A copied /proc with one process: its stat line (captured from a `sleep` here, kernel
    /// 6.18) with the given start time, and its cgroup file.
    fn process(root: &Path, pid: u32, start: u64, cgroup: &str) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let stat = format!(
            "{pid} (sleep) S 1 {pid} {pid} 0 -1 4194560 95 0 0 0 0 0 0 0 20 0 1 0 {start} 2469888 256 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        );
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
    }

    fn cache(root: &Path, apis: Vec<RuntimeApi>, max: usize) -> Workloads {
        Workloads::new(WorkloadConfig {
            proc_root: root.to_path_buf(),
            apis,
            max_processes: NonZeroUsize::new(max).unwrap(),
            max_containers: NonZeroUsize::new(4).unwrap(),
            name_retry: Duration::ZERO,
        })
    }

    #[test]
    fn an_exited_process_keeps_its_labels_and_a_reused_pid_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        process(
            dir.path(),
            42,
            100,
            &format!("0::/libpod_parent/libpod-{ID}\n"),
        );
        let mut c = cache(dir.path(), vec![], 8);
        let first = c.lookup(42).unwrap();
        assert_eq!(first.container.as_ref().unwrap().runtime, Runtime::Podman);
        assert_eq!(first.container.as_ref().unwrap().name, None, "no API asked");
        std::fs::remove_dir_all(dir.path().join("42")).unwrap();
        assert_eq!(c.lookup(42).unwrap(), first, "exited: the kept labels");
        // The pid comes back as another process, started later, in a service.
        process(dir.path(), 42, 900, "0::/system.slice/nginx.service\n");
        let second = c.lookup(42).unwrap();
        assert_eq!(second.unit.as_deref(), Some("nginx.service"));
        assert_eq!(second.container, None);
        assert!(matches!(c.lookup(7), Err(WorkloadError::Gone { pid: 7 })));
    }

    #[test]
    fn bounded_and_bad_files_are_errors_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        for pid in 1..=5 {
            process(dir.path(), pid, pid as u64, "0::/system.slice/a.service\n");
        }
        let mut c = cache(dir.path(), vec![], 3);
        for pid in 1..=5 {
            c.lookup(pid).unwrap();
        }
        assert_eq!(c.len(), 3);
        assert!(c.cached(1).is_none() && c.cached(5).is_some());
        process(dir.path(), 9, 1, "4:memory");
        let err = c.lookup(9).unwrap_err().to_string();
        assert!(
            err.contains("/9/cgroup:1:") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(dir.path().join("9/stat"), "9 (sl").unwrap();
        let err = c.lookup(9).unwrap_err().to_string();
        assert!(err.contains("/9/stat"), "{err}");
    }

    #[test]
    fn an_api_that_cannot_answer_is_a_note_and_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        process(
            dir.path(),
            42,
            100,
            &format!("0::/system.slice/docker-{ID}.scope\n"),
        );
        let socket = dir.path().join("docker.sock");
        let mut c = cache(
            dir.path(),
            vec![RuntimeApi::new(Runtime::Docker, &socket)],
            8,
        );
        let w = c.lookup(42).unwrap();
        assert_eq!(w.container.as_ref().unwrap().label(), &ID[..12]);
        let notes = c.notes();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("docker.sock") && notes[0].contains("ids are shown"),
            "{notes:?}"
        );
        // The API comes up: the next lookup asks again (retry after zero) and names it.
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\n{\"Name\":\"/shop\"}")
                .unwrap();
        });
        let w = c.lookup(42).unwrap();
        server.join().unwrap();
        assert_eq!(w.container.as_ref().unwrap().label(), "shop");
        assert!(c.notes().is_empty(), "{:?}", c.notes());
        assert_eq!(
            c.cached(42).unwrap().container.as_ref().unwrap().label(),
            "shop"
        );
    }
}
