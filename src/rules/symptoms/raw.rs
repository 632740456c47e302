//! The shape of a cause file (rules/causes/*.yaml), exactly as written: step one of loading.
//! Unknown keys are refused; [`super::catalogue`] checks the values.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One cause: what it is, how a symptom text finds it, what the application can do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCause {
    /// The cause's name (docs/causes.md): `mobile-idle`, `accept-overflow`, `orphans`; its
    /// number is accepted as an alias.
    pub cause: String,
    pub title: String,
    /// What happens, in a few sentences.
    pub summary: String,
    #[serde(rename = "match")]
    pub matching: RawMatch,
    /// When in a connection's life and on which side its symptoms show.
    #[serde(default)]
    pub fits: super::fit::Fits,
    /// Rules that check for this cause besides those whose `cause:` is this one.
    #[serde(default)]
    pub related_rules: Vec<String>,
    /// Lab scenarios that reproduce the cause besides those of its rules.
    #[serde(default)]
    pub lab_scenarios: Vec<String>,
    /// RST reasons the cause's resets carry besides those its rules name.
    #[serde(default)]
    pub rst_reasons: Vec<String>,
    /// What the application can do.
    pub advice: Vec<String>,
}

/// How a symptom text finds the cause: each thing found adds its points.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Words or phrases (case-insensitive, on word boundaries) -> points.
    #[serde(default)]
    pub terms: BTreeMap<String, u32>,
    /// Errno names (ECONNRESET) -> points; the name, its number and its message all count.
    #[serde(default)]
    pub errors: BTreeMap<String, u32>,
    /// Points for a time in the text ("60 s", "5 min"): for idle-timeout causes.
    #[serde(default)]
    pub duration: Option<u32>,
    /// The rule parameter the time becomes in the commands that confirm the cause.
    #[serde(default)]
    pub duration_param: Option<String>,
}
