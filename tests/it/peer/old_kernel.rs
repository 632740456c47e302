//! A kernel before 6.10 as rstaudit sees it through `--tracefs DIR`: the format file of
//! `tcp:tcp_send_reset` without a reason field, and a `trace_pipe` fed with the real kernel's
//! events rewritten the way 6.1 prints them (the socket's fields, no reason) and only for
//! resets sent for a full socket (6.1 has no event for a closed port, a TIME_WAIT or SYN-RECV
//! entry). The packets are real; only the trace text is the older kernel's.

use std::ffi::CString;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rstaudit::trace::ftrace::{self, SendReset, TraceEvent};

/// `events/tcp/tcp_send_reset/format` as Debian's 6.1 kernel has it (tcp_event_sk_skb).
pub const FORMAT_6_1: &str = "name: tcp_send_reset
ID: 1524
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:28;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:30;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:32;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:38;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:42;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:58;\tsize:16;\tsigned:0;

print fmt: \"skbaddr=%p skaddr=%p family=%s sport=%hu dport=%hu saddr=%pI4 daddr=%pI4 saddrv6=%pI6c daddrv6=%pI6c state=%s\", REC->skbaddr, REC->skaddr, __print_symbolic(REC->family, { 2, \"AF_INET\" }, { 10, \"AF_INET6\" }), REC->sport, REC->dport, REC->saddr, REC->daddr, REC->saddr_v6, REC->daddr_v6, __print_symbolic(REC->state, { TCP_ESTABLISHED, \"TCP_ESTABLISHED\" }, { TCP_CLOSE, \"TCP_CLOSE\" }, { TCP_LISTEN, \"TCP_LISTEN\" })
";

/// `events/task/task_newtask/format` (the same on 6.1 and since).
const NEWTASK_FORMAT: &str = "name: task_newtask
ID: 205
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:unsigned long clone_flags;\toffset:32;\tsize:8;\tsigned:0;
";

