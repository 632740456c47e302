//! Step one (serde, unknown keys rejected) and step two (every entry checked, every problem
//! at once) of loading an accept file.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::{AcceptError, AcceptFile, Date, Waiver};
use crate::diag::{Code, Diagnostic, Locator, Pos};
use crate::host::sysctl::{Scope, SysctlKey};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    accept: Vec<RawEntry>,
}

/// Every key optional here, so that a missing one is reported with all other problems.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    rule: Option<String>,
    netns: Option<String>,
    process: Option<String>,
    sysctl: Option<String>,
    reason: Option<String>,
    expires: Option<String>,
}

/// Read and check the accept file at `path`; `rules` are the ids of the loaded rules.
pub fn load(path: &Path, rules: &BTreeSet<String>) -> Result<AcceptFile, AcceptError> {
    let display = path.display().to_string();
    let text = crate::input::read_config(path).map_err(|e| AcceptError {
        problems: vec![Diagnostic::unreadable(&display, "accept file", e)],
    })?;
    parse(&display, &text, rules)
}

/// Check the text of an accept file named `file` (for messages).
pub fn parse(file: &str, text: &str, rules: &BTreeSet<String>) -> Result<AcceptFile, AcceptError> {
    let raw: RawFile = crate::yaml::from_str::<Option<RawFile>>(text)
        .map_err(|e| AcceptError {
            problems: vec![Diagnostic::from_yaml_text(file, text, &e)],
        })?
        .unwrap_or(RawFile { accept: Vec::new() });
    let starts = entry_lines(text);
    let mut problems = Vec::new();
    let mut waivers = Vec::new();
    for (i, entry) in raw.accept.iter().enumerate() {
        // The entry's own lines, so keys are found in it and not in a neighbour.
        let (first, last) = match starts.get(i) {
            Some(&l) => (l, starts.get(i + 1).copied().unwrap_or(usize::MAX)),
            None => (0, usize::MAX),
        };
        let own: Vec<&str> = text
            .lines()
            .skip(first)
            .take(last.saturating_sub(first))
            .collect();
        let own = own.join("\n");
        let mut check = EntryCheck {
            file,
            first,
            locator: Locator::new(&own),
            pos: Pos {
                line: first + 1,
                col: text
                    .lines()
                    .nth(first)
                    .map_or(1, |l| l.len() - l.trim_start_matches([' ', '-']).len() + 1),
            },
            problems: &mut problems,
            ok: true,
        };
        waivers.extend(check.waiver(i + 1, entry, rules));
    }
    if problems.is_empty() {
        Ok(AcceptFile { waivers })
    } else {
        Err(AcceptError { problems })
    }
}

/// One entry being checked: where it and its keys are, and the problems found in it.
struct EntryCheck<'a, 't> {
    file: &'a str,
    /// The 0-based line the entry starts at; `locator` reads the entry's own lines.
    first: usize,
    locator: Locator<'t>,
    /// Where the entry starts (its `-`).
    pos: Pos,
    problems: &'a mut Vec<Diagnostic>,
    /// No problem found yet.
    ok: bool,
}

impl EntryCheck<'_, '_> {
    /// Where `key` is written in the entry (its start when it is not).
    fn at(&self, key: &str) -> Pos {
        let p = self
            .locator
            .key_nth(key, 0)
            .unwrap_or(Pos { line: 1, col: 1 });
        Pos {
            line: p.line + self.first,
            col: p.col,
        }
    }

    fn problem(&mut self, code: Code, pos: Pos, message: String, hint: &str) {
        self.ok = false;
        self.problems.push(Diagnostic {
            code,
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            message,
            hint: hint.to_string(),
        });
    }

