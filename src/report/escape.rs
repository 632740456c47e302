//! The escapers of every renderer: text from a host, a rule or a process name goes through
//! one of these before it lands in markup or a metric label.

/// Escape text for HTML element content and double-quoted attribute values.
pub fn html(text: &str) -> String {
    markup(text, "&#39;")
}

/// Escape text for XML attributes and content (JUnit).
pub fn xml(text: &str) -> String {
    markup(text, "&apos;")
}

/// The five markup characters as entities (the apostrophe as `apos`: HTML 4 has no
/// `&apos;`), and the control characters XML 1.0 cannot carry at all (and HTML calls parse
/// errors) as U+FFFD.
fn markup(text: &str, apos: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str(apos),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Escape a Prometheus label value (backslash, double quote, newline).
pub fn prometheus_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_labels() {
        let nasty = "<a href=\"x\">&'\u{1}\t";
        assert_eq!(
            html(nasty),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}\t"
        );
        assert_eq!(
            xml(nasty),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}\t"
        );
        assert_eq!(prometheus_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
