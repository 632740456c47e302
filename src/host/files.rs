//! Where collectors read files from: the live /proc of the calling thread, or a copied tree.
//!
//! A copied tree (`--root DIR`) is read without following any symbolic link, so a link
//! planted in the tree can never make rstaudit read a file outside it. Live reads of
//! per-namespace files go through /proc/thread-self, so a thread that entered another
//! network namespace with setns(2) reads that namespace.

use std::fs::File;
use std::io::{self, BufRead, Read};
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

/// Longest line accepted in a /proc/net text file. The longest real ones (the names of
/// `TcpExt` in /proc/net/netstat) are a few KiB, a /proc/net/tcp6 line is 178 bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The lines of a /proc text file, numbered from 1, without their line ends (`\n`, `\r\n`),
/// for parsers that must not trust the file: a line longer than [`MAX_LINE_BYTES`], a file
/// longer than `max_total` bytes (when given), a line that is not UTF-8 or a read error is
/// a [`ParseError`] naming the file and the line, and ends the iteration. Memory stays within
/// one line, however large the file (a sparse file of a GiB of zeros included).
pub fn lines<R: BufRead>(reader: R, file: &str, max_total: Option<u64>) -> Lines<'_, R> {
    Lines {
        reader,
        file,
        line: 0,
        total: 0,
        max_total,
        done: false,
    }
}

/// See [`lines`].
pub struct Lines<'a, R> {
    reader: R,
    file: &'a str,
    line: usize,
    total: u64,
    max_total: Option<u64>,
    done: bool,
}

impl<R> Lines<'_, R> {
    fn fail(&mut self, message: String) -> Option<Result<(usize, String), ParseError>> {
        self.done = true;
        Some(Err(parse_error(self.file, self.line, message)))
    }
}

impl<R: BufRead> Iterator for Lines<'_, R> {
    type Item = Result<(usize, String), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.line += 1;
        let mut buf = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf);
        let n = match read {
            Ok(0) => {
                self.done = true;
                return None;
            }
            Ok(n) => n,
            Err(e) => return self.fail(format!("read failed: {e}")),
        };
        self.total += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if buf.len() > MAX_LINE_BYTES {
            return self.fail(format!(
                "line longer than {MAX_LINE_BYTES} bytes; no /proc/net file has one (the file is damaged)"
            ));
        }
        if let Some(max) = self.max_total.filter(|&max| self.total > max) {
            return self.fail(format!(
                "the file is larger than {max} bytes, far more than this file ever holds (the file is damaged)"
            ));
        }
        match String::from_utf8(buf) {
            Ok(text) => Some(Ok((self.line, text))),
            Err(e) => self.fail(format!(
                "not UTF-8 text (byte {} of the line)",
                e.utf8_error().valid_up_to() + 1
            )),
        }
    }
}

/// Whether a file holds nothing at all (a /proc file never does; a copy of one that was
/// absent, `cat /proc/net/tcp6 > T/proc/net/tcp6` with IPv6 off, does). A read error is left
/// to the parser, which reports it with the file and line.
pub fn is_empty(reader: &mut impl BufRead) -> bool {
    reader.fill_buf().is_ok_and(<[u8]>::is_empty)
}

/// A /proc text file that could not be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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

    #[test]
    fn lines_are_capped_and_numbered() {
        let all = |text: &[u8], max: Option<u64>| -> Vec<Result<(usize, String), ParseError>> {
            lines(text, "f", max).collect()
        };
        assert_eq!(
            all(b"a\r\nb\n\nc", None),
            vec![
                Ok((1, "a".to_string())),
                Ok((2, "b".to_string())),
                Ok((3, String::new())),
                Ok((4, "c".to_string()))
            ]
        );
        let exact = format!("{}\nnext", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(all(exact.as_bytes(), None).len(), 2);
        let long = format!("ok\n{}\nnever", "x".repeat(MAX_LINE_BYTES + 1));
        let got = all(long.as_bytes(), None);
        assert_eq!(got.len(), 2, "stops at the first error");
        let err = got[1].clone().unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("f", 2));
        assert!(
            err.message.contains("line longer than 65536 bytes"),
            "{err}"
        );
        let got = all(b"12345\n12345\n12345\n", Some(12));
        assert_eq!(got.len(), 3);
        let err = got[2].clone().unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("larger than 12 bytes"), "{err}");
        let err = all(b"a\n\xff\n", None)[1].clone().unwrap_err();
        assert_eq!(err.to_string(), "f:2: not UTF-8 text (byte 1 of the line)");
        // A GiB of zeros (a sparse file) costs one line of memory.
        let zeros = std::io::BufReader::new(std::io::repeat(0).take(1 << 30));
        let err = lines(zeros, "z", None).next().unwrap().unwrap_err();
        assert_eq!(err.line, 1);
    }
}
