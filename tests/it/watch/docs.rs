//! The pages say what the command takes: every flag of `rstaudit watch --help` is in
//! docs/watch.md's table of flags, and every key of the config file's `watch:` mapping (as
//! the command itself lists them when given an unknown one) is in docs/watch.md and
//! docs/config.md; the README points to docs/watch.md.

use std::path::Path;

use crate::common::{rstaudit, write_file};

fn page(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

/// The text of `page` from the heading `from` to the next heading of its level.
fn section<'a>(page: &'a str, from: &str) -> &'a str {
    let start = page
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in the page"));
    let level = from.split(' ').next().unwrap();
    let rest = &page[start + from.len()..];
    let end = rest.find(&format!("\n{level} ")).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn the_pages_name_every_flag_and_every_watch_key() {
    let out = rstaudit().args(["watch", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut flags: Vec<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--") || l.starts_with("-h,") || l.starts_with("-V,"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(','))
        .filter(|f| !["--help", "--version", "--color"].contains(f))
        .collect();
    flags.sort();
    flags.dedup();
    assert!(flags.len() >= 15, "{flags:?}\n{help}");
    let watch = page("docs/watch.md");
    let table = section(&watch, "## Flags");
    for flag in &flags {
        assert!(
            table.contains(&format!("`{flag}")),
            "docs/watch.md's flags do not name {flag}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let config = write_file(dir.path(), "c.yaml", "watch:\n  no_such_key: 1\n");
    let out = rstaudit()
        .args(["watch", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    let keys: Vec<&str> = said
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{said}"))
        .split(" [")
        .next()
        .unwrap()
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .collect();
    assert!(keys.contains(&"runtime_sockets"), "{keys:?}");
    let keys_section = section(&watch, "## The config file's `watch:` keys");
    let config_page = page("docs/config.md");
    let config_section = section(&config_page, "### `watch:`");
    for key in keys {
        assert!(
            keys_section.contains(&format!("  {key}:")),
            "docs/watch.md's example has no watch.{key}"
        );
        assert!(
            config_section.contains(&format!("`watch.{key}`")),
            "docs/config.md has no watch.{key}"
        );
    }
    assert!(page("README.md").contains("(docs/watch.md)"));
}
