//! The settings of `watch`: the audit's inputs (rules, profile, parameters, through the config
//! file as `audit` reads them) and the watch settings, the flags over the config file's
//! `watch:` keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{DEFAULT_LISTEN, WatchArgs};
use crate::host::workload::{Runtime, RuntimeApi};
use crate::live;
use rstaudit::watch::check::audit::AuditSetup;
use rstaudit::watch::metrics::Limits;

/// What the flags and the config file settle.
pub(super) struct Settings {
    pub listen: SocketAddr,
    pub events: Option<PathBuf>,
    pub audit_every: Duration,
    pub window: Duration,
    pub limits: Limits,
    /// The runtime APIs asked for container names, the first of each runtime first.
    pub apis: Vec<RuntimeApi>,
}

/// The rules, profile and parameters of the audit, and the watch settings: the flags over the
/// config file. Errors name the file, line and column, or the flag.
pub(super) fn load(args: &WatchArgs) -> anyhow::Result<(AuditSetup, Settings)> {
    let mut select = args.select.clone();
    // The config file's accept file and fail_on are checked as the audit checks them; the
    // findings and their verdicts are exported whatever their severity.
    let (mut accept, mut fail_on) = (None, None);
    let crate::commands::config::Inputs {
        set: rules,
        selection,
        config,
        ..
    } = crate::commands::config::inputs(crate::commands::config::Flags {
        config: args.config.as_deref(),
        select: &mut select,
        accept: &mut accept,
        fail_on: &mut fail_on,
    })?;
    // Checked now, so that a bad id or parameter stops here and not at the first audit.
    selection.plan(&rules)?;
    live::idle_timeout(&selection.params).map_err(|e| {
        let v = match &e {
            live::LiveError::IdleTimeout(v) => v.clone(),
            live::LiveError::Duration(d) => d.to_string(),
        };
        anyhow::Error::new(e).context(format!("idle_timeout={v}"))
    })?;
    let file = config.map(|c| c.watch).unwrap_or_default();
    let default_limits = Limits::default();
    let settings = Settings {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address")),
        events: args.events.clone().or(file.events),
        audit_every: args
            .audit_every
            .or(file.audit_every)
            .unwrap_or(Duration::from_secs(300)),
        window: args
            .window
            .or(file.window)
            .unwrap_or(Duration::from_secs(300)),
        limits: Limits {
            values_per_label: args
                .values_per_label
                .map(|n| n as usize)
                .or(file.values_per_label)
                .unwrap_or(default_limits.values_per_label),
            max_series: args
                .max_series
                .map(|n| n as usize)
                .or(file.max_series)
                .unwrap_or(default_limits.max_series),
            idle: default_limits.idle,
        },
        apis: runtime_apis(&args.runtime_socket, &file.runtime_sockets)?,
    };
    Ok((AuditSetup { rules, selection }, settings))
}

/// `--runtime-socket RUNTIME=PATH` (all of them replace the file's), then the defaults.
fn runtime_apis(flags: &[String], file: &[(String, PathBuf)]) -> anyhow::Result<Vec<RuntimeApi>> {
    let mut given: Vec<(String, PathBuf)> = Vec::new();
    for item in flags {
        match item.split_once('=') {
            Some((r, p)) if !p.trim().is_empty() => {
                given.push((r.trim().to_string(), PathBuf::from(p.trim())))
            }
            _ => anyhow::bail!(
                "--runtime-socket {item:?}: expected RUNTIME=PATH, e.g. podman=/run/user/1000/podman/podman.sock"
            ),
        }
    }
    if given.is_empty() {
        given = file.to_vec();
    }
    let mut apis = Vec::new();
    for (runtime, path) in given {
        let runtime = match runtime.as_str() {
            "podman" => Runtime::Podman,
            "docker" => Runtime::Docker,
            other => anyhow::bail!(
                "--runtime-socket {other}={}: {other:?} is not a runtime whose API is asked (podman or docker)",
                path.display()
            ),
        };
        apis.push(RuntimeApi::new(runtime, path));
    }
    apis.extend(RuntimeApi::defaults());
    Ok(apis)
}
