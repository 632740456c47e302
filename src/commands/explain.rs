//! `rstaudit explain TEXT`: from a symptom (an error message, an errno, a cause's name) to
//! the causes, ranked by the text and by what this host (or `--snapshot`, `--root`) shows,
//! the rules that check for them, the commands that confirm them and the application-side
//! advice. Exit 0 when a cause matched, 1 when none did, 2 when it could not run (empty
//! text, broken rule or cause files, unreadable facts).

use super::Exit;

use anyhow::Context;

use crate::cli::{DiffFormat, ExplainArgs};
use crate::rules::symptoms::{self, Catalogue, Explanation, HostView};

/// Run the command.
pub fn run(args: ExplainArgs) -> anyhow::Result<Exit> {
    let text = if args.text == ["-"] {
        read_stdin()?
    } else {
        args.text.join(" ")
    };
    let facts = if args.text_only {
        Facts::None
    } else {
        match (&args.snapshot, &args.root) {
            (Some(file), _) => Facts::From(crate::host::Source::File(file.clone())),
            (None, Some(dir)) => Facts::From(crate::host::Source::Root(dir.clone())),
            (None, None) => Facts::From(crate::host::Source::Live),
        }
    };
    let answer = look_up(&text, args.rules.as_deref(), args.limit, &facts)?;
    let bytes = match args.format {
        DiffFormat::Json => {
            let mut b = serde_json::to_vec_pretty(&answer).context("rendering JSON")?;
            b.push(b'\n');
            b
        }
        DiffFormat::Table => {
            symptoms::text::render(&answer, super::terminal::term(false).columns()).into_bytes()
        }
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

/// Whose facts rank the causes.
pub enum Facts {
    /// The text alone.
    None,
    /// This host, a saved snapshot or a copied tree.
    From(crate::host::Source),
}

/// Load the rules and causes and look `text` up, ranked by `facts` too; an empty text is
/// refused.
pub fn look_up(
    text: &str,
    rules: Option<&std::path::Path>,
    limit: usize,
    facts: &Facts,
) -> anyhow::Result<Explanation> {
    if text.trim().is_empty() {
        anyhow::bail!(
            "the symptom is empty: give the error message, e.g. rstaudit explain 'Connection reset by peer'"
        );
    }
    let set = super::load_rules(rules)?;
    let catalogue = Catalogue::builtin(&set)?;
    let host = match facts {
        Facts::None => None,
        Facts::From(source) => Some(host_view(&set, source)?),
    };
    Ok(symptoms::lookup(
        &catalogue,
        &set,
        text,
        limit,
        host.as_ref(),
    ))
}

/// Audit `source` with every rule and keep what ranks causes.
fn host_view(
    set: &crate::rules::RuleSet,
    source: &crate::host::Source,
) -> anyhow::Result<HostView> {
    let label = match source {
        crate::host::Source::File(f) => format!("snapshot {}", f.display()),
        crate::host::Source::Root(d) => format!("the tree {}", d.display()),
        crate::host::Source::Live => "this host".to_string(),
    };
    let opts = crate::host::CollectOptions {
        source: source.clone(),
        netns: None,
        interval: None,
        owners: true,
        options: true,
        scan: crate::host::OwnerScan::Auto,
    };
    let snapshots = crate::host::collect(&opts)
        .map_err(super::name_flag)
        .with_context(|| {
            format!("reading the facts of {label} (--text-only ranks by the text alone)")
        })?;
    let plan = crate::rules::Selection {
        extra_dir: None,
        only: Vec::new(),
        skip: Vec::new(),
        params: Vec::new(),
    }
    .plan(set)?;
    let outcomes: Vec<_> = snapshots
        .iter()
        .map(|s| crate::rules::eval::evaluate(&plan.rules, &plan.params, s))
        .collect();
    let audits: Vec<_> = snapshots.iter().zip(&outcomes).collect();
    Ok(HostView::of(label, &audits))
}

/// 0 when a cause matched, 1 when none did.
pub fn exit_code(answer: &Explanation) -> Exit {
    if answer.causes.is_empty() {
        Exit::Findings
    } else {
        Exit::Clean
    }
}
