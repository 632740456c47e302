//! The config file (`/etc/rstaudit/config.yaml`, `audit --config FILE`, docs/config.md): the
//! audit flags a fleet sets on every host, in one file. Flags given on the command line
//! override it; the command layer does the merge.
//!
//! Loaded in two steps like rules, profiles and accept files: a serde type mirrors the file
//! (unknown keys rejected), then every value is checked and every problem reported at once
//! as a [`Diagnostic`]. Paths in the file are relative to the file's directory. Rule ids and
//! parameter names can only be checked once the rules are loaded (the file may name a rule
//! directory): [`Config::check_names`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::diag::{Code, Diagnostic, Locator, Pos};
use crate::rules::Threshold;

/// The default config file.
pub const DEFAULT_PATH: &str = "/etc/rstaudit/config.yaml";

/// The environment variable that replaces [`DEFAULT_PATH`] (empty: no default file).
pub const ENV_VAR: &str = "RSTAUDIT_CONFIG";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    profile: Option<String>,
    fail_on: Option<String>,
    rules: Option<String>,
    accept: Option<String>,
    #[serde(default)]
    only: Vec<String>,
    #[serde(default)]
    skip: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, crate::yaml::Value>,
    watch: Option<RawWatch>,
}

/// The `watch:` mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    listen: Option<String>,
    events: Option<String>,
    audit_every: Option<crate::yaml::Value>,
    window: Option<crate::yaml::Value>,
    values_per_label: Option<u64>,
    max_series: Option<u64>,
    #[serde(default)]
    runtime_sockets: BTreeMap<String, String>,
}

/// The settings of `rstaudit watch` (the `watch:` mapping; docs/watch.md). `None`: not set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchConfig {
    /// `--listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--events`: a path (relative to the file's directory), or `-` for standard output.
    pub events: Option<PathBuf>,
    /// `--audit-every`.
    pub audit_every: Option<Duration>,
    /// `--window`.
    pub window: Option<Duration>,
    /// `--values-per-label`.
    pub values_per_label: Option<usize>,
    /// `--max-series`.
    pub max_series: Option<usize>,
    /// `--runtime-socket RUNTIME=PATH`: the API socket of a container runtime (`podman`,
    /// `docker`) to ask for container names, in name order.
    pub runtime_sockets: Vec<(String, PathBuf)>,
}

/// The container runtimes whose API socket `watch` can be given.
pub const RUNTIMES: [&str; 2] = ["podman", "docker"];

/// The durations `watch` accepts (`--audit-every`, `--window`), at least and at most.
pub const DURATION_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600));

/// A duration `watch` does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration ({1}); e.g. 90s, 5m, 1h")]
    NotADuration(String, String),
    #[error("{} is out of range: give from {} to {}", humantime::format_duration(*.0),
        humantime::format_duration(DURATION_RANGE.0), humantime::format_duration(DURATION_RANGE.1))]
    OutOfRange(Duration),
}

/// A duration as people write it: `300`, `90s`, `5m`, `1h 30m` (humantime's forms; a plain
/// number is seconds), from 1 s to a week.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let d = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| DurationError::NotADuration(t.to_string(), e.to_string()))?,
    };
    let (min, max) = DURATION_RANGE;
    if d < min || d > max {
        return Err(DurationError::OutOfRange(d));
    }
    Ok(d)
}

/// The label limits `watch` accepts (`values_per_label`, `max_series`), at most.
pub const MAX_VALUES_PER_LABEL: usize = 100_000;
pub const MAX_SERIES: usize = 1_000_000;

/// A checked config file. `None` / empty: the file does not set it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// The file, as named.
    pub file: String,
    /// A profile name, or a path (resolved against the file's directory).
    pub profile: Option<String>,
    /// `Some(None)`: `fail_on: never`.
    pub fail_on: Option<Option<Threshold>>,
    pub rules: Option<PathBuf>,
    pub accept: Option<PathBuf>,
    pub only: Vec<String>,
    pub skip: Vec<String>,
    /// Rule parameters, in name order.
    pub params: Vec<(String, String)>,
    /// The `watch:` settings.
    pub watch: WatchConfig,
    /// Where each key, rule id and parameter name is written, for [`Config::check_names`].
    positions: BTreeMap<String, Pos>,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::diag::fmt_problems(f, "the config file", &self.problems)
    }
}

/// Read and check the config file at `path`. A missing file is an error here; the caller
/// decides whether a missing default file is fine.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    match read(path) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(ConfigError { problems }),
    }
}

