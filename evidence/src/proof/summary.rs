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

use crate::guest::qemu::{self, Accel};
use crate::proof::baseline::comparison::{self, ComparisonSummary};
use crate::proof::baseline::{rules, Os};
use crate::proof::contract::{
    self, Better, Contract, FieldValue, Gate, MetricSource, RequiredAccelerator,
};
use crate::proof::inputs::Inputs;
use crate::proof::stats::{self, Summary};
use serde::{Deserialize, Serialize};
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

/// How QEMU ended, recorded per run in [`EXIT_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitRecord {
    /// QEMU's exit status; None when it was killed (timeout or signal).
    pub exit_code: Option<i32>,
    /// Whether the harness killed QEMU at the case's timeout.
    pub timed_out: bool,
    /// Wall time of the run in milliseconds (recorded, not used in figures).
    pub wall_ms: u64,
    /// Native baseline runs: how many CPUs the program was pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_cpus: Option<u32>,
}

impl ExitRecord {
    /// Why this exit is not a pass, or None when the guest reported success
    /// (the runner's own classification, [`qemu::judge_exit`]).
    pub fn problem(&self) -> Option<String> {
        match qemu::judge_exit(self.exit_code, self.timed_out) {
            qemu::Verdict::Pass => None,
            qemu::Verdict::Timeout => Some("timed out (QEMU killed at the case's timeout)".into()),
            qemu::Verdict::Fail { reason, .. } => Some(reason),
        }
    }
}

/// One serial line with its host arrival time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    /// Microseconds since QEMU started.
    pub arrival_micros: u64,
    /// The line without its line ending.
    pub text: String,
}

/// The judged outcome of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Index into the contract's cases.
    pub case: usize,
    /// 1-based repetition number.
    pub repetition: u32,
    /// Every reason the run failed; empty means it passed.
    pub problems: Vec<String>,
    /// Parsed result-line fields, in contract order (None when absent).
    pub fields: Vec<Option<FieldValue>>,
    /// Metric values, in contract order (None when absent).
    pub metrics: Vec<Option<f64>>,
}

