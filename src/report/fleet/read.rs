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
    /// The same file as this earlier one (given twice, or directly and through its
    /// directory): counted once, not read again.
    pub same_file_as: Option<String>,
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
    #[error("audit schema {found}: this rstaudit reads schemas {FIRST_SCHEMA} to {AUDIT_SCHEMA}")]
    Schema { found: u64 },
    #[error("the audit covers no network namespace")]
    NoNamespace,
    #[error("the audit could not run: {0}")]
    AuditError(String),
    #[error("a fleet report (rstaudit report --format json), not a host's audit")]
    FleetReport,
}

/// The oldest audit schema the fleet view reads (2: findings have an exposure). Every
/// schema up to the one this rstaudit writes ([`AUDIT_SCHEMA`]) is read.
pub const FIRST_SCHEMA: u64 = 2;

/// The parts of an audit report (docs/audit-json.md) the fleet view uses.
#[derive(Debug, Clone, Deserialize)]
pub struct HostAudit {
    pub schema: u64,
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub taken_at_ms: Option<u64>,
    /// The host's identity (schema 4 and later).
    #[serde(default)]
    pub host: Option<AuditHost>,
    pub namespaces: Vec<AuditNamespace>,
    /// The waivers of `audit --accept` (docs/accept.md), with their state.
    #[serde(default)]
    pub waivers: Vec<AuditWaiver>,
}

/// Which host an audit is of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuditHost {
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub machine_id: Option<String>,
}

/// A waiver as the audit reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditWaiver {
    #[serde(default)]
    pub rule: String,
    /// `active`, `expired` or `unused`.
    #[serde(default)]
    pub state: String,
    /// Where it is written, `FILE:LINE`.
    #[serde(default)]
    pub waiver: String,
}

/// A finding's waiver (`accepted`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditAccepted {
    #[serde(default)]
    pub reason: String,
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
    /// A waiver covers it: it does not count against `--fail-on`.
    #[serde(default)]
    pub accepted: Option<AuditAccepted>,
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

/// Only the schema, to tell "another schema" from "not an audit"; or the record of an
/// audit that could not run (`{"audit_error": "..."}`, as the Ansible role writes it).
#[derive(Deserialize)]
struct SchemaOnly {
    #[serde(default)]
    schema: Option<u64>,
    #[serde(default)]
    audit_error: Option<String>,
    #[serde(default)]
    generated_at_ms: Option<u64>,
    /// An error as `--format json` writes it (`{"error": {"message": ...}}`).
    #[serde(default)]
    error: Option<ErrorRecord>,
}

#[derive(Deserialize)]
struct ErrorRecord {
    #[serde(default)]
    message: String,
}

fn readable(schema: u64) -> bool {
    (FIRST_SCHEMA..=u64::from(AUDIT_SCHEMA)).contains(&schema)
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
                Ok(SchemaOnly {
                    audit_error: Some(text),
                    ..
                }) => AuditFileError::AuditError(text.trim().to_string()),
                Ok(SchemaOnly {
                    error: Some(ErrorRecord { message }),
                    ..
                }) => AuditFileError::AuditError(message.trim().to_string()),
                Ok(SchemaOnly {
                    generated_at_ms: Some(_),
                    ..
                }) => AuditFileError::FleetReport,
                Ok(SchemaOnly {
                    schema: Some(found),
                    ..
                }) if !readable(found) => AuditFileError::Schema { found },
                _ => AuditFileError::Invalid(e.to_string()),
            });
        }
    };
    if !readable(audit.schema) {
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
            parse(b"{\"schema\": 99, \"other\": true}").unwrap_err(),
            AuditFileError::Schema { found: 99 }
        );
        assert_eq!(
            parse(b"{\"schema\": 1, \"namespaces\": []}").unwrap_err(),
            AuditFileError::Schema { found: 1 }
        );
        assert_eq!(
            parse(b"{\"schema\": 2, \"namespaces\": []}").unwrap_err(),
            AuditFileError::NoNamespace
        );
        assert_eq!(
            parse(b"{\"audit_error\": \"rstaudit: error: no namespace x\\n\"}").unwrap_err(),
            AuditFileError::AuditError("rstaudit: error: no namespace x".into())
        );
        assert_eq!(
            parse(br#"{"error": {"message": "reading snapshot x: gone", "code": "not-found", "exit_code": 2}}"#)
                .unwrap_err(),
            AuditFileError::AuditError("reading snapshot x: gone".into())
        );
        assert_eq!(
            parse(b"{\"schema\": 1, \"generated_at_ms\": 5, \"hosts\": []}").unwrap_err(),
            AuditFileError::FleetReport
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
