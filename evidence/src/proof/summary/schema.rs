//! The shape of `summary.json`: per-case statistics, speedups, ratios, gates,
//! failures, notes, the baseline comparison and the claim. Fields are never
//! removed or renamed within a format version ([`super::SUMMARY_FORMAT`]).

use serde::{Deserialize, Serialize};

use crate::guest::qemu::Accel;
use crate::proof::adaptive::{Decision, StoppingRule};
use crate::proof::baseline::Os;
use crate::proof::bootstrap::Interval;
use crate::proof::contract::{self, Better, RequiredAccelerator};
use crate::proof::stats::Summary;

/// Accelerator facts in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorSummary {
    /// The accelerator the runs used.
    pub name: Accel,
    /// Why it was chosen.
    pub reason: String,
    /// What a publishable claim requires (`kvm` or `any`).
    pub publishable_requires: RequiredAccelerator,
}

/// Run counts in summary.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCounts {
    /// Runs recorded.
    pub total: usize,
    /// Runs that passed every check.
    pub passed: usize,
    /// Runs that failed.
    pub failed: usize,
}

/// Statistics of one metric in one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSummary {
    /// Metric name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Direction of improvement.
    pub better: Better,
    /// Over passing runs; None when no run of the case passed.
    pub statistics: Option<Summary>,
    /// (v2) Bootstrap confidence interval of the median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

/// One case in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSummary {
    /// Case id.
    pub id: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Workers, when the contract has them.
    pub workers: Option<u32>,
    /// Runs recorded.
    pub runs: usize,
    /// Runs that passed.
    pub passed: usize,
    /// Per-metric statistics, in contract order.
    pub metrics: Vec<MetricSummary>,
    /// The system the case ran on.
    #[serde(default, skip_serializing_if = "Os::is_capos")]
    pub os: Os,
    /// Why the case did not run (its condition did not hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// One speedup in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedupSummary {
    /// Speedup id.
    pub id: String,
    /// Metric compared.
    pub metric: String,
    /// Baseline case id.
    pub baseline_case: String,
    /// Compared case id.
    pub case: String,
    /// CPUs of the baseline case.
    pub baseline_cpus: u32,
    /// CPUs of the compared case.
    pub case_cpus: u32,
    /// Perfect scaling: case CPUs / baseline CPUs.
    pub ideal: f64,
    /// Ratio of medians (rounded); None when a median is missing or zero.
    pub value: Option<f64>,
    /// (v2) Bootstrap confidence interval of the ratio of medians.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Reported without a gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// One ratio of two speedups in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSummary {
    /// Ratio id.
    pub id: String,
    /// Numerator speedup id.
    pub speedup: String,
    /// Denominator speedup id.
    pub reference: String,
    /// speedup / reference (rounded); None when either is missing.
    pub value: Option<f64>,
    /// (v2) Bootstrap confidence interval of the ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Reported without a gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// Verdict of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateVerdict {
    /// The gate's condition holds.
    Pass,
    /// It does not, or could not be evaluated.
    Fail,
    /// (v2) The interval does not decide it, or the host could not.
    Inconclusive,
}

impl GateVerdict {
    /// `pass`, `FAIL` or `inconclusive`, as the run prints it.
    #[must_use]
    pub fn shouted(self) -> &'static str {
        match self {
            GateVerdict::Pass => "pass",
            GateVerdict::Fail => "FAIL",
            GateVerdict::Inconclusive => "inconclusive",
        }
    }
}

impl std::fmt::Display for GateVerdict {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            GateVerdict::Pass => "pass",
            GateVerdict::Fail => "fail",
            GateVerdict::Inconclusive => "inconclusive",
        })
    }
}

/// (v2) Why a gate is inconclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InconclusiveReason {
    /// The interval contains the threshold.
    IntervalContainsThreshold,
    /// There is no interval (a resample had a zero median).
    NoInterval,
    /// The host's native speedup was below what the gate needs.
    HostLimited,
    /// A case ran more virtual CPUs than the host had free CPUs.
    Oversubscribed,
}

/// (v2) What the host delivered to the native baseline in the same run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCapacity {
    /// The native speedup with the gate's metric and CPU counts.
    pub speedup: String,
    /// Its value (ratio of medians); None when a native median is missing.
    pub value: Option<f64>,
    /// Its interval.
    pub interval: Option<Interval>,
    /// What the gate needs from the host: max(threshold, 0.9 x ideal)
    /// for a speedup gate, 0.9 x ideal for a ratio gate.
    pub needed: f64,
}

/// One gate in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSummary {
    /// Gate id.
    pub id: String,
    /// What it checks.
    pub description: String,
    /// Gate kind.
    pub kind: contract::GateKind,
    /// The speedup id, for speedup gates.
    pub speedup: Option<String>,
    /// The ratio id, for ratio gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<String>,
    /// Threshold for speedup gates.
    pub threshold: Option<f64>,
    /// Measured value for speedup gates.
    pub value: Option<f64>,
    /// Pass or fail (v2: or inconclusive).
    pub verdict: GateVerdict,
    /// Why, in one sentence.
    pub detail: String,
    /// (v2) The interval the verdict was judged on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// (v2) Why the gate is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<InconclusiveReason>,
    /// (v2) The host's native figure for this gate's CPU counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_capacity: Option<HostCapacity>,
    /// (v2) False when the gate is opt-in and the run did not opt in: it
    /// is judged and shown, but does not decide the claim.
    #[serde(default = "required_default", skip_serializing_if = "is_required")]
    pub required: bool,
}

