//! Loading rules: the built-in library (embedded at build time) plus an
//! optional directory whose rules add to and override it by id.
//!
//! Every problem in every file is collected and reported together as
//! `file:line:col: message` with a hint. A file that is not valid YAML, or
//! does not have the rule's shape, gives the first such error serde_yaml
//! finds (with its position); a well-formed file gives every semantic
//! problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::raw::RawRule;
use super::rule::Rule;
use crate::diag::Code;
pub use crate::diag::Diagnostic;

/// The rule files compiled into the binary: (file name, text).
pub const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));

/// Every problem found while loading rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::diag::fmt_problems(f, "rule files", &self.diagnostics)
    }
}

impl std::error::Error for LoadError {}

/// A loaded set of rules, sorted by id, ids unique.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// What the caller should show but that does not stop the audit (an empty drop-in
    /// directory: only the built-in rules run). The library never prints them.
    pub warnings: Vec<String>,
}

impl RuleSet {
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The parameters these rules declare: what `--set`, a profile's and a config file's
    /// `params:` may name with them.
    pub fn params(&self) -> crate::valid::params::Accepted {
        crate::valid::params::Accepted::of_rules(
            self.rules
                .iter()
                .flat_map(|r| r.params.keys().map(String::as_str)),
        )
    }
}

/// Parse and check one file.
pub fn parse_file(file: &str, text: &str) -> Result<Rule, Vec<Diagnostic>> {
    let raw: RawRule =
        crate::yaml::from_str(text).map_err(|e| vec![serde_diagnostic(file, text, &e)])?;
    Rule::from_raw(&raw, text, file)
}

/// serde_yaml's error, with a hint for rule files.
fn serde_diagnostic(file: &str, text: &str, e: &crate::yaml::Error) -> Diagnostic {
    let mut d = Diagnostic::from_yaml_text(file, text, e);
    d.hint = match d.code {
        Code::UnknownKey => {
            "remove the key or fix its spelling (the allowed keys are listed above)"
        }
        Code::UnknownName => "use one of the listed values",
        Code::WrongType => {
            "check the value's type against docs/rule-format.md (numbers unquoted, lists in [ ])"
        }
        Code::MissingKey => "add the key; see docs/rule-format.md for what a rule needs",
        _ => "check the YAML syntax (indentation, colons, quotes)",
    }
    .to_string();
    d
}

/// Parse a set of files; ids must be unique within the set.
fn parse_all(files: &[(String, String)]) -> Result<Vec<Rule>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in files {
        match parse_file(file, text) {
            Ok(rule) => {
                if let Some(first) = seen.get(&rule.id) {
                    diags.push(Diagnostic::whole_file(
                        Code::DuplicateId,
                        file.clone(),
                        format!("rule id {:?} is already used by {first}", rule.id),
                        "rule ids must be unique; rename one",
                    ));
                } else {
                    seen.insert(rule.id.clone(), file.clone());
                    rules.push(rule);
                }
            }
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() {
        Ok(rules)
    } else {
        Err(diags)
    }
}

/// Read every `*.yaml` / `*.yml` file of a directory, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, LoadError> {
    let fail = |message: String| LoadError {
        diagnostics: vec![Diagnostic::whole_file(
            Code::Unreadable,
            dir.display().to_string(),
            message,
            "give a directory of rule files (*.yaml)",
        )],
    };
    let entries =
        std::fs::read_dir(dir).map_err(|e| fail(format!("cannot read the directory: {e}")))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        match crate::input::read_config(&p) {
            Ok(text) => files.push((p.display().to_string(), text)),
            Err(e) => diags.push(Diagnostic::whole_file(
                Code::Unreadable,
                p.display().to_string(),
                format!("cannot read the file: {e}"),
                "check permissions and that it is UTF-8 text",
            )),
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(LoadError { diagnostics: diags })
    }
}

/// The built-in rules.
pub fn builtin() -> Result<RuleSet, LoadError> {
    let files: Vec<(String, String)> = EMBEDDED
        .iter()
        .map(|(n, t)| (format!("rules/{n}"), (*t).to_string()))
        .collect();
    let mut rules = parse_all(&files).map_err(|diagnostics| LoadError { diagnostics })?;
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(RuleSet {
        rules,
        warnings: Vec::new(),
    })
}

/// Check the rules of one directory on their own (`rules lint DIR`). A directory without a
/// rule file is an error here: linting nothing is most likely a wrong path.
pub fn lint_dir(dir: &Path) -> Result<Vec<Rule>, LoadError> {
    let files = read_dir(dir)?;
    if files.is_empty() {
        return Err(LoadError {
            diagnostics: vec![Diagnostic::whole_file(
                Code::NoFiles,
                dir.display().to_string(),
                "the directory holds no rule files (*.yaml, *.yml)",
                "give a directory of rule files (*.yaml)",
            )],
        });
    }
    parse_all(&files).map_err(|diagnostics| LoadError { diagnostics })
}

/// The built-in rules, plus (and overridden by id by) the rules in `extra`.
pub fn load(extra: Option<&Path>) -> Result<RuleSet, LoadError> {
    let mut set = builtin()?;
    if let Some(dir) = extra {
        let files = read_dir(dir)?;
        if files.is_empty() {
            // An empty drop-in directory is a normal state; a wrong path looks the same, so
            // the caller says so where the user sees it.
            set.warnings.push(format!(
                "{}: the directory holds no rule files (*.yaml, *.yml); only the built-in \
                 rules run",
                dir.display()
            ));
        }
        let rules = parse_all(&files).map_err(|diagnostics| LoadError { diagnostics })?;
        for rule in rules {
            match set.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(slot) => *slot = rule,
                None => set.rules.push(rule),
            }
        }
        set.rules.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "id: dup\ntitle: t\nseverity: low\ncause: \"2\"\nsubject: host\nwhen: { sysctl: net.ipv4.tcp_syncookies, eq: 0 }\nmessage: m\nfix: { advice: a }\nexplanation: e\n";

    #[test]
    fn duplicate_ids_are_refused() {
        let files = vec![
            ("a.yaml".to_string(), RULE.to_string()),
            ("b.yaml".to_string(), RULE.to_string()),
        ];
        let diags = parse_all(&files).unwrap_err();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].file, "b.yaml");
        assert!(
            diags[0].message.contains("already used by a.yaml"),
            "{}",
            diags[0]
        );
    }

    #[test]
    fn builtin_rules_load() {
        let set = builtin().unwrap();
        assert!(set.rules.len() >= 30);
        assert!(set.rules.windows(2).all(|w| w[0].id < w[1].id));
    }
}
