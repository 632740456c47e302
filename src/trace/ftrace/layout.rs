//! Where an event's fields sit in its binary record, and the numbers behind its symbolic
//! names, read from the event's `format` file (never assumed: offsets and reason numbers
//! change between kernel versions).

use std::collections::HashMap;

/// One `field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
}

/// An event's id and field layout.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// `ID:`, the `common_type` of its records.
    pub id: u16,
    fields: HashMap<String, Field>,
}

/// Why a format file gave no usable layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("no ID line")]
    NoId,
    #[error("field line {0:?} is not `field:TYPE NAME; offset:N; size:N; ...`")]
    BadField(String),
    #[error("no field {0:?}")]
    MissingField(&'static str),
    #[error("field {name:?} has size {size}, expected {expected}")]
    FieldSize {
        name: &'static str,
        size: usize,
        expected: &'static str,
    },
}

impl Layout {
    /// Parse a `format` file.
    pub fn parse(format: &str) -> Result<Self, LayoutError> {
        let mut id = None;
        let mut fields = HashMap::new();
        for line in format.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("ID:") {
                id = v.trim().parse::<u16>().ok();
                continue;
            }
            let Some(decl) = line.strip_prefix("field:") else {
                continue;
            };
            let bad = || LayoutError::BadField(line.to_string());
            let mut parts = decl.split(';').map(str::trim);
            let declaration = parts.next().ok_or_else(bad)?;
            let mut offset = None;
            let mut size = None;
            for p in parts {
                if let Some(v) = p.strip_prefix("offset:") {
                    offset = v.trim().parse::<usize>().ok();
                } else if let Some(v) = p.strip_prefix("size:") {
                    size = v.trim().parse::<usize>().ok();
                }
            }
            // `__u8 saddr[28]` -> `saddr`; `const void * skaddr` -> `skaddr`.
            let name = declaration
                .rsplit(|c: char| c.is_whitespace() || c == '*')
                .next()
                .map(|n| n.split('[').next().unwrap_or(n))
                .filter(|n| !n.is_empty())
                .ok_or_else(bad)?;
            fields.insert(
                name.to_string(),
                Field {
                    offset: offset.ok_or_else(bad)?,
                    size: size.ok_or_else(bad)?,
                },
            );
        }
        Ok(Self {
            id: id.ok_or(LayoutError::NoId)?,
            fields,
        })
    }

    /// A field, if the event has it.
    pub fn get(&self, name: &str) -> Option<Field> {
        self.fields.get(name).copied()
    }

    /// A field the event must have, of one of the sizes given.
    pub fn need(
        &self,
        name: &'static str,
        sizes: &[usize],
        expected: &'static str,
    ) -> Result<Field, LayoutError> {
        let f = self.get(name).ok_or(LayoutError::MissingField(name))?;
        if sizes.contains(&f.size) {
            Ok(f)
        } else {
            Err(LayoutError::FieldSize {
                name,
                size: f.size,
                expected,
            })
        }
    }
}

/// The `{ NUMBER, "NAME" }` pairs of `__print_symbolic(REC->FIELD, ...)` in a print format,
/// as the kernel wrote them (enum names already replaced by their values). Pairs whose value
/// is still a name (not resolved by this kernel) are left out.
pub fn symbol_table(format: &str, field: &str) -> Option<HashMap<u64, String>> {
    let start = format.find(&format!("__print_symbolic(REC->{field},"))?;
    let rest = &format[start..];
    let mut table = HashMap::new();
    let mut depth = 0i32;
    let mut i = 0;
    let bytes = rest.as_bytes();
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(table);
                }
            }
            b'{' => {
                let close = rest[i..].find('}')? + i;
                let pair = &rest[i + 1..close];
                if let Some((num, name)) = pair.split_once(',') {
                    let name = name.trim().trim_matches('"');
                    let num = num.trim();
                    let value = num
                        .strip_prefix("0x")
                        .map(|h| u64::from_str_radix(h, 16))
                        .unwrap_or_else(|| num.parse::<u64>());
                    if let Ok(v) = value {
                        table.insert(v, name.to_string());
                    }
                }
                i = close;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_6_18: &str = "name: tcp_send_reset
ID: 2280
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;

print fmt: \"state=%s reason=%s\", REC->state ? __print_symbolic(REC->state, { TCP_ESTABLISHED, \"TCP_ESTABLISHED\" }) : \"UNKNOWN\", __print_symbolic(REC->reason, { 0, \"NOT_SPECIFIED\" }, { 1, \"NO_SOCKET\" }, { 11, \"TCP_ABORT_ON_CLOSE\" }, { 0x19, \"MAX\" })
";

    #[test]
    fn reads_ids_offsets_and_sizes() {
        let l = Layout::parse(SEND_6_18).unwrap();
        assert_eq!(l.id, 2280);
        assert_eq!(
            l.get("skaddr"),
            Some(Field {
                offset: 16,
                size: 8
            })
        );
        assert_eq!(
            l.get("saddr"),
            Some(Field {
                offset: 32,
                size: 28
            })
        );
        assert_eq!(l.get("reason").unwrap().offset, 28);
        assert_eq!(l.get("common_pid").unwrap().offset, 4);
        assert!(l.get("sport").is_none());
        assert_eq!(
            l.need("saddr", &[4], "4"),
            Err(LayoutError::FieldSize {
                name: "saddr",
                size: 28,
                expected: "4"
            })
        );
        assert_eq!(
            l.need("sport", &[2], "2"),
            Err(LayoutError::MissingField("sport"))
        );
        assert_eq!(
            Layout::parse("format:\n\tfield:int x;\toffset:8;\tsize:4;\n"),
            Err(LayoutError::NoId)
        );
        assert!(matches!(
            Layout::parse("ID: 1\n\tfield:int x;\tsize:4;\n"),
            Err(LayoutError::BadField(_))
        ));
    }

    #[test]
    fn reads_the_numbers_of_symbolic_names() {
        let t = symbol_table(SEND_6_18, "reason").unwrap();
        assert_eq!(t.get(&1).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(t.get(&11).map(String::as_str), Some("TCP_ABORT_ON_CLOSE"));
        assert_eq!(t.get(&25).map(String::as_str), Some("MAX"));
        assert_eq!(t.len(), 4);
        // The state table still has enum names here: no numbers to take from it.
        assert_eq!(symbol_table(SEND_6_18, "state").unwrap().len(), 0);
        assert_eq!(symbol_table(SEND_6_18, "family"), None);
    }
}