    /// Entry `n` (from 1) as a waiver, when it has no problem.
    fn waiver(&mut self, n: usize, entry: &RawEntry, rules: &BTreeSet<String>) -> Option<Waiver> {
        let rule = entry.rule.as_deref().map(str::trim).unwrap_or("");
        let label = if rule.is_empty() {
            format!("waiver {n}")
        } else {
            format!("waiver {n} ({rule})")
        };
        self.rule(n, entry, rule, rules);
        for (key, value) in [
            ("netns", &entry.netns),
            ("process", &entry.process),
            ("sysctl", &entry.sysctl),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                self.problem(
                    Code::EmptyText,
                    self.at(key),
                    format!("{label}: `{key}:` is empty"),
                    "give a value or remove the line",
                );
            }
        }
        let sysctl = self.sysctl(&label, entry);
        let reason = self.reason(&label, entry);
        let expires = self.expires(&label, entry);
        let trimmed = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_string());
        match (self.ok, expires) {
            (true, Some(expires)) => Some(Waiver {
                rule: rule.to_string(),
                netns: trimmed(&entry.netns),
                process: trimmed(&entry.process),
                sysctl,
                reason: reason.to_string(),
                expires,
                at: format!("{}:{}", self.file, self.pos.line),
            }),
            _ => None,
        }
    }

    /// `rule:` is there and names a loaded rule.
    fn rule(&mut self, n: usize, entry: &RawEntry, rule: &str, rules: &BTreeSet<String>) {
        if entry.rule.is_none() {
            self.problem(
                Code::MissingKey,
                self.pos,
                format!("waiver {n}: `rule:` is missing"),
                "name the rule id the waiver accepts (rstaudit rules list)",
            );
        } else if !rules.contains(rule) {
            self.problem(
                Code::UnknownRule,
                self.at("rule"),
                format!("waiver {n}: no rule has the id {rule:?}"),
                "use an id from `rstaudit rules list` (with the same --rules directory)",
            );
        }
    }

    /// `sysctl:`, when given, as a checked key.
    fn sysctl(&mut self, label: &str, entry: &RawEntry) -> Option<String> {
        let k = entry
            .sysctl
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())?;
        match SysctlKey::parse(k, Scope::AnyKey) {
            Ok(key) => Some(key.as_str().to_string()),
            Err(e) => {
                self.problem(
                    Code::BadSysctlKey,
                    self.at("sysctl"),
                    format!("{label}: {e}"),
                    "",
                );
                None
            }
        }
    }

    /// `reason:`, which may not be left out or empty.
    fn reason<'e>(&mut self, label: &str, entry: &'e RawEntry) -> &'e str {
        let reason = entry.reason.as_deref().map(str::trim).unwrap_or("");
        if reason.is_empty() {
            let pos = if entry.reason.is_some() {
                self.at("reason")
            } else {
                self.pos
            };
            self.problem(
                Code::MissingReason,
                pos,
                format!("{label}: `reason:` is missing or empty"),
                "say why the finding is accepted, so the next reader can judge it",
            );
        }
        reason
    }

    /// `expires:`, a real day written YYYY-MM-DD.
    fn expires(&mut self, label: &str, entry: &RawEntry) -> Option<Date> {
        let Some(d) = entry.expires.as_deref().map(str::trim) else {
            self.problem(
                Code::MissingKey,
                self.pos,
                format!("{label}: `expires:` is missing"),
                "every waiver ends: give the last day it holds, e.g. expires: 2027-03-31",
            );
            return None;
        };
        let day = Date::parse(d);
        if day.is_none() {
            self.problem(
                Code::BadDate,
                self.at("expires"),
                format!("{label}: expires {d:?} is not a day written YYYY-MM-DD"),
                "e.g. expires: 2027-03-31",
            );
        }
        day
    }
}

/// The 0-based lines where the entries of the list start: lines whose first non-blank
/// character is `-`, at the least indentation such lines have.
fn entry_lines(text: &str) -> Vec<usize> {
    let items: Vec<(usize, usize)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.trim_start();
            (rest == "-" || rest.starts_with("- ")).then(|| (i, l.len() - rest.len()))
        })
        .collect();
    let least = items.iter().map(|&(_, d)| d).min().unwrap_or(0);
    items
        .into_iter()
        .filter(|&(_, d)| d == least)
        .map(|(i, _)| i)
        .collect()
}
