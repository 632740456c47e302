//! Sysctl profiles (profiles/*.yaml): named sets of sysctl targets, each with
//! a reason, optional `extends:` and parameters for the rules.
//!
//! Loading is two-step: a plain serde type mirrors the file
//! (`deny_unknown_fields` everywhere), then a checked [`Profile`] is built
//! and every problem in every file of the `extends:` chain is reported at
//! once as `file:line:col: message`. The built-in profiles are embedded in
//! the binary, so an installed binary needs no data files. Nothing here
//! reads or writes sysctls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ranges;
use crate::diag::{Code, Diagnostic, Locator, Pos};
use crate::host::sysctl::{Scope, SysctlError, SysctlKey, normalize, validate_value};

/// The built-in profiles, embedded at build time: `(name, YAML text)`.
pub const BUILTIN: &[(&str, &str)] = &[
    ("baseline", include_str!("../../profiles/baseline.yaml")),
    (
        "behind-load-balancer",
        include_str!("../../profiles/behind-load-balancer.yaml"),
    ),
    (
        "high-connection-server",
        include_str!("../../profiles/high-connection-server.yaml"),
    ),
    (
        "mobile-gateway",
        include_str!("../../profiles/mobile-gateway.yaml"),
    ),
    (
        "nat-gateway",
        include_str!("../../profiles/nat-gateway.yaml"),
    ),
];

/// Keys no profile may set, and why.
const FORBIDDEN: &[(&str, &str)] = &[(
    "net.ipv4.tcp_tw_recycle",
    "tcp_tw_recycle was removed in Linux 4.12; with NAT'd clients its per-host timestamp check drops SYNs and causes resets. Use tcp_tw_reuse=1 with tcp_timestamps=1 instead",
)];

// ---------------------------------------------------------------- file types

/// A profile file as written (step one of loading).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: String,
    #[serde(default)]
    extends: Option<String>,
    /// Keys outside `net.` this profile may set (explicit opt-in).
    #[serde(default)]
    allow_outside_net: Vec<String>,
    #[serde(default)]
    params: Pairs<serde_yaml::Value>,
    #[serde(default)]
    sysctls: Pairs<RawSetting>,
}

/// A mapping read in file order with duplicates kept, so a key written twice
/// (also as `net.ipv4.x` and `net/ipv4/x`) is reported instead of silently overridden.
#[derive(Debug)]
struct Pairs<V>(Vec<(String, V)>);

impl<V> Default for Pairs<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Pairs<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Pairs<V>, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    v.push(entry);
                }
                Ok(Pairs(v))
            }
            fn visit_unit<E>(self) -> Result<Pairs<V>, E> {
                Ok(Pairs(Vec::new()))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetting {
    #[serde(default)]
    value: Option<serde_yaml::Value>,
    #[serde(default)]
    at_least: Option<i64>,
    #[serde(default)]
    at_most: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
}

// ------------------------------------------------------------- checked types

/// A checked profile with `extends:` resolved (step two of loading).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    /// `built-in` or the file it was read from.
    pub source: String,
    pub description: String,
    /// The profiles this one extends, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
    /// Parameters for the rules (`idle_timeout` -> `350`), parents' overridden by children's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Dotted key -> target, parents' overridden by children's.
    pub sysctls: BTreeMap<String, Setting>,
}

/// What a profile wants for one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    #[serde(flatten)]
    pub target: Target,
    pub reason: String,
    /// The profile that set it.
    pub from: String,
    #[serde(skip)]
    pub key: SysctlKey,
    #[serde(skip)]
    loc: Loc,
}

/// A target value: exact, or a bound for keys whose defaults scale with memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Exactly this value (normalised whitespace).
    Value(String),
    /// At least this number: the current value is kept when it is higher.
    AtLeast(i64),
    /// At most this number: the current value is kept when it is lower.
    AtMost(i64),
}

impl Target {
    /// The value to write given the current one.
    pub fn resolve(&self, current: &str) -> Result<String, String> {
        let cur = || {
            current
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("current value {current:?} is not a single integer"))
        };
        Ok(match self {
            Self::Value(v) => v.clone(),
            Self::AtLeast(n) => cur()?.max(*n).to_string(),
            Self::AtMost(n) => cur()?.min(*n).to_string(),
        })
    }

    /// Whether a live or persisted value satisfies the target.
    pub fn satisfied_by(&self, value: &str) -> bool {
        match self {
            Self::Value(v) => values_equal(v, value),
            Self::AtLeast(n) => value.trim().parse::<i64>().is_ok_and(|x| x >= *n),
            Self::AtMost(n) => value.trim().parse::<i64>().is_ok_and(|x| x <= *n),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(v) => f.write_str(v),
            Self::AtLeast(n) => write!(f, ">= {n}"),
            Self::AtMost(n) => write!(f, "<= {n}"),
        }
    }
}

/// Compare two sysctl values as the kernel would print them (whitespace-normalised).
pub fn values_equal(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Loc {
    file: String,
    line: usize,
    column: usize,
}

/// Every problem found while loading a profile (and the profiles it extends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    pub problems: Vec<Diagnostic>,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{n} problem{} in profile files:",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, p) in self.problems.iter().enumerate() {
            if i + 1 < n {
                writeln!(f, "{p}")?;
            } else {
                write!(f, "{p}")?;
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ loading

/// The names of the built-in profiles.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _)| *n)
}

fn looks_like_path(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".yaml") || spec.ends_with(".yml")
}

