//! The side-by-side figures of a run with baselines: per CPU count and
//! metric, each system's median and speedup, and capOS relative to the
//! reference system (the Linux guest). Part of summary.json, so `capos
//! verify` recomputes it and the report only formats it.
//!
//! Invariants: every figure here is derived from the per-case medians in
//! the same summary (no other input); cases that did not run are left out; speedups are taken per system from
//! its own lowest-CPU case and rounded like every other summary figure;
//! a missing median makes the derived figures `None`, never zero.

use super::Os;
use crate::proof::contract::{Better, ContractSpec};
use crate::proof::stats;
use crate::proof::summary::{CaseSummary, ComparisonRow, ComparisonSummary, SystemFigure};

/// The system capOS is compared with.
pub const REFERENCE: Os = Os::Linux;

/// `numerator / denominator`, rounded; None when either is missing or the
/// denominator is not positive.
pub fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    match (numerator, denominator) {
        (Some(top), Some(bottom)) if bottom > 0.0 && top.is_finite() => {
            Some(stats::round(top / bottom))
        }
        _ => None,
    }
}

/// The speedup of `compared` over `baseline` for a metric improving in
/// direction `better` (time-like: baseline / compared).
pub fn speedup(better: Better, baseline: Option<f64>, compared: Option<f64>) -> Option<f64> {
    match better {
        Better::Lower => ratio(baseline, compared),
        Better::Higher => ratio(compared, baseline),
    }
}

/// The comparison of a contract with baseline cases; None without them.
pub fn compare(spec: &ContractSpec, cases: &[CaseSummary]) -> Option<ComparisonSummary> {
    if spec.cases.iter().all(|case| case.os.is_capos()) {
        return None;
    }
    let mut cpu_counts: Vec<u32> = spec.cases.iter().map(|case| case.cpus).collect();
    cpu_counts.sort_unstable();
    cpu_counts.dedup();
    let systems = [Os::Capos, Os::Linux, Os::Native];
    let mut rows = Vec::new();
    for (metric_index, metric) in spec.metrics.iter().enumerate() {
        let scaling = spec.speedups.iter().any(|s| s.metric == metric.name);
        let median = |index: usize| {
            cases[index].metrics[metric_index]
                .statistics
                .as_ref()
                .map(|statistics| statistics.median)
        };
        let lowest = |os: Os| {
            (0..spec.cases.len())
                .filter(|&index| spec.cases[index].os == os && cases[index].skipped.is_none())
                .min_by_key(|&index| spec.cases[index].cpus)
        };
        for &cpus in &cpu_counts {
            let mut figures = Vec::new();
            for os in systems {
                let ran = |i: usize| cases[i].skipped.is_none();
                let Some(index) = (0..spec.cases.len())
                    .find(|&i| spec.cases[i].os == os && spec.cases[i].cpus == cpus && ran(i))
                else {
                    continue;
                };
                let speedup = match (scaling, lowest(os)) {
                    (true, Some(base)) => speedup(metric.better, median(base), median(index)),
                    _ => None,
                };
                figures.push((
                    index,
                    SystemFigure {
                        os,
                        case: spec.cases[index].id.clone(),
                        median: median(index),
                        speedup,
                    },
                ));
            }
            let Some((first, _)) = figures.first() else {
                continue;
            };
            let workers = spec.cases[*first].workers;
            let figure = |os: Os| {
                figures
                    .iter()
                    .find(|(_, figure)| figure.os == os)
                    .map(|(_, f)| f)
            };
            let capos = figure(Os::Capos);
            let reference = figure(REFERENCE);
            let median_ratio = ratio(
                capos.and_then(|f| f.median),
                reference.and_then(|f| f.median),
            );
            let speedup_ratio = ratio(
                capos.and_then(|f| f.speedup),
                reference.and_then(|f| f.speedup),
            );
            rows.push(ComparisonRow {
                metric: metric.name.clone(),
                unit: metric.unit.clone(),
                cpus,
                workers,
                systems: figures.into_iter().map(|(_, figure)| figure).collect(),
                median_ratio,
                speedup_ratio: if scaling { speedup_ratio } else { None },
            });
        }
    }
    Some(ComparisonSummary {
        reference: REFERENCE,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_need_both_figures_and_a_positive_denominator() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(speedup(Better::Lower, Some(10.0), Some(5.0)), Some(2.0));
        assert_eq!(speedup(Better::Higher, Some(10.0), Some(5.0)), Some(0.5));
    }
}
