//! Benchmark timer: run a command, report its wall time, CPU time and peak memory.
//!
//! Usage: `timeit OUTFILE CMD [ARGS...]`. Runs CMD with its standard output
//! and error sent to /dev/null, waits for it with wait4(2), and writes one line
//! to OUTFILE: `WALL_S USER_S SYS_S MAXRSS_KB EXIT` (microsecond resolution;
//! GNU time's `%e` has only 10 ms, too coarse for the small sizes). Exits
//! with the command's status. Run by bench/run.sh.

use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: timeit OUTFILE CMD [ARGS...]");
        std::process::exit(2);
    }
    let start = Instant::now();
    let child = Command::new(&args[1])
        .args(&args[2..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("timeit: {}: {e}", args[1]);
            std::process::exit(2)
        });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet reaped; status and usage are valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if rc != pid {
        eprintln!("timeit: wait4: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let line = format!(
        "{wall:.6} {:.6} {:.6} {} {code}\n",
        secs(usage.ru_utime),
        secs(usage.ru_stime),
        usage.ru_maxrss
    );
    if let Err(e) = std::fs::write(&args[0], line) {
        eprintln!("timeit: {}: {e}", args[0]);
        std::process::exit(2);
    }
    std::mem::forget(child);
    std::process::exit(code);
}
