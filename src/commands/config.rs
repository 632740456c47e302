//! The config file of `audit` (docs/config.md): which file, and its settings under the flags.

use std::path::PathBuf;

use crate::cli::{AuditArgs, FailOn};
use crate::rules::RuleSet;
use rstaudit::config::{self, Config};

/// The config file in force: `--config FILE` (must exist), else the default path
/// (`RSTAUDIT_CONFIG`, empty for none, or /etc/rstaudit/config.yaml) when it exists.
fn chosen(args: &AuditArgs) -> Option<(PathBuf, bool)> {
    if let Some(path) = &args.config {
        return Some((path.clone(), true));
    }
    let default = match std::env::var_os(config::ENV_VAR) {
        Some(v) if v.is_empty() => return None,
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(config::DEFAULT_PATH),
    };
    Some((default, false))
}

/// The config file in force, and the parameters of its `params:` that go before the
/// profile's.
pub type Merged = (Config, Vec<(String, String)>);

/// Fill every setting the flags left unset from the config file, and return the file with
/// the parameters that go before the profile's (a `--profile` flag overrides the file's
/// `params:` as it overrides the file's `profile:`).
pub fn merge(args: &mut AuditArgs) -> anyhow::Result<Option<Merged>> {
    let Some((path, named)) = chosen(args) else {
        return Ok(None);
    };
    if !named && !path.exists() {
        return Ok(None);
    }
    let config = config::load(&path).map_err(anyhow::Error::from)?;
    let sel = &mut args.select;
    let mut before_profile = Vec::new();
    match (&sel.profile, &config.profile) {
        (Some(_), _) => before_profile.clone_from(&config.params),
        (None, profile) => {
            sel.profile.clone_from(profile);
            let sets: Vec<String> = config
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            sel.set.splice(0..0, sets);
        }
    }
    if sel.rules.is_none() {
        sel.rules.clone_from(&config.rules);
    }
    if sel.only.is_empty() {
        sel.only.clone_from(&config.only);
    }
    if sel.skip.is_empty() {
        sel.skip.clone_from(&config.skip);
    }
    if args.accept.is_none() {
        args.accept.clone_from(&config.accept);
    }
    if args.fail_on.is_none() {
        args.fail_on = config.fail_on.map(FailOn);
    }
    Ok(Some((config, before_profile)))
}

/// The rule ids and parameter names the file names, checked against the loaded rules.
pub fn check_names(config: &Config, set: &RuleSet) -> anyhow::Result<()> {
    let ids = set.rules.iter().map(|r| r.id.clone()).collect();
    let params = set
        .rules
        .iter()
        .flat_map(|r| r.params.keys().cloned())
        .collect();
    config
        .check_names(&ids, &params)
        .map_err(anyhow::Error::from)
}
