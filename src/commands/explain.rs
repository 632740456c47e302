//! `rstaudit explain TEXT`: from a symptom (an error message, an errno, a seed cause
//! number) to the causes, the rules that check for them, the commands that confirm them
//! and the application-side advice. Exit 0 when a cause matched, 1 when none did, 2 when
//! it could not run (empty text, broken rule or cause files).

use super::Exit;

use anyhow::Context;

use crate::cli::{DiffFormat, ExplainArgs};
use crate::rules::symptoms::{self, Catalogue, Explanation};

/// Run the command.
pub fn run(args: ExplainArgs) -> anyhow::Result<Exit> {
    let text = if args.text == ["-"] {
        read_stdin()?
    } else {
        args.text.join(" ")
    };
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

/// Largest text read from standard input (a log excerpt, a stack trace).
const MAX_STDIN: u64 = 1024 * 1024;

/// The text of `explain -`: standard input, at most [`MAX_STDIN`] bytes, invalid UTF-8
/// replaced.
fn read_stdin() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut bytes)
        .context("reading the symptom from standard input")?;
    if bytes.len() as u64 > MAX_STDIN {
        anyhow::bail!(
            "standard input holds more than {MAX_STDIN} bytes: give the lines around the error"
        );
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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
    let set = super::load_rules(rules)?;
    let catalogue = Catalogue::builtin(&set)?;
    Ok(symptoms::lookup(&catalogue, &set, text, limit))
}

/// 0 when a cause matched, 1 when none did.
pub fn exit_code(answer: &Explanation) -> Exit {
    if answer.causes.is_empty() {
        Exit::Findings
    } else {
        Exit::Clean
    }
}
