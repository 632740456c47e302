//! The `fix` command: the fixes for today's findings, as a sysctl.d
//! fragment, a shell script or Ansible tasks. `apply --fixes` uses the same
//! fixes ([`desired_from_fixes`]).

use super::Exit;

use crate::cli::{Emit, FixArgs, RuleSelectArgs, SourceArgs};
use crate::host::netns;
use crate::host::sysctl::{Scope, SysctlKey};
use crate::remedy::profiles::Target;
use crate::remedy::render::{self, FixSet, FixTarget};
use crate::remedy::transaction::Desired;
use crate::rules::{self, Finding};

/// Collect the host picture and run the rules, as `audit` does.
pub fn todays_findings(
    select: &RuleSelectArgs,
    source: &SourceArgs,
) -> anyhow::Result<Vec<Finding>> {
    let set = super::load_rules(select.rules.as_deref())?;
    let selection = super::audit::selection(select, &set)?;
    let snapshots =
        crate::host::collect(&super::collect_options(source)).map_err(super::name_flag)?;
    let mut findings = Vec::new();
    for snap in &snapshots {
        findings.extend(rules::run(&set, &selection, snap)?.findings);
    }
    Ok(findings)
}

/// The sysctl targets of today's fixes in one namespace (`apply --fixes`).
pub fn desired_from_fixes(set: &[String], netns: Option<&str>) -> anyhow::Result<Vec<Desired>> {
    let select = RuleSelectArgs {
        set: set.to_vec(),
        ..RuleSelectArgs::default()
    };
    let source = SourceArgs {
        netns: netns.map(String::from),
        ..SourceArgs::default()
    };
    let findings = todays_findings(&select, &source)?;
    let fixes = FixSet::from_findings(&findings)?;
    fixes
        .sysctls
        .iter()
        .map(|l| {
            Ok(Desired {
                key: SysctlKey::parse(&l.key, Scope::NetOnly)?,
                target: Target::Value(l.value.clone()),
                reason: l.rules.join("; "),
            })
        })
        .collect()
}

/// The namespace the fixes are for, so that what `fix` prints to run acts on it: the one
/// `--netns` names, the caller's own, or (a saved snapshot, a copied tree) the host's.
fn target(source: &SourceArgs) -> anyhow::Result<FixTarget> {
    if source.snapshot.is_some() || source.root.is_some() {
        return Ok(FixTarget::default());
    }
    let initial = netns::initial_inode();
    match source.netns.as_deref() {
        Some(spec) if spec == "all" || spec.contains(',') => anyhow::bail!(
            "--netns {spec}: fix writes the fixes of one namespace (each has values of its \
             own); give one --netns NAME|PATH, or see every namespace's with `rstaudit audit \
             --netns {spec}`"
        ),
        Some(spec) => {
            let ns = super::resolve_netns(spec)?;
            Ok(FixTarget {
                name: ns.name.clone(),
                enter: Some(ns.path.display().to_string()),
                netns_flag: Some(crate::remedy::netns_flag(&ns)),
                initial: initial == Some(ns.inode),
            })
        }
        None => {
            let own = netns::current_inode().ok();
            let initial = own.is_some() && own == initial;
            Ok(FixTarget {
                name: if initial {
                    "host".to_string()
                } else {
                    netns::own_name(own)
                },
                enter: None,
                netns_flag: None,
                initial,
            })
        }
    }
}

/// Run the command.
pub fn run(args: FixArgs) -> anyhow::Result<Exit> {
    let target = target(&args.source)?;
    let findings = todays_findings(&args.select, &args.source)?;
    // Every value was checked when the findings were made (rules::eval keeps only the values
    // a key takes).
    let mut fixes = FixSet::from_findings(&findings)?;
    fixes.target = target;
    let text = match args.emit {
        Emit::Sysctl => render::emit_sysctl(&fixes),
        Emit::Sh => render::emit_sh(&fixes),
        Emit::Ansible => render::emit_ansible(&fixes)?,
    };
    super::write_output(args.output.as_deref(), text.as_bytes())?;
    Ok(Exit::Clean)
}
