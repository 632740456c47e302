//! Step two of loading a rule: [`Rule::from_raw`] builds the checked rule from the file's
//! serde type, with every problem collected by the checker.
//!
//! One function per section of the rule; the order of the calls is the order of the
//! problems.

use super::check::{Checker, Kind, Level, valid_id};
use super::*;
use crate::rules::raw::{RawApplies, RawEvidence, RawFix, RawParam};

impl Rule {
    /// Check a parsed rule file. `text` is the file's text (for positions).
    pub fn from_raw(raw: &RawRule, text: &str, origin: &str) -> Result<Rule, Vec<Diagnostic>> {
        let mut ck = Checker {
            file: origin,
            loc: Locator::new(text),
            params: raw.params.keys().cloned().collect(),
            problems: Vec::new(),
            computed_raw: &raw.computed,
            computed: BTreeMap::new(),
            computing: Vec::new(),
        };
        let cause = check_heading(&mut ck, raw);
        let kernel = kernel_range(&mut ck, &raw.applies);
        let requires: Vec<String> = raw
            .applies
            .requires
            .iter()
            .filter_map(|k| ck.sysctl("requires", k))
            .collect();
        let params = checked_params(&mut ck, &raw.params);
        let computed = checked_computed(&mut ck, raw);
        let when = raw
            .when
            .as_ref()
            .and_then(|c| ck.cond("when", c, Level::Host));
        let matches = raw
            .matches
            .as_ref()
            .and_then(|c| ck.cond("match", c, Level::Socket));
        let suspects = raw
            .suspects
            .as_ref()
            .and_then(|c| ck.cond("suspects", c, Level::Socket));
        let min_count = raw
            .min_count
            .as_ref()
            .and_then(|o| ck.operand("min_count", o, Kind::Number, Level::Host));
        check_sections_fit_subject(&mut ck, raw);
        let message = ck.template(&raw.message);
        let evidence_counters = checked_evidence(&mut ck, &raw.evidence);
        let fix_sysctls = checked_fix(&mut ck, &raw.fix);
        check_lab_and_explanation(&mut ck, raw);
        if !ck.problems.is_empty() {
            return Err(ck.problems);
        }
        Ok(Rule {
            id: raw.id.clone(),
            title: raw.title.trim().to_string(),
            severity: raw.severity,
            cause: cause.unwrap_or_default().to_string(),
            subject: raw.subject,
            kernel,
            requires,
            absent_reason: raw.applies.absent_reason.clone(),
            params,
            computed,
            when,
            matches,
            min_count,
            suspects,
            message,
            evidence_counters,
            rst_reasons: raw.evidence.rst_reasons.clone(),
            fix_sysctls,
            advice: raw.fix.advice.as_ref().map(|a| a.trim().to_string()),
            lab: raw.lab.clone(),
            explanation: raw.explanation.trim().to_string(),
            references: raw.references.clone(),
            origin: origin.to_string(),
        })
    }
}

