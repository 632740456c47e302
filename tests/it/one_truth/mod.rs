//! One truth on every path: what one command refuses, no other emits or lets pass
//! (`paths`); a dry run is the real run minus the writes (`dry_run`); every problem of a file
//! and of the files it names comes at once (`files`); every command line rstaudit prints acts
//! on the target that was checked (`hints`), and the commands of the documentation run
//! (`docs`).
//!
//! The commands that change or watch anything run inside network namespaces these tests
//! create (and remove), with temporary state directories and persist files; no test changes
//! the host's own settings.

mod docs;
mod dry_run;
mod files;
mod hints;
mod paths;

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{self, Netns, rstaudit};

pub(super) fn snapshot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem-host.json")
}

pub(super) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rstaudit")
}

/// `rstaudit ARGS` inside `ns`.
pub(super) fn in_ns(ns: &Netns, args: &[&str]) -> Output {
    ns.command(bin())
        .env("RSTAUDIT_CONFIG", "")
        .args(args)
        .output()
        .unwrap()
}

/// Empty tmpfs over the host's sysctl configuration and /var/lib (so the default state
/// directory is written there), then the command.
pub(super) const SANDBOX: &str = "for d in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d; do \
     if [ -d \"$d\" ]; then mount -t tmpfs rstaudit-test \"$d\" || exit 1; fi; done; \
     if [ -e /etc/sysctl.conf ]; then mount --bind /dev/null /etc/sysctl.conf || exit 1; fi; \
     mount -t tmpfs rstaudit-test /var/lib || exit 1; exec \"$@\"";

/// `rstaudit ARGS` inside `ns`, as its PID 1 (the initial namespace as rstaudit sees it), in a
/// mount namespace of its own where the host's sysctl configuration is empty and /var/lib is
/// a tmpfs: a command that persists or writes the default state directory writes nothing of
/// the host's.
pub(super) fn sandboxed(ns: &Netns, args: &[&str]) -> Output {
    ns.command("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            SANDBOX,
            "sh",
        ])
        .arg(bin())
        .args(args)
        .env("RSTAUDIT_CONFIG", "")
        .output()
        .unwrap()
}

pub(super) fn plain(args: &[&str]) -> Output {
    rstaudit().args(args).output().unwrap()
}

/// Exit 2, no panic, the code in standard error.
pub(super) fn is_refused_with(out: &Output, code: &str) -> Result<(), String> {
    let t = common::text(out);
    if out.status.code() != Some(2) || t.contains("panicked") || !t.contains(&format!("[{code}]")) {
        return Err(t);
    }
    Ok(())
}
