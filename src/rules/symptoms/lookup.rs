//! From a symptom text to the causes that explain it: score every cause by the terms,
//! errno values and times the text holds, and say for each match which rules check for
//! it, how to confirm it on this host and what the application can do.

use serde::{Deserialize, Serialize};

use super::catalogue::{Catalogue, Cause};
use super::errno::{ERRNOS, Errno};
use super::fit;
use super::host::HostView;
use super::words::Haystack;
use crate::rules::known;
use crate::rules::load::RuleSet;

/// The version of the answer's JSON. 2: causes by name (`number` the alias), `why`,
/// `host`, `schema`.
pub const SCHEMA: u32 = 2;

/// The answer to one symptom (`rstaudit explain TEXT`; docs/explain.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explanation {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// The text looked up.
    pub query: String,
    /// Errno values recognised in the text (by name, number or message).
    pub errors: Vec<ErrnoRef>,
    /// A time recognised in the text ("60 s idle"), in seconds.
    pub seconds: Option<u64>,
    /// What the text says about when and on which side (`connecting`, ...).
    pub said: Vec<String>,
    /// Whose facts ranked the causes (`this host`, `snapshot FILE`), or None for the text
    /// alone.
    pub host: Option<String>,
    /// The matching causes, best first.
    pub causes: Vec<CauseMatch>,
    /// Matching causes left out by the limit.
    pub omitted: usize,
    /// When nothing matched: texts that would.
    pub examples: Vec<String>,
}

/// An errno named by the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrnoRef {
    pub name: String,
    pub number: i32,
    pub message: String,
}

/// One cause that matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CauseMatch {
    /// The cause's stable name (docs/causes.md): `unread-close`, `middlebox-idle`.
    pub cause: String,
    /// The number the cause has in the article the catalogue started from, accepted as
    /// an alias of the name.
    pub number: Option<String>,
    pub title: String,
    /// The sum of the points of every reason, at least 1.
    pub score: u32,
    /// What in the text matched: terms, errno names, the time.
    pub matched: Vec<String>,
    /// Why the cause ranks where it does: each reason with its points, the text's first,
    /// then how the symptom fits, then what the host shows.
    pub why: Vec<Why>,
    pub summary: String,
    /// The rules that check for the cause on a host.
    pub rules: Vec<RuleRef>,
    /// Commands that would confirm the cause on this host.
    pub confirm: Vec<Confirm>,
    /// What the application can do.
    pub advice: Vec<String>,
}

/// One reason for a cause's rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Why {
    pub points: i64,
    pub reason: String,
}

/// A rule that checks for a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRef {
    pub id: String,
    pub title: String,
    pub severity: String,
    /// The lab scenario that reproduces it, if any.
    pub lab: Option<String>,
}

/// How a command confirms a cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfirmKind {
    /// The audit of this host's settings, sockets and counters.
    Audit,
    /// Watching real resets.
    Live,
    /// Reproducing the cause in throwaway network namespaces.
    Lab,
}

/// A command that would confirm a cause on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    pub kind: ConfirmKind,
    pub command: String,
    /// What it shows.
    pub shows: String,
}

/// Texts that match, offered when nothing did.
pub const EXAMPLES: &[&str] = &[
    "Connection reset by peer",
    "java.net.SocketException: Connection reset",
    "write: broken pipe",
    "connection reset after 60 s idle behind a load balancer",
    "resets only after a server restart",
    "ECONNREFUSED",
    "connect timed out",
    "middlebox-idle",
];

