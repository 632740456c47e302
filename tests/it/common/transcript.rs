//! A transcript of commands and their standard output, for snapshot tests: what changes from
//! run to run (namespace names, temporary directories, rollback file names, times) is
//! replaced by stable names, so the snapshot pins everything else byte for byte.

use std::process::Output;

/// Commands run and what they printed, with the names to replace.
#[derive(Default)]
pub struct Transcript {
    text: String,
    names: Vec<(String, String)>,
}

impl Transcript {
    /// Show `real` (a namespace name, a directory) as `shown` everywhere.
    pub fn name(&mut self, real: impl Into<String>, shown: &str) -> &mut Self {
        let real = real.into();
        assert!(!real.is_empty(), "an empty name would replace everything");
        self.names.push((real, shown.to_string()));
        // The longest first, so that a name that contains another is replaced whole.
        self.names.sort_by_key(|(r, _)| std::cmp::Reverse(r.len()));
        self
    }

    /// Record one command: its arguments, exit code and standard output.
    pub fn add(&mut self, args: &[&str], out: &Output) -> &mut Self {
        self.text.push_str(&format!(
            "$ rstaudit {}\n[exit {:?}]\n{}\n",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        ));
        self
    }

    /// The transcript with every name replaced, rollback files numbered in the order they
    /// first appear (`rollback-#1.json`) and UTC times shown as `[TIME]`.
    pub fn finish(&self) -> String {
        let mut text = self.text.clone();
        for (real, shown) in &self.names {
            text = text.replace(real.as_str(), shown);
        }
        times(&rollback_files(&text))
    }
}

/// `rollback-20261123T192800.123Z-4242-0000.json` -> `rollback-#N.json`, one N per file.
pub fn rollback_files(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("rollback-") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let name_end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
            .unwrap_or(tail.len());
        let name = &tail[..name_end];
        let Some(stem) = name.find(".json").map(|e| &name[..e + 5]) else {
            out.push_str("rollback-");
            rest = &tail["rollback-".len()..];
            continue;
        };
        let n = match seen.iter().position(|s| s == stem) {
            Some(i) => i + 1,
            None => {
                seen.push(stem.to_string());
                seen.len()
            }
        };
        out.push_str(&format!("rollback-#{n}.json"));
        rest = &tail[stem.len()..];
    }
    out.push_str(rest);
    out
}

/// `2026-11-23T19:28:00.123Z` -> `[TIME]`.
pub fn times(text: &str) -> String {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut copied = 0;
    while i + SHAPE.len() <= b.len() {
        let fits = SHAPE.iter().zip(&b[i..]).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            _ => s == c,
        });
        if fits {
            out.push_str(&text[copied..i]);
            out.push_str("[TIME]");
            i += SHAPE.len();
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// The profile the transcripts apply: three keys to change, one already at its target in a
/// new namespace (`tcp_fin_timeout` 60), one bound (`tcp_keepalive_time` at most 7200).
pub const PROFILE: &str = "description: snapshot test\nsysctls:\n  \
    net.ipv4.tcp_syncookies:\n    value: 1\n    reason: SYN cookies keep a full queue from turning into resets\n  \
    net.core.somaxconn:\n    at_least: 4096\n    reason: a deep accept queue\n  \
    net.ipv4.tcp_abort_on_overflow:\n    value: 0\n    reason: no reset when the accept queue is full\n  \
    net.ipv4.tcp_fin_timeout:\n    at_most: 60\n    reason: orphans in FIN-WAIT-2 go sooner\n  \
    net.ipv4.tcp_keepalive_time:\n    at_most: 7200\n    reason: idle connections are probed\n";

/// A temporary directory whose path has the same length in every run (`/tmp/rsta-t-XXXXXX`,
/// whatever TMPDIR says), so that tables that show paths keep their widths.
pub fn fixed_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rsta-t-")
        .tempdir_in("/tmp")
        .expect("creating a directory in /tmp")
}
