//! The report's guest-measurement section: per case, each counter's
//! median per phase over the passing runs' `measure.log`, and the user-PC
//! symbols sampled most over those runs' `user-pc-symbols.log`.
//!
//! Invariants: only passing runs count (a failed run's block may be
//! missing or malformed); figures are preformatted here, so the templates
//! do no arithmetic and the same bundle always renders the same bytes.

use crate::bundle::files::BundleFiles;
use crate::proof::measure::{self, MeasureBlock, SymbolSample};
use crate::proof::stats;
use crate::proof::summary::{self, SummaryDocument};
use anyhow::{Context, Result};
use capos_kcore::measure::{Counter, Phase};
use serde::Serialize;
use std::collections::BTreeMap;

/// Symbols listed per case.
const TOP_SYMBOLS: usize = 12;

/// One case's measurement, for the templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureCaseView {
    /// Case id.
    pub case: String,
    /// Passing runs the medians are over.
    pub runs: usize,
    /// Column names: the phases, the total last.
    pub phases: Vec<&'static str>,
    /// One row per counter.
    pub rows: Vec<CounterRow>,
    /// The most sampled symbols, most first.
    pub symbols: Vec<SymbolRow>,
    /// Samples kept over the runs.
    pub samples: u64,
    /// Samples dropped (full buffers) over the runs.
    pub dropped: u64,
}

/// One counter's medians, one per phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterRow {
    /// The counter's name in the `[measure]` lines.
    pub counter: &'static str,
    /// Median per phase, in [`MeasureCaseView::phases`] order.
    pub medians: Vec<String>,
}

/// One symbol's share of the samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolRow {
    /// Demangled symbol, or `?` for PCs outside the binary's code.
    pub symbol: String,
    /// Its samples over the runs.
    pub samples: u64,
    /// Its share of every sample kept, as a percentage.
    pub share: String,
}

/// The measurement views of a bundle whose inputs record the `measure`
/// kernel feature: one per case with at least one passing capOS run.
pub fn views(files: &BundleFiles, summary: &SummaryDocument) -> Result<Vec<MeasureCaseView>> {
    let mut views = Vec::new();
    for case in summary.cases.iter().filter(|case| case.skipped.is_none()) {
        let mut blocks = Vec::new();
        let mut symbols = Vec::new();
        for repetition in 1..=summary.repetitions {
            let failed = summary
                .failures
                .iter()
                .any(|failure| failure.case == case.id && failure.repetition == repetition);
            let directory = summary::run_log_path(&case.id, repetition);
            let measure_path = format!("{directory}/{}", measure::MEASURE_FILE);
            // Baseline cases and failed runs have no usable block.
            let Ok(text) = files.read(&measure_path) else {
                continue;
            };
            if failed {
                continue;
            }
            let text = String::from_utf8(text)
                .with_context(|| format!("{measure_path}: not valid UTF-8"))?;
            let lines = measure::measure_lines(text.lines());
            blocks.push(
                measure::parse_block(&lines).with_context(|| format!("reading {measure_path}"))?,
            );
            let symbols_path = format!("{directory}/{}", measure::SYMBOLS_FILE);
            let text = String::from_utf8(files.read(&symbols_path)?)
                .with_context(|| format!("{symbols_path}: not valid UTF-8"))?;
            symbols.push(
                measure::parse_symbols(&text).with_context(|| format!("reading {symbols_path}"))?,
            );
        }
        if !blocks.is_empty() {
            views.push(case_view(&case.id, &blocks, &symbols));
        }
    }
    Ok(views)
}

