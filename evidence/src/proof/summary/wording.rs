//! Every sentence that becomes part of `results.csv` or `summary.json`,
//! frozen per bundle format version.
//!
//! Invariants:
//! - Verification recomputes those files and compares bytes, so the text a
//!   format version produces never changes: rewording a v1 sentence would
//!   make every older bundle fail `capos verify`. To say something new, add
//!   a version (a [`Wording`] variant, its `inputs.json` and `summary.json`
//!   format tags, and its own sentences), keep the old ones, and let the
//!   format a bundle records choose. `tests/frozen_wording.rs` pins v1.
//! - Format v2 keeps every v1 sentence and adds the interval judgement of
//!   speedup and ratio gates ([`Judgement`]), the inconclusive verdict and
//!   the claim reasons v1 cannot produce ([`ClaimReason::Inconclusive`],
//!   [`ClaimReason::GuestMeasure`], [`ClaimReason::OversubscribedCases`]).
//! - Judging decides *what* is wrong (the typed messages below); only this
//!   file decides how it reads. Values are shown with their own `Display`
//!   (figures with `stats::format_figure`), which is part of the format too.

pub use super::problems::{ClaimReason, GateDetail, Judgement, Note, Outcome, RunProblem};
use crate::proof::contract::{Expectation, FieldKind, FieldValue};

/// The wording of one bundle format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// `capos-inputs/v1`, `capos-summary/v1`.
    V1,
    /// `capos-inputs/v2`, `capos-summary/v2`: bootstrap intervals,
    /// interval-judged gates with an inconclusive verdict, host capacity.
    V2,
}

impl Wording {
    /// The wording new bundles are written with.
    pub const CURRENT: Wording = Wording::V2;

    /// Whether this format judges gates on bootstrap intervals (v2 onward).
    #[must_use]
    pub const fn has_intervals(self) -> bool {
        !matches!(self, Self::V1)
    }

    /// The wording for a bundle whose `inputs.json` records `format`.
    #[must_use]
    pub fn for_inputs_format(format: &str) -> Option<Self> {
        match format {
            "capos-inputs/v1" => Some(Self::V1),
            "capos-inputs/v2" => Some(Self::V2),
            _ => None,
        }
    }

    /// The `format` tag of `inputs.json` in this version.
    #[must_use]
    pub const fn inputs_format(self) -> &'static str {
        match self {
            Self::V1 => "capos-inputs/v1",
            Self::V2 => "capos-inputs/v2",
        }
    }

    /// The `format` tag of `summary.json` in this version.
    #[must_use]
    pub const fn summary_format(self) -> &'static str {
        match self {
            Self::V1 => "capos-summary/v1",
            Self::V2 => "capos-summary/v2",
        }
    }

    /// One run problem, as `results.csv` and `summary.json` record it.
    #[must_use]
    pub fn run_problem(self, problem: &RunProblem<'_>) -> String {
        match self {
            Self::V1 | Self::V2 => v1::run_problem(problem),
        }
    }

    /// A gate's detail sentence.
    #[must_use]
    pub fn gate_detail(self, detail: &GateDetail<'_>) -> String {
        match self {
            Self::V1 | Self::V2 => v1::gate_detail(detail),
        }
    }

    /// The claim's reason.
    #[must_use]
    pub fn claim_reason(self, reason: &ClaimReason<'_>) -> String {
        match self {
            Self::V1 => v1::claim_reason(reason),
            Self::V2 => v2::claim_reason(reason),
        }
    }

    /// A note.
    #[must_use]
    pub fn note(self, note: &Note<'_>) -> String {
        match self {
            Self::V1 | Self::V2 => v1::note(note),
        }
    }
}

impl Wording {
    /// The interval judgement appended to a speedup or ratio gate's detail;
    /// None in v1, which judged the point value alone.
    #[must_use]
    pub fn judgement(self, judgement: &Judgement<'_>) -> Option<String> {
        match self {
            Self::V1 => None,
            Self::V2 => Some(v2::judgement(judgement)),
        }
    }

    /// The note on a gate the run did not require (its opt-in variable
    /// was not `1`); None in v1, which has no opt-in gates.
    #[must_use]
    pub fn not_required(self, variable: &str) -> Option<String> {
        match self {
            Self::V1 => None,
            Self::V2 => Some(format!(
                "not required in this run (set {variable}=1 to make it count)"
            )),
        }
    }
}

/// Format v2: v1's sentences plus these. Frozen: never edit a sentence here.
mod v2 {
    use super::*;