impl RunRecord {
    /// Whether the run passed every check.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Read `serial.timed.log` text: one `<micros> <line>` per line.
pub fn parse_timed_log(text: &str, path: &Path) -> Result<Vec<SerialLine>, SummaryError> {
    let mut lines = Vec::new();
    for (index, line) in text.split_terminator('\n').enumerate() {
        let parsed = line.split_once(' ').and_then(|(micros, rest)| {
            let digits_only = !micros.is_empty() && micros.bytes().all(|b| b.is_ascii_digit());
            let micros = micros.parse::<u64>().ok().filter(|_| digits_only)?;
            Some(SerialLine {
                arrival_micros: micros,
                text: rest.to_string(),
            })
        });
        match parsed {
            Some(parsed) => lines.push(parsed),
            None => {
                return Err(SummaryError::Format {
                    path: path.to_path_buf(),
                    detail: format!(
                        "line {}: expected `<microseconds> <serial line>`, found {line:?}",
                        index + 1
                    ),
                })
            }
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(SummaryError::Format {
            path: path.to_path_buf(),
            detail: "the last line is not terminated (truncated file?)".into(),
        });
    }
    Ok(lines)
}

/// Split raw serial bytes into lines exactly as the capture did.
pub fn split_serial(bytes: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&byte| byte == b'\n') {
        lines.push(qemu::serial_line_text(&rest[..=end]));
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        lines.push(String::from_utf8_lossy(rest).into_owned());
    }
    lines
}

/// Check that the timed log holds exactly the lines of the raw serial log.
pub fn check_consistent(
    serial: &[String],
    timed: &[SerialLine],
    timed_path: &Path,
) -> Result<(), SummaryError> {
    for (index, (raw, timed_line)) in serial.iter().zip(timed).enumerate() {
        if *raw != timed_line.text {
            return Err(SummaryError::Inconsistent {
                path: timed_path.to_path_buf(),
                line: index + 1,
                detail: format!(
                    "serial.log has {raw:?}, serial.timed.log has {:?}",
                    timed_line.text
                ),
            });
        }
    }
    if serial.len() != timed.len() {
        return Err(SummaryError::Inconsistent {
            path: timed_path.to_path_buf(),
            line: serial.len().min(timed.len()) + 1,
            detail: format!(
                "serial.log has {} lines, serial.timed.log {}",
                serial.len(),
                timed.len()
            ),
        });
    }
    let mut previous = 0;
    for (index, line) in timed.iter().enumerate() {
        if line.arrival_micros < previous {
            return Err(SummaryError::Inconsistent {
                path: timed_path.to_path_buf(),
                line: index + 1,
                detail: "arrival times go backwards".into(),
            });
        }
        previous = line.arrival_micros;
    }
    Ok(())
}

/// Judge one run from its parsed serial lines and exit record (pure; no files).
#[must_use]
pub fn judge_run(
    contract: &Contract,
    case: usize,
    repetition: u32,
    lines: &[SerialLine],
    exit: &ExitRecord,
) -> RunRecord {
    let spec = &contract.spec;
    let os = spec.cases[case].os;
    let (judged_case, pinning_problem) = rules::judged_case(&spec.cases[case], exit);
    let case_spec = &judged_case;
    let mut problems = Vec::new();
    problems.extend(rules::exit_problem(os, exit));
    problems.extend(pinning_problem);
    problems.extend(rules::serial_problems(
        os,
        lines.iter().map(|line| line.text.as_str()),
    ));
    let fields = judge_result_line(contract, case_spec, lines, &mut problems);

    // line_counts check capOS serial output only (see crate::proof::baseline).
    let line_counts = if os.is_capos() {
        contract.line_counts()
    } else {
        &[]
    };
    for (pattern, expectation) in line_counts {
        let found = lines
            .iter()
            .filter(|line| pattern.is_match(&line.text))
            .count();
        let expected = expectation.resolve(case_spec);
        let matches = expected.as_ref().and_then(FieldValue::as_number) == Some(found as f64);
        if !matches {
            problems.push(format!(
                "expected {} lines matching {}, found {found}",
                describe_expectation(expectation, case_spec),
                display_pattern(pattern.as_str())
            ));
        }
    }

    let mut metrics = Vec::new();
    for (metric, source) in spec.metrics.iter().zip(contract.metric_sources()) {
        let value = match source {
            MetricSource::Field(index) => fields[*index].as_ref().and_then(FieldValue::as_number),
            MetricSource::ArrivalMs(pattern) => {
                let first = lines.iter().find(|line| pattern.is_match(&line.text));
                if first.is_none() {
                    problems.push(format!(
                        "metric {}: no line matches {}",
                        metric.name,
                        display_pattern(pattern.as_str())
                    ));
                }
                first.map(|line| line.arrival_micros as f64 / 1000.0)
            }
        };
        metrics.push(value);
    }
    RunRecord {
        case,
        repetition,
        problems,
        fields,
        metrics,
    }
}

/// `5`, or `case.cpus - 1 = 3` for case references.
fn describe_expectation(expectation: &contract::Expectation, case: &contract::CaseSpec) -> String {
    match expectation {
        contract::Expectation::Value(value) => value.to_string(),
        contract::Expectation::Case { .. } => {
            let resolved = expectation
                .resolve(case)
                .map(|value| value.to_string())
                .unwrap_or_else(|| "?".into());
            format!("{expectation} = {resolved}")
        }
    }
}

/// The pattern as the contract wrote it (without the anchoring wrapper).
fn display_pattern(anchored: &str) -> String {
    let inner = anchored
        .strip_prefix("^(?:")
        .and_then(|rest| rest.strip_suffix(")$"))
        .unwrap_or(anchored);
    format!("`{inner}`")
}

/// Find and check the one result line; fields are None when it is unusable.
fn judge_result_line(
    contract: &Contract,
    case_spec: &contract::CaseSpec,
    lines: &[SerialLine],
    problems: &mut Vec<String>,
) -> Vec<Option<FieldValue>> {
    let spec = &contract.spec;
    let process = spec.result_line.process.as_deref();
    let os = case_spec.os;
    let prefix = &rules::expected_start(os, process, &spec.result_line.prefix);
    let mut fields = vec![None; spec.result_line.fields.len()];
    for (index, line) in lines.iter().enumerate() {
        if rules::misattributed(os, &spec.result_line.prefix, &line.text) {
            problems.push(format!(
                "result line of another system (serial line {}): {:?} does not start with {prefix:?}",
                index + 1,
                line.text
            ));
        }
    }
    let candidates: Vec<(usize, SerialLine)> = lines
        .iter()
        .enumerate()
        .filter_map(|(index, line)| {
            let text = rules::result_text(os, process, &spec.result_line.prefix, &line.text)?;
            Some((
                index + 1,
                SerialLine {
                    arrival_micros: line.arrival_micros,
                    text,
                },
            ))
        })
        .collect();
    let (number, line) = match candidates.as_slice() {
        [] => {
            problems.push(format!(
                "result line missing: no serial line starts with {prefix:?}"
            ));
            return fields;
        }
        [(number, line)] => (*number, line),
        several => {
            let numbers: Vec<String> = several
                .iter()
                .map(|(number, _)| number.to_string())
                .collect();
            problems.push(format!(
                "result line duplicated: {} lines start with {prefix:?} (serial lines {})",
                several.len(),
                numbers.join(", ")
            ));
            return fields;
        }
    };
    let Some(captures) = contract.result_pattern().captures(&line.text) else {
        problems.push(format!(
            "malformed result line (serial line {number}): {:?} does not match result_line.pattern",
            line.text
        ));
        return fields;
    };
    let mut parsed = Vec::new();
    for field in &spec.result_line.fields {
        let Some(text) = captures.name(&field.name) else {
            problems.push(format!(
                "malformed result line (serial line {number}): field {} did not participate in the match",
                field.name
            ));
            return fields;
        };
        match field.kind.parse(text.as_str()) {
            Ok(value) => parsed.push(value),
            Err(detail) => {
                problems.push(format!(
                    "malformed result line (serial line {number}): field {}: {detail}",
                    field.name
                ));
                return fields;
            }
        }
    }
    for ((field, value), expectation) in spec
        .result_line
        .fields
        .iter()
        .zip(&parsed)
        .zip(contract.field_expectations())
    {
        if let Some(expectation) = expectation {
            if !expectation.matches(value, case_spec) {
                problems.push(format!(
                    "field {} = {value}, but the contract requires {}",
                    field.name,
                    describe_expectation(expectation, case_spec)
                ));
            }
        }
        if let (Some(minimum), Some(number)) = (field.at_least, value.as_number()) {
            if number < minimum as f64 {
                problems.push(format!(
                    "field {} = {value}, but the contract requires at least {minimum}",
                    field.name
                ));
            }
        }
    }
    for (slot, value) in fields.iter_mut().zip(parsed) {
        *slot = Some(value);
    }
    fields
}

/// Read and judge the run stored in `run_dir`.
pub fn evaluate_run_dir(
    contract: &Contract,
    case: usize,
    repetition: u32,
    run_dir: &Path,
) -> Result<RunRecord, SummaryError> {
    let serial_path = run_dir.join(SERIAL_FILE);
    let timed_path = run_dir.join(TIMED_FILE);
    let exit_path = run_dir.join(EXIT_FILE);
    let serial = read_bytes(&serial_path)?;
    let timed_text =
        String::from_utf8(read_bytes(&timed_path)?).map_err(|_| SummaryError::Format {
            path: timed_path.clone(),
            detail: "not valid UTF-8".into(),
        })?;
    let timed = parse_timed_log(&timed_text, &timed_path)?;
    check_consistent(&split_serial(&serial), &timed, &timed_path)?;
    let exit: ExitRecord =
        serde_json::from_slice(&read_bytes(&exit_path)?).map_err(|error| SummaryError::Format {
            path: exit_path.clone(),
            detail: error.to_string(),
        })?;
    Ok(judge_run(contract, case, repetition, &timed, &exit))
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

/// Accelerator facts in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorSummary {
    /// The accelerator the runs used.
    pub name: Accel,
    /// Why it was chosen.
    pub reason: String,
    /// What a publishable claim requires (`kvm` or `any`).
    pub publishable_requires: RequiredAccelerator,
}

/// Run counts in summary.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCounts {
    /// Runs recorded.
    pub total: usize,
    /// Runs that passed every check.
    pub passed: usize,
    /// Runs that failed.
    pub failed: usize,
}

