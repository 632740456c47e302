//! From the parsed audits to the [`FleetReport`]: the matrix, the order of the hosts,
//! the most common findings and their fixes, the failed and stale hosts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::read::{self, AuditFileError, AuditFinding, HostAudit, HostInput};
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

/// A fix (key, value) as the fleet counts it: on how many hosts, for which rules.
type FixTally = BTreeMap<(String, String), (u64, BTreeSet<String>)>;

/// What the hosts add up to while their audits are read: the rules, the fixes, the
/// counts by severity and exposure.
#[derive(Default)]
struct Tally {
    rules: HashMap<String, RuleAcc>,
    fixes: FixTally,
    counts: Counts,
    findings: u64,
    accepted: u64,
}

/// One host's findings, gathered from its namespaces: the worst cell of each rule, the
/// fixes each rule asks for, the kernels and the namespaces.
#[derive(Default)]
struct HostFindings<'a> {
    cells: BTreeMap<String, Cell>,
    fixes: BTreeMap<&'a str, BTreeSet<(String, String)>>,
    kernels: Vec<String>,
    namespaces: Vec<String>,
    count: u64,
    accepted: u64,
}

/// Build the fleet view from the parsed files (in the order given).
pub fn build(files: Vec<Parsed>, opts: &FleetOptions) -> FleetReport {
    let mut hosts: Vec<HostRow> = Vec::new();
    let mut failed: Vec<FailedHost> = Vec::new();
    let mut tally = Tally::default();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut duplicates: Vec<Duplicate> = Vec::new();
    let counted = counted_per_host(&files);

    for p in files {
        if let Some(d) = duplicate(&p, &counted) {
            duplicates.push(d);
            continue;
        }
        // Two files of the same name (in different directories) stay two hosts.
        let seen = names.entry(p.host.clone()).or_insert(0);
        *seen += 1;
        let host = if *seen == 1 { p.host } else { p.file.clone() };
        match p.audit {
            Ok(audit) => hosts.push(tally.host(host, p.file, p.modified_ms, audit, opts)),
            Err(e) => failed.push(FailedHost {
                host,
                file: p.file,
                reason: e.to_string(),
            }),
        }
    }

    hosts.sort_by_cached_key(|h| (std::cmp::Reverse(risk(h)), h.host.clone()));
    let summary = summary(
        &hosts,
        &failed,
        &duplicates,
        tally.counts,
        (tally.findings, tally.accepted),
    );
    FleetReport {
        schema: super::FLEET_SCHEMA,
        tool: format!("rstaudit {}", env!("CARGO_PKG_VERSION")),
        generated_at_ms: opts.now_ms,
        max_age_seconds: opts.max_age_seconds,
        fail_on: opts
            .fail_on
            .map_or_else(|| "never".to_string(), |t| t.as_text()),
        summary,
        rules: rule_rows(tally.rules),
        fixes: fix_rows(tally.fixes),
        hosts,
        failed,
        duplicates,
    }
}

/// A host's identity (machine id, hostname), as [`Parsed::identity`] gives it.
type Identity = (String, Option<String>);

/// For each host several files have an audit of, the file that counts: the newest audit
/// (the first given of equally new ones). Files given twice are left to [`duplicate`].
fn counted_per_host(files: &[Parsed]) -> HashMap<Identity, String> {
    let mut newest: HashMap<Identity, usize> = HashMap::new();
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
    newest
        .into_iter()
        .map(|(k, i)| (k, files[i].file.clone()))
        .collect()
}

/// Whether the file is counted once with another: the same file given again, or an audit
/// of a host whose counted audit (`counted`) is in another file.
fn duplicate(p: &Parsed, counted: &HashMap<Identity, String>) -> Option<Duplicate> {
    let (same_as, reason) = match &p.same_file_as {
        Some(first) => (first.clone(), "same file"),
        None => {
            let key = p.identity()?;
            let file = &counted[&key];
            if *file == p.file {
                return None;
            }
            (file.clone(), "same host")
        }
    };
    Some(Duplicate {
        host: p.host.clone(),
        file: p.file.clone(),
        same_as,
        reason: reason.into(),
    })
}

impl Tally {
    /// One host's row, its findings counted into the fleet's.
    fn host(
        &mut self,
        host: String,
        file: String,
        modified_ms: Option<u64>,
        audit: HostAudit,
        opts: &FleetOptions,
    ) -> HostRow {
        let (taken_at_ms, time_source) = when_taken(audit.taken_at_ms, modified_ms);
        let age_seconds = taken_at_ms.map(|t| {
            (opts.now_ms as i64)
                .saturating_sub(t as i64)
                .div_euclid(1000)
        });
        let stale = age_seconds.is_none_or(|a| a > opts.max_age_seconds as i64);
        let HostFindings {
            cells,
            fixes,
            kernels,
            namespaces,
            count,
            accepted,
        } = self.findings_of(&audit);
        self.findings += count;
        self.accepted += accepted;
        let waiver_problems = waiver_problems(&audit);
        let rules_fail = self.count_rules(&cells, opts.fail_on);
        let failing = (opts.fail_on.is_some() && !waiver_problems.is_empty()) || rules_fail;
        self.count_fixes(fixes);
        let worst = cells.values().max_by_key(|c| c.rank()).cloned();
        let (hostname, machine_id) = match audit.host {
            Some(h) => (h.hostname, h.machine_id),
            None => (None, None),
        };
        HostRow {
            host,
            file,
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
        }
    }

