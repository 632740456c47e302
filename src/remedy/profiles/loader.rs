//! Step two of loading: resolve `extends:` (built-in names or paths, cycles refused), check
//! every setting and parameter of every file, and collect every problem as a diagnostic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::raw::{RawProfile, RawSetting};
use super::types::{Loc, Profile, Setting, Target};
use super::{BUILTIN, ProfileError, builtin_names, looks_like_path};
use crate::diag::{Code, Diagnostic, Locator, Pos};
use crate::host::sysctl::{Scope, SysctlKey};
use crate::valid::{self, Invalid, params::Accepted};

/// What names the profile given to [`load`] in a diagnostic about that name itself.
pub const NAMED_BY: &str = "the profile name";

/// Load a profile by built-in name or by file path, `extends:` resolved.
pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
    load_named(name_or_path, NAMED_BY)
}

/// [`load`], where a diagnostic about the name itself (unknown, unreadable) is placed at
/// `named_by` instead of a file: the command layer passes the flag that named it. Its
/// parameters may be those of the table ([`Accepted::table`]).
pub fn load_named(name_or_path: &str, named_by: &str) -> Result<Profile, ProfileError> {
    load_accepting(name_or_path, named_by, &Accepted::table())
}

/// [`load_named`], with the parameters a run accepts (those its rules declare, which may
/// include a rule directory's own).
pub fn load_accepting(
    name_or_path: &str,
    named_by: &str,
    accepted: &Accepted,
) -> Result<Profile, ProfileError> {
    let mut loader = Loader {
        problems: Vec::new(),
        accepted,
        refused: BTreeSet::new(),
    };
    let referrer = Loc {
        file: named_by.to_string(),
        line: 1,
        column: 1,
    };
    // Every file of the chain is read and checked, even below a file with problems, so that
    // all of them are reported in one run.
    let profile = loader.resolve(name_or_path, None, &referrer, &mut Vec::new());
    if let Some(p) = &profile {
        loader.check_whole(p);
    }
    match profile {
        Some(p) if loader.problems.is_empty() => Ok(p),
        _ => Err(ProfileError {
            problems: loader.problems,
        }),
    }
}

/// Keys no profile may set, and why.
const FORBIDDEN: &[(&str, &str)] = &[(
    "net.ipv4.tcp_tw_recycle",
    "tcp_tw_recycle was removed in Linux 4.12; with NAT'd clients its per-host timestamp check drops SYNs and causes resets. Use tcp_tw_reuse=1 with tcp_timestamps=1 instead",
)];

struct Source {
    /// Where it came from, for messages (`profiles/baseline.yaml`, or the path).
    display: String,
    /// Identity for cycle detection.
    id: String,
    name: String,
    text: String,
    dir: Option<PathBuf>,
    builtin: bool,
}

struct Loader<'a> {
    problems: Vec<Diagnostic>,
    /// The parameters a profile may set.
    accepted: &'a Accepted,
    /// Keys of the chain that had a problem: checks across keys leave them out.
    refused: BTreeSet<String>,
}