    pub(super) fn judgement(judgement: &Judgement<'_>) -> String {
        let confidence = judgement.confidence;
        let interval = match judgement.interval {
            Some((lower, upper)) => format!("{confidence}% interval [{lower}, {upper}]"),
            None => format!("no {confidence}% interval"),
        };
        match &judgement.outcome {
            Outcome::Clears => format!("{interval} clears the threshold: pass"),
            Outcome::Below => format!("{interval} lies below the threshold: fail"),
            Outcome::Straddles => format!(
                "{interval} contains the threshold: inconclusive (more repetitions may decide it)"
            ),
            Outcome::NoInterval => {
                format!("{interval} (a resample had a zero median): inconclusive")
            }
            Outcome::HostLimited {
                native,
                delivered,
                needed,
            } => format!(
                "{interval}; inconclusive: the host delivered {delivered}x to a native run ({native}), below the {needed}x this gate needs, so the shortfall may be the host's"
            ),
            Outcome::Oversubscribed {
                case,
                cpus,
                host_cpus,
            } => format!(
                "{interval}; inconclusive: case {case} runs {cpus} virtual CPUs on {host_cpus} free host CPUs (oversubscribed), so this gate is diagnostic here"
            ),
        }
    }

    pub(super) fn claim_reason(reason: &ClaimReason<'_>) -> String {
        match reason {
            ClaimReason::Inconclusive { gates } => format!(
                "no run or gate failed, but gate(s) {} were inconclusive (see their details); the claim is neither supported nor refuted",
                gates.join(", ")
            ),
            ClaimReason::GuestMeasure => "every run and gate passed, but the kernel carried the measure feature (guest measurement), which perturbs what it measures: diagnostic, never publishable".into(),
            ClaimReason::OversubscribedCases { cases } => format!(
                "every run and gate passed, but case(s) {} ran more virtual CPUs than the host had free CPUs: diagnostic",
                cases.join(", ")
            ),
            other => v1::claim_reason(other),
        }
    }
}

/// Format v1. Frozen: never edit a sentence here.
mod v1 {
    use super::*;

    /// `5`, or `case.cpus - 1 = 3` for case references.
    fn expected(expectation: &Expectation, resolved: &Option<FieldValue>) -> String {
        match expectation {
            Expectation::Value(value) => value.to_string(),
            Expectation::Case { .. } => {
                let resolved = resolved
                    .as_ref()
                    .map(|value| value.to_string())
                    .unwrap_or_else(|| "?".into());
                format!("{expectation} = {resolved}")
            }
        }
    }

    /// The pattern as the contract wrote it (without the anchoring wrapper).
    fn pattern(anchored: &str) -> String {
        let inner = anchored
            .strip_prefix("^(?:")
            .and_then(|rest| rest.strip_suffix(")$"))
            .unwrap_or(anchored);
        format!("`{inner}`")
    }

    pub(super) fn run_problem(problem: &RunProblem<'_>) -> String {
        match problem {
            RunProblem::TimedOut => "timed out (QEMU killed at the case's timeout)".into(),
            RunProblem::GuestFailure { status } => {
                format!("guest reported failure (QEMU status {status})")
            }
            RunProblem::NoGuestVerdict => {
                "QEMU exited without a guest verdict (reset or triple fault)".into()
            }
            RunProblem::QemuStatus { status } => {
                format!("QEMU exited with status {status} (see stderr.log)")
            }
            RunProblem::Killed => "QEMU was killed by a signal".into(),
            RunProblem::ResultLineMissing { prefix } => {
                format!("result line missing: no serial line starts with {prefix:?}")
            }
            RunProblem::ResultLineDuplicated { prefix, lines } => {
                let numbers: Vec<String> = lines.iter().map(usize::to_string).collect();
                format!(
                    "result line duplicated: {} lines start with {prefix:?} (serial lines {})",
                    lines.len(),
                    numbers.join(", ")
                )
            }
            RunProblem::ResultLineUnmatched { line, text } => format!(
                "malformed result line (serial line {line}): {text:?} does not match result_line.pattern"
            ),
            RunProblem::FieldNotCaptured { line, field } => format!(
                "malformed result line (serial line {line}): field {field} did not participate in the match"
            ),
            RunProblem::FieldUnreadable {
                line,
                field,
                kind,
                text,
            } => {
                let detail = match kind {
                    FieldKind::Integer => format!("{text:?} is not a 64-bit decimal integer"),
                    FieldKind::Hex => format!("{text:?} is not a 64-bit hexadecimal number"),
                    FieldKind::Bool => format!("{text:?} is not `true` or `false`"),
                    FieldKind::Text => format!("{text:?} is not text"),
                };
                format!("malformed result line (serial line {line}): field {field}: {detail}")
            }
            RunProblem::FieldDiffers {
                field,
                value,
                expectation,
                resolved,
            } => format!(
                "field {field} = {value}, but the contract requires {}",
                expected(expectation, resolved)
            ),
            RunProblem::FieldBelowMinimum {
                field,
                value,
                minimum,
            } => format!("field {field} = {value}, but the contract requires at least {minimum}"),
            RunProblem::LineCount {
                expectation,
                resolved,
                pattern: anchored,
                found,
            } => format!(
                "expected {} lines matching {}, found {found}",
                expected(expectation, resolved),
                pattern(anchored)
            ),
            RunProblem::MetricWithoutLine {
                metric,
                pattern: anchored,
            } => format!("metric {metric}: no line matches {}", pattern(anchored)),
            RunProblem::BaselineTimedOut => "timed out (killed at the case's timeout)".into(),
            RunProblem::LinuxStatus { status } => format!(
                "QEMU exited with status {status} instead of 0 (the Linux guest powers off when init is done; see stderr.log)"
            ),
            RunProblem::NativeStatus { status } => {
                format!("the baseline program exited with status {status}")
            }
            RunProblem::NativeKilled => "the baseline program was killed by a signal".into(),
            RunProblem::LinuxPanic { line, text } => {
                format!("the Linux guest panicked (serial line {line}): {text:?}")
            }
            RunProblem::ResultLineOfAnotherSystem { line, text, prefix } => format!(
                "result line of another system (serial line {line}): {text:?} does not start with {prefix:?}"
            ),
            RunProblem::PinnedOutOfRange { cpus, maximum } => format!(
                "exit.json records {cpus} pinned CPUs, outside 1..={maximum} for this case"
            ),
            RunProblem::PinnedMissing => {
                "exit.json lacks pinned_cpus (how many CPUs the native run was pinned to)".into()
            }
            RunProblem::GuestMeasurement { error } => {
                format!("guest measurement (kernel feature measure): {error}")
            }
        }
    }

