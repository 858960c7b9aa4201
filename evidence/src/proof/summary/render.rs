//! The exact bytes of `results.csv` and `summary.json`: what `capos run`
//! stores and what an audit recomputes.

use serde::Serialize;

use super::{RunRecord, SummaryDocument};
use crate::proof::contract::Contract;
use crate::proof::stats;

/// results.csv: one row per run, fields and metrics in contract order.
pub fn render_results_csv(contract: &Contract, runs: &[RunRecord]) -> String {
    let spec = &contract.spec;
    let mut header: Vec<String> = ["case", "repetition", "case_cpus", "case_workers", "verdict"]
        .iter()
        .map(|name| name.to_string())
        .collect();
    header.extend(
        spec.result_line
            .fields
            .iter()
            .map(|field| field.name.clone()),
    );
    header.extend(spec.metrics.iter().map(|metric| metric.name.clone()));
    header.push("problems".into());
    let mut text = csv_row(&header);
    for run in runs {
        let case = &spec.cases[run.case];
        let mut row = vec![
            case.id.clone(),
            run.repetition.to_string(),
            case.cpus.to_string(),
            case.workers
                .map(|workers| workers.to_string())
                .unwrap_or_default(),
            if run.passed() { "pass" } else { "fail" }.to_string(),
        ];
        row.extend(run.fields.iter().map(|value| {
            value
                .as_ref()
                .map(|value| value.to_string())
                .unwrap_or_default()
        }));
        row.extend(
            run.metrics
                .iter()
                .map(|value| value.map(stats::format_figure).unwrap_or_default()),
        );
        row.push(run.problems.join("; "));
        text.push_str(&csv_row(&row));
    }
    text
}

/// One CSV line (RFC 4180 quoting), ending in `\n`.
fn csv_row(cells: &[String]) -> String {
    let quoted: Vec<String> = cells
        .iter()
        .map(|cell| {
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell.clone()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

/// summary.json text: pretty JSON and a final newline.
pub fn render_summary_json(summary: &SummaryDocument) -> Result<String, serde_json::Error> {
    json_text(summary)
}

/// Pretty JSON with a final newline: how the run's JSON files are written.
pub fn json_text<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}
