//! Snapshots saved by `rstaudit snapshot` (JSON or YAML, one snapshot or a list), read back
//! with their schema checked.

use std::path::{Path, PathBuf};

use super::*;

/// Why a saved snapshot file cannot be used. Each message starts with the file.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("reading snapshot {}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not JSON or YAML of a snapshot's shape; `at` is the line and column when the parser
    /// knows them.
    #[error("{}: is not an rstaudit snapshot: {message}", place(path, *at))]
    NotASnapshot {
        path: PathBuf,
        at: Option<(usize, usize)>,
        message: String,
    },
    #[error("{}: holds an empty list, not a snapshot", path.display())]
    EmptyList { path: PathBuf },
    #[error(
        "{}: snapshot schema {schema} is not supported (this rstaudit reads schema {SCHEMA_VERSION})",
        path.display()
    )]
    Schema { path: PathBuf, schema: u64 },
}

/// `FILE` or `FILE:LINE:COLUMN`.
fn place(path: &Path, at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, column)) => format!("{}:{line}:{column}", path.display()),
        None => path.display().to_string(),
    }
}

/// Read snapshots saved by `rstaudit snapshot` (JSON or YAML; one snapshot or a list).
pub fn load(path: &Path) -> Result<Vec<Snapshot>, SavedError> {
    let text = crate::input::read_data(path).map_err(|source| SavedError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse_saved(&text, path)
}

/// Parse the text of a saved snapshot file; `path` names it in messages. Takes the text so
/// tests and fuzzers can feed it directly.
pub fn parse_saved(text: &str, path: &Path) -> Result<Vec<Snapshot>, SavedError> {
    let trimmed = text.trim_start();
    let not_a_snapshot = |at, message| SavedError::NotASnapshot {
        path: path.to_path_buf(),
        at,
        message,
    };
    // The nesting guard of `input::read_data` decides the syntax the same way.
    let snapshots: Vec<Snapshot> = if crate::input::looks_like_json(text) {
        let json_err = |e: serde_json::Error| {
            not_a_snapshot(
                Some((e.line(), e.column())),
                crate::input::parser_message(&e),
            )
        };
        // The common case first: a well-formed file parses straight into the typed
        // snapshot (a generic Value of 100,000 sockets would take ten times the memory).
        // Anything else goes the slow way below, for the same checks and messages.
        let typed = if trimmed.starts_with('[') {
            serde_json::from_str::<Vec<Snapshot>>(text).ok()
        } else {
            serde_json::from_str::<Snapshot>(text).ok().map(|s| vec![s])
        };
        if let Some(snapshots) = typed {
            check_schema(
                path,
                snapshots
                    .iter()
                    .map(|s| Some(u64::from(s.schema)))
                    .collect(),
            )?;
            return non_empty(snapshots, path);
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(json_err)?;
        if !value.is_object() && !value.is_array() {
            return Err(not_a_snapshot(
                None,
                format!("expected an object with \"schema\": {SCHEMA_VERSION} (or a list of them)"),
            ));
        }
        check_schema(
            path,
            value.as_array().map_or_else(
                || vec![value.get("schema").and_then(serde_json::Value::as_u64)],
                |a| {
                    a.iter()
                        .map(|v| v.get("schema").and_then(serde_json::Value::as_u64))
                        .collect()
                },
            ),
        )?;
        let typed = if value.is_array() {
            serde_json::from_str::<Vec<Snapshot>>(text)
        } else {
            serde_json::from_str::<Snapshot>(text).map(|s| vec![s])
        };
        typed.map_err(json_err)?
    } else {
        use crate::yaml::{self, Value};
        let yaml_err = |e: yaml::Error| match e.location() {
            Some(l) => not_a_snapshot(
                Some((l.line(), l.column())),
                crate::input::parser_message(&e),
            ),
            None => not_a_snapshot(None, e.to_string()),
        };
        let value: Value = yaml::from_str(text).map_err(yaml_err)?;
        if !value.is_mapping() && !value.is_sequence() {
            return Err(not_a_snapshot(
                None,
                format!("expected a mapping with `schema: {SCHEMA_VERSION}` (or a list of them)"),
            ));
        }
        let schema_of = |v: &Value| v.get("schema").and_then(Value::as_u64);
        check_schema(
            path,
            match value.as_sequence() {
                Some(seq) => seq.iter().map(schema_of).collect(),
                None => vec![schema_of(&value)],
            },
        )?;
        if value.is_sequence() {
            yaml::from_str::<Vec<Snapshot>>(text).map_err(yaml_err)?
        } else {
            vec![yaml::from_str::<Snapshot>(text).map_err(yaml_err)?]
        }
    };
    non_empty(snapshots, path)
}

fn non_empty(snapshots: Vec<Snapshot>, path: &Path) -> Result<Vec<Snapshot>, SavedError> {
    if snapshots.is_empty() {
        return Err(SavedError::EmptyList {
            path: path.to_path_buf(),
        });
    }
    Ok(snapshots)
}

/// Whether a saved snapshot file holds a list (as `--netns all` writes) rather than one
/// snapshot, so that converting it keeps its shape. False when it cannot be read.
pub fn file_holds_list(path: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Only the start of the file decides; opened without blocking (a FIFO put in its place
    // since it was read must not hang), read at most 64 KiB.
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let mut head = Vec::new();
    if file.take(64 * 1024).read_to_end(&mut head).is_err() {
        return false;
    }
    text_holds_list(&String::from_utf8_lossy(&head))
}

/// Whether snapshot text (JSON, or YAML as `rstaudit snapshot` writes it) starts a list: its
/// first line that is not blank, a comment, a directive or `---` opens a JSON array, a YAML
/// flow sequence (`[`) or a block sequence (`-` in the first column).
fn text_holds_list(text: &str) -> bool {
    let first = text.lines().find(|l| {
        let t = l.trim();
        !(t.is_empty() || t.starts_with('#') || t.starts_with('%') || t == "---")
    });
    first.is_some_and(|l| {
        let t = l.trim_start();
        t.starts_with('[') || l == "-" || l.starts_with("- ") || l.starts_with("-\t")
    })
}

fn check_schema(path: &Path, schemas: Vec<Option<u64>>) -> Result<(), SavedError> {
    match schemas
        .into_iter()
        .flatten()
        .find(|&schema| schema != u64::from(SCHEMA_VERSION))
    {
        Some(schema) => Err(SavedError::Schema {
            path: path.to_path_buf(),
            schema,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn list_or_single_is_told_from_the_start_of_the_text() {
        let one = minimal();
        let list = vec![minimal(), minimal()];
        let cases = [
            (serde_json::to_string_pretty(&one).unwrap(), false),
            (serde_json::to_string_pretty(&list).unwrap(), true),
            (serde_json::to_string(&list).unwrap(), true),
            (crate::yaml::to_string(&one).unwrap(), false),
            (crate::yaml::to_string(&list).unwrap(), true),
            (
                format!("# saved\n---\n{}", crate::yaml::to_string(&list).unwrap()),
                true,
            ),
            ("\n\n  [ {\"schema\": 1} ]".to_string(), true),
            ("schema: 1\nsockets:\n- a\n".to_string(), false),
            ("-1".to_string(), false),
            (String::new(), false),
        ];
        for (text, is_list) in cases {
            assert_eq!(text_holds_list(&text), is_list, "{text:.80}");
            // And agrees with what the parser takes the text for.
            if let Ok(parsed) = parse_saved(&text, Path::new("t")) {
                assert_eq!(parsed.len() > 1, is_list, "{text:.80}");
            }
        }
    }

    fn minimal() -> Snapshot {
        Snapshot {
            schema: SCHEMA_VERSION,
            taken_at_ms: 1,
            source: "live".to_string(),
            kernel: Kernel {
                release: "6.1.0".to_string(),
                version: kernel::parse_release("6.1.0"),
            },
            netns: NetnsInfo {
                inode: None,
                name: "host".to_string(),
            },
            host: None,
            sysctls: BTreeMap::new(),
            counters: Counters::default(),
            sockets_source: SocketsSource::None,
            sockets: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn well_formed_files_load_directly_and_still_have_their_schema_checked() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.json");
        std::fs::write(&one, serde_json::to_vec_pretty(&minimal()).unwrap()).unwrap();
        assert_eq!(load(&one).unwrap(), vec![minimal()]);
        let list = dir.path().join("list.json");
        let two = vec![minimal(), minimal()];
        std::fs::write(&list, serde_json::to_vec(&two).unwrap()).unwrap();
        assert_eq!(load(&list).unwrap(), two);
        // A newer schema that otherwise parses is refused all the same.
        let mut newer = minimal();
        newer.schema = SCHEMA_VERSION + 1;
        let path = dir.path().join("newer.json");
        std::fs::write(&path, serde_json::to_vec(&newer).unwrap()).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("is not supported"), "{err}");
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, "[]").unwrap();
        let err = load(&empty).unwrap_err().to_string();
        assert!(err.contains("empty list"), "{err}");
    }
}
