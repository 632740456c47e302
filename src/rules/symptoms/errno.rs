//! The errno values resets and timeouts show up as, with the names and messages
//! people paste: the kernel's name (ECONNRESET), its number on Linux (104), the C
//! library's message ("Connection reset by peer") and the wording of common runtimes
//! (Java's "Connection reset", Python's ConnectionResetError).

/// One errno.
#[derive(Debug, PartialEq, Eq)]
pub struct Errno {
    pub name: &'static str,
    /// The number on Linux (x86-64 and the other common architectures).
    pub number: i32,
    /// strerror(3) of glibc.
    pub message: &'static str,
    /// Other wordings that mean this errno, lowercase.
    pub aliases: &'static [&'static str],
}

/// The errno values cause files may name.
pub const ERRNOS: &[Errno] = &[
    Errno {
        name: "ECONNRESET",
        number: 104,
        message: "Connection reset by peer",
        aliases: &[
            "connection reset",
            "connectionreseterror",
            "connection was reset",
            "reset by peer",
            "连接被重置",
            "连接重置",
        ],
    },
    Errno {
        name: "EPIPE",
        number: 32,
        message: "Broken pipe",
        aliases: &["brokenpipeerror"],
    },
    Errno {
        name: "ETIMEDOUT",
        number: 110,
        message: "Connection timed out",
        aliases: &["timeouterror"],
    },
    Errno {
        name: "ECONNREFUSED",
        number: 111,
        message: "Connection refused",
        aliases: &["connectionrefusederror"],
    },
    Errno {
        name: "EHOSTUNREACH",
        number: 113,
        message: "No route to host",
        aliases: &[],
    },
    Errno {
        name: "ENETUNREACH",
        number: 101,
        message: "Network is unreachable",
        aliases: &[],
    },
];

/// The errno with this name (as written in cause files: upper case).
pub fn by_name(name: &str) -> Option<&'static Errno> {
    ERRNOS.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_messages_are_the_c_librarys() {
        for e in ERRNOS {
            let expected = match e.name {
                "ECONNRESET" => libc::ECONNRESET,
                "EPIPE" => libc::EPIPE,
                "ETIMEDOUT" => libc::ETIMEDOUT,
                "ECONNREFUSED" => libc::ECONNREFUSED,
                "EHOSTUNREACH" => libc::EHOSTUNREACH,
                "ENETUNREACH" => libc::ENETUNREACH,
                other => panic!("{other}: add it to this test"),
            };
            assert_eq!(e.number, expected, "{}", e.name);
            let text = std::io::Error::from_raw_os_error(e.number).to_string();
            assert!(
                text.starts_with(e.message),
                "{}: strerror says {text:?}",
                e.name
            );
        }
    }
}
