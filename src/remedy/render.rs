//! Renderers for the remediation commands: pure functions from data to text.
//!
//! Diff tables (apply, verify, rollback) and, for `fix`, the sysctl.d
//! fragment, the shell script and the Ansible tasks.

use tabled::settings::object::Columns;
use tabled::settings::{Modify, Style, Width};
use tabled::{Table, Tabled};

use super::transaction::Row;
use super::verify::{LiveStatus, PersistStatus, VerifyRow};

#[derive(Tabled)]
struct DiffLine<'a> {
    key: &'a str,
    current: &'a str,
    target: &'a str,
    why: &'a str,
}

/// The diff of an apply: the rows that change (key, current, target, why).
pub fn diff_table(rows: &[Row]) -> String {
    let applicable = rows.iter().filter(|r| r.not_applicable.is_none());
    let lines: Vec<DiffLine> = applicable
        .clone()
        .filter(|r| r.change || r.current.is_none())
        .map(|r| DiffLine {
            key: &r.key,
            current: r.current.as_deref().unwrap_or("(unreadable)"),
            target: &r.target,
            why: &r.why,
        })
        .collect();
    let to_change = lines.len();
    let unchanged = applicable.count() - to_change;
    let mut out = String::new();
    if !lines.is_empty() {
        let mut table = Table::new(lines);
        table
            .with(Style::sharp())
            .with(Modify::new(Columns::one(3)).with(Width::wrap(60).keep_words(true)));
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out.push_str(&format!(
        "{to_change} key(s) to change, {unchanged} already at target.\n"
    ));
    for r in rows {
        if let Some(why) = &r.not_applicable {
            out.push_str(&format!("Not applicable here: {why}.\n"));
        }
    }
    out
}

#[derive(Tabled)]
struct VerifyLine<'a> {
    key: &'a str,
    live: &'a str,
    target: &'a str,
    status: &'a str,
    persisted: String,
    why: &'a str,
}

/// The verify report as a table: every key, with its live and persisted state.
pub fn verify_table(rows: &[VerifyRow]) -> String {
    let lines: Vec<VerifyLine> = rows
        .iter()
        .map(|r| VerifyLine {
            key: &r.key,
            live: match r.status {
                LiveStatus::NotApplicable => "(absent)",
                _ => r.live.as_deref().unwrap_or("(unreadable)"),
            },
            target: &r.target,
            status: match r.status {
                LiveStatus::Ok => "ok",
                LiveStatus::Drift => "DRIFT",
                LiveStatus::Unreadable => "UNREADABLE",
                LiveStatus::NotApplicable => "n/a",
            },
            persisted: match (r.persist, &r.persisted, &r.persisted_at) {
                (PersistStatus::Missing, _, _) => "not persisted".to_string(),
                (PersistStatus::Ok, Some(v), Some(at)) => format!("{v} ({at})"),
                (PersistStatus::Differs, Some(v), Some(at)) => format!("DIFFERS: {v} ({at})"),
                _ => String::new(),
            },
            why: &r.why,
        })
        .collect();
    let mut table = Table::new(lines);
    table
        .with(Style::sharp())
        .with(Modify::new(Columns::one(5)).with(Width::wrap(50).keep_words(true)));
    format!("{table}\n")
}

// ------------------------------------------------------------------ fixes

use serde::Serialize;

use crate::rules::Finding;

/// The sysctl.d file the Ansible tasks and the comments point at.
pub const DEFAULT_SYSCTL_FILE: &str = "/etc/sysctl.d/90-rstaudit.conf";

/// One sysctl change to make, from one or more findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixLine {
    pub key: String,
    pub value: String,
    /// The value it replaces, when the audit read it.
    pub current: Option<String>,
    /// `rule-id: title` of every finding that asks for it.
    pub rules: Vec<String>,
    /// Why (the findings' messages).
    pub why: Vec<String>,
    /// Advice the findings add to the sysctl change.
    pub notes: Vec<String>,
}

/// Advice for a finding no sysctl can fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdviceLine {
    pub rule: String,
    /// `nginx (pid 812)`, or `host`.
    pub target: String,
    pub advice: String,
}

/// The fixes of a set of findings: sysctl changes (one per key) and advice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixSet {
    pub sysctls: Vec<FixLine>,
    pub advice: Vec<AdviceLine>,
    /// The namespace they are for.
    pub target: FixTarget,
}