/// Read and check the config file at `path`, keeping what is valid: the settings without a
/// problem (`None` when the file could not be read or parsed at all), and every problem. The
/// caller can then check the files the config names in the same run.
pub fn read(path: &Path) -> (Option<Config>, Vec<Diagnostic>) {
    let display = path.display().to_string();
    match crate::input::read_config(path) {
        Ok(text) => parse_all(&display, &text, path.parent().unwrap_or(Path::new("."))),
        Err(e) => (
            None,
            vec![Diagnostic::unreadable(&display, "config file", e)],
        ),
    }
}

/// Check the text of a config file named `file`, whose relative paths are relative to `dir`.
pub fn parse(file: &str, text: &str, dir: &Path) -> Result<Config, ConfigError> {
    match parse_all(file, text, dir) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(ConfigError { problems }),
    }
}

/// [`parse`], keeping the valid settings beside the problems (see [`read`]).
pub fn parse_all(file: &str, text: &str, dir: &Path) -> (Option<Config>, Vec<Diagnostic>) {
    let raw: RawConfig = match crate::yaml::from_str::<Option<RawConfig>>(text) {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            let empty = Config {
                file: file.to_string(),
                ..Config::default()
            };
            return (Some(empty), Vec::new());
        }
        Err(e) => return (None, vec![Diagnostic::from_yaml_text(file, text, &e)]),
    };
    let locator = Locator::new(text);
    let at = |key: &str| locator.key_nth(key, 0).unwrap_or(Pos { line: 1, col: 1 });
    let mut problems = Vec::new();
    let problem =
        |problems: &mut Vec<Diagnostic>, code: Code, pos: Pos, message: String, hint: &str| {
            problems.push(Diagnostic {
                code,
                file: file.to_string(),
                line: pos.line,
                col: pos.col,
                message,
                hint: hint.to_string(),
            });
        };
    let mut positions = BTreeMap::new();

    let text_value =
        |problems: &mut Vec<Diagnostic>, key: &str, v: &Option<String>| -> Option<String> {
            let v = v.as_deref()?.trim();
            if v.is_empty() {
                problem(
                    problems,
                    Code::EmptyText,
                    at(key),
                    format!("`{key}:` is empty"),
                    "give a value or remove the line",
                );
                return None;
            }
            Some(v.to_string())
        };
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_relative() && dir != Path::new("") && dir != Path::new(".") {
            dir.join(p)
        } else {
            p.to_path_buf()
        }
    };
    let profile = text_value(&mut problems, "profile", &raw.profile).map(|p| {
        let path_like = p.contains('/') || p.ends_with(".yaml") || p.ends_with(".yml");
        if path_like {
            resolve(&p).display().to_string()
        } else {
            p
        }
    });
    let rules = text_value(&mut problems, "rules", &raw.rules).map(|p| resolve(&p));
    let accept = text_value(&mut problems, "accept", &raw.accept).map(|p| resolve(&p));
    let fail_on = match text_value(&mut problems, "fail_on", &raw.fail_on) {
        None => None,
        Some(v) if v == "never" => Some(None),
        Some(v) => match Threshold::parse(&v) {
            Ok(t) => Some(Some(t)),
            Err(why) => {
                problem(
                    &mut problems,
                    Code::BadValue,
                    at("fail_on"),
                    format!("fail_on {v:?}: {why}"),
                    "SEVERITY, EXPOSURE:SEVERITY or never, e.g. high, latent:medium",
                );
                None
            }
        },
    };

    for (key, ids) in [("only", &raw.only), ("skip", &raw.skip)] {
        let base = at(key);
        for id in ids {
            let pos = Locator::new(text)
                .find(&[
                    crate::diag::Step::Key(key),
                    crate::diag::Step::Text(id.as_str()),
                ])
                .max(base);
            positions.insert(format!("{key}:{id}"), pos);
        }
    }

    let mut params = Vec::new();
    let params_at = at("params");
    for (name, value) in &raw.params {
        let pos = Locator::new(text)
            .find(&[
                crate::diag::Step::Key("params"),
                crate::diag::Step::Key(name),
            ])
            .max(params_at);
        positions.insert(format!("param:{name}"), pos);
        let number = match value {
            crate::yaml::Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
            _ => None,
        };
        match number {
            Some(_) => params.push((name.clone(), number_text(value))),
            None => problem(
                &mut problems,
                Code::BadValue,
                pos,
                format!("parameter {name}: expected a number"),
                "e.g. idle_timeout: 350",
            ),
        }
    }

    let watch = match &raw.watch {
        Some(w) => check_watch(
            w,
            &|key| {
                Locator::new(text)
                    .find(&[crate::diag::Step::Key("watch"), crate::diag::Step::Key(key)])
                    .max(at("watch"))
            },
            &resolve,
            &mut |code, pos, message, hint| problem(&mut problems, code, pos, message, hint),
        ),
        None => WatchConfig::default(),
    };

    positions.insert("profile".to_string(), at("profile"));
    let config = Config {
        file: file.to_string(),
        profile,
        fail_on,
        rules,
        accept,
        only: raw.only,
        skip: raw.skip,
        params,
        watch,
        positions,
    };
    (Some(config), problems)
}

