//! Diagnostics of the files users write: rules, profiles (and every later input file).
//!
//! One type for all of them: [`Diagnostic`] carries a stable [`Code`], the file, the line
//! and column (1-based), the message and a hint saying how to fix it. Loaders collect every
//! problem of every file and return them together; they never print. The codes are listed in
//! docs/diagnostics.md (a test keeps that list whole), so scripts and people can look them up.

use std::fmt;

pub mod locate;

pub use locate::{Locator, Pos, Step};

macro_rules! codes {
    ($($variant:ident = $name:literal: $doc:literal,)*) => {
        /// A stable identifier of one kind of problem.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $doc] $variant,)*
        }

        impl Code {
            /// Every code, in the order docs/diagnostics.md lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as shown and documented (`unknown-sysctl`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// What the code means, in one line.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $doc,)*
                }
            }
        }
    };
}

codes! {
    // Any file: reading it, and its YAML shape (step one of the loaders).
    Unreadable = "unreadable": "the file or directory cannot be read (missing, permissions, not UTF-8, too large)",
    NoFiles = "no-files": "a directory given for rule files holds none",
    Syntax = "syntax": "not valid YAML (an unclosed `[` or quote, a bad indentation), or not the shape of the file (a mapping where a list is expected, ...)",
    UnknownKey = "unknown-key": "a key the file format does not have (misspelt or misplaced)",
    MissingKey = "missing-key": "a key the file format requires is missing",
    WrongType = "wrong-type": "a value of the wrong type (text where a number is expected, ...)",
    UnknownName = "unknown-name": "a value that must be one of a fixed list of names is not one of them",
    // Sysctl keys and values, in rules and profiles.
    BadSysctlKey = "bad-sysctl-key": "not a valid sysctl key, or one outside what the file may name",
    UnknownSysctl = "unknown-sysctl": "a sysctl key no supported kernel has (the hint names the nearest known key)",
    BadValue = "bad-value": "a sysctl value the key does not mean, or a parameter value out of its range, or one malformed",
    SetTwice = "set-twice": "the same sysctl or parameter is set twice",
    // Rule files.
    BadId = "bad-id": "a rule id that is not lowercase letters, digits and -",
    DuplicateId = "duplicate-id": "two rule files use the same id",
    EmptyText = "empty-text": "a title, explanation or description that says nothing",
    UnknownCause = "unknown-cause": "a cause name (or number) that docs/causes.md does not have",
    BadKernelRange = "bad-kernel-range": "a kernel version range that cannot be parsed",
    BadParam = "bad-param": "a rule parameter with a bad name or default",
    UnknownParam = "unknown-param": "a parameter no loaded rule (or, for the lab, no scenario) has, or one a rule uses but does not declare",
    UnknownCounter = "unknown-counter": "a counter (Group.Name) rstaudit does not know",
    UnknownStatistic = "unknown-statistic": "a statistic of the socket table that does not exist",
    UnknownState = "unknown-state": "a TCP state name that does not exist",
    UnknownTimer = "unknown-timer": "a socket timer name that does not exist",
    UnknownReason = "unknown-reason": "an RST reason name the kernel does not have",
    UnknownScenario = "unknown-scenario": "a lab scenario that is not in the catalogue",
    BadCondition = "bad-condition": "a condition that is not all/any/not or one comparison",
    BadOperands = "bad-operands": "an arithmetic value with the wrong number of operands, or not exactly one kind",
    TypeMismatch = "type-mismatch": "a comparison of a value with a constant of another type or an operator it does not allow",
    MisplacedSocketField = "misplaced-socket-field": "socket fields or options used where there is no socket (when:, fixes)",
    MisplacedSection = "misplaced-section": "a section the rule's subject does not use (match: on a host rule, ...)",
    MissingSection = "missing-section": "a section the rule's subject needs (when: or match:)",
    BadMessage = "bad-message": "a message placeholder that is unclosed or unknown",
    BadFix = "bad-fix": "a fix that says nothing, or computes from counters",
    // Profile files.
    UnknownProfile = "unknown-profile": "extends: or --profile names a profile that does not exist",
    ExtendsCycle = "extends-cycle": "profiles that extend each other in a cycle",
    MissingReason = "missing-reason": "a profile setting or a waiver without a reason",
    BadTarget = "bad-target": "a profile setting without exactly one of value, at_least, at_most",
    UnsafeCombination = "unsafe-combination": "profile values that make resets likely together (tw_reuse without timestamps, keepalive above the idle timeout)",
    // Cause files (rules/causes/, rstaudit explain).
    DuplicateCause = "duplicate-cause": "two cause files describe the same cause",
    DuplicateEntry = "duplicate-entry": "a term (compared as lowercase words) or a rule listed twice in a cause file",
    UnknownErrno = "unknown-errno": "an errno name rstaudit does not know",
    UnknownRule = "unknown-rule": "a rule id that no loaded rule has",
    // Accept files (audit --accept) and the config file.
    BadDate = "bad-date": "a date that is not written YYYY-MM-DD or is no real day",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// How to fix it; empty when the message says it already.
    pub hint: String,
}