impl Loader<'_> {
    fn problem(&mut self, code: Code, loc: &Loc, message: impl Into<String>) {
        self.problems.push(Diagnostic {
            code,
            file: loc.file.clone(),
            line: loc.line,
            col: loc.column,
            message: message.into(),
            hint: String::new(),
        });
    }

    fn invalid(&mut self, loc: &Loc, invalid: Invalid) {
        self.problems
            .push(invalid.at(&loc.file, loc.line, loc.column));
    }

    fn source(&mut self, spec: &str, relative_to: Option<&Path>, referrer: &Loc) -> Option<Source> {
        if looks_like_path(spec) {
            let path = match relative_to {
                // Relative to the file that names it; `./a.yaml` beside `./b.yaml` stays `./a.yaml`.
                Some(dir) if Path::new(spec).is_relative() && dir != Path::new(".") => {
                    dir.join(spec)
                }
                _ => PathBuf::from(spec),
            };
            match crate::input::read_config(&path) {
                Ok(text) => {
                    let id = std::fs::canonicalize(&path)
                        .unwrap_or_else(|_| path.clone())
                        .display()
                        .to_string();
                    Some(Source {
                        display: path.display().to_string(),
                        id,
                        name: path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| spec.to_string()),
                        text,
                        dir: path.parent().map(Path::to_path_buf),
                        builtin: false,
                    })
                }
                Err(e) => {
                    self.problem(
                        Code::Unreadable,
                        referrer,
                        format!("cannot read profile file {}: {e}", path.display()),
                    );
                    None
                }
            }
        } else if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            Some(Source {
                display: format!("profiles/{name}.yaml"),
                id: format!("builtin:{name}"),
                name: name.to_string(),
                text: text.to_string(),
                dir: None,
                builtin: true,
            })
        } else {
            self.problem(Code::UnknownProfile,
                referrer,
                format!(
                    "unknown profile {spec:?}: built-in profiles are {}; give a path (./my.yaml) for a file",
                    builtin_names().collect::<Vec<_>>().join(", ")
                ),
            );
            None
        }
    }

    fn resolve(
        &mut self,
        spec: &str,
        relative_to: Option<&Path>,
        referrer: &Loc,
        stack: &mut Vec<String>,
    ) -> Option<Profile> {
        let src = self.source(spec, relative_to, referrer)?;
        if stack.contains(&src.id) {
            self.problem(
                Code::ExtendsCycle,
                referrer,
                format!(
                    "`extends: {spec}` makes a cycle ({} -> {})",
                    stack.join(" -> "),
                    src.id
                ),
            );
            return None;
        }
        let own = self.parse_one(&src)?;
        let parent = match &own.extends {
            Some((parent_spec, loc)) if !parent_spec.is_empty() => {
                stack.push(src.id.clone());
                // A built-in profile may only extend built-in profiles.
                let rel = if src.builtin {
                    None
                } else {
                    src.dir.as_deref()
                };
                let parent = self.resolve(parent_spec, rel, loc, stack);
                stack.pop();
                Some(parent?)
            }
            _ => None,
        };
        let mut profile = Profile {
            name: src.name.clone(),
            source: if src.builtin {
                "built-in".to_string()
            } else {
                src.display.clone()
            },
            description: own.description,
            extends: Vec::new(),
            params: BTreeMap::new(),
            sysctls: BTreeMap::new(),
        };
        if let Some(parent) = parent {
            profile.extends.push(parent.name.clone());
            profile.extends.extend(parent.extends);
            profile.params = parent.params;
            profile.sysctls = parent.sysctls;
        }
        profile.params.extend(own.params);
        profile.sysctls.extend(own.sysctls);
        Some(profile)
    }

    /// Step one and the per-file part of step two. A file with problems still gives what it
    /// extends, so the files above it are checked in the same run.
    fn parse_one(&mut self, src: &Source) -> Option<OwnProfile> {
        let locator = Locator::new(&src.text);
        let at = |needle: &str| locate_nth(&src.display, &locator, needle, 0);
        let raw: RawProfile = match crate::yaml::from_str(&src.text) {
            Ok(raw) => raw,
            Err(e) => {
                self.problems
                    .push(Diagnostic::from_yaml_text(&src.display, &src.text, &e));
                // The shape is wrong but the YAML may be sound: follow its `extends:`.
                let extends = crate::yaml::from_str::<crate::yaml::Value>(&src.text)
                    .ok()
                    .and_then(|v| v.get("extends")?.as_str().map(|e| e.trim().to_string()))
                    .map(|e| (e, at("extends")));
                return Some(OwnProfile {
                    description: String::new(),
                    extends,
                    params: BTreeMap::new(),
                    sysctls: BTreeMap::new(),
                });
            }
        };
        let extends = self.heading(&raw, &at);
        let allowed = self.allowed_outside_net(&raw, &at);
        let params = self.params(&raw, &at);
        let sysctls = self.sysctls(src, &locator, &raw, &allowed);
        Some(OwnProfile {
            description: raw.description.trim().to_string(),
            extends,
            params,
            sysctls,
        })
    }

    /// `description:` says something; `extends:`, if there, names a profile (returned, with
    /// where it is).
    fn heading(&mut self, raw: &RawProfile, at: &dyn Fn(&str) -> Loc) -> Option<(String, Loc)> {
        if raw.description.trim().is_empty() {
            self.problem(
                Code::EmptyText,
                &at("description"),
                "description is empty: say what the profile is for",
            );
        }
        let extends = raw
            .extends
            .as_ref()
            .map(|e| (e.trim().to_string(), at("extends")));
        if let Some((e, loc)) = &extends
            && e.is_empty()
        {
            self.problem(
                Code::EmptyText,
                loc,
                "extends is empty: name a profile or remove the line",
            );
        }
        extends
    }

    /// The keys outside net.* that `allow_outside_net:` lets the profile set; each must be
    /// a sysctl the profile sets.
    fn allowed_outside_net(
        &mut self,
        raw: &RawProfile,
        at: &dyn Fn(&str) -> Loc,
    ) -> BTreeSet<String> {
        let mut allowed = BTreeSet::new();
        for key in &raw.allow_outside_net {
            match SysctlKey::parse(key, Scope::AnyKey) {
                Ok(k) => {
                    if !raw.sysctls.0.iter().any(|(k, _)| k.trim() == key.trim()) {
                        self.problem(
                            Code::BadSysctlKey,
                            &at("allow_outside_net"),
                            format!("allow_outside_net lists {k} but the profile does not set it"),
                        );
                    }
                    allowed.insert(k.as_str().to_string());
                }
                Err(e) => self.problem(Code::BadSysctlKey, &at("allow_outside_net"), e.to_string()),
            }
        }
        allowed
    }

    /// `params:`, each set once, with a valid name and a value the run accepts.
    fn params(&mut self, raw: &RawProfile, at: &dyn Fn(&str) -> Loc) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        let mut named = BTreeSet::new();
        for (name, value) in &raw.params.0 {
            let loc = at(name);
            if !named.insert(name) {
                self.problem(
                    Code::SetTwice,
                    &loc,
                    format!("parameter {name} is set twice"),
                );
                continue;
            }
            let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                self.problem(
                    Code::BadParam,
                    &loc,
                    format!("parameter name {name:?}: use lower_case letters, digits and _"),
                );
            }
            match scalar(value) {
                Ok(v) if valid_name => match self.accepted.check(name, &v) {
                    Ok(_) => {
                        params.insert(name.clone(), v);
                    }
                    Err(e) => self.invalid(&loc, e),
                },
                Ok(_) => {}
                Err(why) => self.problem(Code::BadValue, &loc, format!("parameter {name}: {why}")),
            }
        }
        params
    }

    /// `sysctls:`, the settings that pass their checks, by key; a key written twice is
    /// placed at its own line.
    fn sysctls(
        &mut self,
        src: &Source,
        locator: &Locator<'_>,
        raw: &RawProfile,
        allowed: &BTreeSet<String>,
    ) -> BTreeMap<String, Setting> {
        let mut sysctls = BTreeMap::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (raw_key, setting) in &raw.sysctls.0 {
            let nth = seen.entry(raw_key.as_str()).or_default();
            let loc = locate_nth(&src.display, locator, raw_key, *nth);
            *nth += 1;
            let scope = if allowed.contains(raw_key.trim()) {
                Scope::AnyKey
            } else {
                Scope::NetOnly
            };
            if let Some(s) = self.setting(src, raw_key, setting, scope, loc, &sysctls) {
                sysctls.insert(s.key.as_str().to_string(), s);
            }
        }
        sysctls
    }

    /// One setting of `sysctls:`: a key the profile may set, not set before (`sysctls`
    /// holds those), with a reason and one target the key can take.
    fn setting(
        &mut self,
        src: &Source,
        raw_key: &str,
        setting: &RawSetting,
        scope: Scope,
        loc: Loc,
        sysctls: &BTreeMap<String, Setting>,
    ) -> Option<Setting> {
        let checked = self.settable_key(raw_key, scope, &loc)?;
        let key = checked.key.clone();
        if sysctls.contains_key(key.as_str()) {
            self.problem(
                Code::SetTwice,
                &loc,
                format!("{key} is set twice in this profile; keep one"),
            );
            return None;
        }
        if let Some((_, why)) = FORBIDDEN.iter().find(|(k, _)| *k == key.as_str()) {
            self.problem(
                Code::BadSysctlKey,
                &loc,
                format!("{key} may not be set: {why}"),
            );
            return None;
        }
        let reason = setting.reason.as_deref().map(str::trim).unwrap_or("");
        if reason.is_empty() {
            self.problem(
                Code::MissingReason,
                &loc,
                format!("{key}: `reason:` is missing; say why this value avoids resets"),
            );
        }
        let target = self.target(&checked, setting, &loc)?;
        Some(Setting {
            target,
            reason: reason.to_string(),
            from: src.name.clone(),
            key,
            loc,
        })
    }

    /// The key of a setting, if valid in `scope`: a key outside net.* is only for a profile
    /// that lists it under `allow_outside_net`.
    fn settable_key(&mut self, raw_key: &str, scope: Scope, loc: &Loc) -> Option<valid::Key> {
        match valid::key(raw_key, scope) {
            Ok(k) => Some(k),
            Err(e) => {
                self.refused.insert(raw_key.trim().to_string());
                match SysctlKey::parse(raw_key, Scope::AnyKey) {
                    Ok(k) if scope == Scope::NetOnly && !k.as_str().starts_with("net.") => {
                        self.problem(Code::BadSysctlKey,
                            loc,
                            format!(
                                "{k} is outside net.*: a profile may set it only if it also lists it under allow_outside_net"
                            ),
                        );
                    }
                    _ => self.invalid(loc, e),
                }
                None
            }
        }
    }

    /// The target of a setting: exactly one of `value:`, `at_least:` or `at_most:`, which
    /// the key can take.
    fn target(&mut self, checked: &valid::Key, setting: &RawSetting, loc: &Loc) -> Option<Target> {
        let key = &checked.key;
        let target = match (&setting.value, setting.at_least, setting.at_most) {
            (Some(v), None, None) => match scalar(v) {
                Ok(v) => match valid::value(checked, &v) {
                    Ok(v) => Target::Value(v),
                    Err(e) => {
                        self.refused.insert(key.to_string());
                        self.invalid(loc, e);
                        return None;
                    }
                },
                Err(why) => {
                    self.refused.insert(key.to_string());
                    self.problem(Code::BadValue, loc, format!("{key}: value: {why}"));
                    return None;
                }
            },
            (None, Some(n), None) => Target::AtLeast(n),
            (None, None, Some(n)) => Target::AtMost(n),
            _ => {
                self.refused.insert(key.to_string());
                self.problem(
                    Code::BadTarget,
                    loc,
                    format!("{key}: give exactly one of `value:`, `at_least:` or `at_most:`"),
                );
                return None;
            }
        };
        if let Target::AtLeast(n) | Target::AtMost(n) = target
            && let Err(e) = valid::bound(checked, n)
        {
            self.refused.insert(key.to_string());
            self.invalid(loc, e);
            return None;
        }
        Some(target)
    }

    /// Checks across keys, on the resolved profile; a key that had a problem of its own is
    /// left out (its fix may well be the answer to both).
    fn check_whole(&mut self, p: &Profile) {
        if [
            "net.ipv4.tcp_tw_reuse",
            "net.ipv4.tcp_timestamps",
            "net.ipv4.tcp_keepalive_time",
        ]
        .iter()
        .any(|k| self.refused.contains(*k))
        {
            return;
        }
        if let Some(reuse) = p.sysctls.get("net.ipv4.tcp_tw_reuse")
            && reuse.target == Target::Value("1".into())
        {
            let ts_on = p
                .sysctls
                .get("net.ipv4.tcp_timestamps")
                .is_some_and(|t| matches!(&t.target, Target::Value(v) if v == "1" || v == "2"));
            if !ts_on {
                self.problem(Code::UnsafeCombination,
                    &reuse.loc,
                    "net.ipv4.tcp_tw_reuse=1 is safe only with timestamps: the profile must also set net.ipv4.tcp_timestamps to 1",
                );
            }
        }
        if let Some(idle) = p.params.get("idle_timeout")
            && let Ok(idle) = idle.parse::<i64>()
            && let Some(ka) = p.sysctls.get("net.ipv4.tcp_keepalive_time")
        {
            let first_probe = match &ka.target {
                Target::Value(v) => v.parse::<i64>().ok(),
                Target::AtMost(n) => Some(*n),
                Target::AtLeast(_) => None,
            };
            if first_probe.is_none_or(|t| t >= idle) {
                self.problem(Code::UnsafeCombination,
                    &ka.loc,
                    format!(
                        "net.ipv4.tcp_keepalive_time ({}) must stay below the idle_timeout parameter ({idle} s): the first probe has to leave before the middlebox forgets the flow",
                        ka.target
                    ),
                );
            }
        }
    }
}

