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
mod render;
mod schema;

pub use figures::summarize;
pub use judge::{
    check_consistent, evaluate_run_dir, judge_run, parse_timed_log, split_serial, ExitRecord,
    RunRecord, SerialLine,
};
pub use render::{json_text, render_results_csv, render_summary_json};
pub use schema::*;

use crate::guest::qemu;
use crate::proof::contract::{self, Contract};
use crate::proof::inputs::Inputs;
use crate::proof::stats;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Format tag of summary.json.
pub const SUMMARY_FORMAT: &str = "capos-summary/v1";
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
/// How QEMU ended, per run.
pub const EXIT_FILE: &str = "exit.json";
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
    #[error("{}: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A recorded file is not in its format.
    #[error("{}: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    /// serial.log and serial.timed.log do not hold the same lines.
    #[error("{}: line {line} differs from serial.log ({detail}); the logs were altered or mixed up", path.display())]
    Inconsistent {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    /// The logs directory does not hold exactly the recorded runs.
    #[error("{}: {detail}", path.display())]
    Layout { path: PathBuf, detail: String },
    /// The contract copy in the bundle is invalid.
    #[error(transparent)]
    Contract(#[from] contract::ContractError),
    /// A statistic could not be computed.
    #[error("{what}: {cause}")]
    Statistics {
        what: String,
        cause: stats::StatsError,
    },
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, SummaryError> {
    std::fs::read(path).map_err(|cause| SummaryError::Read {
        path: path.to_path_buf(),
        cause,
    })
}

/// Directory of one run's logs, relative to the bundle root.
pub fn run_log_path(case_id: &str, repetition: u32) -> String {
    format!("{LOGS_DIR}/{case_id}/{repetition}")
}

/// Judge every recorded run of a bundle directory, in case then repetition order.
pub fn evaluate_bundle_runs(
    contract: &Contract,
    inputs: &Inputs,
    bundle_dir: &Path,
) -> Result<Vec<RunRecord>, SummaryError> {
    check_log_layout(contract, inputs, bundle_dir)?;
    let mut runs = Vec::new();
    for (case_index, case) in contract.spec.cases.iter().enumerate() {
        if inputs.skipped_reason(&case.id).is_some() {
            continue;
        }
        for repetition in 1..=inputs.repetitions.count {
            let dir = bundle_dir.join(run_log_path(&case.id, repetition));
            runs.push(evaluate_run_dir(contract, case_index, repetition, &dir)?);
        }
    }
    Ok(runs)
}

/// The logs directory holds exactly one directory per case that ran and
/// repetition; only conditional cases may be recorded as skipped.
fn check_log_layout(
    contract: &Contract,
    inputs: &Inputs,
    bundle_dir: &Path,
) -> Result<(), SummaryError> {
    let repetitions = inputs.repetitions.count;
    let logs = bundle_dir.join(LOGS_DIR);
    for skipped in &inputs.skipped_cases {
        let conditional = contract
            .spec
            .cases
            .iter()
            .any(|case| case.id == skipped.id && case.condition.is_some());
        if !conditional {
            return Err(SummaryError::Layout {
                path: bundle_dir.join(INPUTS_FILE),
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
    let case_dirs = list_names(&logs)?;
    for name in &case_dirs {
        if !expected_cases.contains(name.as_str()) {
            return Err(SummaryError::Layout {
                path: logs.join(name),
                detail: "not a case of the contract; the logs do not belong to this contract"
                    .into(),
            });
        }
    }
    for case in &expected_cases {
        let case_dir = logs.join(case);
        let runs: BTreeSet<String> = list_names(&case_dir)?.into_iter().collect();
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

fn list_names(dir: &Path) -> Result<Vec<String>, SummaryError> {
    let entries = std::fs::read_dir(dir).map_err(|cause| SummaryError::Read {
        path: dir.to_path_buf(),
        cause,
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|cause| SummaryError::Read {
            path: dir.to_path_buf(),
            cause,
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The contract, inputs and stored summary of a (verified) bundle: what
/// `report` and `reproduce` work from.
pub fn read_bundle(bundle_dir: &Path) -> Result<(Contract, Inputs, SummaryDocument), SummaryError> {
    let (contract, inputs) = read_bundle_basics(bundle_dir)?;
    let summary_path = bundle_dir.join(SUMMARY_FILE);
    let summary = serde_json::from_slice(&read_bytes(&summary_path)?).map_err(|error| {
        SummaryError::Format {
            path: summary_path,
            detail: error.to_string(),
        }
    })?;
    Ok((contract, inputs, summary))
}

/// Read a bundle's contract copy and recorded inputs.
pub fn read_bundle_basics(bundle_dir: &Path) -> Result<(Contract, Inputs), SummaryError> {
    let contract_path = bundle_dir.join(CONTRACT_FILE);
    let text =
        String::from_utf8(read_bytes(&contract_path)?).map_err(|_| SummaryError::Format {
            path: contract_path.clone(),
            detail: "not valid UTF-8".into(),
        })?;
    let contract = contract::parse(&text, &contract_path)?;
    let inputs_path = bundle_dir.join(INPUTS_FILE);
    let inputs: Inputs = serde_json::from_slice(&read_bytes(&inputs_path)?).map_err(|error| {
        SummaryError::Format {
            path: inputs_path.clone(),
            detail: error.to_string(),
        }
    })?;
    if inputs.proof != contract.spec.name {
        return Err(SummaryError::Format {
            path: inputs_path,
            detail: format!(
                "records proof {:?} but contract.yaml is {:?}",
                inputs.proof, contract.spec.name
            ),
        });
    }
    Ok((contract, inputs))
}

/// Recompute every figure of a bundle from its contract copy and raw logs.
pub fn recompute(bundle_dir: &Path) -> anyhow::Result<Recomputed> {
    let (contract, inputs) = read_bundle_basics(bundle_dir)?;
    let runs = evaluate_bundle_runs(&contract, &inputs, bundle_dir)?;
    let summary = summarize(&contract, &inputs, &runs)?;
    Ok(Recomputed {
        results_csv: render_results_csv(&contract, &runs),
        summary_json: render_summary_json(&summary)?,
    })
}
