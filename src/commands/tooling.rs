//! Shell completions and the man pages, generated from the clap definitions
//! (src/cli.rs), so they can never disagree with the real command surface.
//!
//! The generators are pure functions returning bytes; the commands only
//! write them out. Packaging (docs/install.md) calls the same commands.

use super::Exit;
use std::path::Path;

use anyhow::Context;
use clap::{CommandFactory, ValueEnum};

use crate::cli::{Cli, CompletionShell};

/// Print a completion script for SHELL, or write the scripts of every shell into DIR.
pub fn completions(shell: Option<CompletionShell>, dir: Option<&Path>) -> anyhow::Result<Exit> {
    match (shell, dir) {
        (Some(shell), None) => super::write_output(None, &completion_script(shell))?,
        (_, Some(dir)) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for shell in CompletionShell::value_variants() {
                let path = dir.join(completion_file_name(*shell));
                super::write_output(Some(&path), &completion_script(*shell))?;
            }
        }
        (None, None) => anyhow::bail!("name a shell (bash, zsh, fish) or --dir DIR"),
    }
    Ok(Exit::Clean)
}

/// Print the main man page, or write every page into DIR.
pub fn man(dir: Option<&Path>) -> anyhow::Result<Exit> {
    match dir {
        None => super::write_output(None, &man_page()?)?,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, bytes) in man_pages()? {
                super::write_output(Some(&dir.join(name)), &bytes)?;
            }
        }
    }
    Ok(Exit::Clean)
}

/// The completion script for one shell.
pub fn completion_script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rstaudit", &mut out);
    out
}

/// The file name a completion script is installed under, as each shell looks it up.
pub fn completion_file_name(shell: CompletionShell) -> &'static str {
    match shell {
        CompletionShell::Bash => "rstaudit",
        CompletionShell::Zsh => "_rstaudit",
        CompletionShell::Fish => "rstaudit.fish",
    }
}

fn built_command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// rstaudit(1): the whole tool, its commands (naming their pages) and the exit status.
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let cmd = built_command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .context("rendering the man page")?;
    out.extend_from_slice(
        b".SH \"EXIT STATUS\"\n\
          .TP\n0\nRan; nothing at or above the \\fB\\-\\-fail\\-on\\fR threshold.\n\
          .TP\n1\nRan; findings at or above the threshold, or drift (\\fBverify\\fR).\n\
          .TP\n2\nCould not run: bad arguments, a bad rule or profile file, unreadable input.\n",
    );
    Ok(out)
}

/// Every page: rstaudit.1 first, then one per command and sub-command
/// (`rstaudit-audit.1`, `rstaudit-profiles-list.1`, ...), as (file name, bytes).
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let man = clap_mangen::Man::new(sub.clone());
            let mut out = Vec::new();
            man.render(&mut out)
                .with_context(|| format!("rendering the man page of {}", sub.get_name()))?;
            pages.push((man.get_filename(), out));
            walk(sub, pages)?;
        }
        Ok(())
    }
    let cmd = built_command();
    let mut pages = vec![("rstaudit.1".to_string(), man_page()?)];
    walk(&cmd, &mut pages)?;
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_command_with_unique_names() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "rstaudit.1",
            "rstaudit-audit.1",
            "rstaudit-packet-check.1",
            "rstaudit-profiles-show.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate page names: {names:?}");
    }
}
