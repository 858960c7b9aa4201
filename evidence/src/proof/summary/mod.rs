//! Turning raw run logs into results.csv and summary.json, the same way every time.
//!
//! `capos run` writes its raw logs first and then calls [`recompute`] on its
//! own staging directory, so the bytes it stores are by construction the bytes
//! an auditor recomputes from the bundle. Parsing fails closed: a run passes
//! only if QEMU exited with the guest's success code, exactly one result line
//! is present and matches the contract, every field check and line count
//! holds, and every metric has a value. Statistics use passing runs only.
//!
//! Per run, `logs/<case>/<repetition>/` holds `serial.log` (raw bytes),
//! `serial.timed.log` (`<micros since QEMU start> <line>`), `stderr.log`,
//! `command.txt` and [`EXIT_FILE`] (how QEMU ended).

mod figures;
mod judge;
mod problems;
mod render;
mod schema;
pub mod wording;

pub use crate::proof::exit::{ExitRecord, EXIT_FILE};
pub use figures::{gated_widths, summarize, HOST_CAPACITY_FRACTION};
pub use judge::{
    check_consistent, evaluate_run_dir, judge_run, parse_timed_log, split_serial, RunRecord,
    SerialLine,
};
pub use render::{json_text, render_results_csv, render_summary_json};
pub use schema::*;

use crate::bundle::files::{BundleFiles, FileError};
use crate::guest::qemu;
use crate::proof::adaptive::{Decision, StoppingRule};
use crate::proof::contract::{self, Contract};
use crate::proof::inputs::Inputs;
use crate::proof::stats;
use crate::terminal::untrusted;
use std::collections::BTreeSet;
use std::path::Path;
use wording::Wording;

/// Format tag of summary.json written by this capos (older versions are read too).
pub const SUMMARY_FORMAT: &str = Wording::CURRENT.summary_format();
/// The contract copy inside a bundle.
pub const CONTRACT_FILE: &str = "contract.yaml";
/// The recorded inputs inside a bundle.
pub const INPUTS_FILE: &str = "inputs.json";
/// One row per run.
pub const RESULTS_FILE: &str = "results.csv";
/// Statistics, gates and the claim.
pub const SUMMARY_FILE: &str = "summary.json";
/// Raw logs, `logs/<case>/<repetition>/`.
pub const LOGS_DIR: &str = crate::bundle::LOGS_DIR;
/// Raw serial bytes, per run.
pub const SERIAL_FILE: &str = qemu::SERIAL_LOG;
/// Serial lines with host arrival times, per run.
pub const TIMED_FILE: &str = qemu::TIMED_LOG;

/// The exact bytes `capos run` writes for results.csv and summary.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recomputed {
    /// Contents of results.csv.
    pub results_csv: String,
    /// Contents of summary.json.
    pub summary_json: String,
}

/// Why figures could not be computed at all (as opposed to a run failing).
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// A file could not be read.
    #[error(transparent)]
    Read(#[from] FileError),
    /// A recorded file is not in its format. `detail` may quote the file.
    #[error("{}: {}", untrusted(path), untrusted(detail))]
    Format { path: String, detail: String },
    /// serial.log and serial.timed.log do not hold the same lines.
    #[error(
        "{}: line {line} differs from serial.log ({}); the logs were altered or mixed up",
        untrusted(path),
        untrusted(detail)
    )]
    Inconsistent {
        path: String,
        line: usize,
        detail: String,
    },
    /// The logs directory does not hold exactly the recorded runs.
    #[error("{}: {}", untrusted(path), untrusted(detail))]
    Layout { path: String, detail: String },
    /// The contract copy in the bundle is invalid (its text may quote the file).
    #[error("{}", untrusted(&.0.to_string()))]
    Contract(contract::ContractError),
    /// Adaptive rounds did not follow their recorded stopping rule.
    #[error("adaptive repetitions: {0}")]
    Stopping(String),
    /// A statistic could not be computed.
    #[error("{what}: {cause}")]
    Statistics {
        what: String,
        cause: stats::StatsError,
    },
}

/// Directory of one run's logs, relative to the bundle root.
pub fn run_log_path(case_id: &str, repetition: u32) -> String {
    format!("{LOGS_DIR}/{case_id}/{repetition}")
}

