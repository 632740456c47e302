//! The causes as the symptom lookup uses them: loaded from rules/causes/*.yaml
//! (embedded at build time), checked against the known causes, errno names and the loaded
//! rules, every problem of every file reported at once as a [`Diagnostic`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::errno::{self, Errno};
use super::raw::RawCause;
use super::words::Needle;
use crate::diag::{Code, Diagnostic, Locator, Step};
use crate::rules::known;
use crate::rules::load::RuleSet;

/// The cause files compiled into the binary: (file name, text).
pub const EMBEDDED: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_causes.rs"));

/// Most points one term, errno or time may give.
pub const MAX_POINTS: u32 = 10;

/// A word or phrase of a cause, and its points.
#[derive(Debug, Clone)]
pub struct Term {
    /// As written in the file.
    pub text: String,
    pub needle: Needle,
    pub points: u32,
}

/// A checked cause.
#[derive(Debug, Clone)]
pub struct Cause {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub terms: Vec<Term>,
    pub errors: Vec<(&'static Errno, u32)>,
    pub duration: Option<u32>,
    pub duration_param: Option<String>,
    /// When and on which side its symptoms show.
    pub fits: super::fit::Fits,
    pub related_rules: Vec<String>,
    pub lab_scenarios: Vec<String>,
    pub rst_reasons: Vec<String>,
    pub advice: Vec<String>,
    /// The file it came from (`rules/causes/05-middlebox-idle.yaml`).
    pub file: String,
}

/// Every cause, in the order of the catalogue (docs/causes.md).
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub causes: Vec<Cause>,
}

/// Every problem found in the cause files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CausesError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for CausesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::diag::fmt_problems(f, "cause files", &self.diagnostics)
    }
}

impl Catalogue {
    /// The built-in causes, checked against `rules` (the rules their ids and parameters name).
    pub fn builtin(rules: &RuleSet) -> Result<Self, CausesError> {
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (format!("rules/causes/{n}"), (*t).to_string()))
            .collect();
        Self::parse(&files, rules)
    }

    /// Parse and check cause files: (name, text).
    pub fn parse(files: &[(String, String)], rules: &RuleSet) -> Result<Self, CausesError> {
        let mut diags = Vec::new();
        let mut causes: Vec<Cause> = Vec::new();
        for (file, text) in files {
            let raw: RawCause = match crate::yaml::from_str(text) {
                Ok(raw) => raw,
                Err(e) => {
                    let mut d = Diagnostic::from_yaml_text(file, text, &e);
                    d.hint = "see docs/explain.md for the shape of a cause file".into();
                    diags.push(d);
                    continue;
                }
            };
            let mut check = Check {
                file,
                at: Locator::new(text),
                diags: &mut diags,
            };
            if let Some(cause) = check.cause(raw, rules) {
                if let Some(first) = causes.iter().find(|c| c.id == cause.id) {
                    check.push(
                        Code::DuplicateCause,
                        &[Step::Key("cause")],
                        format!(
                            "cause {:?} is already described by {}",
                            cause.id, first.file
                        ),
                        "one file per cause; merge the two",
                    );
                } else {
                    causes.push(cause);
                }
            }
        }
        if !diags.is_empty() {
            return Err(CausesError { diagnostics: diags });
        }
        let order = |c: &Cause| known::CAUSES.iter().position(|k| *k == c.id);
        causes.sort_by_key(order);
        Ok(Self { causes })
    }

    pub fn get(&self, id: &str) -> Option<&Cause> {
        self.causes.iter().find(|c| c.id == id)
    }
}

struct Check<'a> {
    file: &'a str,
    at: Locator<'a>,
    diags: &'a mut Vec<Diagnostic>,
}