/// Check the `watch:` keys; `at` places a key, `problem` collects what is wrong.
fn check_watch(
    w: &RawWatch,
    at: &dyn Fn(&str) -> Pos,
    resolve: &dyn Fn(&str) -> PathBuf,
    problem: &mut dyn FnMut(Code, Pos, String, &str),
) -> WatchConfig {
    let mut out = WatchConfig::default();
    if let Some(l) = &w.listen {
        match l.trim().parse() {
            Ok(a) => out.listen = Some(a),
            Err(_) => problem(
                Code::BadValue,
                at("listen"),
                format!("watch.listen {l:?}: not an ADDRESS:PORT"),
                "e.g. 127.0.0.1:9945, or [::1]:9945",
            ),
        }
    }
    if let Some(e) = &w.events {
        match e.trim() {
            "" => problem(
                Code::EmptyText,
                at("events"),
                "`watch.events:` is empty".into(),
                "give a path, or - for standard output",
            ),
            "-" => out.events = Some(PathBuf::from("-")),
            p => out.events = Some(resolve(p)),
        }
    }
    for (key, value, slot) in [
        ("audit_every", &w.audit_every, &mut out.audit_every),
        ("window", &w.window, &mut out.window),
    ] {
        let Some(v) = value else { continue };
        let text = match v {
            crate::yaml::Value::String(s) => s.clone(),
            crate::yaml::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match parse_duration(&text) {
            Ok(d) => *slot = Some(d),
            Err(why) => problem(
                Code::BadValue,
                at(key),
                format!("watch.{key}: {why}"),
                "a duration such as 90s, 5m or 1h (a plain number is seconds)",
            ),
        }
    }
    for (key, value, max, slot) in [
        (
            "values_per_label",
            w.values_per_label,
            MAX_VALUES_PER_LABEL,
            &mut out.values_per_label,
        ),
        ("max_series", w.max_series, MAX_SERIES, &mut out.max_series),
    ] {
        let Some(v) = value else { continue };
        match usize::try_from(v) {
            Ok(n) if (1..=max).contains(&n) => *slot = Some(n),
            _ => problem(
                Code::BadValue,
                at(key),
                format!("watch.{key}: {v} is out of range"),
                &format!("give a number from 1 to {max}"),
            ),
        }
    }
    for (runtime, path) in &w.runtime_sockets {
        let pos = at("runtime_sockets");
        if !RUNTIMES.contains(&runtime.as_str()) {
            problem(
                Code::BadValue,
                pos,
                format!("watch.runtime_sockets: {runtime:?} is not a runtime whose API is asked"),
                "podman or docker",
            );
        } else if path.trim().is_empty() {
            problem(
                Code::EmptyText,
                pos,
                format!("watch.runtime_sockets.{runtime} is empty"),
                "give the path of its API socket",
            );
        } else {
            out.runtime_sockets
                .push((runtime.clone(), resolve(path.trim())));
        }
    }
    out
}

fn number_text(v: &crate::yaml::Value) -> String {
    match v {
        crate::yaml::Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

impl Config {
    /// Where `profile:` is written (1:1 when it is not).
    pub fn profile_at(&self) -> Pos {
        self.positions
            .get("profile")
            .copied()
            .unwrap_or(Pos { line: 1, col: 1 })
    }

    /// Check the rule ids of `only`/`skip` and the parameters against the loaded rules (the
    /// names they declare and the values each takes, [`crate::valid::params`]): every problem
    /// at once, at the place the file names them.
    pub fn check_names(
        &self,
        rule_ids: &BTreeSet<String>,
        params: &crate::valid::params::Accepted,
    ) -> Result<(), ConfigError> {
        let pos = |k: &str| {
            self.positions
                .get(k)
                .copied()
                .unwrap_or(Pos { line: 1, col: 1 })
        };
        let mut problems = Vec::new();
        for (key, ids) in [("only", &self.only), ("skip", &self.skip)] {
            for id in ids.iter().filter(|id| !rule_ids.contains(*id)) {
                let p = pos(&format!("{key}:{id}"));
                problems.push(Diagnostic {
                    code: Code::UnknownRule,
                    file: self.file.clone(),
                    line: p.line,
                    col: p.col,
                    message: format!("{key}: no rule has the id {id:?}"),
                    hint: "use an id from `rstaudit rules list`".to_string(),
                });
            }
        }
        for (name, value) in &self.params {
            if let Err(e) = params.check(name, value) {
                let p = pos(&format!("param:{name}"));
                problems.push(e.at(&self.file, p.line, p.col));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}
