//! The inputs of `audit` and `watch`: the config file (docs/config.md) under the flags, and the
//! files the two name (rule directory, profile, accept file), each loaded once. Every problem
//! of every one of these files is reported in one run.

use std::path::{Path, PathBuf};

use crate::cli::{AuditArgs, FailOn, RuleSelectArgs};
use crate::rules::accept::AcceptFile;
use crate::rules::{RuleSet, Selection};
use rstaudit::config::{self, Config};

mod found;

use found::Found;

/// The config file in force: `--config FILE` (must exist), else the default path
/// (`RSTAUDIT_CONFIG`, empty for none, or /etc/rstaudit/config.yaml) when it exists.
fn chosen(named: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = named {
        return Some(path.to_path_buf());
    }
    let default = match std::env::var_os(config::ENV_VAR) {
        Some(v) if v.is_empty() => return None,
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(config::DEFAULT_PATH),
    };
    default.exists().then_some(default)
}

/// What the audit runs with: the rules, the selection (parameters in order, weakest first),
/// the waivers, and the config file they came through (its `watch:` settings for `watch`).
pub struct Inputs {
    pub set: RuleSet,
    pub selection: Selection,
    pub accept: Option<AcceptFile>,
    pub config: Option<Config>,
}

/// The flags the inputs are read under: the config file named, the rule selection, and the
/// settings the config file fills where a flag left them unset.
pub struct Flags<'a> {
    pub config: Option<&'a Path>,
    pub select: &'a mut RuleSelectArgs,
    pub accept: &'a mut Option<PathBuf>,
    pub fail_on: &'a mut Option<FailOn>,
}

impl<'a> Flags<'a> {
    /// The flags of `audit`.
    pub fn of_audit(args: &'a mut AuditArgs) -> Self {
        Flags {
            config: args.config.as_deref(),
            select: &mut args.select,
            accept: &mut args.accept,
            fail_on: &mut args.fail_on,
        }
    }
}

/// Read the config file (if any) under the flags, then the rules, profile, parameters and
/// accept file they name: every problem of every file together. Flags given on the command
/// line win over the file's keys (docs/config.md).
pub fn inputs(args: Flags) -> anyhow::Result<Inputs> {
    let mut args = args;
    let mut found = Found::default();
    let config = match chosen(args.config) {
        Some(path) => {
            found.config = true;
            let (config, problems) = config::read(&path);
            if !problems.is_empty() {
                found.add(
                    config::ConfigError {
                        problems: problems.clone(),
                    }
                    .into(),
                    problems,
                );
            }
            config
        }
        None => None,
    };
    if let Some(c) = &config {
        merge(&mut args, c);
    }
    let set = match crate::rules::load::load(args.select.rules.as_deref()) {
        Ok(set) => {
            super::warn_rules(&set);
            set
        }
        Err(e) => {
            let problems = e.diagnostics.clone();
            found.add(e.into(), problems);
            // Nothing else can be checked against rules that did not load.
            return Err(found
                .into_result()
                .expect_err("a rule directory that did not load is a problem"));
        }
    };
    let accepted = set.params();
    if let Some(c) = &config
        && let Err(e) = c.check_names(&set.rules.iter().map(|r| r.id.clone()).collect(), &accepted)
    {
        let problems = e.problems.clone();
        found.add(e.into(), problems);
    }
    // Weakest first: the profile's parameters, the config file's, then --set. A --profile
    // flag replaces the file's profile and also overrides the file's params.
    let config_params = config
        .as_ref()
        .map(|c| c.params.clone())
        .unwrap_or_default();
    let profile_given = args.select.profile.is_some();
    let profile = args
        .select
        .profile
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.profile.clone()));
    let mut params = Vec::new();
    if profile_given {
        params.extend(config_params.iter().cloned());
    }
    if let Some(spec) = &profile {
        let named_by = match (&config, profile_given) {
            (Some(c), false) => {
                let at = c.profile_at();
                format!("{}:{}:{}", c.file, at.line, at.col)
            }
            _ => "--profile".to_string(),
        };
        match crate::remedy::profiles::load_accepting(spec, &named_by, &accepted) {
            Ok(p) => params.extend(p.params),
            Err(e) => {
                let problems = e.problems.clone();
                found.add(
                    anyhow::Error::new(e)
                        .context(format!("reading the parameters of profile {spec:?}")),
                    problems,
                );
            }
        }
    }
    if !profile_given {
        params.extend(config_params);
    }
    let accept = match &*args.accept {
        Some(path) => {
            let ids = set.rules.iter().map(|r| r.id.clone()).collect();
            match crate::rules::accept::load(path, &ids) {
                Ok(a) => Some(a),
                Err(e) => {
                    let problems = e.problems.clone();
                    found.add(e.into(), problems);
                    None
                }
            }
        }
        None => None,
    };
    found.into_result()?;
    // The flags last: they are not files, and a bad one stops the run on its own.
    params.extend(super::parse_params(&args.select.set, &accepted)?);
    let selection = Selection {
        extra_dir: args.select.rules.clone(),
        only: args.select.only.clone(),
        skip: args.select.skip.clone(),
        params,
    };
    Ok(Inputs {
        set,
        selection,
        accept,
        config,
    })
}

/// Fill every setting the flags left unset from the config file (parameters and the profile
/// are ordered by [`inputs`]).
fn merge(args: &mut Flags, config: &Config) {
    let sel = &mut *args.select;
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
        *args.fail_on = config.fail_on.map(FailOn);
    }
}