/// One case's view from its passing runs' blocks and symbol samples.
pub fn case_view(
    case: &str,
    blocks: &[MeasureBlock],
    symbols: &[Vec<SymbolSample>],
) -> MeasureCaseView {
    let rows = Counter::ALL
        .into_iter()
        .map(|counter| CounterRow {
            counter: counter.name(),
            medians: (0..Phase::ALL.len())
                .map(|phase| {
                    let values: Vec<f64> = blocks
                        .iter()
                        .map(|block| block.phases[phase].get(counter) as f64)
                        .collect();
                    stats::median(&values)
                        .map(count_figure)
                        .unwrap_or_else(|_| "—".into())
                })
                .collect(),
        })
        .collect();
    let samples: u64 = blocks.iter().map(|block| block.samples.total).sum();
    let dropped: u64 = blocks.iter().map(|block| block.samples.dropped).sum();
    let mut by_symbol: BTreeMap<&str, u64> = BTreeMap::new();
    for sample in symbols.iter().flatten() {
        *by_symbol.entry(sample.symbol.as_str()).or_default() += sample.samples;
    }
    let mut ranked: Vec<(&str, u64)> = by_symbol.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    MeasureCaseView {
        case: case.to_owned(),
        runs: blocks.len(),
        phases: Phase::ALL.iter().map(|phase| phase.name()).collect(),
        rows,
        symbols: ranked
            .into_iter()
            .take(TOP_SYMBOLS)
            .map(|(symbol, count)| SymbolRow {
                symbol: symbol.to_owned(),
                samples: count,
                share: if samples == 0 {
                    "—".into()
                } else {
                    format!("{:.1}%", 100.0 * count as f64 / samples as f64)
                },
            })
            .collect(),
        samples,
        dropped,
    }
}

/// A median of counts, readable ([`crate::proof::numbers::readable`]): whole, or
/// with one decimal between two counts, large ones with a unit.
fn count_figure(median: f64) -> String {
    crate::proof::numbers::readable(median)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_kcore::measure::{Counters, SamplesLine};

    fn block(scale: u64, total: u64) -> MeasureBlock {
        let phase = |value: u64| Counters([value * scale; Counter::COUNT]);
        MeasureBlock {
            phases: [phase(1), phase(2), phase(3), phase(6)],
            pcs: Vec::new(),
            samples: SamplesLine { total, dropped: 1 },
        }
    }

    fn sample(symbol: &str, samples: u64) -> SymbolSample {
        SymbolSample {
            pc: 0x401000,
            samples,
            symbol: symbol.to_owned(),
        }
    }

    #[test]
    fn medians_per_phase_and_symbols_over_the_runs() {
        let blocks = [block(1, 10), block(3, 20), block(2, 10)];
        let symbols = [
            vec![sample("spin", 6), sample("main", 2)],
            vec![sample("spin", 15), sample("?", 3)],
            vec![sample("main", 4), sample("spin", 4)],
        ];
        let view = case_view("cpus2", &blocks, &symbols);
        assert_eq!(view.runs, 3);
        assert_eq!(view.phases, ["spawn_ready", "work", "shutdown", "total"]);
        assert_eq!(view.rows.len(), Counter::COUNT);
        assert_eq!(view.rows[0].counter, "rq_lock");
        // Medians of (1, 3, 2) x phase value.
        assert_eq!(view.rows[0].medians, ["2", "4", "6", "12"]);
        assert_eq!(view.samples, 40);
        assert_eq!(view.dropped, 3);
        let ranked: Vec<(&str, u64, &str)> = view
            .symbols
            .iter()
            .map(|row| (row.symbol.as_str(), row.samples, row.share.as_str()))
            .collect();
        assert_eq!(
            ranked,
            [
                ("spin", 25, "62.5%"),
                ("main", 6, "15.0%"),
                ("?", 3, "7.5%")
            ]
        );
    }

    #[test]
    fn an_even_number_of_runs_takes_the_middle_mean() {
        let view = case_view("cpus1", &[block(1, 0), block(2, 0)], &[]);
        assert_eq!(view.rows[5].medians, ["1.5", "3", "4.5", "9"]);
        assert!(view.symbols.is_empty());
    }
}