/// Statistics of one metric in one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSummary {
    /// Metric name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Direction of improvement.
    pub better: Better,
    /// Over passing runs; None when no run of the case passed.
    pub statistics: Option<Summary>,
}

/// One case in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSummary {
    /// Case id.
    pub id: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Workers, when the contract has them.
    pub workers: Option<u32>,
    /// Runs recorded.
    pub runs: usize,
    /// Runs that passed.
    pub passed: usize,
    /// Per-metric statistics, in contract order.
    pub metrics: Vec<MetricSummary>,
    /// The system the case ran on.
    #[serde(default, skip_serializing_if = "Os::is_capos")]
    pub os: Os,
    /// Why the case did not run (its condition did not hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// One speedup in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedupSummary {
    /// Speedup id.
    pub id: String,
    /// Metric compared.
    pub metric: String,
    /// Baseline case id.
    pub baseline_case: String,
    /// Compared case id.
    pub case: String,
    /// CPUs of the baseline case.
    pub baseline_cpus: u32,
    /// CPUs of the compared case.
    pub case_cpus: u32,
    /// Perfect scaling: case CPUs / baseline CPUs.
    pub ideal: f64,
    /// Ratio of medians (rounded); None when a median is missing or zero.
    pub value: Option<f64>,
    /// Reported without a gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// One ratio of two speedups in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSummary {
    /// Ratio id.
    pub id: String,
    /// Numerator speedup id.
    pub speedup: String,
    /// Denominator speedup id.
    pub reference: String,
    /// speedup / reference (rounded); None when either is missing.
    pub value: Option<f64>,
    /// Reported without a gate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// Verdict of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateVerdict {
    /// The gate's condition holds.
    Pass,
    /// It does not, or could not be evaluated.
    Fail,
}