/// The network namespace fixes are for, as what they print to run must select it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixTarget {
    /// Its name in reports (`host`, `blue`).
    pub name: String,
    /// The file that enters it (`/run/netns/blue`), when it was named; `None`: the namespace
    /// the emitted commands run in.
    pub enter: Option<String>,
    /// The `--netns` value that selects it for rstaudit.
    pub netns_flag: Option<String>,
    /// The initial namespace, the one sysctl.d files are loaded into at boot.
    pub initial: bool,
}

impl Default for FixTarget {
    fn default() -> Self {
        Self {
            name: "host".to_string(),
            enter: None,
            netns_flag: None,
            initial: true,
        }
    }
}

impl FixTarget {
    /// `sysctl -w KEY=VALUE` as a command line, entering the namespace first when it was named.
    fn sysctl_w(&self, assignment: &str) -> String {
        let enter = self.enter.as_ref().map(|p| format!("--net={p}"));
        let words: Vec<&str> = match &enter {
            Some(e) => vec!["nsenter", e, "--", "sysctl", "-w", assignment],
            None => vec!["sysctl", "-w", assignment],
        };
        crate::hint::command(words)
    }

    /// What keeps the values: sysctl.d for the initial namespace, else not sysctl.d.
    fn persistence(&self) -> String {
        if self.initial {
            format!("install as {DEFAULT_SYSCTL_FILE}, then `sysctl --system`.")
        } else {
            let apply = ["rstaudit", "apply", "--fixes"]
                .into_iter()
                .chain(self.netns_flag.iter().flat_map(|f| ["--netns", f.as_str()]));
            format!(
                "for network namespace {}, not the host's. {}; or apply them now with `{}`.",
                self.name,
                crate::hint::namespace_persistence(&self.name),
                crate::hint::command(apply)
            )
        }
    }
}

/// Two findings ask different values of one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules disagree on {key}: {} wants {first}, {rule} wants {second}", earlier.join(", "))]
pub struct Disagreement {
    pub key: String,
    /// The rules (`id: title`) that asked for the first value.
    pub earlier: Vec<String>,
    pub first: String,
    /// The rule that asked for the second value.
    pub rule: String,
    pub second: String,
}

impl FixSet {
    /// Gather the fixes; two findings asking different values for one key is an error.
    pub fn from_findings(findings: &[Finding]) -> Result<Self, Disagreement> {
        let mut set = Self::default();
        for f in findings {
            for s in &f.fix.sysctls {
                let tag = format!("{}: {}", f.rule, f.title);
                match set.sysctls.iter_mut().find(|l| l.key == s.key) {
                    Some(line) if line.value != s.value => {
                        return Err(Disagreement {
                            key: s.key.clone(),
                            earlier: line.rules.clone(),
                            first: line.value.clone(),
                            rule: f.rule.clone(),
                            second: s.value.clone(),
                        });
                    }
                    Some(line) => {
                        if !line.rules.contains(&tag) {
                            line.rules.push(tag);
                            line.why.push(f.message.clone());
                            line.notes.extend(f.fix.advice.clone());
                        }
                    }
                    None => set.sysctls.push(FixLine {
                        key: s.key.clone(),
                        value: s.value.clone(),
                        current: s.current.clone(),
                        rules: vec![tag],
                        why: vec![f.message.clone()],
                        notes: f.fix.advice.iter().cloned().collect(),
                    }),
                }
            }
            if let Some(advice) = &f.fix.advice
                && f.fix.sysctls.is_empty()
            {
                let target = match &f.process {
                    Some(p) => format!("{} (pid {})", p.comm, p.pid),
                    None => f.subject.clone(),
                };
                set.advice.push(AdviceLine {
                    rule: f.rule.clone(),
                    target,
                    advice: format!("{} {}", f.message, advice),
                });
            }
        }
        Ok(set)
    }
}

