//! Collection: the live host (every namespace asked for), a copied /proc tree, or a saved
//! file, into snapshots. Facts that cannot be read become notes.

use super::*;

/// Where to read the host picture from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The running kernel (/proc, netlink, /proc/PID/fd).
    Live,
    /// A copied tree: ROOT/proc/sys/net, ROOT/proc/net, ROOT/proc/sys/kernel/osrelease.
    Root(std::path::PathBuf),
    /// A saved snapshot file (JSON or YAML; one snapshot or a list).
    File(std::path::PathBuf),
}

/// What to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub source: Source,
    /// `--netns NAME|PATH|all` (live only).
    pub netns: Option<String>,
    /// `--interval SECONDS`: sample counters twice.
    pub interval: Option<f64>,
    /// Map sockets to processes (/proc/*/fd).
    pub owners: bool,
    /// Read socket options through pidfd_getfd (implies owners).
    pub options: bool,
    /// How owners and options are read (`--owner-scan`).
    pub scan: held::OwnerScan,
}

/// Collect one snapshot per network namespace asked for (one, unless `--netns all`).
///
/// Facts that cannot be read become notes; an error means nothing useful could be
/// collected (unreadable or malformed input, a namespace that cannot be entered).
pub fn collect(opts: &CollectOptions) -> anyhow::Result<Vec<Snapshot>> {
    match &opts.source {
        // The command line refuses these combinations before they get here.
        Source::File(path) => {
            if opts.interval.is_some() {
                anyhow::bail!(
                    "a sampling interval needs the live host; a saved snapshot holds the samples it was taken with"
                );
            }
            load(path)
        }
        Source::Root(dir) => {
            if opts.interval.is_some() || opts.netns.is_some() {
                anyhow::bail!(
                    "a sampling interval or a namespace needs the live host, not a copied tree"
                );
            }
            Ok(vec![collect_root(dir, opts)?])
        }
        Source::Live => collect_live(opts),
    }
}

/// An interval or a copied tree the collector refuses before reading anything. The message
/// says what is wrong with the value; the command layer adds the flag that gave it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("expected a number of seconds from 0.1 to 3600")]
    Interval(f64),
    #[error("not a directory")]
    RootNotADirectory(std::path::PathBuf),
    #[error(
        "holds neither proc/sys/net nor proc/net; give the directory that contains the copied proc/"
    )]
    RootWithoutProc(std::path::PathBuf),
}

fn check_interval(interval: Option<f64>) -> Result<Option<std::time::Duration>, SourceError> {
    match interval {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.1..=3600.0).contains(&s) => {
            Ok(Some(std::time::Duration::from_secs_f64(s)))
        }
        Some(s) => Err(SourceError::Interval(s)),
    }
}

fn collect_root(dir: &std::path::Path, opts: &CollectOptions) -> anyhow::Result<Snapshot> {
    use files::Place;
    if !dir.is_dir() {
        return Err(SourceError::RootNotADirectory(dir.to_path_buf()).into());
    }
    if !dir.join("proc/sys/net").exists() && !dir.join("proc/net").exists() {
        return Err(SourceError::RootWithoutProc(dir.to_path_buf()).into());
    }
    let place = Place::Root(dir);
    let mut notes = Vec::new();
    let taken_at_ms = crate::clock::now_ms();
    let osrelease = dir.join("proc/sys/kernel/osrelease");
    let read = files::open_in_tree(dir, &osrelease).and_then(|f| {
        let bytes = crate::input::read_small(f, 256)?.ok_or_else(|| {
            std::io::Error::other("longer than 256 bytes, more than any kernel release")
        })?;
        String::from_utf8(bytes)
            .ok()
            .filter(|t| !t.contains('\0'))
            .ok_or_else(|| std::io::Error::other("not text (not UTF-8, or a NUL byte)"))
    });
    let release = match read {
        Ok(text) => text.trim().to_string(),
        Err(e) => {
            notes.push(Note::new(
                "kernel",
                Some(osrelease.display().to_string()),
                format!("kernel release unknown: {e}"),
            ));
            String::new()
        }
    };
    // Optional: the distribution's patch level when the release hides it (Debian).
    let proc_version = files::open_in_tree(dir, &dir.join("proc/version"))
        .and_then(|f| crate::input::read_small(f, 1024))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let sysctls = sysctl::walk_net(place, &mut notes);
    let first = counters::read_sample(place, &mut notes)?;
    let (sockets_source, sockets) = sockets::read(place, &mut notes)?;
    if opts.owners || opts.options {
        notes.push(Note::new(
            "owners",
            None,
            "socket owners and options are not read from a copied tree",
        ));
    }
    Ok(Snapshot {
        schema: SCHEMA_VERSION,
        taken_at_ms,
        source: format!("root:{}", dir.display()),
        kernel: kernel::from_texts(&release, proc_version.as_deref()),
        netns: NetnsInfo {
            inode: None,
            name: format!("root:{}", dir.display()),
        },
        sysctls,
        counters: Counters {
            first,
            second: None,
        },
        sockets_source,
        sockets,
        notes,
    })
}