/// Load a profile by built-in name or by file path, `extends:` resolved.
pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
    let mut loader = Loader::default();
    let referrer = Loc {
        file: "--profile".to_string(),
        line: 1,
        column: 1,
    };
    let profile = loader.resolve(name_or_path, None, &referrer, &mut Vec::new());
    match profile {
        Some(p) if loader.problems.is_empty() => {
            let mut checker = Loader::default();
            checker.check_whole(&p);
            if checker.problems.is_empty() {
                Ok(p)
            } else {
                Err(ProfileError {
                    problems: checker.problems,
                })
            }
        }
        _ => Err(ProfileError {
            problems: loader.problems,
        }),
    }
}

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

#[derive(Default)]
struct Loader {
    problems: Vec<Diagnostic>,
}

impl Loader {
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
            Some((parent_spec, loc)) => {
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
            None => None,
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

    /// Step one and the per-file part of step two.
    fn parse_one(&mut self, src: &Source) -> Option<OwnProfile> {
        let raw: RawProfile = match serde_yaml::from_str(&src.text) {
            Ok(raw) => raw,
            Err(e) => {
                self.problems.push(Diagnostic::from_yaml(&src.display, &e));
                return None;
            }
        };
        let locator = Locator::new(&src.text);
        let at = |needle: &str| locate_nth(&src.display, &locator, needle, 0);
        let before = self.problems.len();

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

        let mut params = BTreeMap::new();
        for (name, value) in &raw.params.0 {
            let loc = at(name);
            if params.contains_key(name) {
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
                Ok(v) => {
                    params.insert(name.clone(), v);
                }
                Err(why) => self.problem(Code::BadValue, &loc, format!("parameter {name}: {why}")),
            }
        }

        let mut sysctls = BTreeMap::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (raw_key, setting) in &raw.sysctls.0 {
            let nth = seen.entry(raw_key.as_str()).or_default();
            let loc = locate_nth(&src.display, &locator, raw_key, *nth);
            *nth += 1;
            let scope = if allowed.contains(raw_key.trim()) {
                Scope::AnyKey
            } else {
                Scope::NetOnly
            };
            let key = match SysctlKey::parse(raw_key, scope) {
                Ok(k) => k,
                Err(SysctlError::NotNet { key }) => {
                    self.problem(Code::BadSysctlKey,
                        &loc,
                        format!(
                            "{key} is outside net.*: a profile may set it only if it also lists it under allow_outside_net"
                        ),
                    );
                    continue;
                }
                Err(e) => {
                    self.problem(Code::BadSysctlKey, &loc, e.to_string());
                    continue;
                }
            };
            if sysctls.contains_key(key.as_str()) {
                self.problem(
                    Code::SetTwice,
                    &loc,
                    format!("{key} is set twice in this profile; keep one"),
                );
                continue;
            }
            if let Some((_, why)) = FORBIDDEN.iter().find(|(k, _)| *k == key.as_str()) {
                self.problem(
                    Code::BadSysctlKey,
                    &loc,
                    format!("{key} may not be set: {why}"),
                );
                continue;
            }
            let reason = setting.reason.as_deref().map(str::trim).unwrap_or("");
            if reason.is_empty() {
                self.problem(
                    Code::MissingReason,
                    &loc,
                    format!("{key}: `reason:` is missing; say why this value avoids resets"),
                );
            }
            let target = match (&setting.value, setting.at_least, setting.at_most) {
                (Some(v), None, None) => match scalar(v) {
                    Ok(v) => match validate_value(&key, &v, None) {
                        Ok(v) => Target::Value(v),
                        Err(e) => {
                            self.problem(Code::BadValue, &loc, e.to_string());
                            continue;
                        }
                    },
                    Err(why) => {
                        self.problem(Code::BadValue, &loc, format!("{key}: value: {why}"));
                        continue;
                    }
                },
                (None, Some(n), None) => Target::AtLeast(n),
                (None, None, Some(n)) => Target::AtMost(n),
                _ => {
                    self.problem(
                        Code::BadTarget,
                        &loc,
                        format!("{key}: give exactly one of `value:`, `at_least:` or `at_most:`"),
                    );
                    continue;
                }
            };
            let bound = match &target {
                Target::Value(v) => v.clone(),
                Target::AtLeast(n) | Target::AtMost(n) => n.to_string(),
            };
            if let Err(why) = ranges::check(key.as_str(), &bound) {
                self.problem(Code::BadValue, &loc, format!("{key}: {why}"));
                continue;
            }
            sysctls.insert(
                key.as_str().to_string(),
                Setting {
                    target,
                    reason: reason.to_string(),
                    from: src.name.clone(),
                    key,
                    loc,
                },
            );
        }

        if self.problems.len() > before {
            return None;
        }
        Some(OwnProfile {
            description: raw.description.trim().to_string(),
            extends,
            params,
            sysctls,
        })
    }

    /// Checks across keys, on the resolved profile.
    fn check_whole(&mut self, p: &Profile) {
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

fn scalar(v: &serde_yaml::Value) -> Result<String, String> {
    match v {
        serde_yaml::Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        serde_yaml::Value::Number(n) => Err(format!("{n} is not a whole number")),
        serde_yaml::Value::String(s) => Ok(s.trim().to_string()),
        serde_yaml::Value::Bool(b) => Err(format!(
            "write {} instead of {b}: sysctls take numbers",
            u8::from(*b)
        )),
        _ => Err("expected a number or a string".to_string()),
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
        // rst-causes.md section 3 and section 6.
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
            "description: x\nsysctls:\n  net.ipv4.tcp_syncookies:\n    value: 1\n    reason: a\n  net/ipv4/tcp_syncookies:\n    value: 0\n    reason: b\nparams:\n  a: 1\n  a: 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("p.yaml:6:3: net.ipv4.tcp_syncookies is set twice"),
            "{err}"
        );
        assert!(err.contains("parameter a is set twice"), "{err}");
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
