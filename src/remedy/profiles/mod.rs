//! Sysctl profiles (profiles/*.yaml): named sets of sysctl targets, each with
//! a reason, optional `extends:` and parameters for the rules.
//!
//! Loading is two-step: a plain serde type mirrors the file
//! (`deny_unknown_fields` everywhere), then a checked [`Profile`] is built
//! and every problem in every file of the `extends:` chain is reported at
//! once as `file:line:col: message`. The built-in profiles are embedded in
//! the binary, so an installed binary needs no data files. Nothing here
//! reads or writes sysctls.

use std::fmt;

use crate::diag::Diagnostic;

mod loader;
mod raw;
mod types;

pub use loader::{NAMED_BY, load, load_accepting, load_named};
pub use types::{Profile, Setting, Target, values_equal};

/// The built-in profiles, embedded at build time: `(name, YAML text)`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("baseline", include_str!("../../../profiles/baseline.yaml")),
    (
        "behind-load-balancer",
        include_str!("../../../profiles/behind-load-balancer.yaml"),
    ),
    (
        "high-connection-server",
        include_str!("../../../profiles/high-connection-server.yaml"),
    ),
    (
        "mobile-gateway",
        include_str!("../../../profiles/mobile-gateway.yaml"),
    ),
    (
        "nat-gateway",
        include_str!("../../../profiles/nat-gateway.yaml"),
    ),
];

/// Every problem found while loading a profile (and the profiles it extends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    pub problems: Vec<Diagnostic>,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::diag::fmt_problems(f, "profile files", &self.problems)
    }
}

/// The names of the built-in profiles.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _)| *n)
}

fn looks_like_path(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".yaml") || spec.ends_with(".yml")
}