/// Make a text safe to put after `# ` on one line.
fn comment(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn advice_comments(set: &FixSet, out: &mut String) {
    if set.advice.is_empty() {
        return;
    }
    out.push_str("\n# Findings no sysctl can fix (change the application or its configuration):\n");
    for a in &set.advice {
        out.push_str(&format!(
            "# ADVICE [{}] {}: {}\n",
            a.rule,
            comment(&a.target),
            comment(&a.advice)
        ));
    }
}

/// A sysctl.d fragment: each key with the rules that want it, why, and the value it replaces.
pub fn emit_sysctl(set: &FixSet) -> String {
    // rstaudit's own file, as the persist file of `apply` is: installed where its header says,
    // `apply --persist` may rewrite it and does not count its keys as another owner's.
    let mut out = format!(
        "{}: written by `rstaudit fix`; `rstaudit apply --persist` may rewrite it.\n\
         # Fixes from `rstaudit fix`: {}\n",
        super::persist::MARKER,
        comment(&set.target.persistence())
    );
    if set.sysctls.is_empty() {
        out.push_str("# No sysctl fixes for today's findings.\n");
    }
    for l in &set.sysctls {
        out.push('\n');
        for (rule, why) in l.rules.iter().zip(&l.why) {
            out.push_str(&format!("# {}\n#   why: {}\n", comment(rule), comment(why)));
        }
        for note in &l.notes {
            out.push_str(&format!("#   also: {}\n", comment(note)));
        }
        out.push_str(&format!(
            "#   replaces: {}\n{} = {}\n",
            l.current
                .as_deref()
                .map(comment)
                .unwrap_or_else(|| "unknown".into()),
            l.key,
            l.value
        ));
    }
    advice_comments(set, &mut out);
    out
}

/// A shell script: `sysctl -w` lines (in the namespace the fixes are for), and
/// `sh SCRIPT revert` to put the old values back.
pub fn emit_sh(set: &FixSet) -> String {
    let t = &set.target;
    let keep = if t.initial {
        "; see `rstaudit apply --persist` to keep them".to_string()
    } else {
        format!(
            ". {}",
            comment(&crate::hint::namespace_persistence(&t.name))
        )
    };
    let whose = if t.initial && t.enter.is_none() {
        String::new()
    } else {
        format!(", for network namespace {}", t.name)
    };
    let mut out = format!(
        "#!/bin/sh\n# Fixes from `rstaudit fix`{whose}. Apply: sh THIS_FILE; undo: sh THIS_FILE revert.\n# These change the running kernel only{keep}.\nset -eu\n\n"
    );
    out.push_str("if [ \"${1:-apply}\" = revert ]; then\n");
    let mut any_revert = false;
    for l in set.sysctls.iter().rev() {
        match &l.current {
            Some(cur) => {
                out.push_str(&format!(
                    "  {}\n",
                    t.sysctl_w(&format!("{}={}", l.key, cur))
                ));
                any_revert = true;
            }
            None => out.push_str(&format!(
                "  # {}: previous value unknown, not reverted\n",
                l.key
            )),
        }
    }
    if !any_revert {
        out.push_str("  :\n");
    }
    out.push_str("  exit 0\nfi\n\n");
    for l in &set.sysctls {
        for rule in &l.rules {
            out.push_str(&format!("# {}\n", comment(rule)));
        }
        out.push_str(&format!(
            "{}\n",
            t.sysctl_w(&format!("{}={}", l.key, l.value))
        ));
    }
    if set.sysctls.is_empty() {
        out.push_str("# No sysctl fixes for today's findings.\n:\n");
    }
    advice_comments(set, &mut out);
    out
}

#[derive(Serialize)]
struct AnsibleTask<'a> {
    name: String,
    #[serde(rename = "ansible.posix.sysctl")]
    sysctl: AnsibleSysctl<'a>,
}

#[derive(Serialize)]
struct AnsibleSysctl<'a> {
    name: &'a str,
    value: &'a str,
    sysctl_file: &'a str,
    state: &'static str,
    reload: bool,
}

/// A task for a namespace other than the host's, which `ansible.posix.sysctl` cannot reach.
#[derive(Serialize)]
struct AnsibleCommandTask {
    name: String,
    #[serde(rename = "ansible.builtin.command")]
    command: AnsibleArgv,
}

#[derive(Serialize)]
struct AnsibleArgv {
    argv: Vec<String>,
}