impl Diagnostic {
    /// A diagnostic about a whole file (line 1, column 1).
    pub fn whole_file(
        code: Code,
        file: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            code,
            file: file.into(),
            line: 1,
            col: 1,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A file that could not be read at all: `cannot read the WHAT: ERROR`.
    pub fn unreadable(file: &str, what: &str, err: impl std::fmt::Display) -> Self {
        Self::whole_file(
            Code::Unreadable,
            file,
            format!("cannot read the {what}: {err}"),
            "",
        )
    }

    /// [`Diagnostic::from_yaml`] for the error of reading `text` into a file's type: when the
    /// text is not valid YAML at all (an unclosed `[`), that is the problem, named `syntax` at
    /// the parser's position, whatever the type expected at the place the reading stopped.
    pub fn from_yaml_text(file: &str, text: &str, e: &crate::yaml::Error) -> Self {
        let shape = Self::from_yaml(file, e);
        if shape.code == Code::Syntax {
            return shape;
        }
        match crate::yaml::from_str::<crate::yaml::Value>(text) {
            Err(syntax) => Self {
                code: Code::Syntax,
                ..Self::from_yaml(file, &syntax)
            },
            Ok(_) => shape,
        }
    }

    /// A diagnostic from a YAML error: its position, its message without the position
    /// (already in front) and the code of its kind.
    pub fn from_yaml(file: &str, e: &crate::yaml::Error) -> Self {
        let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let message = crate::input::parser_message(e)
            // An enum given a list or a mapping: serde_yaml speaks of tags.
            .replace(
                "expected a YAML tag starting with '!'",
                "expected a single name",
            );
        let code = if message.contains("unknown field") {
            Code::UnknownKey
        } else if message.contains("unknown variant") {
            Code::UnknownName
        } else if message.contains("invalid type") || message.contains("did not match any variant")
        {
            Code::WrongType
        } else if message.contains("missing field") {
            Code::MissingKey
        } else {
            Code::Syntax
        };
        Self {
            code,
            file: file.to_string(),
            line,
            col,
            message,
            hint: String::new(),
        }
    }
}

/// How every error that collects the problems of input files shows them: `N problem(s) in
/// WHAT:` and each diagnostic on the lines after it.
pub fn fmt_problems(
    f: &mut fmt::Formatter<'_>,
    what: &str,
    problems: &[Diagnostic],
) -> fmt::Result {
    let n = problems.len();
    write!(f, "{n} problem{} in {what}:", if n == 1 { "" } else { "s" })?;
    for p in problems {
        write!(f, "\n{p}")?;
    }
    Ok(())
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} [{}]",
            self.file, self.line, self.col, self.message, self.code
        )?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// The problems of several input files read for one run (a config file and the profile,
/// rule directory and accept file it names), shown together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems {
    /// What was read: `the config file and the files it names`.
    pub what: String,
    pub problems: Vec<Diagnostic>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_problems(f, &self.what, &self.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: an unclosed `[` where a mapping is expected was called a wrong type.
    #[test]
    fn an_unclosed_bracket_is_a_syntax_error_not_a_wrong_type() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct File {
            sysctls: std::collections::BTreeMap<String, u32>,
        }
        let text = "sysctls: [\n  net.core.somaxconn: 1\n";
        let e = crate::yaml::from_str::<File>(text).unwrap_err();
        let d = Diagnostic::from_yaml_text("p.yaml", text, &e);
        assert_eq!(d.code, Code::Syntax, "{d}");
        // A sound YAML file of the wrong shape keeps its own code.
        let text = "sysctls: [1, 2]\n";
        let e = crate::yaml::from_str::<File>(text).unwrap_err();
        assert_eq!(
            Diagnostic::from_yaml_text("p.yaml", text, &e).code,
            Code::WrongType
        );
    }

    #[test]
    fn codes_are_unique_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} is used twice");
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{code}: codes are lowercase words joined by -"
            );
        }
        let doc = include_str!("../../docs/diagnostics.md");
        for code in Code::ALL {
            let row = format!("| `{code}` | {} |", code.meaning());
            assert!(
                doc.contains(&row),
                "docs/diagnostics.md lacks the row {row:?}"
            );
        }
    }
}
