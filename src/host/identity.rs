//! Which host a snapshot describes: its hostname (/proc/sys/kernel/hostname) and machine id
//! (/etc/machine-id, systemd's machine-id(5), or the D-Bus copy /var/lib/dbus/machine-id),
//! so that a fleet report counts each host once however many files hold its audits.
//! Parsing is separate from reading; what cannot be read becomes a note.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::Place;
use super::model::Note;

/// The host's identity, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostIdentity {
    /// The kernel's hostname (of rstaudit's UTS namespace, or of the copied tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// 32 lowercase hexadecimal digits (machine-id(5)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
}

impl HostIdentity {
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.hostname.is_none() && self.machine_id.is_none()
    }
}

/// A machine id as machine-id(5) writes it: 32 hexadecimal digits and a newline. Upper case
/// is read as lower case; anything else (empty, `uninitialized`, the wrong length) is none.
pub fn parse_machine_id(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    (t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}

/// A hostname as the kernel gives it: one line, at most 64 bytes, printable.
pub fn parse_hostname(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty() && t.len() <= 64 && t.chars().all(|c| c.is_ascii_graphic())).then(|| t.into())
}

/// Where the machine id is looked for, in order.
const MACHINE_ID_FILES: &[&str] = &["etc/machine-id", "var/lib/dbus/machine-id"];

/// Read the identity of the host at `place` (the live host, or a copied tree whose
/// `proc/sys/kernel/hostname` and `etc/machine-id` are read if present). A part that cannot
/// be read is left out, with a note.
pub fn read(place: Place<'_>, notes: &mut Vec<Note>) -> HostIdentity {
    let root = place.sys_root();
    let small =
        |rel: &str| -> std::io::Result<Option<String>> {
            let path = root.join(rel);
            match place.open(&path) {
                Ok(f) => Ok(crate::input::read_small(f, 256)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
    let hostname = match small("proc/sys/kernel/hostname") {
        Ok(Some(text)) => parse_hostname(&text),
        Ok(None) => None,
        Err(e) => {
            notes.push(Note::new(
                "identity",
                Some("hostname".into()),
                format!("the hostname could not be read: {e}"),
            ));
            None
        }
    };
    let mut machine_id = None;
    let mut why = Vec::new();
    for rel in MACHINE_ID_FILES {
        match small(rel) {
            Ok(Some(text)) => match parse_machine_id(&text) {
                Some(id) => {
                    machine_id = Some(id);
                    break;
                }
                None => why.push(format!("{} holds no machine id", shown(root, rel))),
            },
            Ok(None) => {}
            Err(e) => why.push(format!("{}: {e}", shown(root, rel))),
        }
    }
    if machine_id.is_none() {
        notes.push(Note::new(
            "identity",
            Some("machine id".into()),
            format!(
                "no machine id ({}): a fleet report tells this host from others by its \
                 hostname only",
                if why.is_empty() {
                    "neither /etc/machine-id nor /var/lib/dbus/machine-id exists".to_string()
                } else {
                    why.join("; ")
                }
            ),
        ));
    }
    HostIdentity {
        hostname,
        machine_id,
    }
}

fn shown(root: &Path, rel: &str) -> String {
    root.join(rel).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_and_hostnames_are_read_as_written() {
        // As systemd writes it (Debian 12).
        assert_eq!(
            parse_machine_id("6b1d8f2a9c3e4f5a8b7c6d5e4f3a2b1c\n").as_deref(),
            Some("6b1d8f2a9c3e4f5a8b7c6d5e4f3a2b1c")
        );
        assert_eq!(
            parse_machine_id("6B1D8F2A9C3E4F5A8B7C6D5E4F3A2B1C").as_deref(),
            Some("6b1d8f2a9c3e4f5a8b7c6d5e4f3a2b1c")
        );
        assert_eq!(parse_machine_id("uninitialized\n"), None);
        assert_eq!(parse_machine_id(""), None);
        assert_eq!(parse_machine_id("6b1d8f2a9c3e4f5a8b7c6d5e4f3a2b1"), None);
        assert_eq!(parse_hostname("web-1\n").as_deref(), Some("web-1"));
        assert_eq!(parse_hostname(" \n"), None);
        assert_eq!(parse_hostname("a b"), None);
    }

    #[test]
    fn a_tree_without_identity_files_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).unwrap();
        std::fs::write(dir.path().join("proc/sys/kernel/hostname"), "db-2\n").unwrap();
        let mut notes = Vec::new();
        let id = read(Place::Root(dir.path()), &mut notes);
        assert_eq!(id.hostname.as_deref(), Some("db-2"));
        assert_eq!(id.machine_id, None);
        assert!(notes[0].message.contains("no machine id"), "{notes:?}");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        let mut notes = Vec::new();
        let id = read(Place::Root(dir.path()), &mut notes);
        assert_eq!(
            id.machine_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(notes.is_empty(), "{notes:?}");
    }
}
