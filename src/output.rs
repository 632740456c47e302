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

/// Refuse `path` when it already exists in a sticky, world-writable directory and belongs to
/// neither us nor the directory's owner (as `fs.protected_symlinks` and
/// `fs.protected_regular` would).
fn check_shared_dir(path: &Path) -> io::Result<()> {
    let Ok(existing) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if let Some(owner) = shared_dir_owner(path)? {
        let me = nix::unistd::geteuid().as_raw();
        if existing.uid() != me && existing.uid() != owner {
            let what = if existing.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a file"
            };
            return Err(refuse(path, what, existing.uid()));
        }
    }
    Ok(())
}

/// Create (or truncate) a file to stream output into.
pub fn create(path: &Path) -> io::Result<File> {
    check_shared_dir(path)?;
    let Some(owner) = shared_dir_owner(path)? else {
        return std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(path);
    };
    // In a shared directory a name can change between the check and the open: a link that is
    // (still) ours was checked above and no one else may replace it (sticky bit); otherwise
    // open without following a link that appeared since, look at what was opened, and only
    // then truncate it.
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path);
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} became a symbolic link while it was opened, in a directory everyone may \
                     write to: not written through",
                    path.display()
                ),
            ),
            _ => e,
        })?;
    let meta = file.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != owner {
        return Err(refuse(path, "a file", meta.uid()));
    }
    file.set_len(0)?;
    Ok(file)
}

/// Create a new temporary file beside `path` for an atomic replace: a name no one else holds
/// (O_EXCL, never through a link), retried on a clash. Returns the file and its path.
pub fn create_temp_beside(path: &Path) -> io::Result<(File, PathBuf)> {
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
            ".{}.tmp.{pid}.{:x}",
            name.to_string_lossy(),
            nanos ^ attempt.wrapping_mul(0x9e37_79b9)
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
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

#[cfg(test)]
mod tests {
    use super::*;
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
            assert!(create_temp_beside(p).is_err());
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        std::fs::write(&planted, "theirs").unwrap();
        assert!(create(&planted).is_err());
        assert_eq!(
            std::fs::read_to_string(&planted).unwrap(),
            "theirs",
            "not truncated"
        );
        // Our own file there is truncated and written; a link elsewhere is followed.
        let old = dir.path().join("old.json");
        std::fs::write(&old, "old contents").unwrap();
        drop(create(&old).unwrap());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "");
        let mine = dir.path().join("mine.json");
        drop(create(&mine).unwrap());
        let (f, tmp) = create_temp_beside(&mine).unwrap();
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
    fn temporary_names_never_reuse_an_existing_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.json");
        let (_a, first) = create_temp_beside(&out).unwrap();
        let (_b, second) = create_temp_beside(&out).unwrap();
        assert_ne!(first, second);
    }
}
