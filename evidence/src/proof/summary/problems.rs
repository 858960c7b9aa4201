//! The typed messages judging produces: why a run failed, why a gate
//! passed or failed, why the claim has its level, and the caveats a reader
//! must know. What they say is decided here; how they read, per frozen
//! format version, only in `wording`.
//!
//! Invariant: adding a variant is a format change (each version's wording
//! must render it, or the version must never produce it).

use crate::bundle::format::Accel;
use crate::proof::contract::{Expectation, FieldKind, FieldValue};

/// How a speedup or ratio gate's interval decided it (format v2 onward).
/// Figures are preformatted with `stats::format_figure`.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement<'a> {
    /// Confidence level as a percentage, e.g. `95`.
    pub confidence: &'a str,
    /// The interval's bounds, when there is one.
    pub interval: Option<(&'a str, &'a str)>,
    /// What the interval says, and why the verdict is what it is.
    pub outcome: Outcome<'a>,
}

/// The outcome of a [`Judgement`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<'a> {
    /// The lower bound is at or above the threshold: pass.
    Clears,
    /// The upper bound is below the threshold: fail.
    Below,
    /// The interval contains the threshold: inconclusive.
    Straddles,
    /// No interval (a resample had a zero median): inconclusive.
    NoInterval,
    /// Not a pass, and the host's own native speedup was below what the
    /// gate needs: inconclusive.
    HostLimited {
        native: &'a str,
        delivered: &'a str,
        needed: &'a str,
    },
    /// Not a pass, and a case ran more vCPUs than the host had free CPUs:
    /// inconclusive (diagnostic).
    Oversubscribed {
        case: &'a str,
        cpus: u32,
        host_cpus: u32,
    },
}

/// Why one run failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RunProblem<'a> {
    /// The harness killed QEMU at the case's timeout.
    TimedOut,
    /// The guest reported failure through isa-debug-exit.
    GuestFailure { status: i32 },
    /// QEMU exited 0: a reset or triple fault, no guest verdict.
    NoGuestVerdict,
    /// QEMU exited with another status.
    QemuStatus { status: i32 },
    /// QEMU was killed by a signal.
    Killed,
    /// No serial line starts with the result prefix.
    ResultLineMissing { prefix: &'a str },
    /// Several serial lines start with the result prefix (1-based line numbers).
    ResultLineDuplicated { prefix: &'a str, lines: &'a [usize] },
    /// The result line does not match the contract's pattern.
    ResultLineUnmatched { line: usize, text: &'a str },
    /// A field's group did not take part in the match.
    FieldNotCaptured { line: usize, field: &'a str },
    /// A field's text is not of its kind.
    FieldUnreadable {
        line: usize,
        field: &'a str,
        kind: FieldKind,
        text: &'a str,
    },
    /// A field differs from what the contract requires.
    FieldDiffers {
        field: &'a str,
        value: &'a FieldValue,
        expectation: &'a Expectation,
        resolved: Option<FieldValue>,
    },
    /// A field is below the contract's minimum.
    FieldBelowMinimum {
        field: &'a str,
        value: &'a FieldValue,
        minimum: i64,
    },
    /// A `line_counts` check failed (`pattern` as compiled, anchored).
    LineCount {
        expectation: &'a Expectation,
        resolved: Option<FieldValue>,
        pattern: &'a str,
        found: usize,
    },
    /// No line matches an `arrival_ms` metric's pattern (anchored).
    MetricWithoutLine { metric: &'a str, pattern: &'a str },
    /// A baseline run (Linux guest or native) hit the case's timeout.
    BaselineTimedOut,
    /// The Linux guest's QEMU exited with a status other than 0.
    LinuxStatus { status: i32 },
    /// The native baseline program exited with a status other than 0.
    NativeStatus { status: i32 },
    /// The native baseline program was killed by a signal.
    NativeKilled,
    /// The Linux guest's kernel panicked.
    LinuxPanic { line: usize, text: &'a str },
    /// A baseline line that looks like a result line but names another system.
    ResultLineOfAnotherSystem {
        line: usize,
        text: &'a str,
        prefix: &'a str,
    },
    /// A native run's exit.json records a pinned CPU count outside 1..=`maximum`.
    PinnedOutOfRange { cpus: u32, maximum: u32 },
    /// A native run's exit.json lacks its pinned CPU count.
    PinnedMissing,
    /// A capOS run of a measuring kernel lacks a well-formed `[measure]`
    /// block (only bundles whose inputs record the `measure` kernel
    /// feature can hold this sentence).
    GuestMeasurement {
        error: &'a crate::proof::measure::BlockError,
    },
}

/// Why a gate passed or failed, in one sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum GateDetail<'a> {
    /// `all_runs_pass`.
    AllRunsPass { passed: usize, total: usize },
    /// `field_equals`.
    FieldEquals {
        field: &'a str,
        expectation: &'a Expectation,
        equal: usize,
        total: usize,
    },
    /// `speedup_at_least` with a measured speedup (figures preformatted).
    Speedup {
        metric: &'a str,
        baseline_case: &'a str,
        case: &'a str,
        value: &'a str,
        threshold: &'a str,
        ideal: &'a str,
    },
    /// `speedup_at_least` without one.
    NoSpeedup {
        metric: &'a str,
        baseline_case: &'a str,
        case: &'a str,
    },
    /// `ratio_at_least` with a measured ratio (figures preformatted).
    Ratio {
        speedup: &'a str,
        speedup_value: &'a str,
        value: &'a str,
        reference: &'a str,
        reference_value: &'a str,
        threshold: &'a str,
    },
    /// `ratio_at_least` without one.
    NoRatio {
        speedup: &'a str,
        reference: &'a str,
    },
}

/// Why the claim has its level.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimReason<'a> {
    /// Runs (when `failed_runs` is set: that many of `total`) or gates failed.
    Failed {
        failed_runs: Option<usize>,
        total: usize,
        failed_gates: &'a [&'a str],
    },
    /// All passed, but not under the accelerator a publishable claim needs.
    NeedsKvm { used: Accel, reason: &'a str },
    /// All passed under KVM as the contract requires.
    PublishableUnderKvm { total: usize, gates: usize },
    /// All passed; the contract accepts any accelerator.
    PublishableUnderAny {
        total: usize,
        gates: usize,
        used: Accel,
    },
    /// (v2) No run or gate failed, but these gates were inconclusive.
    Inconclusive { gates: &'a [&'a str] },
    /// (v2) All passed, but the kernel measured itself (feature `measure`).
    GuestMeasure,
    /// (v2) All passed, but these cases ran more vCPUs than free host CPUs.
    OversubscribedCases { cases: &'a [&'a str] },
}

/// A caveat a reader must know.
#[derive(Debug, Clone, PartialEq)]
pub enum Note<'a> {
    /// A capOS case has more virtual CPUs than the host has CPUs.
    Oversubscribed {
        case: &'a str,
        cpus: u32,
        host_cpus: u32,
    },
    /// A Linux-guest case has more virtual CPUs than the host has CPUs.
    OversubscribedLinux {
        case: &'a str,
        cpus: u32,
        host_cpus: u32,
    },
    /// A native case has more workers than the host has CPUs.
    NativeSharesCpus {
        case: &'a str,
        workers: u32,
        host_cpus: u32,
    },
    /// A conditional case did not run (`reason` as inputs.json records it).
    DidNotRun { case: &'a str, reason: &'a str },
}