/// A one-line summary per built-in profile: `(name, description, extends)`. A built-in
/// profile that does not load is an error naming it, never a profile missing from the list.
pub fn list() -> Result<Vec<(String, String, Vec<String>)>, ProfileError> {
    builtin_names()
        .map(|n| load(n).map(|p| (p.name, p.description, p.extends)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_builtin_profile_loads() {
        // `list` holds every built-in profile: one that fails to load is an error, not a gap.
        assert_eq!(list().unwrap().len(), builtin_names().count());
        for name in builtin_names() {
            let p = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.sysctls.is_empty(), "{name} sets nothing");
            for (k, s) in &p.sysctls {
                assert!(k.starts_with("net."), "{name}: {k} is outside net.");
                assert!(!s.reason.is_empty());
                assert!(
                    !crate::host::sysctl::GLOBAL_KEYS.contains(&k.as_str()),
                    "{name}: {k} is global and cannot be applied in a namespace"
                );
            }
        }
    }

    #[test]
    fn every_file_in_profiles_dir_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = builtin_names().map(String::from).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn values_agree_with_the_kernel_facts() {
        // docs/causes.md, middlebox-idle: keepalive below the load balancer's idle timeout.
        let lb = load("behind-load-balancer").unwrap();
        assert_eq!(lb.params["idle_timeout"], "350");
        assert!(
            matches!(lb.sysctls["net.ipv4.tcp_keepalive_time"].target, Target::AtMost(n) if n < 350)
        );
        assert_eq!(lb.extends, vec!["baseline"]);
        assert_eq!(lb.sysctls["net.ipv4.tcp_syncookies"].from, "baseline");
        let mobile = load("mobile-gateway").unwrap();
        assert!(
            matches!(mobile.sysctls["net.ipv4.tcp_keepalive_time"].target, Target::AtMost(n) if n < 300)
        );
        let hc = load("high-connection-server").unwrap();
        assert_eq!(
            hc.sysctls["net.ipv4.tcp_syncookies"].target,
            Target::Value("1".into())
        );
        assert_eq!(
            hc.sysctls["net.ipv4.tcp_abort_on_overflow"].target,
            Target::Value("0".into())
        );
        assert_eq!(
            hc.sysctls["net.ipv4.tcp_timestamps"].target,
            Target::Value("1".into())
        );
        // Memory-scaled defaults are bounds, never fixed numbers.
        for k in [
            "net.ipv4.tcp_max_tw_buckets",
            "net.ipv4.tcp_max_syn_backlog",
            "net.core.somaxconn",
        ] {
            assert!(matches!(hc.sysctls[k].target, Target::AtLeast(_)), "{k}");
        }
        let nat = load("nat-gateway").unwrap();
        assert_eq!(
            nat.sysctls["net.netfilter.nf_conntrack_tcp_be_liberal"].target,
            Target::Value("1".into())
        );
        for name in builtin_names() {
            assert!(
                !load(name)
                    .unwrap()
                    .sysctls
                    .contains_key("net.ipv4.tcp_tw_recycle")
            );
        }
    }

    fn load_text(text: &str) -> Result<Profile, ProfileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, text).unwrap();
        load(path.to_str().unwrap())
    }

    #[test]
    fn every_problem_is_reported_with_its_location() {
        let err = load_text(
            "description: test\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 7\n    reason: x\n  kernel.panic:\n    value: 1\n    reason: x\n  net.ipv4.tcp_fin_timeout:\n    value: 30\n  \"net.ipv4/../../../etc/passwd\":\n    value: 1\n    reason: x\n  net.ipv4.tcp_tw_recycle:\n    value: 0\n    reason: x\n",
        )
        .unwrap_err();
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(
            text.contains("p.yaml:3:3: net.ipv4.tcp_syncookies: 7 is out of range 0..=2"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:6:3: kernel.panic is outside net.*"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:9:3: net.ipv4.tcp_fin_timeout: `reason:` is missing"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:11:3: sysctl key \"net.ipv4/../../../etc/passwd\" is not valid"),
            "{text}"
        );
        assert!(
            text.contains("p.yaml:14:3: net.ipv4.tcp_tw_recycle may not be set"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_location() {
        let err = load_text(
            "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    valeu: 1\n    reason: x\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("p.yaml:4:5: sysctls.net.ipv4.tcp_syncookies: unknown field `valeu`")
                || text.contains("p.yaml:4:5: "),
            "{text}"
        );
        assert!(text.contains("unknown field `valeu`"), "{text}");
    }

    #[test]
    fn a_key_set_twice_is_an_error() {
        let err = load_text(
            "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 1\n    reason: a\n  net/ipv4/tcp_syncookies:\n    value: 0\n    reason: b\nparams:\n  idle_timeout: 1\n  idle_timeout: 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("p.yaml:6:3: net.ipv4.tcp_syncookies is set twice"),
            "{err}"
        );
        assert!(err.contains("parameter idle_timeout is set twice"), "{err}");
        let err = load_text(
            "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 1\n    reason: a\n  net.ipv4.tcp_syncookies:\n    value: 0\n    reason: b\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("p.yaml:6:3: net.ipv4.tcp_syncookies is set twice"),
            "{err}"
        );
    }

    #[test]
    fn outside_net_needs_explicit_permission() {
        let p = load_text(
            "description: x\nallow_outside_net: [kernel.panic]\nsysctls:\n  kernel.panic:\n    value: 10\n    reason: reboot after a panic\n",
        )
        .unwrap();
        assert_eq!(p.sysctls["kernel.panic"].key.as_str(), "kernel.panic");
    }

    #[test]
    fn extends_resolves_and_detects_cycles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "description: a\nextends: ./b.yaml\nparams:\n  idle_timeout: 60\nsysctls:\n  net.ipv4.tcp_keepalive_time:\n    value: 45\n    reason: x\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "description: b\nextends: behind-load-balancer\n",
        )
        .unwrap();
        let p = load(dir.path().join("a.yaml").to_str().unwrap()).unwrap();
        assert_eq!(p.extends, vec!["b", "behind-load-balancer", "baseline"]);
        assert_eq!(p.params["idle_timeout"], "60");
        assert_eq!(
            p.sysctls["net.ipv4.tcp_keepalive_time"].target,
            Target::Value("45".into())
        );
        assert_eq!(
            p.sysctls["net.ipv4.tcp_keepalive_intvl"].from,
            "behind-load-balancer"
        );

        std::fs::write(
            dir.path().join("c.yaml"),
            "description: c\nextends: ./d.yaml\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("d.yaml"),
            "description: d\nextends: ./c.yaml\n",
        )
        .unwrap();
        let err = load(dir.path().join("c.yaml").to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("makes a cycle"), "{err}");
    }

    #[test]
    fn cross_key_checks() {
        let err = load_text(
            "description: x\nsysctls:\n  net.ipv4.tcp_tw_reuse:\n    value: 1\n    reason: x\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("p.yaml:3:3: net.ipv4.tcp_tw_reuse=1 is safe only with timestamps"),
            "{err}"
        );
        let err = load_text(
            "description: x\nextends: behind-load-balancer\nparams:\n  idle_timeout: 200\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("must stay below the idle_timeout parameter (200 s)"),
            "{err}"
        );
    }

    #[test]
    fn unknown_name_lists_the_builtins() {
        let err = load("nope").unwrap_err();
        assert!(err.to_string().contains("baseline"), "{err}");
    }

    #[test]
    fn targets_resolve_against_the_current_value() {
        assert_eq!(Target::AtLeast(4096).resolve("128").unwrap(), "4096");
        assert_eq!(Target::AtLeast(4096).resolve("65535").unwrap(), "65535");
        assert_eq!(Target::AtMost(300).resolve("7200").unwrap(), "300");
        assert_eq!(Target::AtMost(300).resolve("60").unwrap(), "60");
        assert!(Target::AtMost(300).resolve("a b").is_err());
        assert!(Target::Value("4096 16384".into()).satisfied_by("4096\t16384"));
    }
}