/// Judge every recorded run of a bundle, in case then repetition order.
pub fn evaluate_bundle_runs(
    contract: &Contract,
    inputs: &Inputs,
    files: &BundleFiles,
) -> Result<Vec<RunRecord>, SummaryError> {
    let wording = wording_of(inputs)?;
    check_log_layout(contract, inputs, files)?;
    let mut runs = Vec::new();
    for (case_index, case) in contract.spec.cases.iter().enumerate() {
        if inputs.skipped_reason(&case.id).is_some() {
            continue;
        }
        for repetition in 1..=inputs.repetitions.count {
            let dir = run_log_path(&case.id, repetition);
            runs.push(evaluate_run_dir(
                contract,
                case_index,
                repetition,
                files,
                &dir,
                wording,
                inputs.guest_measure(),
            )?);
        }
    }
    Ok(runs)
}

/// The logs directory holds exactly one directory per case that ran and
/// repetition; only conditional cases may be recorded as skipped.
fn check_log_layout(
    contract: &Contract,
    inputs: &Inputs,
    files: &BundleFiles,
) -> Result<(), SummaryError> {
    let repetitions = inputs.repetitions.count;
    for skipped in &inputs.skipped_cases {
        let conditional = contract
            .spec
            .cases
            .iter()
            .any(|case| case.id == skipped.id && case.condition.is_some());
        if !conditional {
            return Err(SummaryError::Layout {
                path: INPUTS_FILE.to_owned(),
                detail: format!(
                    "records case {:?} as skipped, but only a conditional case of the contract may be",
                    skipped.id
                ),
            });
        }
    }
    let expected_cases: BTreeSet<&str> = contract
        .spec
        .cases
        .iter()
        .filter(|case| inputs.skipped_reason(&case.id).is_none())
        .map(|case| case.id.as_str())
        .collect();
    let expected_runs: BTreeSet<String> = (1..=repetitions)
        .map(|repetition| repetition.to_string())
        .collect();
    let case_dirs = files.list(LOGS_DIR)?;
    for name in &case_dirs {
        if !expected_cases.contains(name.as_str()) {
            return Err(SummaryError::Layout {
                path: format!("{LOGS_DIR}/{name}"),
                detail: "not a case of the contract; the logs do not belong to this contract"
                    .into(),
            });
        }
    }
    for case in &expected_cases {
        let case_dir = format!("{LOGS_DIR}/{case}");
        let runs: BTreeSet<String> = files.list(&case_dir)?.into_iter().collect();
        if runs != expected_runs {
            return Err(SummaryError::Layout {
                path: case_dir,
                detail: format!(
                    "holds runs [{}] but inputs.json records {repetitions} repetitions",
                    runs.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// The contract, inputs and stored summary of a (verified) bundle: what
/// `report` and `reproduce` work from.
pub fn read_bundle(
    files: &BundleFiles,
) -> Result<(Contract, Inputs, SummaryDocument), SummaryError> {
    let (contract, inputs) = read_bundle_basics(files)?;
    let summary = serde_json::from_slice(&files.read(SUMMARY_FILE)?).map_err(|error| {
        SummaryError::Format {
            path: SUMMARY_FILE.to_owned(),
            detail: error.to_string(),
        }
    })?;
    Ok((contract, inputs, summary))
}

/// Read a bundle's contract copy and recorded inputs.
pub fn read_bundle_basics(files: &BundleFiles) -> Result<(Contract, Inputs), SummaryError> {
    let text = String::from_utf8(files.read(CONTRACT_FILE)?).map_err(|_| SummaryError::Format {
        path: CONTRACT_FILE.to_owned(),
        detail: "not valid UTF-8".into(),
    })?;
    let contract =
        contract::parse(&text, Path::new(CONTRACT_FILE)).map_err(SummaryError::Contract)?;
    let inputs: Inputs = serde_json::from_slice(&files.read(INPUTS_FILE)?).map_err(|error| {
        SummaryError::Format {
            path: INPUTS_FILE.to_owned(),
            detail: error.to_string(),
        }
    })?;
    if inputs.proof != contract.spec.name {
        return Err(SummaryError::Format {
            path: INPUTS_FILE.to_owned(),
            detail: format!(
                "records proof {:?} but contract.yaml is {:?}",
                inputs.proof, contract.spec.name
            ),
        });
    }
    // A recorded workload size replaces the written size and checksum
    // expectations, with the checksum recomputed here.
    let sized =
        crate::proof::workload_size::sized(&contract, &inputs.environment).map_err(|error| {
            SummaryError::Format {
                path: INPUTS_FILE.to_owned(),
                detail: error.to_string(),
            }
        })?;
    Ok((sized.unwrap_or(contract), inputs))
}

/// The frozen wording of the format `inputs.json` records.
pub fn wording_of(inputs: &Inputs) -> Result<Wording, SummaryError> {
    Wording::for_inputs_format(&inputs.format).ok_or_else(|| SummaryError::Format {
        path: INPUTS_FILE.to_owned(),
        detail: format!(
            "format {:?} is not one this capos knows ({}); a newer capos wrote it",
            inputs.format,
            Wording::CURRENT.inputs_format()
        ),
    })
}

/// Recompute every figure of a bundle from its contract copy and raw logs,
/// in the wording of the format the bundle records.
pub fn recompute(files: &BundleFiles) -> anyhow::Result<Recomputed> {
    let (contract, inputs) = read_bundle_basics(files)?;
    let runs = evaluate_bundle_runs(&contract, &inputs, files)?;
    let wording = wording_of(&inputs)?;
    let mut summary = summarize(&contract, &inputs, &runs, wording)?;
    if let Some(rule) = &inputs.repetitions.adaptive {
        if !wording.has_intervals() {
            return Err(SummaryError::Stopping(format!(
                "format {} has no adaptive repetitions, but inputs.json records a rule",
                inputs.format
            ))
            .into());
        }
        summary.adaptive = Some(check_stopping(&contract, &inputs, rule, &runs)?);
    }
    Ok(Recomputed {
        results_csv: render_results_csv(&contract, &runs),
        summary_json: render_summary_json(&summary)?,
    })
}

/// Replay the stopping rule over the recorded rounds: it must have said
/// "continue" after every round but the last, and "stop" after the last.
pub fn check_stopping(
    contract: &Contract,
    inputs: &Inputs,
    rule: &StoppingRule,
    runs: &[RunRecord],
) -> Result<AdaptiveSummary, SummaryError> {
    if let Some(problem) = rule.problem(contract::MAX_REPETITIONS) {
        return Err(SummaryError::Stopping(problem));
    }
    let rounds = inputs.repetitions.count;
    if rounds < rule.min_rounds || rounds > rule.max_rounds {
        return Err(SummaryError::Stopping(format!(
            "the bundle holds {rounds} rounds, outside the rule's {}..={}",
            rule.min_rounds, rule.max_rounds
        )));
    }
    for round in rule.min_rounds..=rounds {
        let prefix: Vec<RunRecord> = runs
            .iter()
            .filter(|run| run.repetition <= round)
            .cloned()
            .collect();
        let widths = gated_widths(contract, inputs, &prefix)?;
        let relative: Vec<Option<f64>> = widths.iter().map(|width| width.relative_width).collect();
        let decision = rule.decide(round, &relative);
        match (round == rounds, decision) {
            (false, Decision::Continue) => {}
            (false, stop) => {
                return Err(SummaryError::Stopping(format!(
                    "the rule said stop ({stop:?}) after round {round}, but the bundle holds {rounds} rounds"
                )))
            }
            (true, Decision::Continue) => {
                return Err(SummaryError::Stopping(format!(
                    "the bundle stops after {rounds} rounds, but the rule says continue (widths {})",
                    describe_widths(&widths)
                )))
            }
            (true, stopped) => {
                return Ok(AdaptiveSummary {
                    rule: rule.clone(),
                    rounds,
                    stopped,
                    widths,
                })
            }
        }
    }
    Err(SummaryError::Stopping(format!(
        "no round to judge ({rounds} rounds)"
    )))
}

/// `gate=0.031, gate=none` for messages and progress lines.
pub fn describe_widths(widths: &[GatedWidth]) -> String {
    let parts: Vec<String> = widths
        .iter()
        .map(|width| {
            format!(
                "{}={}",
                width.gate,
                width
                    .relative_width
                    .map(stats::format_figure)
                    .unwrap_or_else(|| "none".into())
            )
        })
        .collect();
    if parts.is_empty() {
        "none gated".into()
    } else {
        parts.join(", ")
    }
}