/// Look `text` up. `limit` keeps the best N causes (0: all). With `host`, what that host
/// shows moves each cause up or down.
pub fn lookup(
    catalogue: &Catalogue,
    rules: &RuleSet,
    text: &str,
    limit: usize,
    host: Option<&HostView>,
) -> Explanation {
    let hay = Haystack::new(text);
    let errors: Vec<&'static Errno> = ERRNOS.iter().filter(|e| names(&hay, e)).collect();
    let seconds = duration(&hay);
    let said = fit::read(&hay, &errors, seconds);
    let mut scored: Vec<(u32, Vec<String>, Vec<Why>, &Cause)> = match named_cause(text, catalogue) {
        Some(cause) => {
            let why = vec![Why {
                points: i64::from(MAX_SCORE),
                reason: format!("the text names cause {}", cause.id),
            }];
            vec![(MAX_SCORE, vec![format!("cause {}", cause.id)], why, cause)]
        }
        None => catalogue
            .causes
            .iter()
            .filter_map(|c| {
                let (points, matched, mut why) = score(c, &hay, &errors, seconds);
                if points == 0 {
                    return None;
                }
                let mut reasons = fit::judge(&said, &c.fits);
                if let Some(h) = host {
                    reasons.extend(h.judge(&rules_of(c, rules)));
                }
                let total = reasons
                    .iter()
                    .fold(i64::from(points), |sum, r| sum + r.points);
                why.extend(reasons.into_iter().map(|r| Why {
                    points: r.points,
                    reason: r.text,
                }));
                let total = u32::try_from(total.max(1)).unwrap_or(u32::MAX);
                Some((total, matched, why, c))
            })
            .collect(),
    };
    // Stable: equal scores keep the order of the catalogue.
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    let keep = if limit == 0 { scored.len() } else { limit };
    let omitted = scored.len().saturating_sub(keep);
    let causes: Vec<CauseMatch> = scored
        .into_iter()
        .take(keep)
        .map(|(score, matched, why, c)| describe(c, rules, score, matched, why, seconds))
        .collect();
    let mut said_text: Vec<String> = said.phases.iter().map(|p| p.as_str().to_string()).collect();
    said_text.extend(said.sides.iter().map(|s| s.as_str().to_string()));
    Explanation {
        schema: SCHEMA,
        query: text.to_string(),
        errors: errors
            .iter()
            .map(|e| ErrnoRef {
                name: e.name.to_string(),
                number: e.number,
                message: e.message.to_string(),
            })
            .collect(),
        seconds,
        said: said_text,
        host: host.map(|h| h.label.clone()),
        examples: if causes.is_empty() {
            EXAMPLES.iter().map(|e| e.to_string()).collect()
        } else {
            Vec::new()
        },
        causes,
        omitted,
    }
}

/// The score of a cause named by the text.
const MAX_SCORE: u32 = 100;

/// `unread-close`, `4`, `2b`, `cause 5`, `#13`: the cause with that name or number, when the
/// whole text is one.
fn named_cause<'c>(text: &str, catalogue: &'c Catalogue) -> Option<&'c Cause> {
    let t = text.trim().to_lowercase();
    let t = t.strip_prefix("seed").map_or(t.as_str(), str::trim_start);
    let t = t.strip_prefix("cause").map_or(t, str::trim_start);
    let t = t.strip_prefix('#').unwrap_or(t).trim();
    known::cause(t).and_then(|name| catalogue.get(name))
}

/// The rules that check for a cause: those whose `cause:` it is, then its related rules.
fn rules_of<'r>(cause: &Cause, rules: &'r RuleSet) -> Vec<&'r crate::rules::Rule> {
    let mut checked: Vec<&crate::rules::Rule> =
        rules.rules.iter().filter(|r| r.cause == cause.id).collect();
    checked.extend(cause.related_rules.iter().filter_map(|id| rules.get(id)));
    checked
}

/// Whether the text names this errno: its name, its message or another wording, or its
/// number where a number means an errno (`errno 104`, `(104: ...`, `[Errno 104]`, `104` alone).
fn names(hay: &Haystack, e: &Errno) -> bool {
    let lower = e.name.to_lowercase();
    if hay.list.contains(&lower) {
        return true;
    }
    let said = std::iter::once(e.message)
        .chain(e.aliases.iter().copied())
        .filter_map(super::words::Needle::of)
        .any(|n| n.is_in(hay));
    if said {
        return true;
    }
    let n = e.number.to_string();
    if (hay.list.len() == 1 && hay.list[0] == n) || hay.lower.contains(&format!("({n}:")) {
        return true;
    }
    hay.list
        .windows(2)
        .any(|w| matches!(w[0].as_str(), "errno" | "error" | "err" | "code") && w[1] == n)
}

/// Units of time: (word, seconds it is worth, whether it may run into the next words, as in
/// Chinese where no space follows). Milliseconds are left out: a time that short is a
/// latency or a connect timeout, not how long a connection stayed idle.
const UNITS: &[(&str, u64, bool)] = &[
    ("s", 1, false),
    ("sec", 1, false),
    ("secs", 1, false),
    ("second", 1, false),
    ("seconds", 1, false),
    ("m", 60, false),
    ("min", 60, false),
    ("mins", 60, false),
    ("minute", 60, false),
    ("minutes", 60, false),
    ("h", 3600, false),
    ("hr", 3600, false),
    ("hrs", 3600, false),
    ("hour", 3600, false),
    ("hours", 3600, false),
    ("秒", 1, true),
    ("分钟", 60, true),
    ("小时", 3600, true),
];

