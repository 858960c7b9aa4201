//! From judged runs to figures: statistics over passing runs, speedups and
//! ratios of medians, the baseline comparison, each gate's verdict, and the
//! level of claim the evidence supports.

use super::schema::*;
use super::wording::{ClaimReason, GateDetail, Note, Wording};
use super::{run_log_path, RunRecord, SummaryError};
use crate::guest::qemu::Accel;
use crate::proof::baseline::{comparison, rules};
use crate::proof::contract::{self, Contract, Gate, RequiredAccelerator};
use crate::proof::inputs::Inputs;
use crate::proof::stats;

/// Statistics, speedups, gates and claim from judged runs.
pub fn summarize(
    contract: &Contract,
    inputs: &Inputs,
    runs: &[RunRecord],
    wording: Wording,
) -> Result<SummaryDocument, SummaryError> {
    let spec = &contract.spec;
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
            metrics.push(MetricSummary {
                name: metric.name.clone(),
                unit: metric.unit.clone(),
                better: metric.better,
                statistics,
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

    let speedups: Vec<SpeedupSummary> = spec
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
                diagnostic: written.diagnostic,
            }
        })
        .collect();
    let ratios: Vec<RatioSummary> = spec
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
            diagnostic: written.diagnostic,
        })
        .collect();

    let total = runs.len();
    let passed = runs.iter().filter(|run| run.passed()).count();
    let gates: Vec<GateSummary> = spec
        .gates
        .iter()
        .zip(contract.gates())
        .map(|gate| {
            judge_gate(
                contract,
                gate,
                runs,
                &speedups,
                &ratios,
                wording,
                &inputs.environment,
            )
        })
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
    })
}

/// One gate's verdict; `environment` is the run's recorded variables (a
/// gate's `threshold_env` may replace its threshold).
fn judge_gate(
    contract: &Contract,
    (written, gate): (&contract::GateSpec, &Gate),
    runs: &[RunRecord],
    speedups: &[SpeedupSummary],
    ratios: &[RatioSummary],
    wording: Wording,
    environment: &std::collections::BTreeMap<String, String>,
) -> GateSummary {
    let spec = &contract.spec;
    let threshold_of = |threshold: f64| written.threshold_in(threshold, environment);
    let (verdict, value, detail) = match gate {
        Gate::AllRunsPass => {
            let passed = runs.iter().filter(|run| run.passed()).count();
            let pass = !runs.is_empty() && passed == runs.len();
            (
                pass,
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
                pass,
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
            let threshold = &threshold_of(*threshold);
            let measured = &speedups[*speedup];
            match measured.value {
                Some(value) => (
                    value >= *threshold,
                    Some(value),
                    wording.gate_detail(&GateDetail::Speedup {
                        metric: &measured.metric,
                        baseline_case: &measured.baseline_case,
                        case: &measured.case,
                        value: &stats::format_figure(value),
                        threshold: &stats::format_figure(*threshold),
                        ideal: &stats::format_figure(measured.ideal),
                    }),
                ),
                None => (
                    false,
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
            let threshold = &threshold_of(*threshold);
            let measured = &ratios[*ratio];
            let figure = |id: &str| {
                speedups
                    .iter()
                    .find(|speedup| speedup.id == id)
                    .and_then(|speedup| speedup.value)
                    .map(stats::format_figure)
                    .unwrap_or_else(|| "none".into())
            };
            match measured.value {
                Some(value) => (
                    value >= *threshold,
                    Some(value),
                    wording.gate_detail(&GateDetail::Ratio {
                        speedup: &measured.speedup,
                        speedup_value: &figure(&measured.speedup),
                        value: &stats::format_figure(value),
                        reference: &measured.reference,
                        reference_value: &figure(&measured.reference),
                        threshold: &stats::format_figure(*threshold),
                    }),
                ),
                None => (
                    false,
                    None,
                    wording.gate_detail(&GateDetail::NoRatio {
                        speedup: &measured.speedup,
                        reference: &measured.reference,
                    }),
                ),
            }
        }
    };
    GateSummary {
        id: written.id.clone(),
        description: written.description.clone(),
        kind: written.kind,
        speedup: written.speedup.clone(),
        ratio: written.ratio.clone(),
        threshold: written.threshold.map(threshold_of),
        value,
        verdict: if verdict {
            GateVerdict::Pass
        } else {
            GateVerdict::Fail
        },
        detail,
    }
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
    let failed_gates: Vec<&str> = gates
        .iter()
        .filter(|gate| gate.verdict == GateVerdict::Fail)
        .map(|gate| gate.id.as_str())
        .collect();
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
                gates: gates.len(),
            },
            RequiredAccelerator::Any => ClaimReason::PublishableUnderAny {
                total,
                gates: gates.len(),
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
