//! From judged runs to figures: statistics over passing runs, speedups and
//! ratios of medians, the baseline comparison, each gate's verdict, and the
//! level of claim the evidence supports.
//!
//! Format v2 adds a bootstrap interval to every median, speedup and ratio
//! ([`crate::proof::bootstrap`], seeded from inputs.json) and judges speedup
//! and ratio gates on the interval: pass when its lower bound reaches the
//! threshold, fail when its upper bound is below it, otherwise
//! inconclusive. A gate that does not pass is also inconclusive, not
//! failed, when one of its cases ran more virtual CPUs than the host had
//! free CPUs, or when the host's own native speedup for the same CPU
//! counts (same run, same metric) was below what the gate needs
//! ([`HOST_CAPACITY_FRACTION`]).

use super::schema::*;
use super::wording::{ClaimReason, GateDetail, Judgement, Note, Outcome, Wording};
use super::{run_log_path, RunRecord, SummaryError};
use crate::guest::qemu::Accel;
use crate::proof::baseline::Os;
use crate::proof::baseline::{comparison, rules};
use crate::proof::bootstrap::{self, BootstrapPlan, Interval, RatioSamples};
use crate::proof::contract::{self, Contract, Gate, RequiredAccelerator};
use crate::proof::inputs::Inputs;
use crate::proof::stats;

/// The share of perfect scaling a host must deliver to a native run
/// before a capOS shortfall at the same CPU counts is blamed on capOS:
/// a gate needs a native speedup of at least max(threshold, 0.9 x ideal)
/// (1.8x from one CPU to two); below it, a gate that does not pass is
/// inconclusive.
pub const HOST_CAPACITY_FRACTION: f64 = 0.9;

/// Passing-run values per case and metric: `samples[case][metric]`.
type Samples = Vec<Vec<Vec<f64>>>;