fn unit(word: &str) -> Option<u64> {
    UNITS
        .iter()
        .find(|(u, _, runs_on)| word == *u || *runs_on && word.starts_with(u))
        .map(|(_, s, _)| *s)
}

/// How many words from a time the word "idle" may be to make it the idle time.
const NEAR: usize = 4;

/// The time in the text (`60 s`, `60s`, `5 minutes`, `5分钟`) in seconds: the one nearest the
/// word "idle" (or 空闲) if one is within [`NEAR`] words of it, else the first one.
fn duration(hay: &Haystack) -> Option<u64> {
    let mut times: Vec<(usize, u64)> = Vec::new();
    for (i, w) in hay.list.iter().enumerate() {
        // A number starts the word, or follows Chinese text in it (`移动网络下5分钟`).
        let start = w
            .char_indices()
            .find(|(at, c)| {
                c.is_ascii_digit() && (*at == 0 || !w[..*at].ends_with(|p: char| p.is_ascii()))
            })
            .map(|(at, _)| at);
        let Some(start) = start else { continue };
        let w = &w[start..];
        let digits = w.chars().take_while(char::is_ascii_digit).count();
        if digits > 9 {
            continue;
        }
        let (number, rest) = w.split_at(digits);
        let per = if rest.is_empty() {
            hay.list.get(i + 1).and_then(|next| unit(next))
        } else {
            unit(rest)
        };
        // `1.5 minutes`: the words split at the point; join them back.
        let whole = match i.checked_sub(1).map(|p| &hay.list[p]) {
            Some(prev)
                if start == 0
                    && prev.bytes().all(|b| b.is_ascii_digit())
                    && hay.lower.contains(&format!("{prev}.{number}")) =>
            {
                format!("{prev}.{number}")
            }
            _ => number.to_string(),
        };
        if let (Some(per), Ok(n)) = (per, whole.parse::<f64>()) {
            let seconds = (n * per as f64).ceil();
            if seconds >= 1.0 {
                times.push((i, seconds as u64));
            }
        }
    }
    let idle: Vec<usize> = (0..hay.list.len())
        .filter(|&j| hay.list[j] == "idle" || hay.list[j].contains("空闲"))
        .collect();
    let distance = |i: usize| idle.iter().map(|&j| i.abs_diff(j)).min();
    times
        .iter()
        .filter_map(|&(i, s)| distance(i).filter(|&d| d <= NEAR).map(|d| (d, i, s)))
        .min()
        .map(|(_, _, s)| s)
        .or(times.first().map(|&(_, s)| s))
}

fn score(
    cause: &Cause,
    hay: &Haystack,
    errors: &[&Errno],
    seconds: Option<u64>,
) -> (u32, Vec<String>, Vec<Why>) {
    let mut total = 0;
    let mut matched = Vec::new();
    let mut why = Vec::new();
    let mut add = |points: u32, what: String, why_text: String| {
        total += points;
        why.push(Why {
            points: i64::from(points),
            reason: why_text,
        });
        matched.push(what);
    };
    for t in &cause.terms {
        if t.needle.is_in(hay) {
            add(
                t.points,
                t.text.clone(),
                format!("the text says {:?}", t.text),
            );
        }
    }
    for (e, points) in &cause.errors {
        if errors.iter().any(|f| f.name == e.name) {
            add(
                *points,
                e.name.to_string(),
                format!("the error is {}", e.name),
            );
        }
    }
    if let (Some(points), Some(s)) = (cause.duration, seconds) {
        add(
            points,
            format!("{s} s"),
            format!("the text names a time ({s} s)"),
        );
    }
    (total, matched, why)
}

fn describe(
    cause: &Cause,
    rules: &RuleSet,
    score: u32,
    matched: Vec<String>,
    why: Vec<Why>,
    seconds: Option<u64>,
) -> CauseMatch {
    let checked = rules_of(cause, rules);
    let refs = checked
        .iter()
        .map(|r| RuleRef {
            id: r.id.clone(),
            title: r.title.clone(),
            severity: r.severity.as_str().to_string(),
            lab: r.lab.clone(),
        })
        .collect();
    CauseMatch {
        cause: cause.id.clone(),
        number: known::cause_number(&cause.id).map(str::to_string),
        title: cause.title.clone(),
        score,
        matched,
        why,
        summary: cause.summary.clone(),
        rules: refs,
        confirm: confirm(cause, &checked, seconds),
        advice: cause.advice.clone(),
    }
}

