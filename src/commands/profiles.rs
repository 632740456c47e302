//! The `profiles` command: list the built-in profiles, or show one resolved.

use super::Exit;

use anyhow::Context;

use crate::cli::{ProfilesAction, ProfilesArgs};
use crate::remedy::profiles;

/// Run the command.
pub fn run(args: ProfilesArgs) -> anyhow::Result<Exit> {
    match args.action {
        ProfilesAction::List => {
            let mut rows = Vec::new();
            for (name, description, extends) in profiles::list()? {
                // The part before the first colon is the profile's one-line summary.
                let first = description.split(": ").next().unwrap_or(&description);
                let first = first.trim_end_matches('.');
                let summary = if extends.is_empty() {
                    first.to_string()
                } else {
                    format!("{first} (extends {})", extends.join(" -> "))
                };
                rows.push(vec![format!("{name:<23}"), summary]);
            }
            let out = crate::report::term::columns(&rows, super::terminal::term(false).columns());
            super::write_output(None, out.as_bytes())?;
        }
        ProfilesAction::Show { name } => {
            let profile = profiles::load_named(&name, "--profile")?;
            let yaml = crate::yaml::to_string(&profile).context("serialising the profile")?;
            super::write_output(None, yaml.as_bytes())?;
        }
    }
    Ok(Exit::Clean)
}
