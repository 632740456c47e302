//! nftables inside a lab namespace, through the `nft` program.
//!
//! `nft` is started from a thread that has entered the lab namespace, so the
//! child process (and the ruleset it loads) lives in that namespace only.
//! Tables die with the namespace; the lab never names the host's ruleset.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::LabError;
pub use super::error::NftError;
use super::netns::LabNs;

/// Where `nft` is, or a message saying how to install it. Only the system's own directories
/// are searched, and only a program that root owns and no one else may change is run: the lab
/// runs as root, so a `nft` planted in a directory of PATH (an empty entry is the current
/// directory) must never be started.
pub fn find() -> Result<PathBuf, NftError> {
    for dir in TRUSTED_DIRS {
        let candidate = Path::new(dir).join("nft");
        if trusted(&candidate) {
            return Ok(candidate);
        }
    }
    Err(NftError::NotFound {
        dirs: &TRUSTED_DIRS,
    })
}

/// Where distributions install nft (the last one is NixOS's system profile).
const TRUSTED_DIRS: [&str; 7] = [
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/run/current-system/sw/bin",
];

/// A regular file (after links) owned by root and not writable by group or others, in a
/// directory of which the same holds.
fn trusted(path: &Path) -> bool {
    let safe = |p: &Path, file: bool| {
        std::fs::metadata(p).is_ok_and(|m| {
            m.uid() == 0 && m.mode() & 0o022 == 0 && if file { m.is_file() } else { m.is_dir() }
        })
    };
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    safe(&real, true) && real.parent().is_some_and(|d| safe(d, false))
}

/// Run `nft` with `args` inside `ns`, feeding `stdin`; returns standard output.
pub fn run(ns: &LabNs, args: &[&str], stdin: &str) -> Result<String, LabError> {
    let nft = find()?;
    ns.run(|| {
        let mut child = Command::new(&nft)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NftError::Start {
                program: nft.clone(),
                source,
            })?;
        child
            .stdin
            .take()
            .ok_or(NftError::NoStdin)?
            .write_all(stdin.as_bytes())
            .map_err(NftError::Feed)?;
        let out = child.wait_with_output().map_err(NftError::Wait)?;
        if !out.status.success() {
            return Err(NftError::Failed {
                args: args.join(" "),
                role: ns.role,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
}

/// Load a ruleset (`nft -f -`).
pub fn load(ns: &LabNs, ruleset: &str) -> Result<(), LabError> {
    run(ns, &["-f", "-"], ruleset).map(|_| ())
}

/// The packets counted by all `counter` statements of table `inet NAME`.
pub fn counted_packets(ns: &LabNs, table: &str) -> Result<u64, LabError> {
    let text = run(ns, &["-j", "list", "table", "inet", table], "")?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(NftError::Output)?;
    Ok(sum_counters(&json))
}

fn sum_counters(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                if k == "counter" {
                    v.get("packets").and_then(|p| p.as_u64()).unwrap_or(0)
                } else {
                    sum_counters(v)
                }
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(sum_counters).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sums_rule_counters() {
        // Shape of `nft -j list table inet t` (nftables 1.0).
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.0.9"}},{"table":{"family":"inet","name":"t"}},
            {"rule":{"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":"invalid"}},
            {"counter":{"packets":2,"bytes":104}},{"reject":{"type":"tcp reset"}}]}}]}"#,
        )
        .unwrap();
        assert_eq!(sum_counters(&v), 2);
    }

    #[test]
    fn only_root_owned_programs_no_one_else_may_change_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let nft = dir.path().join("nft");
        std::fs::write(&nft, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = nix::unistd::geteuid().is_root();
        // A 0700 temporary directory of root's, a 0755 file: trusted only when we are root.
        assert_eq!(trusted(&nft), root);
        std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted(&nft), "a program anyone may change");
        std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted(&nft), "in a directory anyone may change");
        assert!(!trusted(&dir.path().join("missing")));
        // PATH is not consulted: a planted nft there is never found.
        let found = find().ok();
        assert!(found.as_deref() != Some(nft.as_path()));
        if let Some(found) = found {
            assert!(
                TRUSTED_DIRS.iter().any(|d| found.starts_with(d)),
                "{found:?}"
            );
        }
    }
}