/// The commands that confirm a cause: the audit of its rules, the live check with the
/// reasons and counters its rules name, and each lab scenario of its rules once.
fn confirm(cause: &Cause, rules: &[&crate::rules::Rule], seconds: Option<u64>) -> Vec<Confirm> {
    if rules.is_empty() {
        return Vec::new();
    }
    // A time in the text becomes the parameter of the rules that declare it.
    let param = match (&cause.duration_param, seconds) {
        (Some(p), Some(s)) => Some((p.as_str(), s)),
        _ => None,
    };
    let set_for = |rules: &[&crate::rules::Rule]| match param {
        Some((p, s)) if rules.iter().any(|r| r.params.contains_key(p)) => {
            format!(" --set {p}={s}")
        }
        _ => String::new(),
    };
    let set = set_for(rules);
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let mut out = vec![Confirm {
        kind: ConfirmKind::Audit,
        command: format!("sudo rstaudit audit --only {}{set}", ids.join(",")),
        shows: "whether this host's settings, sockets and counters have the cause (root sees every process's sockets)".into(),
    }];
    let mut reasons: Vec<&str> = cause.rst_reasons.iter().map(String::as_str).collect();
    let mut counters: Vec<&str> = Vec::new();
    for r in rules {
        for x in &r.rst_reasons {
            if !reasons.contains(&x.as_str()) {
                reasons.push(x);
            }
        }
        for x in &r.evidence_counters {
            if !counters.contains(&x.as_str()) {
                counters.push(x);
            }
        }
    }
    let mut shows = String::from(
        "real resets as they happen, with socket and process, and the kernel's reason for \
         those this host sends",
    );
    if !reasons.is_empty() {
        shows.push_str(&format!("; look for the reason {}", reasons.join(" or ")));
    }
    if !counters.is_empty() {
        shows.push_str(&format!("; counters to watch: {}", counters.join(", ")));
    }
    out.push(Confirm {
        kind: ConfirmKind::Live,
        command: format!("sudo rstaudit packet-check --duration 60{set}"),
        shows,
    });
    // The cause's own scenarios (named as such), then each scenario of its rules once,
    // through a rule that takes the time as its parameter if one does.
    let mut scenarios: Vec<&str> = Vec::new();
    for lab in &cause.lab_scenarios {
        scenarios.push(lab);
        out.push(Confirm {
            kind: ConfirmKind::Lab,
            command: format!("sudo rstaudit packet-check --lab --rule {lab}"),
            shows: format!(
                "the resets reproduced in throwaway namespaces with this host's values (scenario \
                 {lab})"
            ),
        });
    }
    for lab in rules.iter().filter_map(|r| r.lab.as_deref()) {
        if scenarios.contains(&lab) {
            continue;
        }
        scenarios.push(lab);
        let same: Vec<&crate::rules::Rule> = rules
            .iter()
            .copied()
            .filter(|r| r.lab.as_deref() == Some(lab))
            .collect();
        let r = same
            .iter()
            .find(|r| !set_for(&[**r]).is_empty())
            .unwrap_or(&same[0]);
        out.push(Confirm {
            kind: ConfirmKind::Lab,
            command: format!(
                "sudo rstaudit packet-check --lab --rule {}{}",
                r.id,
                set_for(&[*r])
            ),
            shows: format!(
                "the resets reproduced in throwaway namespaces with this host's values (scenario \
                 {lab}), then gone with the fix"
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<u64> {
        duration(&Haystack::new(text))
    }

    #[test]
    fn times_are_read_in_their_common_spellings() {
        assert_eq!(secs("reset after 60 s idle"), Some(60));
        assert_eq!(secs("60s"), Some(60));
        assert_eq!(secs("a 60-second idle timeout"), Some(60));
        assert_eq!(secs("350 seconds"), Some(350));
        assert_eq!(secs("5 min"), Some(300));
        assert_eq!(secs("1.5 minutes idle"), Some(90));
        assert_eq!(secs("2 hours"), Some(7200));
        assert_eq!(secs("移动网络下5分钟后"), Some(300));
        assert_eq!(secs("500 ms"), None);
        assert_eq!(secs("0 s"), None);
        assert_eq!(secs("10.0.0.1:5432 (56) Recv failure"), None);
        assert_eq!(
            secs("keepalive starts after 7200 s but the LB's idle timeout is 350 s"),
            Some(350)
        );
        assert_eq!(secs("idle 10 minutes, then 2 h later"), Some(600));
    }
}