struct OwnProfile {
    description: String,
    extends: Option<(String, Loc)>,
    params: BTreeMap<String, String>,
    sysctls: BTreeMap<String, Setting>,
}

/// Why a value in a profile is not one a sysctl or parameter can take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum NotAScalar {
    #[error("{0} is not a whole number")]
    Fraction(crate::yaml::Number),
    #[error("write {digit} instead of {0}: sysctls take numbers", digit = u8::from(*.0))]
    Bool(bool),
    #[error("expected a number or a string")]
    Other,
}

fn scalar(v: &crate::yaml::Value) -> Result<String, NotAScalar> {
    match v {
        crate::yaml::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        crate::yaml::Value::Number(n) => Err(NotAScalar::Fraction(n.clone())),
        crate::yaml::Value::String(s) => Ok(s.trim().to_string()),
        crate::yaml::Value::Bool(b) => Err(NotAScalar::Bool(*b)),
        _ => Err(NotAScalar::Other),
    }
}

/// Where `needle:` is written as a mapping key for the `nth` time (0-based); 1:1 if not found.
fn locate_nth(file: &str, locator: &Locator<'_>, needle: &str, nth: usize) -> Loc {
    let pos = locator
        .key_nth(needle, nth)
        .unwrap_or(Pos { line: 1, col: 1 });
    Loc {
        file: file.to_string(),
        line: pos.line,
        column: pos.col,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values no sysctl or parameter takes, word for word as the diagnostics say them.
    #[test]
    fn values_that_are_not_scalars_read_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.yaml");
        std::fs::write(
            &path,
            "description: x\nparams:\n  idle_timeout: 1.5\n  other: [1]\nsysctls:\n  \
             net.core.somaxconn:\n    value: true\n    reason: r\n",
        )
        .unwrap();
        let err = load(path.to_str().unwrap()).unwrap_err();
        let messages: Vec<&str> = err.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "parameter idle_timeout: 1.5 is not a whole number",
                "parameter other: expected a number or a string",
                "net.core.somaxconn: value: write 1 instead of true: sysctls take numbers",
            ],
            "{err}"
        );
    }

    /// The name given to `load` is no file: a problem with it is placed at what named it.
    #[test]
    fn an_unknown_name_is_placed_at_what_named_it() {
        let err = load("no-such-profile").unwrap_err();
        assert_eq!(err.problems[0].file, NAMED_BY);
        let err = load_named("no-such-profile", "the caller").unwrap_err();
        assert_eq!(err.problems[0].file, "the caller");
        assert!(
            err.problems[0]
                .message
                .starts_with("unknown profile \"no-such-profile\""),
            "{err}"
        );
    }
}
