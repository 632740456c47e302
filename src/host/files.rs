//! Where collectors read files from: the live /proc of the calling thread, or a copied tree.
//!
//! A copied tree (`--root DIR`) is read without following any symbolic link, so a link
//! planted in the tree can never make rstaudit read a file outside it. Live reads of
//! per-namespace files go through /proc/thread-self, so a thread that entered another
//! network namespace with setns(2) reads that namespace.

use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

/// The files a collector reads.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// The running kernel, as seen by the calling thread.
    Live,
    /// A copied tree: ROOT/proc/net/..., ROOT/proc/sys/...
    Root(&'a Path),
}

impl Place<'_> {
    /// A file of /proc/net (`netstat`, `snmp`, `tcp6`, ...).
    pub fn proc_net(&self, name: &str) -> PathBuf {
        match self {
            Place::Live => Path::new("/proc/thread-self/net").join(name),
            Place::Root(root) => root.join("proc/net").join(name),
        }
    }

    /// The directory that holds `proc/sys` (`/` for the live host).
    pub fn sys_root(&self) -> &Path {
        match self {
            Place::Live => Path::new("/"),
            Place::Root(root) => root,
        }
    }

    /// Open a file for reading. Below a copied tree no symbolic link is followed.
    pub fn open(&self, path: &Path) -> io::Result<File> {
        match self {
            Place::Live => File::open(path),
            Place::Root(root) => open_in_tree(root, path),
        }
    }
}

/// Open `path` (which lies below `root`) one component at a time, refusing symbolic links.
pub fn open_in_tree(root: &Path, path: &Path) -> io::Result<File> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is outside {}", path.display(), root.display()),
        )
    })?;
    let mut dir = nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let components: Vec<Component> = rel.components().collect();
    let mut walked = root.to_path_buf();
    for (i, component) in components.iter().enumerate() {
        let Component::Normal(name) = component else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: only plain path components are allowed", path.display()),
            ));
        };
        walked.push(name);
        let last = i + 1 == components.len();
        let mut flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if !last {
            flags |= OFlag::O_DIRECTORY;
        } else {
            // A FIFO planted in the tree must not block the open; it is refused below.
            flags |= OFlag::O_NONBLOCK;
        }
        dir = match openat(&dir, *name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) => return Err(symlink_refused(&walked)),
            Err(Errno::ENOTDIR) if is_symlink(&walked) => return Err(symlink_refused(&walked)),
            Err(e) => return Err(io::Error::from(e)),
        };
    }
    let file = File::from(dir);
    let kind = file.metadata()?.file_type();
    if !(kind.is_file() || kind.is_dir()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file (a device, FIFO or socket); a --root tree holds copies of /proc files",
                path.display()
            ),
        ));
    }
    Ok(file)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The error for a symbolic link found in a copied tree.
pub fn symlink_refused(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is a symbolic link; links in a --root tree are not followed",
        path.display()
    ))
}

/// A /proc text file that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {message}")]
pub struct ParseError {
    /// The file as given to the parser (a path, or a label in tests).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Build a [`ParseError`].
pub fn parse_error(file: &str, line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn reads_plain_files_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("proc/net");
        std::fs::create_dir_all(&net).unwrap();
        std::fs::write(net.join("snmp"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", net.join("netstat")).unwrap();
        std::os::unix::fs::symlink("/proc", dir.path().join("proc2")).unwrap();
        let place = Place::Root(dir.path());
        let mut text = String::new();
        place
            .open(&place.proc_net("snmp"))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "x");
        let err = place.open(&place.proc_net("netstat")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = open_in_tree(dir.path(), &dir.path().join("proc2/net/snmp")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = place.open(&place.proc_net("tcp")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
