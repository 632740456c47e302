//! Reading one host's audit JSON for the fleet view: the fields it needs, leniently.

use serde::Deserialize;

use crate::report::AUDIT_SCHEMA;
use crate::rules::{Exposure, Severity};

/// One file as the command layer hands it over.
#[derive(Debug, Clone)]
pub struct HostInput {
    /// The host's name (the file name without `.json`).
    pub host: String,
    /// The path, as given.
    pub file: String,
    /// The file's modification time, milliseconds since the epoch, when known.
    pub modified_ms: Option<u64>,
    /// The bytes, or why they could not be read.
    pub content: Result<Vec<u8>, ReadError>,
}

/// Why a file could not be read (from the command layer, which did the I/O).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Why an audit file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFileError {
    #[error("could not read: {0}")]
    Unreadable(String),
    #[error("empty file: the audit wrote nothing (it could not run)")]
    Empty,
    #[error("not an audit report: {0}")]
    Invalid(String),
    #[error("audit schema {found}: this rstaudit reads schema {AUDIT_SCHEMA}")]
    Schema { found: u64 },
    #[error("the audit covers no network namespace")]
    NoNamespace,
}

/// The parts of an audit report (docs/audit-json.md) the fleet view uses.
#[derive(Debug, Clone, Deserialize)]
pub struct HostAudit {
    pub schema: u64,
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub taken_at_ms: Option<u64>,
    pub namespaces: Vec<AuditNamespace>,
}

/// One namespace of an audit.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditNamespace {
    pub netns: String,
    #[serde(default)]
    pub kernel: String,
    pub findings: Vec<AuditFinding>,
}

/// One finding, as far as the fleet view needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditFinding {
    pub rule: String,
    #[serde(default)]
    pub title: String,
    pub severity: Severity,
    #[serde(default)]
    pub exposure: Exposure,
    #[serde(default)]
    pub exposure_reason: String,
    #[serde(default)]
    pub fix: AuditFix,
}

/// A finding's fix.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFix {
    #[serde(default)]
    pub sysctls: Vec<AuditSysctl>,
    #[serde(default)]
    pub advice: Option<String>,
}

/// One sysctl change of a fix.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditSysctl {
    pub key: String,
    pub value: String,
}

/// Only the schema, to tell "another schema" from "not an audit".
#[derive(Deserialize)]
struct SchemaOnly {
    schema: u64,
}

/// Parse one audit file.
pub fn parse(bytes: &[u8]) -> Result<HostAudit, AuditFileError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AuditFileError::Empty);
    }
    let audit: HostAudit = match serde_json::from_slice(bytes) {
        Ok(a) => a,
        Err(e) => {
            return Err(match serde_json::from_slice::<SchemaOnly>(bytes) {
                Ok(s) if s.schema != u64::from(AUDIT_SCHEMA) => {
                    AuditFileError::Schema { found: s.schema }
                }
                _ => AuditFileError::Invalid(e.to_string()),
            });
        }
    };
    if audit.schema != u64::from(AUDIT_SCHEMA) {
        return Err(AuditFileError::Schema {
            found: audit.schema,
        });
    }
    if audit.namespaces.is_empty() {
        return Err(AuditFileError::NoNamespace);
    }
    Ok(audit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_say_why() {
        assert_eq!(parse(b" \n").unwrap_err(), AuditFileError::Empty);
        assert!(matches!(
            parse(b"{\"schema\": 2").unwrap_err(),
            AuditFileError::Invalid(_)
        ));
        assert!(matches!(
            parse(b"[1, 2]").unwrap_err(),
            AuditFileError::Invalid(_)
        ));
        assert_eq!(
            parse(b"{\"schema\": 3, \"other\": true}").unwrap_err(),
            AuditFileError::Schema { found: 3 }
        );
        assert_eq!(
            parse(b"{\"schema\": 2, \"namespaces\": []}").unwrap_err(),
            AuditFileError::NoNamespace
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let a = parse(
            br#"{"schema": 2, "future": 1, "namespaces": [{"netns": "host", "x": 0,
                 "findings": [{"rule": "r", "severity": "high", "exposure": "exposed",
                               "accepted": {"reason": "ok"}}]}]}"#,
        )
        .unwrap();
        assert_eq!(a.namespaces[0].findings[0].severity, Severity::High);
    }
}