    /// The findings of every namespace of the audit, gathered per rule; each is counted
    /// by severity and exposure, and its rule's title, severity and advice noted.
    fn findings_of<'a>(&mut self, audit: &'a HostAudit) -> HostFindings<'a> {
        let mut found = HostFindings::default();
        for ns in &audit.namespaces {
            if !ns.kernel.is_empty() && !found.kernels.contains(&ns.kernel) {
                found.kernels.push(ns.kernel.clone());
            }
            found.namespaces.push(ns.netns.clone());
            for f in &ns.findings {
                found.count += 1;
                found.accepted += u64::from(f.accepted.is_some());
                self.counts.add(f.severity, f.exposure);
                merge_cell(&mut found.cells, f);
                self.rules.entry(f.rule.clone()).or_default().note(f);
                let set = found.fixes.entry(f.rule.as_str()).or_default();
                for s in &f.fix.sysctls {
                    set.insert((s.key.clone(), s.value.clone()));
                }
            }
        }
        found
    }

    /// Count a host's cells into their rules: one more host, by exposure, failing,
    /// accepted. Whether any of them fails.
    fn count_rules(&mut self, cells: &BTreeMap<String, Cell>, fail_on: Option<Threshold>) -> bool {
        let mut failing = false;
        for (rule, cell) in cells {
            let acc = self
                .rules
                .get_mut(rule)
                .expect("every cell's rule was counted");
            acc.hosts += 1;
            *acc.by_exposure
                .entry(cell.exposure.as_str().to_string())
                .or_default() += 1;
            if cell.fails(fail_on) {
                acc.hosts_failing += 1;
                failing = true;
            }
            acc.hosts_accepted += u64::from(cell.accepted);
        }
        failing
    }

    /// Count a host's fixes, once per host: into each rule that asks for them, and into
    /// the fleet's, with the rules that ask.
    fn count_fixes(&mut self, host_fixes: BTreeMap<&str, BTreeSet<(String, String)>>) {
        let mut host_all: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for (rule, set) in host_fixes {
            let acc = self.rules.get_mut(rule).expect("counted");
            for kv in set {
                *acc.fixes.entry(kv.clone()).or_default() += 1;
                host_all.entry(kv).or_default().insert(rule.to_string());
            }
        }
        for (kv, rs) in host_all {
            let e = self.fixes.entry(kv).or_default();
            e.0 += 1;
            e.1.extend(rs);
        }
    }
}

impl RuleAcc {
    /// What a finding says of its rule: the first title, the worst severity, the first
    /// advice of a finding without sysctls.
    fn note(&mut self, f: &AuditFinding) {
        if self.title.is_empty() {
            self.title = f.title.clone();
        }
        self.severity = self.severity.max(Some(f.severity));
        if self.advice.is_none() && f.fix.sysctls.is_empty() {
            self.advice = f.fix.advice.clone();
        }
    }
}

/// When the audit was taken and what says so: the audit itself, else the file's time.
fn when_taken(audit_ms: Option<u64>, modified_ms: Option<u64>) -> (Option<u64>, &'static str) {
    match (audit_ms, modified_ms) {
        (Some(t), _) => (Some(t), "audit"),
        (None, Some(m)) => (Some(m), "file"),
        (None, None) => (None, "none"),
    }
}

/// A finding into its rule's cell on the host: the worst finding stands for the rule,
/// with the number of them.
fn merge_cell(cells: &mut BTreeMap<String, Cell>, f: &AuditFinding) {
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
}

/// The host's waivers that expired or went unused.
fn waiver_problems(audit: &HostAudit) -> Vec<String> {
    audit
        .waivers
        .iter()
        .filter(|w| w.state == "expired" || w.state == "unused")
        .map(|w| format!("{}: {} ({})", w.state, w.rule, w.waiver))
        .collect()
}

/// The rules' rows, on most hosts first, then most failing, worst, by id.
fn rule_rows(rules: HashMap<String, RuleAcc>) -> Vec<RuleRow> {
    let mut rows: Vec<RuleRow> = rules
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
    rows.sort_by(|a, b| {
        b.hosts
            .cmp(&a.hosts)
            .then(b.hosts_failing.cmp(&a.hosts_failing))
            .then(b.severity.cmp(&a.severity))
            .then(a.rule.cmp(&b.rule))
    });
    rows
}

/// The fleet's fixes, on most hosts first, then by key.
fn fix_rows(fixes: FixTally) -> Vec<FleetFix> {
    let mut rows: Vec<FleetFix> = fixes
        .into_iter()
        .map(|((key, value), (hosts, rules))| FleetFix {
            key,
            value,
            hosts,
            rules: rules.into_iter().collect(),
        })
        .collect();
    rows.sort_by(|a, b| b.hosts.cmp(&a.hosts).then(a.key.cmp(&b.key)));
    rows
}

/// The numbers at the top of the report; `totals` are the findings and the accepted ones.
fn summary(
    hosts: &[HostRow],
    failed: &[FailedHost],
    duplicates: &[Duplicate],
    counts: Counts,
    (findings, accepted): (u64, u64),
) -> FleetSummary {
    let audited = hosts.len() as u64;
    FleetSummary {
        files: audited + failed.len() as u64 + duplicates.len() as u64,
        audited,
        failed: failed.len() as u64,
        duplicates: duplicates.len() as u64,
        stale: hosts.iter().filter(|h| h.stale).count() as u64,
        hosts_with_findings: hosts.iter().filter(|h| h.findings > 0).count() as u64,
        hosts_failing: hosts.iter().filter(|h| h.failing).count() as u64,
        findings,
        accepted,
        waiver_problems: hosts.iter().map(|h| h.waiver_problems.len() as u64).sum(),
        by_severity: counts.by_severity,
        by_exposure: counts.by_exposure,
        failing: hosts.iter().any(|h| h.failing),
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
