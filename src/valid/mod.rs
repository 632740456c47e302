//! What is valid: the one authority for every sysctl key and value, rule and lab parameter
//! that rstaudit reads or writes.
//!
//! - [`sysctls`]: the catalogue of the keys the project uses (the kernels that have each,
//!   its type and the values the kernel gives a meaning);
//! - [`names`]: every other net.* name of the supported kernels, and the nearest known name
//!   to a misspelt one;
//! - [`params`]: the rule and lab parameters and their values.
//!
//! Rule and profile loaders, the config file, `fix`, `apply`, `verify`, `audit` and the packet
//! check all ask here, so one input gets one verdict on every path. A problem is an
//! [`Invalid`]: a stable [`Code`] (docs/diagnostics.md), what is wrong and how to fix it; a
//! loader places it in its file, the command layer names the flag that gave it. Nothing here
//! reads the host or prints.

pub mod names;
pub mod params;
pub mod sysctls;

use std::fmt;

use crate::diag::{Code, Diagnostic};
use crate::host::sysctl::{self, Scope, SysctlError, SysctlKey};

pub use names::Known;

/// Why an input is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: Code,
    pub message: String,
    /// How to fix it; empty when the message says it already.
    pub hint: String,
}

impl Invalid {
    pub fn new(code: Code, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The same problem as a diagnostic at `file:line:col`.
    pub fn at(self, file: &str, line: usize, col: usize) -> Diagnostic {
        Diagnostic {
            code: self.code,
            file: file.to_string(),
            line,
            col,
            message: self.message,
            hint: self.hint,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)?;
        if !self.hint.is_empty() {
            write!(f, "; {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// A number as people write it: `300`, `0.5`.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A key checked against the names of the supported kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub key: SysctlKey,
    /// `None`: outside net.*, allowed by the caller; its name is the kernel's to judge.
    pub known: Option<Known>,
}

impl Key {
    /// The catalogue's entry, when the key is catalogued.
    pub fn spec(&self) -> Option<&'static sysctls::Spec> {
        match self.known {
            Some(Known::Catalogued(s)) => Some(s),
            _ => None,
        }
    }
}

/// Check a sysctl key: well formed (no path tricks; net.* unless `scope` allows any), and a
/// name some supported kernel has. A misspelt name is `unknown-sysctl` with the nearest known
/// name; a malformed one, or one outside net.* where only net.* is allowed, `bad-sysctl-key`.
pub fn key(input: &str, scope: Scope) -> Result<Key, Invalid> {
    let key = SysctlKey::parse(input, scope).map_err(|e| match e {
        SysctlError::NotNet { key } => Invalid::new(
            Code::BadSysctlKey,
            format!("{key} is outside net.*: only net.* keys may be named here"),
            "",
        ),
        other => Invalid::new(Code::BadSysctlKey, other.to_string(), ""),
    })?;
    if !key.as_str().starts_with("net.") {
        return Ok(Key { key, known: None });
    }
    match names::known(key.as_str()) {
        Some(known) => Ok(Key {
            key,
            known: Some(known),
        }),
        None => Err(unknown(key.as_str())),
    }
}

/// `unknown-sysctl` for a name no supported kernel has.
fn unknown(key: &str) -> Invalid {
    Invalid::new(
        Code::UnknownSysctl,
        format!("unknown sysctl {key:?}: no supported kernel (Linux 4.9 to 6.18) has it"),
        match names::nearest_key(key) {
            Some(n) => format!("did you mean {n}?"),
            None => "check the name with `sysctl -a`".to_string(),
        },
    )
}

/// Check a value for a key: no NUL byte or newline, and for a catalogued key one of the
/// values it means (type, range, order). Returns the value as the kernel prints it.
pub fn value(key: &Key, value: &str) -> Result<String, Invalid> {
    let normalized = sysctl::validate_value(&key.key, value, None)
        .map_err(|e| Invalid::new(Code::BadValue, e.to_string(), ""))?;
    if let Some(spec) = key.spec() {
        spec.check(&normalized)
            .map_err(|why| out_of_range(key, &why))?;
    }
    Ok(normalized)
}

/// Check a bound (`at_least: N`, `at_most: N`) for a key.
pub fn bound(key: &Key, n: i64) -> Result<(), Invalid> {
    match key.spec() {
        Some(spec) => spec.check_bound(n).map_err(|why| out_of_range(key, &why)),
        None => Ok(()),
    }
}

fn out_of_range(key: &Key, why: &sysctls::OutOfRange) -> Invalid {
    Invalid::new(Code::BadValue, format!("{}: {why}", key.key), "")
}

/// Whether a key the live kernel lacks is not applicable here (the catalogue explains its
/// absence: a release that removed it or had not added it, a module not loaded), and what to
/// say; `None`: its absence is a problem.
pub fn not_applicable(
    key: &SysctlKey,
    kernel: Option<crate::host::KernelVersion>,
) -> Option<String> {
    let spec = sysctls::spec(key.as_str())?;
    spec.absence(kernel)
        .map(|why| format!("{key} does not exist on this kernel ({why})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_get_one_verdict() {
        let e = key("net.core.somaxconnn", Scope::NetOnly).unwrap_err();
        assert_eq!(e.code, Code::UnknownSysctl);
        assert_eq!(e.hint, "did you mean net.core.somaxconn?");
        assert_eq!(
            key("net/../kernel", Scope::NetOnly).unwrap_err().code,
            Code::BadSysctlKey
        );
        assert_eq!(
            key("kernel.panic", Scope::NetOnly).unwrap_err().code,
            Code::BadSysctlKey
        );
        assert_eq!(key("kernel.panic", Scope::AnyKey).unwrap().known, None);
        let k = key("net.ipv4.tcp_syncookies", Scope::NetOnly).unwrap();
        assert_eq!(value(&k, " 1 "), Ok("1".to_string()));
        let e = value(&k, "7").unwrap_err();
        assert_eq!(e.code, Code::BadValue);
        assert_eq!(
            e.message,
            "net.ipv4.tcp_syncookies: 7 is out of range 0..=2"
        );
        assert_eq!(
            e.to_string(),
            "net.ipv4.tcp_syncookies: 7 is out of range 0..=2 [bad-value]"
        );
        let k = key("net.ipv4.tcp_sack", Scope::NetOnly).unwrap();
        assert_eq!(k.known, Some(Known::Kernel));
        assert!(value(&k, "1\n2").is_err());
        let k = key("net.ipv4.tcp_keepalive_time", Scope::NetOnly).unwrap();
        assert!(bound(&k, 0).is_err() && bound(&k, 300).is_ok());
    }

    #[test]
    fn a_known_key_this_kernel_lacks_is_not_applicable() {
        let v = Some(crate::host::KernelVersion {
            major: 6,
            minor: 1,
            patch: 0,
        });
        let k = |s| SysctlKey::parse(s, Scope::NetOnly).unwrap();
        assert!(
            not_applicable(&k("net.ipv4.tcp_tw_recycle"), v)
                .unwrap()
                .contains("removed in Linux 4.12")
        );
        assert_eq!(not_applicable(&k("net.core.somaxconn"), v), None);
        assert_eq!(not_applicable(&k("net.ipv4.tcp_sack"), v), None);
    }
}