/// One gate in summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSummary {
    /// Gate id.
    pub id: String,
    /// What it checks.
    pub description: String,
    /// Gate kind.
    pub kind: contract::GateKind,
    /// The speedup id, for speedup gates.
    pub speedup: Option<String>,
    /// The ratio id, for ratio gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<String>,
    /// Threshold for speedup gates.
    pub threshold: Option<f64>,
    /// Measured value for speedup gates.
    pub value: Option<f64>,
    /// Pass or fail.
    pub verdict: GateVerdict,
    /// Why, in one sentence.
    pub detail: String,
}

/// How strong a claim the evidence supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimLevel {
    /// Every run and gate passed under an accelerator the contract accepts.
    Publishable,
    /// Every run and gate passed, but not under the accelerator a claim needs.
    Diagnostic,
    /// A run or a gate failed.
    Failed,
}

impl std::fmt::Display for ClaimLevel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            ClaimLevel::Publishable => "publishable",
            ClaimLevel::Diagnostic => "diagnostic",
            ClaimLevel::Failed => "failed",
        })
    }
}

/// The claim in summary.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSummary {
    /// The contract's claim sentence.
    pub statement: String,
    /// What the evidence supports.
    pub level: ClaimLevel,
    /// Why this level.
    pub reason: String,
}

/// One failed run in summary.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureSummary {
    /// Case id.
    pub case: String,
    /// Repetition number.
    pub repetition: u32,
    /// Log directory inside the bundle.
    pub logs: String,
    /// Every reason it failed.
    pub problems: Vec<String>,
}

/// The whole of summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryDocument {
    /// Always [`SUMMARY_FORMAT`].
    pub format: String,
    /// Contract (proof) name.
    pub contract: String,
    /// Accelerator used and the policy.
    pub accelerator: AcceleratorSummary,
    /// Runs per case.
    pub repetitions: u32,
    /// Run counts over all cases.
    pub runs: RunCounts,
    /// Per-case statistics.
    pub cases: Vec<CaseSummary>,
    /// Speedups, in contract order.
    pub speedups: Vec<SpeedupSummary>,
    /// Ratios of speedups, in contract order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratios: Vec<RatioSummary>,
    /// Side-by-side figures of capOS and its baselines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonSummary>,
    /// Gates, in contract order.
    pub gates: Vec<GateSummary>,
    /// Failed runs and why.
    pub failures: Vec<FailureSummary>,
    /// Caveats a reader must know (e.g. oversubscribed host CPUs).
    pub notes: Vec<String>,
    /// What the evidence supports.
    pub claim: ClaimSummary,
}

impl SummaryDocument {
    /// Median of `metric` in `case`, if any run passed.
    pub fn median(&self, case: &str, metric: &str) -> Option<f64> {
        self.cases
            .iter()
            .find(|summary| summary.id == case)?
            .metrics
            .iter()
            .find(|summary| summary.name == metric)?
            .statistics
            .as_ref()
            .map(|statistics| statistics.median)
    }
}

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