fn required_default() -> bool {
    true
}

fn is_required(required: &bool) -> bool {
    *required
}

/// How strong a claim the evidence supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimLevel {
    /// Every run and gate passed under an accelerator the contract accepts.
    Publishable,
    /// Every run and gate passed, but not under the accelerator a claim needs.
    Diagnostic,
    /// A run or a gate failed.
    Failed,
    /// (v2) Nothing failed, but a gate was inconclusive.
    Inconclusive,
}

impl std::fmt::Display for ClaimLevel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            ClaimLevel::Publishable => "publishable",
            ClaimLevel::Diagnostic => "diagnostic",
            ClaimLevel::Failed => "failed",
            ClaimLevel::Inconclusive => "inconclusive",
        })
    }
}

/// The claim in summary.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSummary {
    /// The contract's claim sentence.
    pub statement: String,
    /// What the evidence supports.
    pub level: ClaimLevel,
    /// Why this level.
    pub reason: String,
}

/// One failed run in summary.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureSummary {
    /// Case id.
    pub case: String,
    /// Repetition number.
    pub repetition: u32,
    /// Log directory inside the bundle.
    pub logs: String,
    /// Every reason it failed.
    pub problems: Vec<String>,
}

/// The whole of summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryDocument {
    /// Always [`SUMMARY_FORMAT`].
    pub format: String,
    /// Contract (proof) name.
    pub contract: String,
    /// Accelerator used and the policy.
    pub accelerator: AcceleratorSummary,
    /// Runs per case.
    pub repetitions: u32,
    /// Run counts over all cases.
    pub runs: RunCounts,
    /// Per-case statistics.
    pub cases: Vec<CaseSummary>,
    /// Speedups, in contract order.
    pub speedups: Vec<SpeedupSummary>,
    /// Ratios of speedups, in contract order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratios: Vec<RatioSummary>,
    /// Side-by-side figures of capOS and its baselines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonSummary>,
    /// Gates, in contract order.
    pub gates: Vec<GateSummary>,
    /// Failed runs and why.
    pub failures: Vec<FailureSummary>,
    /// Caveats a reader must know (e.g. oversubscribed host CPUs).
    pub notes: Vec<String>,
    /// What the evidence supports.
    pub claim: ClaimSummary,
    /// (v2) How the intervals were computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<crate::proof::bootstrap::BootstrapPlan>,
    /// (v2) The adaptive stopping rule, when the rounds followed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSummary>,
}

/// (v2) How adaptive rounds ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSummary {
    /// The rule.
    pub rule: StoppingRule,
    /// Rounds run.
    pub rounds: u32,
    /// Why they stopped.
    pub stopped: Decision,
    /// Each gated figure's relative interval width after the last round.
    pub widths: Vec<GatedWidth>,
}

/// (v2) One gated figure's relative interval width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatedWidth {
    /// Gate id.
    pub gate: String,
    /// The gated figure (ratio of medians, rounded).
    pub value: Option<f64>,
    /// Its interval.
    pub interval: Option<Interval>,
    /// Interval width / figure (rounded); None without an interval.
    pub relative_width: Option<f64>,
}

impl SummaryDocument {
    /// Whether every run and every required gate passed.
    #[must_use]
    pub fn all_passed(&self) -> bool {
        self.runs.failed == 0
            && self
                .gates
                .iter()
                .filter(|gate| gate.required)
                .all(|gate| gate.verdict == GateVerdict::Pass)
    }

    /// Median of `metric` in `case`, if any run passed.
    pub fn median(&self, case: &str, metric: &str) -> Option<f64> {
        self.cases
            .iter()
            .find(|summary| summary.id == case)?
            .metrics
            .iter()
            .find(|summary| summary.name == metric)?
            .statistics
            .as_ref()
            .map(|statistics| statistics.median)
    }
}

/// summary.json `comparison`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonSummary {
    /// The reference system of the ratios.
    pub reference: Os,
    /// One row per metric and CPU count, in contract order.
    pub rows: Vec<ComparisonRow>,
}

/// One metric at one CPU count on every system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonRow {
    /// Metric name.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// CPUs of the cases in this row.
    pub cpus: u32,
    /// Workers of the capOS case (or the first case) in this row.
    pub workers: Option<u32>,
    /// Each system's figures, capOS first.
    pub systems: Vec<SystemFigure>,
    /// capOS median / reference median.
    pub median_ratio: Option<f64>,
    /// capOS speedup / reference speedup (scaling metrics only).
    pub speedup_ratio: Option<f64>,
}

/// One system's figures in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemFigure {
    /// The system.
    pub os: Os,
    /// The case measured.
    pub case: String,
    /// Median over passing runs.
    pub median: Option<f64>,
    /// Relative to this system's lowest-CPU case (scaling metrics only).
    pub speedup: Option<f64>,
}