/// One namespace to collect in.
struct Target {
    name: String,
    inode: Option<u64>,
    /// The namespace file; `None` = the caller's own namespace, entered by nobody.
    path: Option<std::path::PathBuf>,
    /// Found by `--netns all`: skip it quietly if it is gone by the time we get to it.
    optional: bool,
}

/// Run `work` in the target's namespace. The namespace file is opened only for the
/// duration of the work, so a run does not keep other namespaces alive. `Ok(None)`: an
/// optional namespace that is gone (its process exited, or the pid now names another one).
fn in_target<T: Send>(
    target: &Target,
    work: impl FnOnce() -> T + Send,
) -> anyhow::Result<Option<T>> {
    use anyhow::Context;
    use std::os::unix::fs::MetadataExt;
    let Some(path) = &target.path else {
        return Ok(Some(work()));
    };
    // Opened without blocking, and checked to be a network namespace: a path can have been
    // replaced by anything (a FIFO included) since it was listed or resolved.
    let file = match netns::open(path) {
        Ok(file) => file,
        Err(_) if target.optional => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("opening network namespace {}", path.display()));
        }
    };
    let kind = netns::check_net_ns(&file);
    if target.optional && (file.metadata().map(|m| m.ino()).ok() != target.inode || kind.is_err()) {
        return Ok(None);
    }
    kind.map_err(|why| {
        anyhow::anyhow!(
            "network namespace {}: {} is not a network namespace file ({why})",
            target.name,
            path.display()
        )
    })?;
    netns::run_in_file(&file, &target.name, work).map(Some)
}

/// The note for a namespace found by `--netns all` that was gone before it could be read.
pub const GONE_NETNS: &str =
    "went away while rstaudit ran (its last process exited, or its name was deleted): not read";

fn targets(spec: Option<&str>, notes: &mut Vec<Note>) -> anyhow::Result<Vec<Target>> {
    match spec {
        None => Ok(vec![Target {
            name: netns::own_name(netns::current_inode().ok()),
            inode: netns::current_inode().ok(),
            path: None,
            optional: false,
        }]),
        Some("all") => {
            let own = netns::current_inode().ok();
            Ok(netns::list_all(notes)
                .into_iter()
                .map(|ns| Target {
                    path: (Some(ns.inode) != own).then_some(ns.path),
                    name: ns.name,
                    inode: Some(ns.inode),
                    optional: true,
                })
                .collect())
        }
        Some(spec) => {
            let ns = netns::resolve(spec)?;
            Ok(vec![Target {
                name: ns.name,
                inode: Some(ns.inode),
                path: Some(ns.path),
                optional: false,
            }])
        }
    }
}

/// Sysctls, counters and sockets of the calling thread's namespace.
fn collect_here(kernel: &Kernel, target: &Target) -> anyhow::Result<Snapshot> {
    use files::Place;
    let mut notes = Vec::new();
    let taken_at_ms = crate::clock::now_ms();
    let first = counters::read_sample(Place::Live, &mut notes)?;
    let sysctls = sysctl::walk_net(Place::Live, &mut notes);
    // The socket table last: the owner scan joins its processes' descriptors to it, and
    // the sooner it is given the table, the fewer short-lived sockets close in between.
    let (sockets_source, sockets) = sockets::read(Place::Live, &mut notes)?;
    Ok(Snapshot {
        schema: SCHEMA_VERSION,
        taken_at_ms,
        source: "live".to_string(),
        kernel: kernel.clone(),
        netns: NetnsInfo {
            inode: target.inode,
            name: target.name.clone(),
        },
        sysctls,
        counters: Counters {
            first,
            second: None,
        },
        sockets_source,
        sockets,
        notes,
    })
}

