//! Which namespaces `--netns` names for `apply` and `verify`: one (`NAME|PATH`), a list
//! (`A,B`), or `all` (the caller's own and every other one found).

use crate::host::netns::NetnsRef;
use crate::remedy::others;

/// The namespaces of one run.
pub struct Targets {
    /// `None`: the caller's own.
    pub list: Vec<Option<NetnsRef>>,
    /// More than one was asked for (`all`, or a list), even if one was found.
    pub several: bool,
    /// Notes on the discovery of `all`.
    pub notes: Vec<String>,
}

/// The namespaces of `--netns SPEC` (none given: the caller's own). `scope` is the hidden
/// `--netns-scope PREFIX`: `all` then means the caller's own and the names under /run/netns
/// that start with PREFIX.
pub fn targets(spec: Option<&str>, scope: Option<&str>) -> anyhow::Result<Targets> {
    let one = |list| Targets {
        list,
        several: false,
        notes: Vec::new(),
    };
    let Some(spec) = spec else {
        return Ok(one(vec![None]));
    };
    if spec == "all" {
        let (found, notes) = others::find(scope)?;
        let mut list = vec![None];
        list.extend(found.into_iter().map(Some));
        return Ok(Targets {
            list,
            several: true,
            notes,
        });
    }
    if !spec.contains(',') {
        return Ok(one(vec![Some(super::resolve_netns(spec)?)]));
    }
    let mut seen = std::collections::HashSet::new();
    let mut list = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ns = super::resolve_netns(name)?;
        if seen.insert(ns.inode) {
            list.push(Some(ns));
        }
    }
    if list.is_empty() {
        anyhow::bail!("--netns {spec:?}: names no namespace; give NAME, PATH, A,B or all");
    }
    Ok(Targets {
        list,
        several: true,
        notes: Vec::new(),
    })
}
