//! One file per command: each turns parsed arguments into work and an exit code.
//!
//! Commands glue the layers together (host -> rules -> report / remedy /
//! packet); they hold no domain logic of their own.

use std::path::Path;

use crate::cli::{Cli, Command, SourceArgs};
use crate::host::netns::{self, NetnsRef};
use crate::host::{CollectError, CollectOptions, Source, SourceError};
use crate::remedy::faults::Faults;

pub mod apply;
pub mod audit;
pub mod config;
mod exit;
pub mod explain;
pub mod fix;
pub mod lab;
mod output;
pub mod packet_check;
pub mod profiles;
pub mod report;
pub mod rollback;
pub mod rules;
pub mod signal;
pub mod snapshot;
pub mod targets;
pub mod terminal;
pub mod tooling;
pub mod verify;
pub mod watch;

pub use exit::Exit;
pub use output::{stdout_used, write_output, write_output_with};

/// Run one command.
pub fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    terminal::init(cli.color);
    match cli.command {
        Command::Audit(args) => audit::run(args),
        Command::Snapshot(args) => snapshot::run(args),
        Command::Fix(args) => fix::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Profiles(args) => profiles::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Report(args) => report::run(args),
        Command::PacketCheck(args) => packet_check::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Completions { shell, dir } => tooling::completions(shell, dir.as_deref()),
        Command::Man { dir } => tooling::man(dir.as_deref()),
    }
}

/// Load the rules once for the command: the built-in ones and those of `--rules DIR`. What
/// the loader warns about (an empty directory) is shown on standard error.
pub fn load_rules(dir: Option<&Path>) -> anyhow::Result<crate::rules::RuleSet> {
    let set = crate::rules::load::load(dir)?;
    warn_rules(&set);
    Ok(set)
}

/// Show on standard error what the rule loader warns about (an empty directory).
pub fn warn_rules(set: &crate::rules::RuleSet) {
    for warning in &set.warnings {
        eprintln!("rstaudit: warning: --rules {warning}");
    }
}

/// The steps `--inject-fault` makes fail; an unknown step is named with the flag.
pub fn inject_faults(items: &[String]) -> anyhow::Result<Faults> {
    Faults::parse(items).map_err(|e| {
        let flag = format!("--inject-fault {:?}", e.0);
        anyhow::Error::new(e).context(flag)
    })
}

/// `--netns NAME|PATH` (not `all`): the namespace, or an error that names the flag.
pub fn resolve_netns(spec: &str) -> anyhow::Result<NetnsRef> {
    netns::resolve(spec).map_err(|e| {
        let flag = format!("--netns {}", e.spec_shown());
        anyhow::Error::new(e).context(flag)
    })
}

/// Name the flag in an error about a value it gave (`--netns`, `--interval`, `--root`,
/// `--owner-scan bpf` where the kernel's socket iterator cannot be used): the
/// library says what is wrong with the value, the flag that gave it is the command's to say.
pub fn name_flag(err: CollectError) -> anyhow::Error {
    let flag = match &err {
        CollectError::Netns(ns) => format!("--netns {}", ns.spec_shown()),
        CollectError::Iterator(_) => "--owner-scan bpf".to_string(),
        CollectError::Source(SourceError::Interval(s)) => format!("--interval {s}"),
        CollectError::Source(
            SourceError::RootNotADirectory(dir) | SourceError::RootWithoutProc(dir),
        ) => format!("--root {}", dir.display()),
        _ => return err.into(),
    };
    anyhow::Error::new(err).context(flag)
}

/// What to collect for the source flags shared by `audit`, `snapshot`, `fix`, ...:
/// owners and socket options are always read from the live host.
pub fn collect_options(source: &SourceArgs) -> CollectOptions {
    CollectOptions {
        source: match (&source.snapshot, &source.root) {
            (Some(file), _) => Source::File(file.clone()),
            (None, Some(dir)) => Source::Root(dir.clone()),
            (None, None) => Source::Live,
        },
        netns: source.netns.clone(),
        interval: source.interval,
        owners: true,
        options: true,
        scan: match source.owner_scan {
            crate::cli::OwnerScanArg::Auto => crate::host::OwnerScan::Auto,
            crate::cli::OwnerScanArg::Bpf => crate::host::OwnerScan::Bpf,
            crate::cli::OwnerScanArg::Proc => crate::host::OwnerScan::Proc,
        },
    }
}

/// `--set PARAM=VALUE` pairs, each checked against the parameters a run `accepted` (its
/// rules', and the lab's with `--lab`; [`crate::valid::params`]); a problem names the pair.
pub fn parse_params(
    items: &[String],
    accepted: &crate::valid::params::Accepted,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(checked_params(items, accepted)?
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect())
}

/// [`parse_params`], with each value as the number it was checked to be.
pub fn checked_params(
    items: &[String],
    accepted: &crate::valid::params::Accepted,
) -> anyhow::Result<Vec<(String, String, f64)>> {
    parse_assignments(items, "--set")?
        .into_iter()
        .map(|(k, v)| match accepted.check(&k, &v) {
            Ok(n) => Ok((k, v, n)),
            Err(e) => Err(anyhow::Error::new(e).context(format!("--set {k}={v}"))),
        })
        .collect()
}

/// Parse `PARAM=VALUE` pairs from `--set` / `--with`.
pub fn parse_assignments(items: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => {
                anyhow::bail!("{flag} {item:?}: expected NAME=VALUE, e.g. {flag} idle_timeout=350")
            }
        })
        .collect()
}