/// The passing-run values of every case and metric.
fn samples_of(contract: &Contract, runs: &[RunRecord]) -> Samples {
    let spec = &contract.spec;
    (0..spec.cases.len())
        .map(|case| {
            (0..spec.metrics.len())
                .map(|metric| {
                    runs.iter()
                        .filter(|run| run.case == case && run.passed())
                        .filter_map(|run| run.metrics[metric])
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The bootstrap plan a v2 bundle records (required, and must be usable).
fn plan_of(inputs: &Inputs) -> Result<&BootstrapPlan, SummaryError> {
    let plan = inputs
        .statistics
        .as_ref()
        .ok_or_else(|| SummaryError::Format {
            path: super::INPUTS_FILE.to_owned(),
            detail: format!(
                "format {} requires `statistics` (the bootstrap plan and its seed)",
                inputs.format
            ),
        })?;
    match plan.problem() {
        Some(detail) => Err(SummaryError::Format {
            path: super::INPUTS_FILE.to_owned(),
            detail,
        }),
        None => Ok(plan),
    }
}

fn statistics_error(what: String) -> impl FnOnce(stats::StatsError) -> SummaryError {
    move |cause| SummaryError::Statistics { what, cause }
}

/// The interval of speedup `resolved` (named `id`), when both samples have values.
fn speedup_interval(
    contract: &Contract,
    samples: &Samples,
    plan: &BootstrapPlan,
    id: &str,
    resolved: &contract::Speedup,
) -> Result<Option<Interval>, SummaryError> {
    let better = contract.spec.metrics[resolved.metric].better;
    let baseline = &samples[resolved.baseline_case][resolved.metric];
    let compared = &samples[resolved.case][resolved.metric];
    if baseline.is_empty() || compared.is_empty() {
        return Ok(None);
    }
    bootstrap::speedup_interval(plan, &format!("speedup/{id}"), better, baseline, compared)
        .map_err(statistics_error(format!("interval of speedup {id}")))
}

/// The interval of ratio `resolved` (named `id`), when all four samples have values.
fn ratio_interval(
    contract: &Contract,
    samples: &Samples,
    plan: &BootstrapPlan,
    id: &str,
    resolved: &crate::proof::baseline::Ratio,
) -> Result<Option<Interval>, SummaryError> {
    let speedups = contract.speedups();
    let side = |index: usize| {
        let speedup = &speedups[index];
        (
            contract.spec.metrics[speedup.metric].better,
            samples[speedup.baseline_case][speedup.metric].as_slice(),
            samples[speedup.case][speedup.metric].as_slice(),
        )
    };
    let ratio_samples = RatioSamples {
        speedup: side(resolved.speedup),
        reference: side(resolved.reference),
    };
    let (_, a, b) = ratio_samples.speedup;
    let (_, c, d) = ratio_samples.reference;
    if [a, b, c, d].iter().any(|sample| sample.is_empty()) {
        return Ok(None);
    }
    bootstrap::ratio_interval(plan, &format!("ratio/{id}"), &ratio_samples)
        .map_err(statistics_error(format!("interval of ratio {id}")))
}

/// Statistics, speedups, gates and claim from judged runs.
pub fn summarize(
    contract: &Contract,
    inputs: &Inputs,
    runs: &[RunRecord],
    wording: Wording,
) -> Result<SummaryDocument, SummaryError> {
    let spec = &contract.spec;
    let plan = if wording.has_intervals() {
        Some(plan_of(inputs)?)
    } else {
        None
    };
    let samples = samples_of(contract, runs);
    let mut cases = Vec::new();
    for (case_index, case) in spec.cases.iter().enumerate() {
        let case_runs: Vec<&RunRecord> = runs.iter().filter(|run| run.case == case_index).collect();
        let passing: Vec<&RunRecord> = case_runs
            .iter()
            .copied()
            .filter(|run| run.passed())
            .collect();
        let mut metrics = Vec::new();
        for (metric_index, metric) in spec.metrics.iter().enumerate() {
            let values: Vec<f64> = passing
                .iter()
                .filter_map(|run| run.metrics[metric_index])
                .collect();
            let statistics = if values.is_empty() {
                None
            } else {
                Some(
                    stats::summarize(&values).map_err(|cause| SummaryError::Statistics {
                        what: format!("case {} metric {}", case.id, metric.name),
                        cause,
                    })?,
                )
            };
            let interval = match plan {
                Some(plan) if !values.is_empty() => Some(
                    bootstrap::median_interval(
                        plan,
                        &format!("median/{}/{}", case.id, metric.name),
                        &values,
                    )
                    .map_err(statistics_error(format!(
                        "interval of case {} metric {}",
                        case.id, metric.name
                    )))?,
                ),
                _ => None,
            };
            metrics.push(MetricSummary {
                name: metric.name.clone(),
                unit: metric.unit.clone(),
                better: metric.better,
                statistics,
                interval,
            });
        }
        cases.push(CaseSummary {
            id: case.id.clone(),
            cpus: case.cpus,
            workers: case.workers,
            runs: case_runs.len(),
            passed: passing.len(),
            metrics,
            os: case.os,
            skipped: inputs.skipped_reason(&case.id),
        });
    }

    let mut speedups: Vec<SpeedupSummary> = spec
        .speedups
        .iter()
        .zip(contract.speedups())
        .map(|(written, resolved)| {
            let metric = &spec.metrics[resolved.metric];
            let baseline = &spec.cases[resolved.baseline_case];
            let case = &spec.cases[resolved.case];
            let median = |case_index: usize| {
                cases[case_index].metrics[resolved.metric]
                    .statistics
                    .as_ref()
                    .map(|statistics| statistics.median)
            };
            let value = comparison::speedup(
                metric.better,
                median(resolved.baseline_case),
                median(resolved.case),
            );
            SpeedupSummary {
                id: written.id.clone(),
                metric: metric.name.clone(),
                baseline_case: baseline.id.clone(),
                case: case.id.clone(),
                baseline_cpus: baseline.cpus,
                case_cpus: case.cpus,
                ideal: stats::round(f64::from(case.cpus) / f64::from(baseline.cpus)),
                value,
                interval: None,
                diagnostic: written.diagnostic,
            }
        })
        .collect();
    let mut ratios: Vec<RatioSummary> = spec
        .ratios
        .iter()
        .zip(contract.ratios())
        .map(|(written, resolved)| RatioSummary {
            id: written.id.clone(),
            speedup: written.speedup.clone(),
            reference: written.reference.clone(),
            value: comparison::ratio(
                speedups[resolved.speedup].value,
                speedups[resolved.reference].value,
            ),
            interval: None,
            diagnostic: written.diagnostic,
        })
        .collect();
    if let Some(plan) = plan {
        for (summary, resolved) in speedups.iter_mut().zip(contract.speedups()) {
            if summary.value.is_some() {
                summary.interval =
                    speedup_interval(contract, &samples, plan, &summary.id, resolved)?;
            }
        }
        for (summary, resolved) in ratios.iter_mut().zip(contract.ratios()) {
            if summary.value.is_some() {
                summary.interval = ratio_interval(contract, &samples, plan, &summary.id, resolved)?;
            }
        }
    }

    let total = runs.len();
    let passed = runs.iter().filter(|run| run.passed()).count();
    let gates: Vec<GateSummary> = spec
        .gates
        .iter()
        .zip(contract.gates())
        .map(|gate| judge_gate(contract, gate, runs, (&speedups, &ratios), wording, inputs))
        .collect();
    let failures: Vec<FailureSummary> = runs
        .iter()
        .filter(|run| !run.passed())
        .map(|run| FailureSummary {
            case: spec.cases[run.case].id.clone(),
            repetition: run.repetition,
            logs: run_log_path(&spec.cases[run.case].id, run.repetition),
            problems: run.problems.clone(),
        })
        .collect();
    let mut notes: Vec<String> = Vec::new();
    for case in &spec.cases {
        match inputs.skipped_reason(&case.id) {
            Some(reason) => notes.push(wording.note(&Note::DidNotRun {
                case: &case.id,
                reason: &reason,
            })),
            None => notes.extend(
                rules::case_note(case, inputs.host.cpu_count).map(|note| wording.note(&note)),
            ),
        }
    }
    let comparison = comparison::compare(spec, &cases);
    let claim = judge_claim(contract, inputs, total, passed, &gates, wording);
    let statistics = plan.cloned();
    Ok(SummaryDocument {
        format: wording.summary_format().into(),
        contract: spec.name.clone(),
        accelerator: AcceleratorSummary {
            name: inputs.accelerator.name,
            reason: inputs.accelerator.reason.clone(),
            publishable_requires: spec.accelerator.publishable_requires,
        },
        repetitions: inputs.repetitions.count,
        runs: RunCounts {
            total,
            passed,
            failed: total - passed,
        },
        cases,
        speedups,
        ratios,
        comparison,
        gates,
        failures,
        notes,
        claim,
        statistics,
        adaptive: None,
    })
}

/// One gate's verdict; `inputs.environment` holds the run's recorded
/// variables (a gate's `threshold_env` may replace its threshold, its
/// `opt_in_env` decides whether it is required).
fn judge_gate(
    contract: &Contract,
    (written, gate): (&contract::GateSpec, &Gate),
    runs: &[RunRecord],
    (speedups, ratios): (&[SpeedupSummary], &[RatioSummary]),
    wording: Wording,
    inputs: &Inputs,
) -> GateSummary {
    let spec = &contract.spec;
    let environment = &inputs.environment;
    let threshold_of = |threshold: f64| written.threshold_in(threshold, environment);
    let mut judged = JudgedFigure::default();
    let (verdict, value, mut detail) = match gate {
        Gate::AllRunsPass => {
            let passed = runs.iter().filter(|run| run.passed()).count();
            let pass = !runs.is_empty() && passed == runs.len();
            (
                verdict_of(pass),
                None,
                wording.gate_detail(&GateDetail::AllRunsPass {
                    passed,
                    total: runs.len(),
                }),
            )
        }
        Gate::FieldEquals { field, expectation } => {
            let name = &spec.result_line.fields[*field].name;
            let equal = runs
                .iter()
                .filter(|run| {
                    run.fields[*field]
                        .as_ref()
                        .is_some_and(|value| expectation.matches(value, &spec.cases[run.case]))
                })
                .count();
            let pass = !runs.is_empty() && equal == runs.len();
            (
                verdict_of(pass),
                None,
                wording.gate_detail(&GateDetail::FieldEquals {
                    field: name,
                    expectation,
                    equal,
                    total: runs.len(),
                }),
            )
        }
        Gate::SpeedupAtLeast { speedup, threshold } => {
            let threshold = threshold_of(*threshold);
            let measured = &speedups[*speedup];
            match measured.value {
                Some(value) => {
                    let base = wording.gate_detail(&GateDetail::Speedup {
                        metric: &measured.metric,
                        baseline_case: &measured.baseline_case,
                        case: &measured.case,
                        value: &stats::format_figure(value),
                        threshold: &stats::format_figure(threshold),
                        ideal: &stats::format_figure(measured.ideal),
                    });
                    let needed = threshold.max(HOST_CAPACITY_FRACTION * measured.ideal);
                    let context = GateContext {
                        contract,
                        inputs,
                        speedups,
                        numerator: measured,
                        cases: vec![&measured.baseline_case, &measured.case],
                        needed,
                    };
                    judged = judge_figure(&context, value, measured.interval, threshold, wording);
                    (judged.verdict, Some(value), base)
                }
                None => (
                    GateVerdict::Fail,
                    None,
                    wording.gate_detail(&GateDetail::NoSpeedup {
                        metric: &measured.metric,
                        baseline_case: &measured.baseline_case,
                        case: &measured.case,
                    }),
                ),
            }
        }
        Gate::RatioAtLeast { ratio, threshold } => {
            let threshold = threshold_of(*threshold);
            let measured = &ratios[*ratio];
            let find = |id: &str| speedups.iter().find(|speedup| speedup.id == id);
            let figure = |id: &str| {
                find(id)
                    .and_then(|speedup| speedup.value)
                    .map(stats::format_figure)
                    .unwrap_or_else(|| "none".into())
            };
            match (
                measured.value,
                find(&measured.speedup),
                find(&measured.reference),
            ) {
                (Some(value), Some(numerator), Some(reference)) => {
                    let base = wording.gate_detail(&GateDetail::Ratio {
                        speedup: &measured.speedup,
                        speedup_value: &figure(&measured.speedup),
                        value: &stats::format_figure(value),
                        reference: &measured.reference,
                        reference_value: &figure(&measured.reference),
                        threshold: &stats::format_figure(threshold),
                    });
                    let context = GateContext {
                        contract,
                        inputs,
                        speedups,
                        numerator,
                        cases: vec![
                            &numerator.baseline_case,
                            &numerator.case,
                            &reference.baseline_case,
                            &reference.case,
                        ],
                        needed: HOST_CAPACITY_FRACTION * numerator.ideal,
                    };
                    judged = judge_figure(&context, value, measured.interval, threshold, wording);
                    (judged.verdict, Some(value), base)
                }
                _ => (
                    GateVerdict::Fail,
                    None,
                    wording.gate_detail(&GateDetail::NoRatio {
                        speedup: &measured.speedup,
                        reference: &measured.reference,
                    }),
                ),
            }
        }
    };
    if let Some(judgement) = &judged.sentence {
        detail = format!("{detail}; {judgement}");
    }
    let required = written.required_in(environment);
    let not_required_note = written
        .opt_in_env
        .as_deref()
        .filter(|_| !required)
        .and_then(|variable| wording.not_required(variable));
    if let Some(note) = not_required_note {
        detail = format!("{detail}; {note}");
    }
    GateSummary {
        id: written.id.clone(),
        description: written.description.clone(),
        kind: written.kind,
        speedup: written.speedup.clone(),
        ratio: written.ratio.clone(),
        threshold: written.threshold.map(threshold_of),
        value,
        verdict,
        detail,
        interval: judged.interval,
        reason: judged.reason,
        host_capacity: judged.host_capacity,
        required,
    }
}

fn verdict_of(pass: bool) -> GateVerdict {
    if pass {
        GateVerdict::Pass
    } else {
        GateVerdict::Fail
    }
}

/// What a speedup or ratio gate is judged against besides its figure.
struct GateContext<'a> {
    contract: &'a Contract,
    inputs: &'a Inputs,
    speedups: &'a [SpeedupSummary],
    /// The speedup whose CPU counts the host must deliver (a ratio's numerator).
    numerator: &'a SpeedupSummary,
    /// Every case id the figure depends on.
    cases: Vec<&'a String>,
    /// The native speedup the gate needs from the host (a missing native
    /// figure blames nothing on the host: its runs failed, and so does
    /// `all_runs_pass`).
    needed: f64,
}

/// A speedup or ratio gate's verdict, as format v2 judges it.
struct JudgedFigure {
    verdict: GateVerdict,
    interval: Option<Interval>,
    reason: Option<InconclusiveReason>,
    host_capacity: Option<HostCapacity>,
    sentence: Option<String>,
}

impl Default for JudgedFigure {
    fn default() -> Self {
        Self {
            verdict: GateVerdict::Fail,
            interval: None,
            reason: None,
            host_capacity: None,
            sentence: None,
        }
    }
}

/// Judge a measured figure against `threshold`: v1 on the value alone,
/// v2 on its interval, the host's capacity and oversubscription.
fn judge_figure(
    context: &GateContext<'_>,
    value: f64,
    interval: Option<Interval>,
    threshold: f64,
    wording: Wording,
) -> JudgedFigure {
    if !wording.has_intervals() {
        return JudgedFigure {
            verdict: verdict_of(value >= threshold),
            ..JudgedFigure::default()
        };
    }
    let host_capacity = host_capacity(context);
    let by_interval = match interval {
        None => Outcome::NoInterval,
        Some(interval) if interval.lower >= threshold => Outcome::Clears,
        Some(interval) if interval.upper < threshold => Outcome::Below,
        Some(_) => Outcome::Straddles,
    };
    let free = context.inputs.free_host_cpus();
    let oversubscribed = context.cases.iter().find_map(|id| {
        context
            .contract
            .spec
            .cases
            .iter()
            .find(|case| &case.id == *id && case.os != Os::Native && case.cpus > free)
    });
    let (lower, upper) = match interval {
        Some(interval) => (
            stats::format_figure(interval.lower),
            stats::format_figure(interval.upper),
        ),
        None => (String::new(), String::new()),
    };
    let delivered = host_capacity
        .as_ref()
        .and_then(|host| host.value)
        .map(stats::format_figure)
        .unwrap_or_default();
    let needed = stats::format_figure(context.needed);
    let host_limited = host_capacity
        .as_ref()
        .is_some_and(|host| host.value.is_some_and(|value| value < host.needed));
    let outcome = match (by_interval, oversubscribed) {
        (Outcome::Clears, _) => Outcome::Clears,
        (_, Some(case)) => Outcome::Oversubscribed {
            case: &case.id,
            cpus: case.cpus,
            host_cpus: free,
        },
        (_, None) if host_limited => Outcome::HostLimited {
            native: host_capacity
                .as_ref()
                .map(|host| host.speedup.as_str())
                .unwrap_or_default(),
            delivered: &delivered,
            needed: &needed,
        },
        (outcome, None) => outcome,
    };
    let (verdict, reason) = match &outcome {
        Outcome::Clears => (GateVerdict::Pass, None),
        Outcome::Below => (GateVerdict::Fail, None),
        Outcome::Straddles => (
            GateVerdict::Inconclusive,
            Some(InconclusiveReason::IntervalContainsThreshold),
        ),
        Outcome::NoInterval => (
            GateVerdict::Inconclusive,
            Some(InconclusiveReason::NoInterval),
        ),
        Outcome::HostLimited { .. } => (
            GateVerdict::Inconclusive,
            Some(InconclusiveReason::HostLimited),
        ),
        Outcome::Oversubscribed { .. } => (
            GateVerdict::Inconclusive,
            Some(InconclusiveReason::Oversubscribed),
        ),
    };
    let confidence = confidence_percent(context.inputs);
    let sentence = wording.judgement(&Judgement {
        confidence: &confidence,
        interval: interval.map(|_| (lower.as_str(), upper.as_str())),
        outcome,
    });
    JudgedFigure {
        verdict,
        interval,
        reason,
        host_capacity,
        sentence,
    }
}

/// The confidence level as a percentage (`95`, or `97.5`).
fn confidence_percent(inputs: &Inputs) -> String {
    let level = inputs
        .statistics
        .as_ref()
        .map(|plan| plan.confidence)
        .unwrap_or(bootstrap::DEFAULT_CONFIDENCE);
    let text = format!("{:.3}", level * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The native speedup with the numerator's metric and CPU counts, and
/// what the gate needs from it; None when the contract has no such speedup.
fn host_capacity(context: &GateContext<'_>) -> Option<HostCapacity> {
    let spec = &context.contract.spec;
    let cpus_of = |id: &str| spec.cases.iter().find(|case| case.id == id);
    let numerator = context.numerator;
    let native = context.speedups.iter().find(|speedup| {
        let (Some(baseline), Some(case)) =
            (cpus_of(&speedup.baseline_case), cpus_of(&speedup.case))
        else {
            return false;
        };
        speedup.metric == numerator.metric
            && baseline.os == Os::Native
            && case.os == Os::Native
            && baseline.cpus == numerator.baseline_cpus
            && case.cpus == numerator.case_cpus
    })?;
    Some(HostCapacity {
        speedup: native.id.clone(),
        value: native.value,
        interval: native.interval,
        needed: stats::round(context.needed),
    })
}

/// The case ids a speedup or ratio gate's figure depends on.
fn gate_cases<'a>(spec: &'a contract::ContractSpec, gate: &contract::GateSpec) -> Vec<&'a str> {
    let speedup_cases = |id: &str| -> Vec<&'a str> {
        spec.speedups
            .iter()
            .filter(|speedup| speedup.id == id)
            .flat_map(|speedup| [speedup.baseline_case.as_str(), speedup.case.as_str()])
            .collect()
    };
    let mut cases = Vec::new();
    if let Some(id) = &gate.speedup {
        cases.extend(speedup_cases(id));
    }
    if let Some(id) = &gate.ratio {
        for ratio in spec.ratios.iter().filter(|ratio| &ratio.id == id) {
            cases.extend(speedup_cases(&ratio.speedup));
            cases.extend(speedup_cases(&ratio.reference));
        }
    }
    cases
}

fn judge_claim(
    contract: &Contract,
    inputs: &Inputs,
    total: usize,
    passed: usize,
    gates: &[GateSummary],
    wording: Wording,
) -> ClaimSummary {
    let spec = &contract.spec;
    let required: Vec<(&contract::GateSpec, &GateSummary)> = spec
        .gates
        .iter()
        .zip(gates)
        .filter(|(_, gate)| gate.required)
        .collect();
    let with_verdict = |verdict: GateVerdict| -> Vec<&str> {
        required
            .iter()
            .filter(|(_, gate)| gate.verdict == verdict)
            .map(|(_, gate)| gate.id.as_str())
            .collect()
    };
    let failed_gates = with_verdict(GateVerdict::Fail);
    let inconclusive_gates = with_verdict(GateVerdict::Inconclusive);
    let free = inputs.free_host_cpus();
    let mut oversubscribed: Vec<&str> = required
        .iter()
        .flat_map(|(written, _)| gate_cases(spec, written))
        .filter(|id| {
            spec.cases
                .iter()
                .any(|case| case.id == *id && case.os != Os::Native && case.cpus > free)
        })
        .collect();
    oversubscribed.sort_unstable();
    oversubscribed.dedup();
    let accel = inputs.accelerator.name;
    let (level, reason) = if total == 0 || passed < total || !failed_gates.is_empty() {
        let failed_runs = (passed < total || total == 0).then_some(total - passed);
        (
            ClaimLevel::Failed,
            ClaimReason::Failed {
                failed_runs,
                total,
                failed_gates: &failed_gates,
            },
        )
    } else if !inconclusive_gates.is_empty() {
        (
            ClaimLevel::Inconclusive,
            ClaimReason::Inconclusive {
                gates: &inconclusive_gates,
            },
        )
    } else if wording.has_intervals() && inputs.guest_measure() {
        (ClaimLevel::Diagnostic, ClaimReason::GuestMeasure)
    } else if wording.has_intervals() && !oversubscribed.is_empty() {
        (
            ClaimLevel::Diagnostic,
            ClaimReason::OversubscribedCases {
                cases: &oversubscribed,
            },
        )
    } else if spec.accelerator.publishable_requires == RequiredAccelerator::Kvm
        && accel != Accel::Kvm
    {
        (
            ClaimLevel::Diagnostic,
            ClaimReason::NeedsKvm {
                used: accel,
                reason: &inputs.accelerator.reason,
            },
        )
    } else {
        let reason = match spec.accelerator.publishable_requires {
            RequiredAccelerator::Kvm => ClaimReason::PublishableUnderKvm {
                total,
                gates: required.len(),
            },
            RequiredAccelerator::Any => ClaimReason::PublishableUnderAny {
                total,
                gates: required.len(),
                used: accel,
            },
        };
        (ClaimLevel::Publishable, reason)
    };
    let reason = wording.claim_reason(&reason);
    ClaimSummary {
        statement: spec.claim.trim().to_string(),
        level,
        reason,
    }
}

/// Each gate that holds adaptive rounds open, with its figure's relative
/// interval width over `runs`: required speedup and ratio gates none of
/// whose cases is oversubscribed. Computed exactly as [`summarize`]
/// computes the gates' intervals.
pub fn gated_widths(
    contract: &Contract,
    inputs: &Inputs,
    runs: &[RunRecord],
) -> Result<Vec<GatedWidth>, SummaryError> {
    let spec = &contract.spec;
    let plan = plan_of(inputs)?;
    let samples = samples_of(contract, runs);
    let free = inputs.free_host_cpus();
    let median = |case: usize, metric: usize| stats::median(&samples[case][metric]).ok();
    let speedup_value = |index: usize| {
        let resolved = &contract.speedups()[index];
        comparison::speedup(
            spec.metrics[resolved.metric].better,
            median(resolved.baseline_case, resolved.metric).map(stats::round),
            median(resolved.case, resolved.metric).map(stats::round),
        )
    };
    let mut widths = Vec::new();
    for (written, gate) in spec.gates.iter().zip(contract.gates()) {
        let oversubscribed = gate_cases(spec, written).iter().any(|id| {
            spec.cases
                .iter()
                .any(|case| case.id == *id && case.os != Os::Native && case.cpus > free)
        });
        if !written.required_in(&inputs.environment) || oversubscribed {
            continue;
        }
        let (value, interval) = match gate {
            Gate::SpeedupAtLeast { speedup, .. } => {
                let id = &spec.speedups[*speedup].id;
                let resolved = &contract.speedups()[*speedup];
                let value = speedup_value(*speedup);
                let interval = match value {
                    Some(_) => speedup_interval(contract, &samples, plan, id, resolved)?,
                    None => None,
                };
                (value, interval)
            }
            Gate::RatioAtLeast { ratio, .. } => {
                let id = &spec.ratios[*ratio].id;
                let resolved = &contract.ratios()[*ratio];
                let value = comparison::ratio(
                    speedup_value(resolved.speedup),
                    speedup_value(resolved.reference),
                );
                let interval = match value {
                    Some(_) => ratio_interval(contract, &samples, plan, id, resolved)?,
                    None => None,
                };
                (value, interval)
            }
            Gate::AllRunsPass | Gate::FieldEquals { .. } => continue,
        };
        let relative_width = match (value, interval) {
            (Some(value), Some(interval)) => interval.relative_width(value).map(stats::round),
            _ => None,
        };
        widths.push(GatedWidth {
            gate: written.id.clone(),
            value,
            interval,
            relative_width,
        });
    }
    Ok(widths)
}