impl Check<'_> {
    fn push(&mut self, code: Code, path: &[Step<'_>], message: String, hint: &str) {
        let pos = self.at.find(path);
        self.diags.push(Diagnostic {
            code,
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            message,
            hint: hint.to_string(),
        });
    }

    fn text(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.push(
                Code::EmptyText,
                &[Step::Key(key)],
                format!("{key} is empty"),
                "say it in a sentence",
            );
        }
    }

    fn points(&mut self, path: &[Step<'_>], what: &str, points: u32) {
        if points == 0 || points > MAX_POINTS {
            self.push(
                Code::BadValue,
                path,
                format!("{what}: {points} points, expected 1 to {MAX_POINTS}"),
                "give a term more points the more it names this cause alone",
            );
        }
    }

    /// The checked cause, or None when a problem was recorded.
    fn cause(&mut self, raw: RawCause, rules: &RuleSet) -> Option<Cause> {
        let before = self.diags.len();
        let id = self.heading(&raw);
        let terms = self.terms(&raw.matching.terms);
        let errors = self.errors(&raw.matching.errors);
        if let Some(points) = raw.matching.duration {
            self.points(&[Step::Key("duration")], "duration", points);
        }
        let own: Vec<&str> = rules
            .rules
            .iter()
            .filter(|r| r.cause == id)
            .map(|r| r.id.as_str())
            .collect();
        self.related_rules(&raw.related_rules, &own, rules);
        self.known_names(&raw);
        self.duration_param(&raw, &own, rules);
        if self.diags.len() > before {
            return None;
        }
        Some(Cause {
            id: id.to_string(),
            fits: raw.fits,
            title: raw.title.trim().to_string(),
            summary: raw.summary.split_whitespace().collect::<Vec<_>>().join(" "),
            terms,
            errors,
            duration: raw.matching.duration,
            duration_param: raw.matching.duration_param,
            related_rules: raw.related_rules,
            lab_scenarios: raw.lab_scenarios,
            rst_reasons: raw.rst_reasons,
            advice: raw.advice.iter().map(|a| a.trim().to_string()).collect(),
            file: self.file.to_string(),
        })
    }

    /// `cause` is a known cause (its name returned, empty when unknown); `title`, `summary`
    /// and every item of `advice` say something.
    fn heading(&mut self, raw: &RawCause) -> &'static str {
        let id = known::cause(&raw.cause).unwrap_or_default();
        if id.is_empty() {
            self.push(
                Code::UnknownCause,
                &[Step::Key("cause")],
                format!("unknown cause {:?}", raw.cause),
                &format!(
                    "use a cause of docs/causes.md: {}",
                    known::CAUSES.join(", ")
                ),
            );
        }
        self.text("title", &raw.title);
        self.text("summary", &raw.summary);
        if raw.advice.is_empty() || raw.advice.iter().any(|a| a.trim().is_empty()) {
            self.push(
                Code::EmptyText,
                &[Step::Key("advice")],
                "advice is empty, or one of its items is".into(),
                "give what the application can do, one sentence an item",
            );
        }
        id
    }

    /// `match: terms:`, each with words in it, none the same words as another.
    fn terms(&mut self, raw: &BTreeMap<String, u32>) -> Vec<Term> {
        let mut terms = Vec::new();
        let mut seen: BTreeMap<Needle, String> = BTreeMap::new();
        // In the order of the file (the map is sorted), so a repeated term is the later one.
        let mut in_order: Vec<(&String, u32)> = raw.iter().map(|(t, p)| (t, *p)).collect();
        in_order.sort_by_key(|(t, _)| self.at.key_nth(t, 0));
        for (text, points) in in_order {
            let path = [Step::Key("terms"), Step::Key(text.as_str())];
            self.points(&path, &format!("term {text:?}"), points);
            let Some(needle) = Needle::of(text) else {
                self.push(
                    Code::EmptyText,
                    &path,
                    format!("term {text:?} has no word in it"),
                    "a term is a word or phrase of a symptom",
                );
                continue;
            };
            if let Some(first) = seen.get(&needle) {
                self.push(
                    Code::DuplicateEntry,
                    &path,
                    format!("term {text:?} is the same words as {first:?}"),
                    "terms are compared as lowercase words (keep-alive = keep alive); keep one",
                );
                continue;
            }
            seen.insert(needle.clone(), text.clone());
            terms.push(Term {
                text: text.clone(),
                needle,
                points,
            });
        }
        terms
    }

    /// `match: errors:`, each a known errno name.
    fn errors(&mut self, raw: &BTreeMap<String, u32>) -> Vec<(&'static Errno, u32)> {
        let mut errors = Vec::new();
        for (name, &points) in raw {
            let path = [Step::Key("errors"), Step::Key(name.as_str())];
            self.points(&path, name, points);
            match errno::by_name(name) {
                Some(e) => errors.push((e, points)),
                None => self.push(
                    Code::UnknownErrno,
                    &path,
                    format!("unknown errno {name:?}"),
                    &format!(
                        "use one of: {}",
                        errno::ERRNOS
                            .iter()
                            .map(|e| e.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        errors
    }

    /// `related_rules:`, each a loaded rule, named once and not one of the cause's `own`.
    fn related_rules(&mut self, related_rules: &[String], own: &[&str], rules: &RuleSet) {
        let mut related = BTreeSet::new();
        for id in related_rules {
            let path = [Step::Key("related_rules"), Step::Text(id.as_str())];
            if rules.get(id).is_none() {
                self.push(
                    Code::UnknownRule,
                    &path,
                    format!("no rule with id {id:?}"),
                    "name a rule from `rstaudit rules list`",
                );
            } else if own.contains(&id.as_str()) || !related.insert(id.as_str()) {
                self.push(
                    Code::DuplicateEntry,
                    &path,
                    format!("rule {id:?} is already listed (its cause: is this one, or it is named twice)"),
                    "list each rule once; the rules of this cause are included anyway",
                );
            }
        }
    }

    /// `lab_scenarios:` and `rst_reasons:` name known ones.
    fn known_names(&mut self, raw: &RawCause) {
        for (key, what, names, known, code) in [
            (
                "lab_scenarios",
                "lab scenario",
                &raw.lab_scenarios,
                known::LAB_SCENARIOS,
                Code::UnknownScenario,
            ),
            (
                "rst_reasons",
                "RST reason",
                &raw.rst_reasons,
                known::RST_REASONS,
                Code::UnknownReason,
            ),
        ] {
            for name in names {
                if !known.contains(&name.as_str()) {
                    self.push(
                        code,
                        &[Step::Key(key), Step::Text(name.as_str())],
                        format!("unknown {what} {name:?}"),
                        &format!("use one of: {}", known.join(", ")),
                    );
                }
            }
        }
    }

    /// `match: duration_param:`, a parameter one of the cause's rules (`own` or related)
    /// declares, only with `duration:`.
    fn duration_param(&mut self, raw: &RawCause, own: &[&str], rules: &RuleSet) {
        let Some(param) = &raw.matching.duration_param else {
            return;
        };
        let declared = own
            .iter()
            .copied()
            .chain(raw.related_rules.iter().map(String::as_str))
            .filter_map(|id| rules.get(id))
            .any(|r| r.params.contains_key(param));
        if !declared {
            self.push(
                Code::UnknownParam,
                &[Step::Key("duration_param")],
                format!("no rule of this cause declares the parameter {param:?}"),
                "name a parameter one of the cause's rules declares (rules explain ID)",
            );
        }
        if raw.matching.duration.is_none() {
            self.push(
                Code::MissingKey,
                &[Step::Key("duration_param")],
                "duration_param without duration: a time in the text would never count".into(),
                "add duration: POINTS under match:",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "cause: \"5\"\ntitle: T\nsummary: S\nmatch:\n  terms:\n    load balancer: 5\n  errors:\n    ECONNRESET: 2\n  duration: 3\n  duration_param: idle_timeout\nrelated_rules: [idle-without-keepalive]\nadvice:\n  - A\n";

    fn parse(text: &str) -> Result<Catalogue, CausesError> {
        let rules = crate::rules::load::builtin().unwrap();
        Catalogue::parse(&[("c.yaml".to_string(), text.to_string())], &rules)
    }

    fn codes(text: &str) -> Vec<(Code, usize, String)> {
        parse(text)
            .unwrap_err()
            .diagnostics
            .into_iter()
            .map(|d| (d.code, d.line, d.message))
            .collect()
    }

    #[test]
    fn a_good_file_loads() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.causes.len(), 1);
        assert_eq!(c.causes[0].errors[0].0.number, 104);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let bad = GOOD
            .replace("\"5\"", "\"12\"")
            .replace(
                "load balancer: 5",
                "load balancer: 5\n    Load-Balancer: 11",
            )
            .replace("ECONNRESET", "ECONNRESETT")
            .replace("[idle-without-keepalive]", "[idle-without-keepalive, nope]")
            .replace("idle_timeout", "idle_timeoutt");
        let got = codes(&bad);
        let want = [
            (Code::UnknownCause, 1),
            (Code::BadValue, 7),
            (Code::DuplicateEntry, 7),
            (Code::UnknownErrno, 9),
            (Code::UnknownRule, 12),
            (Code::UnknownParam, 11),
        ];
        for (code, line) in want {
            assert!(
                got.iter().any(|(c, l, _)| *c == code && *l == line),
                "{code} at line {line} missing in {got:?}"
            );
        }
        assert_eq!(got.len(), want.len(), "{got:?}");
    }

    #[test]
    fn unknown_keys_and_empty_texts_are_refused() {
        let got = codes(&GOOD.replace("title: T", "titel: T"));
        assert_eq!(got[0].0, Code::UnknownKey, "{got:?}");
        let got = codes(
            &GOOD
                .replace("summary: S", "summary: \" \"")
                .replace("  - A", "  - \"\""),
        );
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            [Code::EmptyText, Code::EmptyText],
            "{got:?}"
        );
        let twice = [
            ("a.yaml".to_string(), GOOD.to_string()),
            ("b.yaml".to_string(), GOOD.to_string()),
        ];
        let rules = crate::rules::load::builtin().unwrap();
        let err = Catalogue::parse(&twice, &rules).unwrap_err();
        assert_eq!(err.diagnostics[0].code, Code::DuplicateCause);
        assert!(err.diagnostics[0].message.contains("a.yaml"), "{err}");
    }

    #[test]
    fn unknown_scenarios_and_reasons_are_refused() {
        let got = codes(&GOOD.replace(
            "advice:",
            "lab_scenarios: [closed-port, nope]\nrst_reasons: [NO_SOCKET, NOPE]\nadvice:",
        ));
        assert_eq!(
            got.iter().map(|g| (g.0, g.1)).collect::<Vec<_>>(),
            [(Code::UnknownScenario, 12), (Code::UnknownReason, 13)],
            "{got:?}"
        );
    }

    #[test]
    fn a_rule_of_the_cause_listed_again_is_refused() {
        let got = codes(&GOOD.replace("[idle-without-keepalive]", "[keepidle-above-idle-timeout]"));
        assert_eq!(got[0].0, Code::DuplicateEntry, "{got:?}");
    }

    #[test]
    fn the_builtin_causes_load_and_cover_every_seed_cause() {
        let rules = crate::rules::load::builtin().unwrap();
        let c = Catalogue::builtin(&rules).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = c.causes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, known::CAUSES);
        for r in &rules.rules {
            assert!(c.get(&r.cause).is_some(), "{}: cause {}", r.id, r.cause);
        }
    }
}
