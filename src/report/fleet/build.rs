//! From the parsed audits to the [`FleetReport`]: the matrix, the order of the hosts,
//! the most common findings and their fixes, the failed and stale hosts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::read::{self, AuditFileError, HostAudit, HostInput};
use super::{
    Cell, Duplicate, FailedHost, FixCount, FleetFix, FleetReport, FleetSummary, HostRow, RuleRow,
};
use crate::report::{Counts, SEVERITIES};
use crate::rules::{Severity, Threshold};

/// What the report is judged by.
#[derive(Debug, Clone, Copy)]
pub struct FleetOptions {
    /// The report's time, milliseconds since the epoch.
    pub now_ms: u64,
    /// Older audits are stale.
    pub max_age_seconds: u64,
    /// None: never fail.
    pub fail_on: Option<Threshold>,
}

/// One file after parsing: the host's audit, or why it cannot be used.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub host: String,
    pub file: String,
    pub modified_ms: Option<u64>,
    pub audit: Result<HostAudit, AuditFileError>,
    /// The same file as this earlier one: counted once.
    pub same_file_as: Option<String>,
}

impl Parsed {
    /// Which host the audit is of, when its audit names a machine id: (machine id,
    /// hostname). Two audits with the same key are of one host.
    fn identity(&self) -> Option<(String, Option<String>)> {
        let host = self.audit.as_ref().ok()?.host.as_ref()?;
        Some((host.machine_id.clone()?, host.hostname.clone()))
    }

    /// When the audit's facts were collected, or the file was written.
    fn when(&self) -> u64 {
        self.audit
            .as_ref()
            .ok()
            .and_then(|a| a.taken_at_ms)
            .or(self.modified_ms)
            .unwrap_or(0)
    }
}

/// Parse one file as the command layer read it (no I/O).
pub fn parse_input(input: HostInput) -> Parsed {
    let audit = match &input.content {
        Ok(bytes) => read::parse(bytes),
        Err(e) => Err(AuditFileError::Unreadable(e.0.clone())),
    };
    Parsed {
        host: input.host,
        file: input.file,
        modified_ms: input.modified_ms,
        audit,
        same_file_as: input.same_file_as,
    }
}

/// Per rule, while collecting.
#[derive(Default)]
struct RuleAcc {
    title: String,
    severity: Option<Severity>,
    hosts: u64,
    by_exposure: BTreeMap<String, u64>,
    hosts_failing: u64,
    hosts_accepted: u64,
    fixes: BTreeMap<(String, String), u64>,
    advice: Option<String>,
}

