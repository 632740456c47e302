//! YAML, read and written: the one module that calls serde_yaml.
//!
//! serde_yaml is deprecated upstream and kept because the project asked for it; every rule,
//! profile, cause, accept and config file, every YAML snapshot and report goes through here,
//! so replacing it means changing this file (and the nesting guard of `input`, which runs
//! libyaml's scanner with serde_yaml's settings). A value a file may hold untyped (the
//! parameters of profiles and config files) is a [`Value`]; an error is an [`Error`] that says
//! where in the text it is.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A YAML value of no particular type.
pub use serde_yaml::{Number, Value};

/// Why a text could not be read as YAML of the expected shape, or a value not written.
#[derive(Debug)]
pub struct Error(serde_yaml::Error);

/// Where in the text an error is (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    line: usize,
    column: usize,
}

impl Location {
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn column(&self) -> usize {
        self.column
    }
}

impl Error {
    /// Where the error is, when the parser knows it.
    pub fn location(&self) -> Option<Location> {
        self.0.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Read a value of type `T` from YAML text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_yaml::from_str(text).map_err(Error)
}

/// Write a value as YAML text.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_yaml::to_string(value).map_err(Error)
}

/// Write a value as YAML into `w`, as it is serialised. A failed write is returned as the
/// write's own error (serde_yaml would hide it inside one of its own), so that a closed pipe
/// (`rstaudit snapshot --format yaml | head`) is still seen as one.
pub fn to_writer<T: Serialize + ?Sized>(
    w: &mut dyn std::io::Write,
    value: &T,
) -> std::io::Result<()> {
    struct Keep<'a> {
        w: &'a mut dyn std::io::Write,
        failed: Option<std::io::Error>,
    }
    impl std::io::Write for Keep<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.w.write(buf).inspect_err(|e| {
                self.failed
                    .get_or_insert_with(|| std::io::Error::new(e.kind(), e.to_string()));
            })
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.w.flush()
        }
    }
    let mut keep = Keep { w, failed: None };
    serde_yaml::to_writer(&mut keep, value).map_err(|e| {
        keep.failed
            .take()
            .unwrap_or_else(|| std::io::Error::other(Error(e)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_where_it_is() {
        let e = from_str::<std::collections::BTreeMap<String, u32>>("a: 1\nb: x\n").unwrap_err();
        let at = e.location().expect("a position");
        assert_eq!((at.line(), at.column()), (2, 4));
        assert!(e.to_string().contains("at line 2 column 4"), "{e}");
    }

    #[test]
    fn a_failed_write_is_the_write_s_own_error() {
        struct Closed;
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = to_writer(&mut Closed, &vec!["x"; 1000]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn values_round_trip() {
        let text = to_string(&vec![1, 2]).unwrap();
        assert_eq!(text, "- 1\n- 2\n");
        assert_eq!(from_str::<Vec<u8>>(&text).unwrap(), vec![1, 2]);
        let v: Value = from_str("n: 1.5").unwrap();
        assert_eq!(v.get("n").and_then(Value::as_f64), Some(1.5));
    }
}
