//! Shell completions and man pages: generated, syntactically valid for the
//! real shells and groff, and they know every command.
//!
//! Needs bash, zsh, fish, groff and man (installed by .ci/run); a missing
//! tool fails the test, it is never skipped.

use crate::common;

use std::path::Path;
use std::process::Command;

fn generate(args: &[&str]) -> String {
    let out = common::rstaudit().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rstaudit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    common::write_file(dir, name, text)
        .to_string_lossy()
        .into_owned()
}

/// Run a tool and return stdout; fail loudly when it is missing or fails.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed for this test (see .ci/run): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bash_completion_parses_and_completes_commands_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = write(dir.path(), "rstaudit", &generate(&["completions", "bash"]));
    tool("bash", &["-n", &script]);
    // Complete `rstaudit ` and `rstaudit audit --format ` the way bash does on TAB.
    let probe = format!(
        r#"source {script}
complete -p rstaudit >/dev/null || exit 3
COMP_WORDS=(rstaudit ""); COMP_CWORD=1; _rstaudit rstaudit "" rstaudit; echo "cmds: ${{COMPREPLY[*]}}"
COMP_WORDS=(rstaudit audit --format ""); COMP_CWORD=3; _rstaudit rstaudit "" --format; echo "fmts: ${{COMPREPLY[*]}}""#
    );
    let out = tool("bash", &["-c", &probe]);
    let cmds = out.lines().find(|l| l.starts_with("cmds:")).unwrap();
    for &cmd in common::COMMANDS {
        assert!(
            cmds.split_whitespace().any(|w| w == cmd),
            "bash does not complete {cmd}: {cmds}"
        );
    }
    let fmts = out.lines().find(|l| l.starts_with("fmts:")).unwrap();
    for f in ["table", "json", "yaml", "junit", "prometheus", "html"] {
        assert!(
            fmts.contains(f),
            "bash does not complete --format {f}: {fmts}"
        );
    }
}

#[test]
fn zsh_completion_parses_and_names_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate(&["completions", "zsh"]);
    assert!(text.starts_with("#compdef rstaudit"), "{}", &text[..40]);
    let script = write(dir.path(), "_rstaudit", &text);
    tool("zsh", &["-n", &script]);
    for &cmd in common::COMMANDS {
        assert!(text.contains(&format!("'{cmd}:")), "zsh script lacks {cmd}");
    }
}

#[test]
fn fish_completion_parses_and_completes_commands_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "rstaudit.fish",
        &generate(&["completions", "fish"]),
    );
    tool("fish", &["--no-execute", &script]);
    let out = tool(
        "fish",
        &[
            "--no-config",
            "-c",
            &format!(
                "source {script}; complete -C 'rstaudit '; echo ---; complete -C 'rstaudit packet-check --format '"
            ),
        ],
    );
    let (cmds, fmts) = out.split_once("---").unwrap();
    for &cmd in common::COMMANDS {
        assert!(
            cmds.lines().any(|l| l.split('\t').next() == Some(cmd)),
            "fish does not complete {cmd}:\n{cmds}"
        );
    }
    for f in ["table", "json", "prometheus", "html"] {
        assert!(
            fmts.lines().any(|l| l.trim() == f),
            "fish: --format {f}:\n{fmts}"
        );
    }
}

/// groff with all warnings on must render the page without a word on stderr.
fn groff_renders(page: &str) -> String {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P", "-cbou", page])
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("groff is needed for this test (see .ci/run)");
    assert!(out.status.success(), "groff failed on {page}");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.is_empty(), "groff warns on {page}: {warnings}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_page_renders_and_names_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let page = write(dir.path(), "rstaudit.1", &generate(&["man"]));
    let text = groff_renders(&page);
    for &cmd in common::COMMANDS {
        assert!(
            text.contains(&format!("rstaudit-{cmd}(1)")),
            "man page lacks {cmd}"
        );
    }
    assert!(text.contains("EXIT STATUS"), "{text}");
    // And man(1) itself formats it.
    let out = tool("man", &["-l", "-P", "cat", &page]);
    assert!(out.contains("rstaudit-packet-check(1)"), "{out}");
}

#[test]
fn man_dir_writes_a_page_per_command_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    generate(&["man", "--dir", &dir.path().to_string_lossy()]);
    for &cmd in common::COMMANDS {
        let page = dir.path().join(format!("rstaudit-{cmd}.1"));
        assert!(page.exists(), "{} missing", page.display());
        let text = groff_renders(&page.to_string_lossy());
        assert!(text.contains("Example"), "{cmd}.1 has no example:\n{text}");
    }
    let audit = groff_renders(&dir.path().join("rstaudit-audit.1").to_string_lossy());
    assert!(audit.contains("--fail-on"), "{audit}");
}

/// `cargo deb` installs what Cargo.toml's [package.metadata.deb] lists; every asset
/// must be something the documented commands (docs/install.md) generate.
#[test]
fn deb_assets_are_generated_by_the_documented_commands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let install = std::fs::read_to_string(root.join("docs/install.md")).unwrap();
    let commands = [
        "rstaudit man --dir target/assets/man",
        "rstaudit completions --dir target/assets/completions",
        "cargo deb --no-build",
    ];
    for cmd in commands {
        assert!(install.contains(cmd), "docs/install.md lacks `{cmd}`");
    }
    let assets_dir = tempfile::tempdir().unwrap();
    let man_dir = assets_dir.path().join("man");
    let comp_dir = assets_dir.path().join("completions");
    generate(&["man", "--dir", &man_dir.to_string_lossy()]);
    generate(&["completions", "--dir", &comp_dir.to_string_lossy()]);

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = tool(
        &cargo,
        &[
            "metadata",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
            &root.join("Cargo.toml").to_string_lossy(),
        ],
    );
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    let assets = meta["packages"][0]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets");
    let mut dests = Vec::new();
    for asset in assets {
        let src = asset[0].as_str().unwrap();
        dests.push(asset[1].as_str().unwrap().to_string());
        if src == "target/release/rstaudit" {
            continue;
        }
        if let Some(rel) = src.strip_prefix("target/assets/") {
            match rel.strip_suffix("*.1") {
                Some(dir) => {
                    let dir = assets_dir.path().join(dir);
                    assert!(dir.join("rstaudit.1").exists(), "{src}: no rstaudit.1");
                    assert!(
                        dir.join("rstaudit-audit.1").exists(),
                        "{src}: no audit page"
                    );
                }
                None => assert!(
                    assets_dir.path().join(rel).is_file(),
                    "{src} is not generated"
                ),
            }
        } else {
            assert!(root.join(src).is_file(), "{src} does not exist");
        }
    }
    for want in [
        "usr/bin/",
        "usr/share/man/man1/",
        "usr/share/bash-completion/completions/rstaudit",
        "usr/share/zsh/vendor-completions/_rstaudit",
        "usr/share/fish/vendor_completions.d/rstaudit.fish",
    ] {
        assert!(dests.iter().any(|d| d == want), "no asset installs {want}");
    }
}
