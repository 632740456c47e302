//! Names: which sysctl keys exist on some supported kernel, and the nearest known name to a
//! misspelt one.
//!
//! The catalogue ([`super::sysctls`]) types the keys the project uses; every other net.* key
//! of Linux 4.9 to 6.18 is named in kernel-names.txt beside this file, devices written `DEV`.
//! A key below a [`COVERED`] subtree that is in neither is one no supported kernel has. Below
//! other subtrees (net.bridge, net.sctp, IPVS's net.ipv4.vs, ...: modules with keys of their
//! own) names are not catalogued, so they are not refused, only said to be unchecked.

use std::collections::BTreeSet;
use std::sync::OnceLock;

/// The subtrees whose every key is named here or in the catalogue.
pub const COVERED: &[&str] = &[
    "net.core.",
    "net.ipv4.",
    "net.ipv6.",
    "net.mptcp.",
    "net.netfilter.",
    "net.unix.",
    "net.nf_conntrack_max",
];

/// Subtrees of covered ones that modules fill with keys of their own.
const NOT_COVERED: &[&str] = &["net.ipv4.vs.", "net.ipv4.netfilter.", "net.ipv6.netfilter."];

const FILE: &str = include_str!("kernel-names.txt");

/// What is known of a key's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// In the catalogue: typed, with its values and kernels.
    Catalogued(&'static super::sysctls::Spec),
    /// A key of the supported kernels that the catalogue does not type.
    Kernel,
    /// Below a subtree whose names are not catalogued.
    Unchecked,
}

fn kernel_names() -> &'static BTreeSet<&'static str> {
    static NAMES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        FILE.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// `net.ipv4.conf.eth0.rp_filter` as its pattern `net.ipv4.conf.DEV.rp_filter`, and
/// `net.netfilter.nf_log.2` as `net.netfilter.nf_log.N`.
fn pattern(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["net", "ipv4" | "ipv6", "conf" | "neigh", _dev, rest @ ..] if !rest.is_empty() => Some(
            format!("net.{}.{}.DEV.{}", parts[1], parts[2], rest.join(".")),
        ),
        ["net", "netfilter", "nf_log", n] if n.chars().all(|c| c.is_ascii_digit()) => {
            Some("net.netfilter.nf_log.N".to_string())
        }
        _ => None,
    }
}

/// What is known of `key` (dotted form); `None`: no supported kernel has it.
pub fn known(key: &str) -> Option<Known> {
    if let Some(spec) = super::sysctls::spec(key) {
        return Some(Known::Catalogued(spec));
    }
    let covered = COVERED
        .iter()
        .any(|c| key.starts_with(c) || key == c.trim_end_matches('.'))
        && !NOT_COVERED.iter().any(|c| key.starts_with(c));
    if !covered {
        return Some(Known::Unchecked);
    }
    let names = kernel_names();
    let hit = names.contains(key) || pattern(key).is_some_and(|p| names.contains(p.as_str()));
    hit.then_some(Known::Kernel)
}

/// Every known name: the catalogue's and the kernels' (patterns as written, with DEV).
pub fn all() -> impl Iterator<Item = &'static str> {
    super::sysctls::CATALOGUE
        .iter()
        .map(|s| s.key)
        .chain(kernel_names().iter().copied())
}

/// The nearest of `candidates` to `name`, if one is near enough to be a misspelling: the
/// fewest edits to the whole name, or to its last component (a key in the wrong subtree).
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let last = |s: &str| s.rsplit('.').next().unwrap_or(s).to_string();
    let wanted = last(name);
    let limit = (wanted.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            let whole = strsim::damerau_levenshtein(name, c);
            let tail = strsim::damerau_levenshtein(&wanted, &last(c)) + 1;
            (whole.min(tail), c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// The nearest known sysctl key to `key`, a device pattern given back with the device of
/// `key` where it has one.
pub fn nearest_key(key: &str) -> Option<String> {
    let found = nearest(key, all())?;
    let parts: Vec<&str> = key.split('.').collect();
    Some(match (found.split('.').nth(3), parts.get(3)) {
        (Some("DEV"), Some(dev)) if parts.len() > 4 => found.replacen("DEV", dev, 1),
        _ => found.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_kernels_are_known_and_misspellings_are_not() {
        assert!(matches!(
            known("net.core.somaxconn"),
            Some(Known::Catalogued(_))
        ));
        assert_eq!(known("net.ipv4.tcp_sack"), Some(Known::Kernel));
        assert_eq!(
            known("net.ipv4.conf.eth0/100.rp_filter"),
            Some(Known::Kernel)
        );
        assert_eq!(
            known("net.ipv6.neigh.lo.retrans_time_ms"),
            Some(Known::Kernel)
        );
        assert_eq!(known("net.netfilter.nf_log.2"), Some(Known::Kernel));
        assert!(matches!(
            known("net.ipv4.tcp_tw_recycle"),
            Some(Known::Catalogued(_))
        ));
        assert_eq!(known("net.core.somaxconnn"), None);
        assert_eq!(known("net.ipv4.tcp_no_such_key"), None);
        assert_eq!(known("net.ipv4.conf.eth0.rp_filterr"), None);
        assert_eq!(
            known("net.bridge.bridge-nf-call-iptables"),
            Some(Known::Unchecked)
        );
        assert_eq!(known("net.ipv4.vs.conntrack"), Some(Known::Unchecked));
    }

    #[test]
    fn the_nearest_name_is_the_misspelt_one() {
        assert_eq!(
            nearest_key("net.core.somaxconnn").as_deref(),
            Some("net.core.somaxconn")
        );
        assert_eq!(
            nearest_key("net.ipv4.somaxconn").as_deref(),
            Some("net.core.somaxconn")
        );
        assert_eq!(
            nearest_key("net.ipv4.tcp_keepalive_tim").as_deref(),
            Some("net.ipv4.tcp_keepalive_time")
        );
        assert_eq!(
            nearest_key("net.ipv4.conf.eth0.rp_filterr").as_deref(),
            Some("net.ipv4.conf.eth0.rp_filter")
        );
        assert_eq!(nearest_key("net.ipv4.zzzzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn every_name_is_a_valid_key_and_named_once() {
        let mut seen = BTreeSet::new();
        for name in FILE
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(seen.insert(name), "{name} is listed twice");
            crate::host::sysctl::SysctlKey::parse(name, crate::host::sysctl::Scope::NetOnly)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                COVERED
                    .iter()
                    .any(|c| name.starts_with(c) || name == c.trim_end_matches('.')),
                "{name} is outside the covered subtrees"
            );
        }
    }

    /// Every key of the running kernel's covered subtrees has a known name: a kernel newer
    /// than the list makes this fail, and the list is then brought up to date.
    #[test]
    fn every_key_of_this_kernel_is_known() {
        let mut notes = Vec::new();
        let keys = crate::host::sysctl::walk_net(crate::host::files::Place::Live, &mut notes);
        assert!(keys.contains_key("net.core.somaxconn"), "{notes:?}");
        let unknown: Vec<&String> = keys.keys().filter(|k| known(k).is_none()).collect();
        assert!(
            unknown.is_empty(),
            "keys missing from kernel-names.txt: {unknown:?}"
        );
    }
}
