//! `rstaudit explain TEXT`: from a symptom (an error message, an errno, a seed cause
//! number) to the causes, the rules that check for them, the commands that confirm them
//! and the application-side advice. Exit 0 when a cause matched, 1 when none did, 2 when
//! it could not run (empty text, broken rule or cause files).

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{DiffFormat, ExplainArgs};
use crate::rules::load;
use crate::rules::symptoms::{self, Catalogue, Explanation};

/// Run the command.
pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let text = args.text.join(" ");
    let answer = look_up(&text, args.rules.as_deref(), args.limit)?;
    let bytes = match args.format {
        DiffFormat::Json => {
            let mut b = serde_json::to_vec_pretty(&answer).context("rendering JSON")?;
            b.push(b'\n');
            b
        }
        DiffFormat::Table => symptoms::text::render(&answer).into_bytes(),
    };
    super::write_output(None, &bytes)?;
    Ok(exit_code(&answer))
}

/// Load the rules and causes and look `text` up; an empty text is refused.
pub fn look_up(
    text: &str,
    rules: Option<&std::path::Path>,
    limit: usize,
) -> anyhow::Result<Explanation> {
    if text.trim().is_empty() {
        anyhow::bail!(
            "the symptom is empty: give the error message, e.g. rstaudit explain 'Connection reset by peer'"
        );
    }
    let set = load::load(rules)?;
    let catalogue = Catalogue::builtin(&set)?;
    Ok(symptoms::lookup(&catalogue, &set, text, limit))
}

/// 0 when a cause matched, 1 when none did.
pub fn exit_code(answer: &Explanation) -> ExitCode {
    if answer.causes.is_empty() {
        ExitCode::from(super::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}
