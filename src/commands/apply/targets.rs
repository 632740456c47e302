//! Which namespaces `--netns` names for `apply` and `verify`: one (`NAME|PATH`), a list
//! (`A,B`), or `all` (the caller's own and every other one found), and the other namespaces
//! to compare with after an apply in the caller's own.

use crate::host::Note;
use crate::host::netns::{self, NetnsRef, RUN_NETNS};

/// Every namespace but the caller's own (see `host::netns::list_all`), and notes on what could
/// not be inspected. With `scope` (the hidden `--netns-scope PREFIX`, for tests) only the names
/// under /run/netns that start with PREFIX.
pub(crate) fn others(scope: Option<&str>) -> anyhow::Result<(Vec<NetnsRef>, Vec<String>)> {
    let own = netns::current_inode()
        .map_err(|e| anyhow::anyhow!("reading /proc/thread-self/ns/net: {e}"))?;
    let mut notes: Vec<Note> = Vec::new();
    let found = netns::list_all(&mut notes)
        .into_iter()
        .filter(|n| n.inode != own)
        .filter(|n| match scope {
            None => true,
            Some(prefix) => {
                n.path.parent() == Some(std::path::Path::new(RUN_NETNS))
                    && n.name.starts_with(prefix)
            }
        })
        .collect();
    let notes = match scope {
        // Notes about namespaces outside the scope say nothing about the ones inside it.
        Some(_) => Vec::new(),
        None => notes
            .iter()
            .map(|n| match &n.subject {
                Some(s) => format!("{s}: {}", n.message),
                None => n.message.clone(),
            })
            .collect(),
    };
    Ok((found, notes))
}

/// Several namespaces (`None`: the caller's own) and notes on the discovery.
pub(crate) type Several = (Vec<Option<NetnsRef>>, Vec<String>);

/// The namespaces of `--netns SPEC` when it names more than one (`all`, or a comma-separated
/// list): `None` in the list is the caller's own. `Ok(None)`: SPEC names one namespace (or
/// none was given), for the single-namespace path.
pub(crate) fn several(spec: Option<&str>, scope: Option<&str>) -> anyhow::Result<Option<Several>> {
    let Some(spec) = spec else { return Ok(None) };
    if spec == "all" {
        let (others, notes) = others(scope)?;
        let mut all = vec![None];
        all.extend(others.into_iter().map(Some));
        return Ok(Some((all, notes)));
    }
    if !spec.contains(',') {
        return Ok(None);
    }
    let mut seen = std::collections::HashSet::new();
    let mut list = Vec::new();
    for one in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ns = super::super::resolve_netns(one)?;
        if seen.insert(ns.inode) {
            list.push(Some(ns));
        }
    }
    Ok(Some((list, Vec::new())))
}