/// Ansible tasks, ready to include in a playbook: `ansible.posix.sysctl` with `sysctl_file`
/// for the host's namespace; for another namespace, `sysctl -w` inside it (no sysctl.d file:
/// it would go to the host's namespace at boot).
pub fn emit_ansible(set: &FixSet) -> Result<String, crate::yaml::Error> {
    let t = &set.target;
    let name = |l: &FixLine| format!("{} ({})", l.key, l.rules.join("; "));
    let tasks = if t.initial {
        let tasks: Vec<AnsibleTask> = set
            .sysctls
            .iter()
            .map(|l| AnsibleTask {
                name: name(l),
                sysctl: AnsibleSysctl {
                    name: &l.key,
                    value: &l.value,
                    sysctl_file: DEFAULT_SYSCTL_FILE,
                    state: "present",
                    reload: true,
                },
            })
            .collect();
        (!tasks.is_empty())
            .then(|| crate::yaml::to_string(&tasks))
            .transpose()?
    } else {
        let tasks: Vec<AnsibleCommandTask> = set
            .sysctls
            .iter()
            .map(|l| {
                let mut argv: Vec<String> = Vec::new();
                if let Some(p) = &t.enter {
                    argv.extend(["nsenter".into(), format!("--net={p}"), "--".into()]);
                }
                argv.extend([
                    "sysctl".into(),
                    "-w".into(),
                    format!("{}={}", l.key, l.value),
                ]);
                AnsibleCommandTask {
                    name: format!("{} in network namespace {}", name(l), t.name),
                    command: AnsibleArgv { argv },
                }
            })
            .collect();
        (!tasks.is_empty())
            .then(|| crate::yaml::to_string(&tasks))
            .transpose()?
    };
    let mut out = String::from(
        "# Fixes from `rstaudit fix --emit ansible`: include with `ansible.builtin.include_tasks`.\n",
    );
    if t.initial {
        out.push_str("# Needs the ansible.posix collection (ansible-galaxy collection install ansible.posix).\n");
    } else {
        out.push_str(&format!(
            "# For network namespace {}: the tasks change its running values only. {}.\n",
            t.name,
            comment(&crate::hint::namespace_persistence(&t.name))
        ));
    }
    advice_comments(set, &mut out);
    match tasks {
        None => out.push_str("# No sysctl fixes for today's findings.\n[]\n"),
        Some(tasks) => out.push_str(&tasks),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Evidence, FindingProcess, Fix, Severity, SysctlFix};

    fn finding(rule: &str, fix: Fix, process: Option<FindingProcess>) -> Finding {
        Finding {
            rule: rule.into(),
            title: format!("title of {rule}"),
            severity: Severity::High,
            exposure: crate::rules::Exposure::Exposed,
            exposure_reason: String::new(),
            cause: "2".into(),
            subject: if process.is_some() { "process" } else { "host" }.into(),
            netns: "host".into(),
            message: format!("message of {rule}"),
            process,
            count: None,
            examples: vec![],
            evidence: Evidence::default(),
            fix,
            lab: None,
            notes: vec![],
            accepted: None,
        }
    }

    pub(crate) fn sample() -> Vec<Finding> {
        vec![
            finding(
                "abort-on-overflow",
                Fix {
                    sysctls: vec![SysctlFix {
                        key: "net.ipv4.tcp_abort_on_overflow".into(),
                        value: "0".into(),
                        current: Some("1".into()),
                    }],
                    advice: None,
                },
                None,
            ),
            finding(
                "keepalive-vs-idle",
                Fix {
                    sysctls: vec![SysctlFix {
                        key: "net.ipv4.tcp_keepalive_time".into(),
                        value: "300".into(),
                        current: Some("7200".into()),
                    }],
                    advice: None,
                },
                None,
            ),
            finding(
                "linger-zero",
                Fix {
                    sysctls: vec![],
                    advice: Some(
                        "Do not set SO_LINGER {1, 0}; it's a reset on every close.".into(),
                    ),
                },
                Some(FindingProcess {
                    pid: 812,
                    comm: "nginx".into(),
                    workload: None,
                }),
            ),
        ]
    }

    #[test]
    fn sysctl_fragment_names_rule_why_and_old_value() {
        let set = FixSet::from_findings(&sample()).unwrap();
        let text = emit_sysctl(&set);
        assert!(text.contains("# abort-on-overflow: title of abort-on-overflow\n#   why: message of abort-on-overflow\n#   replaces: 1\nnet.ipv4.tcp_abort_on_overflow = 0\n"), "{text}");
        assert!(
            text.contains("# ADVICE [linger-zero] nginx (pid 812): "),
            "{text}"
        );
        assert!(
            !text.contains("SO_LINGER {1, 0}; it's a reset on every close.\nnet"),
            "{text}"
        );
    }

    #[test]
    fn sh_has_a_revert_section_in_reverse_order() {
        let set = FixSet::from_findings(&sample()).unwrap();
        let text = emit_sh(&set);
        let revert = text.find("'net.ipv4.tcp_keepalive_time=7200'").unwrap();
        let revert2 = text.find("'net.ipv4.tcp_abort_on_overflow=1'").unwrap();
        let apply = text.find("'net.ipv4.tcp_abort_on_overflow=0'").unwrap();
        assert!(revert < revert2 && revert2 < apply, "{text}");
    }

    /// For a namespace that was named, every command of the script enters it, and nothing
    /// tells to put the values in the host's sysctl.d.
    #[test]
    fn fixes_for_a_namespace_act_on_it() {
        let mut set = FixSet::from_findings(&sample()).unwrap();
        set.target = FixTarget {
            name: "blue green".into(),
            enter: Some("/run/netns/blue green".into()),
            netns_flag: Some("blue green".into()),
            initial: false,
        };
        let sh = emit_sh(&set);
        let lines: Vec<&str> = sh.lines().filter(|l| l.contains("sysctl -w")).collect();
        assert_eq!(lines.len(), 4, "{sh}");
        for l in lines {
            assert!(
                l.trim_start()
                    .starts_with("nsenter '--net=/run/netns/blue green' -- sysctl -w"),
                "{l}"
            );
        }
        let conf = emit_sysctl(&set);
        assert!(!conf.contains("install as"), "{conf}");
        assert!(
            conf.contains("`rstaudit apply --fixes --netns 'blue green'`"),
            "{conf}"
        );
        let tasks = emit_ansible(&set).unwrap();
        assert!(!tasks.contains("ansible.posix.sysctl"), "{tasks}");
        assert!(tasks.contains("--net=/run/netns/blue green"), "{tasks}");
    }

    #[test]
    fn rendered_outputs_are_stable() {
        let set = FixSet::from_findings(&sample()).unwrap();
        insta::assert_snapshot!("fix_sysctl", emit_sysctl(&set));
        insta::assert_snapshot!("fix_sh", emit_sh(&set));
        insta::assert_snapshot!("fix_ansible", emit_ansible(&set).unwrap());
        let rows = vec![
            Row {
                key: "net.ipv4.tcp_syncookies".into(),
                current: Some("0".into()),
                target: "1".into(),
                why: "without SYN cookies a SYN flood or burst fills the SYN queue and new connections fail".into(),
                change: true,
                not_applicable: None,
            },
            Row {
                key: "net.core.somaxconn".into(),
                current: Some("4096".into()),
                target: "4096".into(),
                why: "backlog clamp".into(),
                change: false,
                not_applicable: None,
            },
        ];
        insta::assert_snapshot!("diff_table", diff_table(&rows));
        let vrows = vec![VerifyRow {
            key: "net.ipv4.tcp_keepalive_time".into(),
            live: Some("600".into()),
            target: "<= 300".into(),
            status: LiveStatus::Drift,
            error: None,
            persist: PersistStatus::Ok,
            persisted: Some("300".into()),
            persisted_at: Some("/etc/sysctl.d/90-rstaudit.conf:7".into()),
            why: "the first probe must leave before the idle timeout".into(),
        }];
        insta::assert_snapshot!("verify_table", verify_table(&vrows));
    }

    #[test]
    fn conflicting_fixes_are_an_error() {
        let mut f = sample();
        f[1].fix.sysctls[0].key = "net.ipv4.tcp_abort_on_overflow".into();
        assert!(
            FixSet::from_findings(&f)
                .unwrap_err()
                .to_string()
                .contains("rules disagree")
        );
    }

    /// The disagreement reads as it always has: the key, who wants what.
    #[test]
    fn a_disagreement_names_the_key_and_both_values() {
        let mut f = sample();
        f[1].fix.sysctls[0].key = "net.ipv4.tcp_abort_on_overflow".into();
        let err = FixSet::from_findings(&f).unwrap_err();
        let first = format!("abort-on-overflow: {}", f[0].title);
        assert_eq!(
            err.to_string(),
            format!(
                "rules disagree on net.ipv4.tcp_abort_on_overflow: {first} wants 0, \
                 keepalive-vs-idle wants 300"
            )
        );
    }

    #[test]
    fn ansible_tasks_parse_as_yaml() {
        let set = FixSet::from_findings(&sample()).unwrap();
        let text = emit_ansible(&set).unwrap();
        let v: crate::yaml::Value = crate::yaml::from_str(&text).unwrap();
        let tasks = v.as_sequence().unwrap();
        assert_eq!(tasks.len(), 2);
        let m = &tasks[0]["ansible.posix.sysctl"];
        assert_eq!(m["name"].as_str(), Some("net.ipv4.tcp_abort_on_overflow"));
        assert_eq!(m["value"].as_str(), Some("0"));
        assert_eq!(m["sysctl_file"].as_str(), Some(DEFAULT_SYSCTL_FILE));
        let empty = emit_ansible(&FixSet::default()).unwrap();
        assert!(
            crate::yaml::from_str::<crate::yaml::Value>(&empty)
                .unwrap()
                .as_sequence()
                .unwrap()
                .is_empty()
        );
    }
}
