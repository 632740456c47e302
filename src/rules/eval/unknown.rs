//! Why a value a rule needs is unknown. The reason becomes the note of a rule that could not
//! be checked ("not checked: sysctl ... was not read: ...") or of a fix with no value.

/// Why a value a rule needs is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unknown {
    #[error("sysctl {key} is not a number ({value:?})")]
    SysctlNotANumber { key: String, value: String },
    /// The snapshot's note says why it was not read.
    #[error("sysctl {key} was not read: {note}")]
    SysctlNoted { key: String, note: String },
    #[error("sysctl {key} was not read (absent on this kernel or in this namespace)")]
    SysctlAbsent { key: String },
    #[error("counter {name} was not read: {note}")]
    CounterNoted { name: String, note: String },
    #[error("counter {name} was not read")]
    CounterAbsent { name: String },
    #[error("the change of {name} needs two samples: run with --interval SECONDS")]
    OneSample { name: String },
    #[error("the socket table was not read: {note}")]
    SocketsNoted { note: String },
    #[error("the socket table was not read")]
    Sockets,
    #[error("{0:?} is not a number")]
    Text(String),
    #[error("parameter {0} has no value")]
    NoParam(String),
    #[error("a socket value outside `match`")]
    SocketValue,
    #[error("a socket condition outside `match`")]
    SocketCondition,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons read word for word as the notes of unchecked rules have always said them.
    #[test]
    fn reasons_read_as_the_notes_say_them() {
        let s = |v: &str| v.to_string();
        for (why, text) in [
            (
                Unknown::SysctlNotANumber {
                    key: s("net.core.somaxconn"),
                    value: s("x"),
                },
                "sysctl net.core.somaxconn is not a number (\"x\")",
            ),
            (
                Unknown::SysctlNoted {
                    key: s("net.core.somaxconn"),
                    note: s("permission denied"),
                },
                "sysctl net.core.somaxconn was not read: permission denied",
            ),
            (
                Unknown::SysctlAbsent {
                    key: s("net.core.somaxconn"),
                },
                "sysctl net.core.somaxconn was not read (absent on this kernel or in this namespace)",
            ),
            (
                Unknown::CounterNoted {
                    name: s("TcpExt.ListenDrops"),
                    note: s("no such file"),
                },
                "counter TcpExt.ListenDrops was not read: no such file",
            ),
            (
                Unknown::CounterAbsent {
                    name: s("TcpExt.ListenDrops"),
                },
                "counter TcpExt.ListenDrops was not read",
            ),
            (
                Unknown::OneSample {
                    name: s("TcpExt.ListenDrops"),
                },
                "the change of TcpExt.ListenDrops needs two samples: run with --interval SECONDS",
            ),
            (
                Unknown::SocketsNoted { note: s("EPERM") },
                "the socket table was not read: EPERM",
            ),
            (Unknown::Sockets, "the socket table was not read"),
            (Unknown::Text(s("a")), "\"a\" is not a number"),
            (
                Unknown::NoParam(s("idle_timeout")),
                "parameter idle_timeout has no value",
            ),
            (Unknown::SocketValue, "a socket value outside `match`"),
            (
                Unknown::SocketCondition,
                "a socket condition outside `match`",
            ),
        ] {
            assert_eq!(why.to_string(), text);
        }
    }
}
