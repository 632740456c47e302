//! The `rules` command: list, explain, lint, doc.

use super::Exit;

use crate::cli::{RulesAction, RulesArgs};
use crate::rules::{doc, load};

/// Run the command.
pub fn run(args: RulesArgs) -> anyhow::Result<Exit> {
    let text = match args.action {
        RulesAction::List { rules } => {
            let set = super::load_rules(rules.as_deref())?;
            let mut rows = vec![
                ["id", "severity", "subject", "cause", "title"]
                    .map(String::from)
                    .to_vec(),
            ];
            for r in &set.rules {
                rows.push(vec![
                    r.id.clone(),
                    r.severity.as_str().to_string(),
                    r.subject.as_str().to_string(),
                    r.cause.clone(),
                    r.title.clone(),
                ]);
            }
            crate::report::term::columns(&rows, super::terminal::term(false).columns())
        }
        RulesAction::Explain { id, rules } => {
            let set = super::load_rules(rules.as_deref())?;
            match set.get(&id) {
                Some(rule) => crate::report::term::wrap_block(
                    &doc::explain(rule),
                    super::terminal::term(false).columns(),
                ),
                None => {
                    // Not a rule id: a symptom, as `rstaudit explain` takes it.
                    let facts = super::explain::Facts::From(crate::host::Source::Live);
                    let answer = super::explain::look_up(&id, rules.as_deref(), 5, &facts)?;
                    if answer.causes.is_empty() {
                        anyhow::bail!(
                            "no rule with id {id:?}, and no cause matches it as a symptom; see \
                             `rstaudit rules list`, or `rstaudit explain TEXT` for error messages"
                        );
                    }
                    format!(
                        "no rule with id {id:?}; as a symptom (rstaudit explain):\n\n{}",
                        crate::rules::symptoms::text::render(
                            &answer,
                            super::terminal::term(false).columns()
                        )
                    )
                }
            }
        }
        RulesAction::Lint { dir } => match dir {
            Some(dir) => {
                let rules = load::lint_dir(&dir)?;
                format!(
                    "{}: {} rule file(s), no problems\n",
                    dir.display(),
                    rules.len()
                )
            }
            None => {
                let set = load::builtin()?;
                format!("built-in rules: {} rule(s), no problems\n", set.rules.len())
            }
        },
        RulesAction::Doc => doc::reference(&load::builtin()?),
    };
    super::write_output(None, text.as_bytes())?;
    Ok(Exit::Clean)
}