/// `events/task/task_rename/format`.
const RENAME_FORMAT: &str = "name: task_rename
ID: 204
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char oldcomm[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:char newcomm[16];\toffset:28;\tsize:16;\tsigned:0;
";

/// The header of an instance's `trace` file on 6.1 (which marks bottom-half-disabled sections).
const TRACE_HEADER: &str = "# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
";

/// The fake tree, and the relay from the test's own real ftrace instance.
pub struct OldKernel {
    pub root: tempfile::TempDir,
    template: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    relay: Option<std::thread::JoinHandle<()>>,
    real: Option<super::KernelTrace>,
    seen: Arc<Mutex<Vec<SendReset>>>,
}

impl OldKernel {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ev = root.path().join("events/tcp/tcp_send_reset");
        std::fs::create_dir_all(&ev).unwrap();
        std::fs::write(ev.join("format"), FORMAT_6_1).unwrap();
        std::fs::create_dir_all(root.path().join("instances")).unwrap();
        // The task events, as every kernel since 3.x has them (their text is relayed as is).
        for (event, format) in [
            ("task_newtask", NEWTASK_FORMAT),
            ("task_rename", RENAME_FORMAT),
        ] {
            let dir = root.path().join("events/task").join(event);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("format"), format).unwrap();
        }
        // What rstaudit's instance will look like: control files, and a FIFO as trace_pipe.
        let template = root.path().join("instance-template");
        std::fs::create_dir_all(template.join("events/tcp/tcp_send_reset")).unwrap();
        for dir in ["events/task/task_newtask", "events/task/task_rename"] {
            std::fs::create_dir_all(template.join(dir)).unwrap();
        }
        for f in [
            "events/task/task_newtask/enable",
            "events/task/task_rename/enable",
            "events/tcp/tcp_send_reset/enable",
            "tracing_on",
            "buffer_size_kb",
        ] {
            std::fs::write(template.join(f), "").unwrap();
        }
        std::fs::write(template.join("trace"), TRACE_HEADER).unwrap();
        nix::unistd::mkfifo(&template.join("trace_pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        Self {
            root,
            template,
            stop: Arc::new(AtomicBool::new(false)),
            relay: None,
            real: None,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Make `cmd` (rstaudit) find its instance `rstaudit-PID` already there: a symbolic link
    /// to the template, made between fork and exec, when the pid is known.
    pub fn prepare(&self, cmd: &mut std::process::Command) {
        let target = CString::new(self.template.as_os_str().as_bytes()).unwrap();
        let mut prefix = self
            .root
            .path()
            .join("instances")
            .into_os_string()
            .into_vec();
        prefix.extend_from_slice(b"/rstaudit-");
        // SAFETY: the closure only formats into a stack buffer and calls symlink(2).
        unsafe {
            cmd.pre_exec(move || {
                let mut path = [0u8; 512];
                let n = prefix.len().min(480);
                path[..n].copy_from_slice(&prefix[..n]);
                let mut digits = [0u8; 12];
                let mut pid = libc::getpid() as u32;
                let mut d = 0;
                loop {
                    digits[d] = b'0' + (pid % 10) as u8;
                    d += 1;
                    pid /= 10;
                    if pid == 0 {
                        break;
                    }
                }
                for i in 0..d {
                    path[n + i] = digits[d - 1 - i];
                }
                if libc::symlink(target.as_ptr(), path.as_ptr().cast()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Start relaying the real kernel's tcp_send_reset events, rewritten as 6.1 prints them,
    /// into the instance's trace_pipe (rstaudit must have opened it: call after it announced).
    pub fn relay(&mut self) {
        let real = super::KernelTrace::start();
        for event in ["task_newtask", "task_rename"] {
            std::fs::write(real.dir.join("events/task").join(event).join("enable"), "1").unwrap();
        }
        let pipe = real.dir.join("trace_pipe");
        self.real = Some(real);
        let fifo = self.template.join("trace_pipe");
        let (stop, seen) = (self.stop.clone(), self.seen.clone());
        self.relay = Some(std::thread::spawn(move || {
            relay(&pipe, &fifo, &stop, &seen)
        }));
    }

    /// The real kernel's event (with its reason) for a reset, to compare.
    pub fn real_reset(&self, src: SocketAddr, dst: SocketAddr) -> SendReset {
        super::find_reset(&self.seen.lock().unwrap(), src, dst)
    }
}

impl Drop for OldKernel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.relay.take() {
            let _ = h.join();
        }
    }
}

fn relay(real_pipe: &Path, fifo: &Path, stop: &AtomicBool, seen: &Mutex<Vec<SendReset>>) {
    use std::os::unix::fs::OpenOptionsExt;
    let src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(real_pipe)
        .expect("the test's trace_pipe");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .expect("the fake trace_pipe");
    let mut reader = std::io::BufReader::new(src);
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Ok(_) => {
                if let Ok(Some(TraceEvent::SendReset(ev))) = ftrace::parse_line(&line) {
                    seen.lock().unwrap().push(ev);
                }
                let task = matches!(
                    ftrace::parse_line(&line),
                    Ok(Some(TraceEvent::NewTask(_) | TraceEvent::Rename(_)))
                );
                if task {
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.flush();
                } else if let Some(old) = as_6_1(&line) {
                    let _ = out.write_all(old.as_bytes());
                    let _ = out.flush();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(_) => break,
        }
    }
}

/// A 6.18 tcp_send_reset line as 6.1 would print it, or None when 6.1 has no event for it.
pub fn as_6_1(line: &str) -> Option<String> {
    let Ok(Some(TraceEvent::SendReset(ev))) = ftrace::parse_line(line) else {
        return None;
    };
    let full_socket = ev.has_sock
        && !matches!(
            ev.state,
            Some("TCP_TIME_WAIT" | "TCP_NEW_SYN_RECV" | "TCP_SYN_RECV")
        );
    if !full_socket {
        return None;
    }
    let (src, dst) = (ev.src?, ev.dst?);
    let head = &line[..line.find("tcp_send_reset: ")?];
    let fields = &line[line.find("skbaddr=")?..];
    let ptrs: Vec<&str> = fields.split(' ').take(2).collect();
    let v6 = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().to_string(),
        std::net::IpAddr::V6(v6) => v6.to_string(),
    };
    let v4 = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(_) => "0.0.0.0".to_string(),
    };
    Some(format!(
        "{head}tcp_send_reset: {} {} family={} sport={} dport={} saddr={} daddr={} saddrv6={} daddrv6={} state={}\n",
        ptrs[0],
        ptrs[1],
        if src.is_ipv4() { "AF_INET" } else { "AF_INET6" },
        src.port(),
        dst.port(),
        v4(src.ip()),
        v4(dst.ip()),
        v6(src.ip()),
        v6(dst.ip()),
        ev.state.unwrap_or("UNKNOWN"),
    ))
}
