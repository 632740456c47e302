//! Fixes: render sysctl.d / shell / Ansible, sysctl profiles, and the
//! transactional apply, verify and rollback.
//!
//! `profiles` loads and checks profile files; `transaction` validates and
//! applies a set of sysctl targets in one namespace (through
//! [`transaction::SysctlIo`]), `netns_tx` in several; `apply`, `verify` and
//! `rollback` are the three jobs, each from a request to an outcome, for one
//! namespace or several; `ownership` judges an apply against the files that
//! own its keys (`owners`), `others` compares the other namespaces; `state`
//! keeps rollback files; `persist` writes and reads sysctl.d files; `render`
//! turns diffs and fixes into tables, sysctl.d, shell and Ansible. The
//! binary's command layer turns arguments into requests and outcomes into
//! exit codes; nothing here names a flag or prints.

pub mod apply;
pub mod faults;
pub mod netns_tx;
pub mod others;
pub mod owners;
pub mod ownership;
pub mod persist;
pub mod profiles;
pub mod render;
pub mod rollback;
pub mod state;
pub mod transaction;
pub mod verify;

use crate::host::netns::{self, NetnsRef};
use state::RecordedNetns;
use transaction::{Desired, NsContext};

/// The rule parameters a profile sets (`audit --profile NAME|FILE`), `extends:` resolved;
/// `named_by` as in [`profiles::load_named`].
pub fn profile_params(
    name_or_path: &str,
    named_by: &str,
) -> Result<Vec<(String, String)>, profiles::ProfileError> {
    let profile = profiles::load_named(name_or_path, named_by)?;
    Ok(profile.params.into_iter().collect())
}

/// The keys a profile wants, in key order.
pub fn desired_from_profile(profile: &profiles::Profile) -> Vec<Desired> {
    profile
        .sysctls
        .values()
        .map(|s| Desired {
            key: s.key.clone(),
            target: s.target.clone(),
            reason: s.reason.clone(),
        })
        .collect()
}

pub use crate::host::netns::in_namespace;

/// Why a network namespace could not be worked in.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error(transparent)]
    Enter(#[from] netns::EnterError),
    /// The calling thread's own namespace could not be told.
    #[error("reading /proc/thread-self/ns/net: {0}")]
    Inode(std::io::Error),
}

/// The `--netns` value that names `ns` in a printed command: its name under /run/netns, else
/// its path.
pub fn netns_flag(ns: &NetnsRef) -> String {
    if ns.path == std::path::Path::new(netns::RUN_NETNS).join(&ns.name) {
        ns.name.clone()
    } else {
        ns.path.display().to_string()
    }
}

/// Describe the namespace the calling thread is in (call it inside [`in_namespace`]).
pub fn describe_current(ns: Option<&NetnsRef>) -> Result<(NsContext, RecordedNetns), NsError> {
    let inode = netns::current_inode().map_err(NsError::Inode)?;
    // The initial namespace as the audit tells it (PID 1's, or kthreadd's where PID 1 cannot be
    // inspected). When it cannot be told (not root), this one is taken as another: global keys
    // are then refused, which is the safe side.
    let initial = netns::initial_inode() == Some(inode);
    let name = match ns {
        Some(ns) => ns.name.clone(),
        None if initial => "host".to_string(),
        None => netns::own_name(Some(inode)),
    };
    Ok((
        NsContext {
            name: name.clone(),
            initial,
            kernel: crate::host::kernel::running().version,
        },
        RecordedNetns {
            name,
            inode,
            path: ns.map(|n| n.path.display().to_string()),
        },
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn apply_tells_the_initial_namespace_as_the_audit_does() {
        // Regression: apply read only /proc/1/ns/net, which even root cannot inspect when PID 1
        // is not dumpable; the host's namespace was then "not initial" and global keys refused.
        let inode = crate::host::netns::current_inode().unwrap();
        let (ctx, recorded) = super::describe_current(None).unwrap();
        let initial = crate::host::netns::initial_inode() == Some(inode);
        assert_eq!(ctx.initial, initial);
        if initial {
            assert_eq!(ctx.name, "host");
        }
        assert_eq!(recorded.inode, inode);
    }

    #[test]
    fn profile_params_resolve_extends_and_accept_paths() {
        assert_eq!(
            super::profile_params("behind-load-balancer", super::profiles::NAMED_BY).unwrap(),
            vec![("idle_timeout".to_string(), "350".to_string())]
        );
        assert!(
            super::profile_params("baseline", super::profiles::NAMED_BY)
                .unwrap()
                .is_empty()
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lb60.yaml");
        std::fs::write(
            &path,
            "description: x\nextends: mobile-gateway\nparams:\n  idle_timeout: 280\n  min_idle: 900\n",
        )
        .unwrap();
        assert_eq!(
            super::profile_params(path.to_str().unwrap(), super::profiles::NAMED_BY).unwrap(),
            vec![
                ("idle_timeout".to_string(), "280".to_string()),
                ("min_idle".to_string(), "900".to_string())
            ]
        );
        // A parameter no rule or lab scenario has is refused, with the nearest name.
        std::fs::write(&path, "description: x\nparams:\n  idle_timeuot: 280\n").unwrap();
        let err =
            super::profile_params(path.to_str().unwrap(), super::profiles::NAMED_BY).unwrap_err();
        assert_eq!(
            err.problems[0].code,
            crate::diag::Code::UnknownParam,
            "{err}"
        );
        assert_eq!(err.problems[0].hint, "did you mean idle_timeout?");
        let err = super::profile_params("nope", super::profiles::NAMED_BY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown profile \"nope\""), "{err}");
    }
}
