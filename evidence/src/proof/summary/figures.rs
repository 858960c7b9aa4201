//! From judged runs to figures: statistics over passing runs, speedups and
//! ratios of medians, the baseline comparison, each gate's verdict, and the
//! level of claim the evidence supports.

use super::schema::*;
use super::{run_log_path, RunRecord, SummaryError, SUMMARY_FORMAT};
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
        .map(|(written, gate)| judge_gate(contract, written, gate, runs, &speedups, &ratios))
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
            Some(reason) => notes.push(format!("case {} did not run: {reason}", case.id)),
            None => notes.extend(rules::case_note(case, inputs.host.cpu_count)),
        }
    }
    let comparison = comparison::compare(spec, &cases);
    let claim = judge_claim(contract, inputs, total, passed, &gates);
    Ok(SummaryDocument {
        format: SUMMARY_FORMAT.into(),
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

fn judge_gate(
    contract: &Contract,
    written: &contract::GateSpec,
    gate: &Gate,
    runs: &[RunRecord],
    speedups: &[SpeedupSummary],
    ratios: &[RatioSummary],
) -> GateSummary {
    let spec = &contract.spec;
    let (verdict, value, detail) = match gate {
        Gate::AllRunsPass => {
            let passed = runs.iter().filter(|run| run.passed()).count();
            let pass = !runs.is_empty() && passed == runs.len();
            (
                pass,
                None,
                format!("{passed} of {} runs passed", runs.len()),
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
                format!(
                    "{name} equalled {expectation} in {equal} of {} runs",
                    runs.len()
                ),
            )
        }
        Gate::SpeedupAtLeast { speedup, threshold } => {
            let measured = &speedups[*speedup];
            match measured.value {
                Some(value) => (
                    value >= *threshold,
                    Some(value),
                    format!(
                        "median {} speedup {} -> {} is {}x (threshold {}x, ideal {}x)",
                        measured.metric,
                        measured.baseline_case,
                        measured.case,
                        stats::format_figure(value),
                        stats::format_figure(*threshold),
                        stats::format_figure(measured.ideal)
                    ),
                ),
                None => (
                    false,
                    None,
                    format!(
                        "no speedup: a median of {} is missing or zero (no passing runs in {} or {})",
                        measured.metric, measured.baseline_case, measured.case
                    ),
                ),
            }
        }
        Gate::RatioAtLeast { ratio, threshold } => {
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
                    format!(
                        "speedup {} ({}x) is {} times speedup {} ({}x) (threshold {})",
                        measured.speedup,
                        figure(&measured.speedup),
                        stats::format_figure(value),
                        measured.reference,
                        figure(&measured.reference),
                        stats::format_figure(*threshold)
                    ),
                ),
                None => (
                    false,
                    None,
                    format!(
                        "no ratio: speedup {} or {} is missing (a case had no passing runs)",
                        measured.speedup, measured.reference
                    ),
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
        threshold: written.threshold,
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
) -> ClaimSummary {
    let spec = &contract.spec;
    let failed_gates: Vec<&str> = gates
        .iter()
        .filter(|gate| gate.verdict == GateVerdict::Fail)
        .map(|gate| gate.id.as_str())
        .collect();
    let accel = inputs.accelerator.name;
    let (level, reason) = if total == 0 || passed < total || !failed_gates.is_empty() {
        let mut reasons = Vec::new();
        if passed < total || total == 0 {
            reasons.push(format!("{} of {total} runs failed", total - passed));
        }
        if !failed_gates.is_empty() {
            reasons.push(format!("gate(s) failed: {}", failed_gates.join(", ")));
        }
        (
            ClaimLevel::Failed,
            format!("{}; the claim is not supported", reasons.join("; ")),
        )
    } else if spec.accelerator.publishable_requires == RequiredAccelerator::Kvm
        && accel != Accel::Kvm
    {
        (
            ClaimLevel::Diagnostic,
            format!(
                "every run and gate passed, but this claim is publishable only under KVM and the runs used {accel} ({}); under TCG the figures are diagnostic, not evidence of scaling",
                inputs.accelerator.reason
            ),
        )
    } else {
        let accelerator = match spec.accelerator.publishable_requires {
            RequiredAccelerator::Kvm => "under KVM as the contract requires".to_string(),
            RequiredAccelerator::Any => {
                format!("under {accel}; the contract accepts any accelerator")
            }
        };
        (
            ClaimLevel::Publishable,
            format!(
                "all {total} runs and {} gates passed {accelerator}",
                gates.len()
            ),
        )
    };
    ClaimSummary {
        statement: spec.claim.trim().to_string(),
        level,
        reason,
    }
}