    pub(super) fn gate_detail(detail: &GateDetail<'_>) -> String {
        match detail {
            GateDetail::AllRunsPass { passed, total } => format!("{passed} of {total} runs passed"),
            GateDetail::FieldEquals {
                field,
                expectation,
                equal,
                total,
            } => format!("{field} equalled {expectation} in {equal} of {total} runs"),
            GateDetail::Speedup {
                metric,
                baseline_case,
                case,
                value,
                threshold,
                ideal,
            } => format!(
                "median {metric} speedup {baseline_case} -> {case} is {value}x (threshold {threshold}x, ideal {ideal}x)"
            ),
            GateDetail::NoSpeedup {
                metric,
                baseline_case,
                case,
            } => format!(
                "no speedup: a median of {metric} is missing or zero (no passing runs in {baseline_case} or {case})"
            ),
            GateDetail::Ratio {
                speedup,
                speedup_value,
                value,
                reference,
                reference_value,
                threshold,
            } => format!(
                "speedup {speedup} ({speedup_value}x) is {value} times speedup {reference} ({reference_value}x) (threshold {threshold})"
            ),
            GateDetail::NoRatio { speedup, reference } => format!(
                "no ratio: speedup {speedup} or {reference} is missing (a case had no passing runs)"
            ),
        }
    }

    pub(super) fn claim_reason(reason: &ClaimReason<'_>) -> String {
        match reason {
            ClaimReason::Failed {
                failed_runs,
                total,
                failed_gates,
            } => {
                let mut reasons = Vec::new();
                if let Some(failed) = failed_runs {
                    reasons.push(format!("{failed} of {total} runs failed"));
                }
                if !failed_gates.is_empty() {
                    reasons.push(format!("gate(s) failed: {}", failed_gates.join(", ")));
                }
                format!("{}; the claim is not supported", reasons.join("; "))
            }
            ClaimReason::NeedsKvm { used, reason } => format!(
                "every run and gate passed, but this claim is publishable only under KVM and the runs used {used} ({reason}); under TCG the figures are diagnostic, not evidence of scaling"
            ),
            ClaimReason::PublishableUnderKvm { total, gates } => {
                format!("all {total} runs and {gates} gates passed under KVM as the contract requires")
            }
            ClaimReason::PublishableUnderAny { total, gates, used } => format!(
                "all {total} runs and {gates} gates passed under {used}; the contract accepts any accelerator"
            ),
            // Only format v2 judges these; its own module words them.
            ClaimReason::Inconclusive { .. }
            | ClaimReason::GuestMeasure
            | ClaimReason::OversubscribedCases { .. } => v2::claim_reason(reason),
        }
    }

    pub(super) fn note(note: &Note<'_>) -> String {
        match note {
            Note::Oversubscribed {
                case,
                cpus,
                host_cpus,
            } => format!(
                "case {case} runs {cpus} virtual CPUs on a host with {host_cpus}: its vCPUs share host CPUs, so its timings are oversubscribed"
            ),
            Note::OversubscribedLinux {
                case,
                cpus,
                host_cpus,
            } => format!(
                "case {case} (Linux guest) runs {cpus} virtual CPUs on a host with {host_cpus}: its vCPUs share host CPUs, so its timings are oversubscribed"
            ),
            Note::NativeSharesCpus {
                case,
                workers,
                host_cpus,
            } => format!(
                "case {case} (native) has {workers} workers but the host has {host_cpus} CPUs: it ran pinned to all {host_cpus}, so its workers share CPUs"
            ),
            Note::DidNotRun { case, reason } => format!("case {case} did not run: {reason}"),
        }
    }
}
