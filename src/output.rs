//! Creating the files a user names for output (`-o FILE`, `--events-file`, `--pcap`) without
//! letting someone else's link or file in a shared directory redirect what root writes.
//!
//! In a directory that is sticky and writable by everyone (/tmp), anyone can leave a
//! symbolic link named like the file rstaudit is about to write, pointing at a file of
//! root's. The kernel refuses to follow such links when `fs.protected_symlinks` is 1, but not
//! every host sets it. The same rule is applied here whatever the sysctl says: in such a
//! directory, a link or an existing file is used only if it belongs to us or to the
//! directory's owner. Elsewhere links are followed as usual (`--events-file /dev/stdout`).

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The directory `path` is created in.
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The owner of `path`'s directory when that directory is sticky and writable by everyone
/// (/tmp); None elsewhere.
fn shared_dir_owner(path: &Path) -> io::Result<Option<u32>> {
    let dir = std::fs::metadata(parent_of(path))?;
    Ok((dir.mode() & 0o1002 == 0o1002).then(|| dir.uid()))
}

fn refuse(path: &Path, what: &str, uid: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is {what} of uid {uid} in a directory everyone may write to: not written \
             through; remove it or choose another path",
            path.display()
        ),
    )
}

/// Whether a link or file with this owner may be used in a shared directory owned by `owner`.
fn owned_by_us_or(uid: u32, owner: u32) -> bool {
    uid == nix::unistd::geteuid().as_raw() || uid == owner
}

/// The rule for shared directories, applied to every directory on the way to `path`: a
/// symbolic link met there (`/tmp/link/report.json`) that belongs to neither us nor the owner
/// of the sticky, world-writable directory holding it is refused, as `fs.protected_symlinks`
/// would.
fn check_links_on_the_way(path: &Path) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let mut prefix = PathBuf::new();
    for part in parent.components() {
        prefix.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        if let Some(owner) = shared_dir_owner(&prefix)?
            && !owned_by_us_or(meta.uid(), owner)
        {
            return Err(refuse(&prefix, "a symbolic link", meta.uid()));
        }
    }
    Ok(())
}

/// Refuse `path` when it already exists in a sticky, world-writable directory and belongs to
/// neither us nor the directory's owner (as `fs.protected_symlinks` and
/// `fs.protected_regular` would), or when a link on the way to it is such a one.
fn check_shared_dir(path: &Path) -> io::Result<()> {
    check_links_on_the_way(path)?;
    let Ok(existing) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if let Some(owner) = shared_dir_owner(path)?
        && !owned_by_us_or(existing.uid(), owner)
    {
        let what = if existing.file_type().is_symlink() {
            "a symbolic link"
        } else {
            "a file"
        };
        return Err(refuse(path, what, existing.uid()));
    }
    Ok(())
}

/// Create (or truncate) a file to stream output into.
pub fn create(path: &Path) -> io::Result<File> {
    check_links_on_the_way(path)?;
    let Some(owner) = shared_dir_owner(path)? else {
        return std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path);
    };
    // In a shared directory the name is looked at once, and that one look decides. A link of
    // ours (or of the directory's owner) is followed: the sticky bit keeps anyone else from
    // replacing it. Anything else is opened without following a link (one made since the look
    // is refused) and without blocking (a FIFO made since cannot hang us), and only a plain
    // file of ours with no other name (through a hard link another file would be emptied) is
    // truncated and written.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            if !owned_by_us_or(m.uid(), owner) {
                return Err(refuse(path, "a symbolic link", m.uid()));
            }
            return std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path);
        }
        Ok(m) if !owned_by_us_or(m.uid(), owner) => {
            return Err(refuse(path, "a file", m.uid()));
        }
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENXIO) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} turned into a symbolic link or FIFO while it was opened, in a directory \
                     everyone may write to: not written through",
                    path.display()
                ),
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !owned_by_us_or(meta.uid(), owner) {
        return Err(refuse(path, "a file", meta.uid()));
    }
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a plain file with one name (a FIFO, a device, or a hard link to \
                 another file), in a directory everyone may write to: not written through",
                path.display()
            ),
        ));
    }
    file.set_len(0)?;
    Ok(file)
}

/// Create a new temporary file beside `path` for an atomic replace: a name no one else holds
/// (O_EXCL, never through a link), retried on a clash; `.NAME.rstaudit-tmp.PID.N`, which
/// `sysctl --system` ignores (it does not end in `.conf`). Returns the file and its path.
fn create_temp_beside(path: &Path, mode: u32) -> io::Result<(File, PathBuf)> {
    check_shared_dir(path)?;
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", path.display()),
        )
    })?;
    let dir = parent_of(path);
    let pid = std::process::id();
    for attempt in 0..16u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(
            ".{}.rstaudit-tmp.{pid}.{:x}",
            name.to_string_lossy(),
            nanos ^ attempt.wrapping_mul(0x9e37_79b9)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free temporary name beside {}", path.display()),
    ))
}

