//! What `verify` prints: per namespace the table, the drift and what no file keeps, and the
//! same as JSON (one namespace: one report; several: `{profile, ok, namespaces}`).

use std::path::Path;

use serde::Serialize;

use crate::remedy::render;
use crate::remedy::verify::{LiveStatus, NsVerdict, Verified, VerifyRow};

/// The profile as its report names it.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    /// Its name (`baseline`, or a file's stem).
    pub name: &'a str,
    /// As the user gave it (a name or a path), for the command that persists it.
    pub given: &'a str,
}

#[derive(Serialize)]
struct Report<'a> {
    profile: &'a str,
    netns: &'a str,
    /// No drift (and, with a persist file named, everything persisted).
    ok: bool,
    drift: &'a [String],
    not_persisted: &'a [String],
    /// The configuration files read, in `sysctl --system` order.
    files: Vec<String>,
    rows: &'a [VerifyRow],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
}

/// Verify several namespaces: one report each.
#[derive(Serialize)]
struct ManyReport<'a> {
    profile: &'a str,
    ok: bool,
    namespaces: Vec<Report<'a>>,
}

/// The JSON report, with a final newline. It fails only on a path that is not UTF-8.
pub fn json(v: &Verified, profile: Profile) -> Result<Vec<u8>, serde_json::Error> {
    let files: Vec<String> = v.files.iter().map(|f| f.display().to_string()).collect();
    let mut bytes = match v.namespaces.as_slice() {
        [one] => serde_json::to_vec_pretty(&report(one, profile.name, &files, &v.notes)),
        all => serde_json::to_vec_pretty(&ManyReport {
            profile: profile.name,
            ok: v.ok(),
            namespaces: all
                .iter()
                .map(|n| report(n, profile.name, &files, &[]))
                .collect(),
        }),
    }?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn report<'a>(
    n: &'a NsVerdict,
    profile: &'a str,
    files: &[String],
    notes: &'a [String],
) -> Report<'a> {
    Report {
        profile,
        netns: &n.netns,
        ok: n.ok,
        drift: &n.drift,
        not_persisted: &n.not_persisted,
        files: files.to_vec(),
        rows: &n.rows,
        notes,
    }
}

/// How to keep the values: in the initial namespace, the apply that persists them to the
/// file verify checked (the default sysctl.d file without one), in the same namespace; in
/// any other, not sysctl.d at all.
fn persist_hint(n: &NsVerdict, profile: Profile, persist: Option<&Path>) -> String {
    if !n.initial {
        return crate::hint::namespace_persistence(&n.netns);
    }
    let file = persist.map_or_else(
        || render::DEFAULT_SYSCTL_FILE.to_string(),
        |p| p.display().to_string(),
    );
    let mut words = vec!["rstaudit", "apply", "--profile", profile.given];
    if let Some(flag) = &n.netns_flag {
        words.extend(["--netns", flag]);
    }
    words.extend(["--persist", &file]);
    format!("Persist with `{}`", crate::hint::command(words))
}

/// The tables (several: each under the namespace's name), the notes, and with several the
/// verdict over all. `persist`: the file named to keep the values (what it does not keep is
/// drift), which the hint to persist names too.
pub fn text(v: &Verified, profile: Profile, persist: Option<&Path>) -> String {
    let several = v.namespaces.len() > 1;
    let mut out = String::new();
    for n in &v.namespaces {
        if several {
            out.push_str(&format!("== network namespace {} ==\n", n.netns));
        }
        out.push_str(&ns_text(n, profile, persist));
    }
    for note in &v.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    if several {
        let total = v.namespaces.len();
        let bad = v.namespaces.iter().filter(|n| !n.ok).count();
        out.push_str(&if bad == 0 {
            format!("OK: every one of {total} network namespaces matches.\n")
        } else {
            format!("{bad} of {total} network namespaces drift.\n")
        });
    }
    out
}

fn ns_text(n: &NsVerdict, profile: Profile, persist: Option<&Path>) -> String {
    let mut out = render::verify_table(&n.rows);
    for r in &n.rows {
        match (r.status, &r.live, &r.error) {
            (LiveStatus::Ok, _, _) => {}
            (LiveStatus::NotApplicable, _, Some(why)) => {
                out.push_str(&format!("Not applicable here: {why}.\n"));
            }
            (_, Some(live), _) => out.push_str(&format!(
                "DRIFT: {} is {live}, profile {} wants {}\n",
                r.key, profile.name, r.target
            )),
            (_, None, Some(e)) => out.push_str(&format!("DRIFT: {e}\n")),
            (_, None, None) => {}
        }
    }
    if !n.not_persisted.is_empty() {
        out.push_str(&format!(
            "{}: live value is right but no configuration file keeps it ({}): a reboot would \
             undo it. {}.\n",
            if persist.is_some() {
                "NOT PERSISTED"
            } else {
                "warning"
            },
            n.not_persisted.join(", "),
            persist_hint(n, profile, persist)
        ));
    }
    if n.ok {
        out.push_str(&format!(
            "OK: {} key(s) match profile {} in namespace {}.\n",
            n.rows.len(),
            profile.name,
            n.netns
        ));
    }
    out
}