/// Build the fleet view from the parsed files (in the order given).
pub fn build(files: Vec<Parsed>, opts: &FleetOptions) -> FleetReport {
    let mut hosts: Vec<HostRow> = Vec::new();
    let mut failed: Vec<FailedHost> = Vec::new();
    let mut rules: HashMap<String, RuleAcc> = HashMap::new();
    let mut fixes: BTreeMap<(String, String), (u64, BTreeSet<String>)> = BTreeMap::new();
    let mut counts = Counts::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut findings_total = 0u64;
    let mut accepted_total = 0u64;
    let mut duplicates: Vec<Duplicate> = Vec::new();
    // One host, several audits: the newest counts (the first given of equally new ones).
    let mut newest: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (i, p) in files.iter().enumerate() {
        if p.same_file_as.is_some() {
            continue;
        }
        if let Some(key) = p.identity() {
            match newest.get(&key) {
                Some(&j) if files[j].when() >= p.when() => {}
                _ => {
                    newest.insert(key, i);
                }
            }
        }
    }
    let counted: HashMap<(String, Option<String>), String> = newest
        .into_iter()
        .map(|(k, i)| (k, files[i].file.clone()))
        .collect();

    for p in files {
        if let Some(first) = &p.same_file_as {
            duplicates.push(Duplicate {
                host: p.host,
                file: p.file,
                same_as: first.clone(),
                reason: "same file".into(),
            });
            continue;
        }
        let identity = p.identity();
        if let Some(key) = &identity
            && counted[key] != p.file
        {
            duplicates.push(Duplicate {
                host: p.host,
                file: p.file,
                same_as: counted[key].clone(),
                reason: "same host".into(),
            });
            continue;
        }
        // Two files of the same name (in different directories) stay two hosts.
        let seen = names.entry(p.host.clone()).or_insert(0);
        *seen += 1;
        let host = if *seen == 1 { p.host } else { p.file.clone() };
        let audit = match p.audit {
            Ok(a) => a,
            Err(e) => {
                failed.push(FailedHost {
                    host,
                    file: p.file,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let (taken_at_ms, time_source) = match (audit.taken_at_ms, p.modified_ms) {
            (Some(t), _) => (Some(t), "audit"),
            (None, Some(m)) => (Some(m), "file"),
            (None, None) => (None, "none"),
        };
        let age_seconds = taken_at_ms.map(|t| {
            (opts.now_ms as i64)
                .saturating_sub(t as i64)
                .div_euclid(1000)
        });
        let stale = age_seconds.is_none_or(|a| a > opts.max_age_seconds as i64);

        let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
        let mut host_fixes: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut kernels: Vec<String> = Vec::new();
        let mut namespaces: Vec<String> = Vec::new();
        let mut count = 0u64;
        let mut accepted = 0u64;
        for ns in &audit.namespaces {
            if !ns.kernel.is_empty() && !kernels.contains(&ns.kernel) {
                kernels.push(ns.kernel.clone());
            }
            namespaces.push(ns.netns.clone());
            for f in &ns.findings {
                count += 1;
                accepted += u64::from(f.accepted.is_some());
                counts.add(f.severity, f.exposure);
                let new = Cell {
                    severity: f.severity,
                    exposure: f.exposure,
                    findings: 1,
                    accepted: f.accepted.is_some(),
                    reason: f.exposure_reason.clone(),
                };
                match cells.get_mut(&f.rule) {
                    Some(c) => {
                        let n = c.findings + 1;
                        if new.rank() > c.rank() {
                            *c = new;
                        }
                        c.findings = n;
                    }
                    None => {
                        cells.insert(f.rule.clone(), new);
                    }
                }
                let acc = rules.entry(f.rule.clone()).or_default();
                if acc.title.is_empty() {
                    acc.title = f.title.clone();
                }
                acc.severity = acc.severity.max(Some(f.severity));
                if acc.advice.is_none() && f.fix.sysctls.is_empty() {
                    acc.advice = f.fix.advice.clone();
                }
                let set = host_fixes.entry(f.rule.as_str()).or_default();
                for s in &f.fix.sysctls {
                    set.insert((s.key.clone(), s.value.clone()));
                }
            }
        }
        findings_total += count;
        accepted_total += accepted;
        let waiver_problems: Vec<String> = audit
            .waivers
            .iter()
            .filter(|w| w.state == "expired" || w.state == "unused")
            .map(|w| format!("{}: {} ({})", w.state, w.rule, w.waiver))
            .collect();
        let mut failing = opts.fail_on.is_some() && !waiver_problems.is_empty();
        for (rule, cell) in &cells {
            let acc = rules.get_mut(rule).expect("every cell's rule was counted");
            acc.hosts += 1;
            *acc.by_exposure
                .entry(cell.exposure.as_str().to_string())
                .or_default() += 1;
            if cell.fails(opts.fail_on) {
                acc.hosts_failing += 1;
                failing = true;
            }
            acc.hosts_accepted += u64::from(cell.accepted);
        }
        let mut host_all: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for (rule, set) in host_fixes {
            let acc = rules.get_mut(rule).expect("counted");
            for kv in set {
                *acc.fixes.entry(kv.clone()).or_default() += 1;
                host_all.entry(kv).or_default().insert(rule.to_string());
            }
        }
        for (kv, rs) in host_all {
            let e = fixes.entry(kv).or_default();
            e.0 += 1;
            e.1.extend(rs);
        }
        let worst = cells.values().max_by_key(|c| c.rank()).cloned();
        let (hostname, machine_id) = match audit.host {
            Some(h) => (h.hostname, h.machine_id),
            None => (None, None),
        };
        hosts.push(HostRow {
            host,
            file: p.file,
            hostname,
            machine_id,
            taken_at_ms,
            time_source: time_source.to_string(),
            age_seconds,
            stale,
            tool: audit.tool,
            kernels,
            namespaces,
            findings: count,
            accepted,
            waiver_problems,
            failing,
            worst,
            cells,
        });
    }

    hosts.sort_by_cached_key(|h| (std::cmp::Reverse(risk(h)), h.host.clone()));

    let mut rule_rows: Vec<RuleRow> = rules
        .into_iter()
        .map(|(rule, acc)| {
            let mut fixes: Vec<FixCount> = acc
                .fixes
                .into_iter()
                .map(|((key, value), hosts)| FixCount { key, value, hosts })
                .collect();
            fixes.sort_by(|a, b| b.hosts.cmp(&a.hosts).then(a.key.cmp(&b.key)));
            RuleRow {
                rule,
                title: acc.title,
                severity: acc.severity.unwrap_or(Severity::Info),
                hosts: acc.hosts,
                by_exposure: acc.by_exposure,
                hosts_failing: acc.hosts_failing,
                hosts_accepted: acc.hosts_accepted,
                fixes,
                advice: acc.advice,
            }
        })
        .collect();
    rule_rows.sort_by(|a, b| {
        b.hosts
            .cmp(&a.hosts)
            .then(b.hosts_failing.cmp(&a.hosts_failing))
            .then(b.severity.cmp(&a.severity))
            .then(a.rule.cmp(&b.rule))
    });
    let mut fix_rows: Vec<FleetFix> = fixes
        .into_iter()
        .map(|((key, value), (hosts, rules))| FleetFix {
            key,
            value,
            hosts,
            rules: rules.into_iter().collect(),
        })
        .collect();
    fix_rows.sort_by(|a, b| b.hosts.cmp(&a.hosts).then(a.key.cmp(&b.key)));

    let audited = hosts.len() as u64;
    let summary = FleetSummary {
        files: audited + failed.len() as u64 + duplicates.len() as u64,
        audited,
        failed: failed.len() as u64,
        duplicates: duplicates.len() as u64,
        stale: hosts.iter().filter(|h| h.stale).count() as u64,
        hosts_with_findings: hosts.iter().filter(|h| h.findings > 0).count() as u64,
        hosts_failing: hosts.iter().filter(|h| h.failing).count() as u64,
        findings: findings_total,
        accepted: accepted_total,
        waiver_problems: hosts.iter().map(|h| h.waiver_problems.len() as u64).sum(),
        by_severity: counts.by_severity,
        by_exposure: counts.by_exposure,
        failing: hosts.iter().any(|h| h.failing),
    };
    FleetReport {
        schema: super::FLEET_SCHEMA,
        tool: format!("rstaudit {}", env!("CARGO_PKG_VERSION")),
        generated_at_ms: opts.now_ms,
        max_age_seconds: opts.max_age_seconds,
        fail_on: opts
            .fail_on
            .map_or_else(|| "never".to_string(), |t| t.as_text()),
        summary,
        rules: rule_rows,
        fixes: fix_rows,
        hosts,
        failed,
        duplicates,
    }
}

/// What is at risk on a host, compared worst first: the number of its rules at each
/// (exposure, severity), from observed/critical down to latent/info. Rules a waiver
/// accepts on the host are not at risk.
fn risk(h: &HostRow) -> [u64; 15] {
    let mut key = [0u64; 15];
    for c in h.cells.values().filter(|c| !c.accepted) {
        let e = 2 - c.exposure as usize;
        let s = SEVERITIES
            .iter()
            .position(|x| *x == c.severity)
            .unwrap_or(4);
        key[e * 5 + s] += 1;
    }
    key
}