/// Replace `path` with what `write` puts in a new file: the file is made beside `path`
/// (created with `mode`, see [`create_temp_beside`]), written, fsynced and renamed over
/// `path`, then the directory is fsynced, so a crash leaves the old file or the new one,
/// never half of one. On any error the temporary file is removed and `path` is as it was.
/// The one atomic writer of the project: reports (`-o`), rollback files, sysctl.d files.
///
/// A path that is not a regular file (`-o /dev/null`, `/dev/stdout`, a FIFO) has nothing to
/// replace: it is written into, never renamed over (which would put a plain file in place of
/// the device).
pub fn replace(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_file() && !m.is_dir()) {
        let mut file = create(path)?;
        return write(&mut file);
    }
    let (mut file, tmp) = create_temp_beside(path, mode)?;
    let result = (|| {
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        if let Ok(dir) = File::open(parent_of(path)) {
            // The rename is durable once the directory is; a failure here loses nothing written.
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A sticky, world-writable directory with a link and a file of uid 65534 in it.
    fn shared_dir() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("out.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let planted = dir.path().join("planted.json");
        std::fs::write(&planted, "").unwrap();
        for p in [&link, &planted] {
            std::os::unix::fs::lchown(p, Some(65534), Some(65534)).unwrap();
        }
        (dir, target, link, planted)
    }

    #[test]
    fn links_and_files_of_others_in_shared_directories_are_not_written_through() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (lchown to another uid); run `cargo test` as root");
        }
        let (dir, target, link, planted) = shared_dir();
        for p in [&link, &planted] {
            let err = create(p).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
            assert!(err.to_string().contains("of uid 65534"), "{err}");
            assert!(create_temp_beside(p, 0o644).is_err());
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        std::fs::write(&planted, "theirs").unwrap();
        assert!(create(&planted).is_err());
        assert_eq!(
            std::fs::read_to_string(&planted).unwrap(),
            "theirs",
            "not truncated"
        );
        // A hard link of ours to a file of root's elsewhere: not truncated through.
        let hard = dir.path().join("hard.json");
        std::fs::hard_link(&target, &hard).unwrap();
        let err = create(&hard).unwrap_err();
        assert!(err.to_string().contains("hard link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // Another user's link on the way to the file: /shared/dirlink/out.json.
        let elsewhere = tempfile::tempdir().unwrap();
        let dirlink = dir.path().join("dirlink");
        std::os::unix::fs::symlink(elsewhere.path(), &dirlink).unwrap();
        std::os::unix::fs::lchown(&dirlink, Some(65534), Some(65534)).unwrap();
        let err = create(&dirlink.join("out.json")).unwrap_err();
        assert!(
            err.to_string()
                .contains("dirlink is a symbolic link of uid 65534"),
            "{err}"
        );
        assert!(create_temp_beside(&dirlink.join("out.json"), 0o644).is_err());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        // Our own file there is truncated and written; a link elsewhere is followed.
        let old = dir.path().join("old.json");
        std::fs::write(&old, "old contents").unwrap();
        drop(create(&old).unwrap());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "");
        let mine = dir.path().join("mine.json");
        drop(create(&mine).unwrap());
        let (f, tmp) = create_temp_beside(&mine, 0o644).unwrap();
        drop(f);
        assert!(tmp.starts_with(dir.path()));
        let private = tempfile::tempdir().unwrap();
        let own_link = private.path().join("to-target");
        std::os::unix::fs::symlink(&target, &own_link).unwrap();
        std::os::unix::fs::lchown(&own_link, Some(65534), Some(65534)).unwrap();
        drop(create(&own_link).unwrap());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn writing_to_a_device_or_fifo_writes_into_it_and_never_replaces_it() {
        // Regression: `rstaudit snapshot -o /dev/null` renamed a plain file over /dev/null.
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let null = dir.path().join("null");
        nix::sys::stat::mknod(
            &null,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod needs root: run the README test command as root");
        replace(&null, 0o644, |f| f.write_all(b"report")).unwrap();
        assert!(
            std::fs::metadata(&null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A FIFO with a reader gets the bytes, and stays a FIFO.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        replace(&fifo, 0o644, |f| f.write_all(b"through")).unwrap();
        assert_eq!(reader.join().unwrap(), "through");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn temporary_names_never_reuse_an_existing_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.json");
        let (_a, first) = create_temp_beside(&out, 0o644).unwrap();
        let (_b, second) = create_temp_beside(&out, 0o644).unwrap();
        assert_ne!(first, second);
    }
}
