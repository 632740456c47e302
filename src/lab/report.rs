//! The lab's report types: what each run, each scenario and the whole lab found. Pure data
//! (serde), shared by the scenarios, the evidence they gather and the renderers.

use std::collections::BTreeMap;

use serde::Serialize;

/// The version of the lab JSON report.
pub const SCHEMA_VERSION: u32 = 1;

/// The verdict for one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Resets with the host's values, none with the fix.
    Confirmed,
    /// Resets with the host's values and still with the fix: the rule's fix is wrong.
    ReproducedButFixDidNotHelp,
    /// No resets with the host's values: the host is safe here.
    NotReproduced,
    /// The kernel cannot show this (a removed key).
    NotReproducibleOnThisKernel,
    /// The scenario could not run.
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "confirmed",
            Self::ReproducedButFixDidNotHelp => "REPRODUCED BUT THE FIX DID NOT HELP",
            Self::NotReproduced => "not reproduced",
            Self::NotReproducibleOnThisKernel => "not reproducible on this kernel",
            Self::Error => "error",
        }
    }

    pub(crate) fn from_resets(host: u64, fix: u64) -> Self {
        match (host, fix) {
            (0, _) => Self::NotReproduced,
            (_, 0) => Self::Confirmed,
            _ => Self::ReproducedButFixDidNotHelp,
        }
    }
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub title: String,
    /// The rules (findings) this scenario ran for; empty with `--all` or a scenario name.
    pub rules: Vec<String>,
    pub verdict: Verdict,
    /// One line: why this verdict.
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
    /// The run with the host's values (and `--with` overrides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_run: Option<RunReport>,
    /// The run with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_run: Option<RunReport>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// The whole lab report.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    pub schema: u32,
    pub kernel: String,
    /// `--with` overrides in force.
    pub with: BTreeMap<String, String>,
    pub scenarios: Vec<ScenarioReport>,
    /// What the whole lab could not do (no reasons on this kernel, ...).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// A sysctl as set inside the lab.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabSetting {
    pub key: String,
    /// The value being reproduced (host, `--with` or fix), real scale.
    pub value: String,
    /// What was written in the lab when it differs (scaled durations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lab_value: Option<String>,
}

/// One run of a scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Sysctls set inside the lab for this run.
    pub settings: Vec<LabSetting>,
    /// The application change made for this run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Resets sent inside the lab: captured (every lab namespace's sent resets) when the
    /// capture works, else [`RunReport::counted_resets`].
    pub resets: u64,
    /// Resets by the namespaces' counters (Tcp.OutRsts) plus a middlebox's rejects.
    pub counted_resets: u64,
    /// Resets captured, when the capture works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_resets: Option<u64>,
    /// The captured resets, `role: src -> dst`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
    /// The kernel's reasons (tcp:tcp_send_reset), where the kernel reports them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, u64>,
    /// What could not be measured, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Counters that moved, by namespace role (`client Tcp.EstabResets`).
    pub counters: BTreeMap<String, u64>,
    /// What the application saw, step by step.
    pub app: Vec<String>,
}

/// How a scenario's durations were scaled.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// Real seconds per lab second.
    pub factor: f64,
    /// The scaled durations, e.g. `idle timeout 300 s -> 3 s`.
    pub durations: Vec<String>,
    /// False when rounding to whole seconds could not keep the real-scale outcome.
    pub outcome_preserved: bool,
}