fn live_kernel() -> Kernel {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let proc_version = std::fs::File::open("/proc/version")
        .and_then(|f| crate::input::read_small(f, 1024))
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    kernel::from_texts(&release, proc_version.as_deref())
}

fn collect_live(opts: &CollectOptions) -> anyhow::Result<Vec<Snapshot>> {
    let interval = check_interval(opts.interval)?;
    let mut listing_notes = Vec::new();
    let targets = targets(opts.netns.as_deref(), &mut listing_notes)?;
    let kernel = live_kernel();
    let want_owners = opts.owners || opts.options;
    std::thread::scope(|scope| -> anyhow::Result<Vec<Snapshot>> {
        // Without options, the owner scan does not depend on the socket table: run it once,
        // on the other core, while the namespaces are read.
        let owner_scan = (want_owners && !opts.options)
            .then(|| scope.spawn(|| owners::scan(std::path::Path::new("/proc"))));
        // With options, owners and options are read in one pass over /proc/*/fd that
        // duplicates only the sockets of the tables: it lists the descriptors while the
        // tables are read, and reads the options once it is given them.
        let held_scan = opts
            .options
            .then(|| held::Scan::start(scope, std::path::Path::new("/proc"), opts.scan));
        let mut snapshots = Vec::with_capacity(targets.len());
        let mut taken = Vec::with_capacity(targets.len());
        for target in &targets {
            let start = std::time::Instant::now();
            match in_target(target, || collect_here(&kernel, target))? {
                Some(snapshot) => {
                    snapshots.push(snapshot?);
                    taken.push((target, start));
                }
                // Found by `--netns all`, gone before its turn: said, not silently dropped.
                None => {
                    listing_notes.push(Note::new("netns", Some(target.name.clone()), GONE_NETNS))
                }
            }
        }
        // Before the second counter sample, as the owner scan above runs during it.
        let held = held_scan
            .map(|scan| {
                let mut tables: Vec<&mut [Socket]> =
                    snapshots.iter_mut().map(|s| &mut s.sockets[..]).collect();
                scan.finish(&mut tables)
            })
            .transpose()
            .map_err(|why| {
                anyhow::Error::new(why).context("the kernel's socket iterator cannot be used here")
            })?;
        if let Some(interval) = interval {
            for (snapshot, (target, start)) in snapshots.iter_mut().zip(&taken) {
                std::thread::sleep(
                    (*start + interval).saturating_duration_since(std::time::Instant::now()),
                );
                let mut notes = Vec::new();
                match in_target(target, || {
                    counters::read_sample(files::Place::Live, &mut notes)
                })? {
                    Some(second) => snapshot.counters.second = second?,
                    None => notes.push(Note::new(
                        "counters",
                        Some(target.name.clone()),
                        "no second sample: the namespace was gone before it could be taken",
                    )),
                }
                for note in notes {
                    if !snapshot.notes.contains(&note) {
                        snapshot.notes.push(note);
                    }
                }
            }
        }
        if let Some(first) = snapshots.first_mut() {
            first.notes.extend(listing_notes);
        }
        if let Some(held) = held {
            for (snapshot, options) in snapshots.iter_mut().zip(held.options) {
                snapshot.notes.extend(held.owners.iter().cloned());
                snapshot.notes.extend(options);
            }
        }
        if let Some(handle) = owner_scan {
            let map = handle
                .join()
                .map_err(|_| anyhow::anyhow!("the socket owner scan panicked"))?;
            for snapshot in &mut snapshots {
                for socket in &mut snapshot.sockets {
                    if socket.inode != 0 {
                        socket.owner = map.by_inode.get(&socket.inode).cloned();
                    }
                }
                snapshot.notes.extend(map.notes.iter().cloned());
            }
        }
        Ok(snapshots)
    })
}