/// `id`, `title` and `cause`; the cause's name (`None`: unknown).
fn check_heading(ck: &mut Checker<'_>, raw: &RawRule) -> Option<&'static str> {
    if !valid_id(&raw.id) {
        ck.problem(
            Code::BadId,
            &[Step::Key("id")],
            format!("rule id {:?} is not valid", raw.id),
            "use lowercase letters, digits and -, e.g. linger-zero",
        );
    }
    if raw.title.trim().is_empty() {
        ck.problem(
            Code::EmptyText,
            &[Step::Key("title")],
            "the title is empty",
            "say in a few words what is wrong",
        );
    }
    let cause = known::cause(&raw.cause);
    if cause.is_none() {
        ck.problem(
            Code::UnknownCause,
            &[Step::Key("cause")],
            format!("unknown cause {:?}", raw.cause),
            format!(
                "use a cause of docs/causes.md: {}",
                known::CAUSES.join(", ")
            ),
        );
    }
    cause
}

/// `applies: kernel:`, the kernel versions the rule is for.
fn kernel_range(ck: &mut Checker<'_>, applies: &RawApplies) -> Option<VersionRange> {
    let text = applies.kernel.as_ref()?;
    match VersionRange::parse(text) {
        Ok(r) => Some(r),
        Err(why) => {
            ck.problem(
                Code::BadKernelRange,
                &[Step::Key("applies"), Step::Key("kernel")],
                format!("bad kernel version range {text:?}: {why}"),
                "write bounds such as \">=4.12, <6.0\"",
            );
            None
        }
    }
}

/// Whether `name` may name a parameter or a computed value: lowercase letters, digits, `_`.
fn valid_value_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `params:`, their names and defaults.
fn checked_params(
    ck: &mut Checker<'_>,
    raw: &BTreeMap<String, RawParam>,
) -> BTreeMap<String, Param> {
    let mut params = BTreeMap::new();
    for (name, p) in raw {
        if !valid_value_name(name) {
            ck.problem(
                Code::BadParam,
                &[Step::Key("params"), Step::Key(name)],
                format!("parameter name {name:?} is not valid"),
                "use lowercase letters, digits and _",
            );
        }
        if !p.default.is_finite() {
            ck.problem(
                Code::BadParam,
                &[Step::Key("params"), Step::Key(name)],
                "the default must be a finite number",
                "e.g. `default: 300`",
            );
        } else if let Some(spec) = crate::valid::params::spec(name)
            && let Err(e) = spec.check(p.default)
        {
            ck.problem(
                Code::BadParam,
                &[Step::Key("params"), Step::Key(name), Step::Key("default")],
                format!("default: {}", e.message),
                "a parameter of this name means the same in every rule",
            );
        }
        params.insert(
            name.clone(),
            Param {
                default: p.default,
                description: p.description.clone(),
                unit: p.unit.clone(),
            },
        );
    }
    params
}

/// `computed:`, in name order; a value another one uses is checked once
/// ([`Checker::computed_value`]).
fn checked_computed(ck: &mut Checker<'_>, raw: &RawRule) -> Vec<(String, Expr)> {
    let mut computed = Vec::new();
    for name in raw.computed.keys() {
        if !valid_value_name(name) || raw.params.contains_key(name) {
            ck.problem(
                Code::BadParam,
                &[Step::Key("computed"), Step::Key(name)],
                format!("computed value name {name:?} is not valid"),
                "use lowercase letters, digits and _, and a name no parameter has",
            );
        }
        if let Some(x) = ck.computed_value("computed", name) {
            computed.push((name.clone(), x));
        }
    }
    computed
}

/// The sections the rule's `subject:` needs (`when:` or `match:`) and those it may not have.
fn check_sections_fit_subject(ck: &mut Checker<'_>, raw: &RawRule) {
    match raw.subject {
        Subject::Host => {
            if raw.when.is_none() {
                ck.problem(
                    Code::MissingSection,
                    &[Step::Key("subject")],
                    "a host rule needs `when:`",
                    "add a condition on sysctls, counters or statistics",
                );
            }
            if raw.matches.is_some() {
                ck.problem(
                    Code::MisplacedSection,
                    &[Step::Key("match")],
                    "`match` is for listener, socket and process rules",
                    "use `when:` (and `suspects:` to name likely processes)",
                );
            }
        }
        _ => {
            if raw.matches.is_none() {
                ck.problem(
                    Code::MissingSection,
                    &[Step::Key("subject")],
                    format!("a {} rule needs `match:`", raw.subject.as_str()),
                    "add a condition on socket fields or options",
                );
            }
            if raw.suspects.is_some() {
                ck.problem(
                    Code::MisplacedSection,
                    &[Step::Key("suspects")],
                    "`suspects` is for host rules",
                    "remove it; the matching sockets already name their processes",
                );
            }
        }
    }
    if raw.min_count.is_some() && raw.subject != Subject::Process {
        ck.problem(
            Code::MisplacedSection,
            &[Step::Key("min_count")],
            "`min_count` is for process rules",
            "remove it or use `subject: process`",
        );
    }
}

/// `evidence:`, its counters (the checked ones returned) and its RST reasons.
fn checked_evidence(ck: &mut Checker<'_>, evidence: &RawEvidence) -> Vec<String> {
    let counters = evidence
        .counters
        .iter()
        .filter_map(|c| ck.counter("evidence", c))
        .collect();
    for r in &evidence.rst_reasons {
        if !known::RST_REASONS.contains(&r.as_str()) {
            ck.problem(
                Code::UnknownReason,
                &[Step::Key("evidence"), Step::Text(r)],
                format!("unknown RST reason {r:?}"),
                format!(
                    "use an sk_rst_reason name: {}",
                    known::RST_REASONS.join(", ")
                ),
            );
        }
    }
    counters
}

/// `fix:`, its sysctls (the checked ones returned); it must say something.
fn checked_fix(ck: &mut Checker<'_>, fix: &RawFix) -> Vec<(String, Expr)> {
    let sysctls = fix
        .sysctls
        .iter()
        .filter_map(|(key, value)| fix_sysctl(ck, key, value))
        .collect();
    if fix.sysctls.is_empty() && fix.advice.as_deref().is_none_or(|a| a.trim().is_empty()) {
        ck.problem(
            Code::BadFix,
            &[Step::Key("fix")],
            "the fix says nothing",
            "give `sysctls:` values or `advice:`",
        );
    }
    sysctls
}

/// One key of `fix: sysctls:` and its value: a constant the key can take, or an expression
/// over numbers, parameters, sysctls and statistics.
fn fix_sysctl(ck: &mut Checker<'_>, key: &str, value: &RawOperand) -> Option<(String, Expr)> {
    let checked = ck.checked_sysctl("fix", key)?;
    // A constant is judged now, as every value of the key is (`apply`, profiles).
    let constant = match value {
        RawOperand::Text(t) => Some(t.clone()),
        RawOperand::Number(n) => Some(fmt_num(n.floor())),
        _ => None,
    };
    if let Some(c) = constant
        && let Err(e) = crate::valid::value(&checked, &c)
    {
        ck.problem(
            e.code,
            &[Step::Key("fix"), Step::Key(key)],
            e.message,
            e.hint,
        );
        return None;
    }
    let v = match value {
        RawOperand::Text(t) => Some(Expr::Text(t.clone())),
        other => ck.operand("fix", other, Kind::Number, Level::Host),
    }?;
    let mut uses_counter = false;
    visit_expr(&v, &mut |e| {
        uses_counter |= matches!(e, Expr::Counter(..) | Expr::CounterOr(..))
    });
    if uses_counter {
        ck.problem(
            Code::BadFix,
            &[Step::Key("fix"), Step::Key(key)],
            "a fix value may use numbers, parameters, sysctls and statistics, not counters",
            "compute it from parameters and sysctls",
        );
        return None;
    }
    Some((checked.key.as_str().to_string(), v))
}

/// `lab:` names a known scenario; `explanation:` says something.
fn check_lab_and_explanation(ck: &mut Checker<'_>, raw: &RawRule) {
    if let Some(lab) = &raw.lab
        && !known::LAB_SCENARIOS.contains(&lab.as_str())
    {
        ck.problem(
            Code::UnknownScenario,
            &[Step::Key("lab")],
            format!("unknown lab scenario {lab:?}"),
            format!("use one of {}", known::LAB_SCENARIOS.join(", ")),
        );
    }
    if raw.explanation.trim().is_empty() {
        ck.problem(
            Code::EmptyText,
            &[Step::Key("explanation")],
            "the explanation is empty",
            "say why this makes resets likely",
        );
    }
}
