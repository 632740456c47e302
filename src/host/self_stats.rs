//! The process's own resource use, for the `process_*` metrics every Prometheus client
//! library exports: CPU seconds, resident and virtual memory, open and allowed file
//! descriptors, start time.
//!
//! Parsed by procfs (`Stat` from /proc/self/stat, `Limits` from /proc/self/limits); the open
//! descriptors are the entries of /proc/self/fd; boot time is `btime` of /proc/stat.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use procfs::FromRead;
use procfs::process::{LimitValue, Limits, Stat};

/// What the process uses now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit on open files; `None` when unlimited.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// A file that could not be read or parsed, with its path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SelfStatsError {
    pub path: PathBuf,
    pub message: String,
}

/// The system facts the numbers are scaled by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub ticks_per_second: u64,
    pub page_size: u64,
    /// Boot time, seconds since the Unix epoch.
    pub boot_time_seconds: u64,
}

/// Read the calling process's stats from /proc.
pub fn read() -> Result<SelfStats, SelfStatsError> {
    let proc_root = Path::new("/proc");
    let scale = Scale {
        ticks_per_second: procfs::ticks_per_second(),
        page_size: procfs::page_size(),
        boot_time_seconds: procfs::boot_time_secs().map_err(|e| SelfStatsError {
            path: proc_root.join("stat"),
            message: e.to_string(),
        })?,
    };
    let open = |name: &str| {
        let path = proc_root.join("self").join(name);
        std::fs::File::open(&path)
            .map(std::io::BufReader::new)
            .map_err(|e| SelfStatsError {
                path: path.clone(),
                message: e.to_string(),
            })
            .map(|f| (f, path))
    };
    let (stat, stat_path) = open("stat")?;
    let (limits, limits_path) = open("limits")?;
    let fd_dir = proc_root.join("self/fd");
    let open_fds = std::fs::read_dir(&fd_dir)
        .map_err(|e| SelfStatsError {
            path: fd_dir.clone(),
            message: e.to_string(),
        })?
        // The directory's own descriptor, open while it is listed, is not counted.
        .count()
        .saturating_sub(1) as u64;
    parse(stat, &stat_path, limits, &limits_path, open_fds, scale)
}

/// The stats from the text of /proc/PID/stat and /proc/PID/limits (the paths name them in
/// errors), the number of open descriptors, and the system's scale.
pub fn parse(
    stat: impl BufRead,
    stat_path: &Path,
    limits: impl BufRead,
    limits_path: &Path,
    open_fds: u64,
    scale: Scale,
) -> Result<SelfStats, SelfStatsError> {
    let stat = Stat::from_read(stat).map_err(|e| SelfStatsError {
        path: stat_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let limits = Limits::from_read(limits).map_err(|e| SelfStatsError {
        path: limits_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let ticks = scale.ticks_per_second.max(1) as f64;
    Ok(SelfStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss.saturating_mul(scale.page_size),
        virtual_bytes: stat.vsize,
        open_fds,
        max_fds: match limits.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        },
        start_time_seconds: scale.boot_time_seconds as f64 + stat.starttime as f64 / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/stat and /proc/self/limits of a `cat` on this project's test machine
    /// (kernel 6.18, glibc, x86_64); in the stat line utime and stime (fields 14 and 15, 0
    /// for so short a process) are set to 250 and 125 ticks.
    const STAT: &str = "15198 (cat) R 15194 15194 22520 0 -1 4194304 100 0 0 0 250 125 0 0 20 0 1 0 273715 3133440 410 18446744073709551615 94005185830912 94005185850793 140727626202496 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94005185866800 94005185868416 94005981159424 140727626210018 140727626210038 140727626210038 140727626211307 0\n";
    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96367                96367                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96367                96367                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
";

    const SCALE: Scale = Scale {
        ticks_per_second: 100,
        page_size: 4096,
        boot_time_seconds: 1_796_688_413,
    };

    #[test]
    fn scales_ticks_and_pages() {
        let s = parse(
            STAT.as_bytes(),
            Path::new("stat"),
            LIMITS.as_bytes(),
            Path::new("limits"),
            7,
            SCALE,
        )
        .unwrap();
        assert_eq!(s.cpu_seconds, 3.75);
        assert_eq!(s.resident_bytes, 410 * 4096);
        assert_eq!(s.virtual_bytes, 3_133_440);
        assert_eq!((s.open_fds, s.max_fds), (7, Some(20000)));
        assert_eq!(s.start_time_seconds, 1_796_688_413.0 + 2737.15);
    }

    #[test]
    fn truncated_text_is_an_error_naming_the_file() {
        let err = parse(
            &STAT.as_bytes()[..40],
            Path::new("/proc/self/stat"),
            LIMITS.as_bytes(),
            Path::new("limits"),
            0,
            SCALE,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("/proc/self/stat: "), "{err}");
        let err = parse(
            STAT.as_bytes(),
            Path::new("stat"),
            &LIMITS.as_bytes()[..200],
            Path::new("/proc/self/limits"),
            0,
            SCALE,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("/proc/self/limits: "), "{err}");
    }

    #[test]
    fn reads_this_process() {
        let s = read().unwrap();
        assert!(
            s.resident_bytes > 0 && s.virtual_bytes >= s.resident_bytes,
            "{s:?}"
        );
        assert!(s.open_fds >= 3, "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86400.0 * 365.0);
    }
}
