//! Judging one run from its stored logs: the timed log must match the raw
//! serial bytes, QEMU (or the baseline program) must have exited as the
//! system's rules require, and exactly one result line must match the contract.
//!
//! Invariant: judging fails closed — every reason a run fails is recorded in
//! its problems, and a field or metric that cannot be read is `None`, never
//! a default.

use super::wording::{RunProblem, Wording};
use super::{ExitRecord, SummaryError, EXIT_FILE, SERIAL_FILE, TIMED_FILE};
use crate::bundle::files::BundleFiles;
use crate::guest::qemu;
use crate::proof::baseline::rules;
use crate::proof::contract::{self, Contract, FieldValue, MetricSource};
use crate::proof::measure;

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
pub fn parse_timed_log(text: &str, path: &str) -> Result<Vec<SerialLine>, SummaryError> {
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
                    path: path.to_owned(),
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
            path: path.to_owned(),
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
    timed_path: &str,
) -> Result<(), SummaryError> {
    for (index, (raw, timed_line)) in serial.iter().zip(timed).enumerate() {
        if *raw != timed_line.text {
            return Err(SummaryError::Inconsistent {
                path: timed_path.to_owned(),
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
            path: timed_path.to_owned(),
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
                path: timed_path.to_owned(),
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
    wording: Wording,
) -> RunRecord {
    let spec = &contract.spec;
    let os = spec.cases[case].os;
    let (judged_case, pinning_problem) = rules::judged_case(&spec.cases[case], exit);
    let case_spec = &judged_case;
    let mut problems = Vec::new();
    let mut problem = |problem: RunProblem<'_>| problems.push(wording.run_problem(&problem));
    if let Some(exit_problem) = rules::exit_problem(os, exit) {
        problem(exit_problem);
    }
    if let Some(pinning_problem) = pinning_problem {
        problem(pinning_problem);
    }
    for serial_problem in rules::serial_problems(os, lines.iter().map(|line| line.text.as_str())) {
        problem(serial_problem);
    }
    let fields = judge_result_line(contract, case_spec, lines, &mut problem);

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
            problems.push(wording.run_problem(&RunProblem::LineCount {
                expectation,
                resolved: expected,
                pattern: pattern.as_str(),
                found,
            }));
        }
    }

    let mut metrics = Vec::new();
    for (metric, source) in spec.metrics.iter().zip(contract.metric_sources()) {
        let value = match source {
            MetricSource::Field(index) => fields[*index].as_ref().and_then(FieldValue::as_number),
            MetricSource::ArrivalMs(pattern) => {
                let first = lines.iter().find(|line| pattern.is_match(&line.text));
                if first.is_none() {
                    problems.push(wording.run_problem(&RunProblem::MetricWithoutLine {
                        metric: &metric.name,
                        pattern: pattern.as_str(),
                    }));
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

/// Find and check the one result line; fields are None when it is unusable.
fn judge_result_line(
    contract: &Contract,
    case_spec: &contract::CaseSpec,
    lines: &[SerialLine],
    problem: &mut dyn FnMut(RunProblem<'_>),
) -> Vec<Option<FieldValue>> {
    let spec = &contract.spec;
    let process = spec.result_line.process.as_deref();
    let os = case_spec.os;
    let prefix = &rules::expected_start(os, process, &spec.result_line.prefix);
    let mut fields = vec![None; spec.result_line.fields.len()];
    for (index, line) in lines.iter().enumerate() {
        if rules::misattributed(os, &spec.result_line.prefix, &line.text) {
            problem(RunProblem::ResultLineOfAnotherSystem {
                line: index + 1,
                text: &line.text,
                prefix,
            });
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
            problem(RunProblem::ResultLineMissing { prefix });
            return fields;
        }
        [(number, line)] => (*number, line),
        several => {
            let numbers: Vec<usize> = several.iter().map(|(number, _)| *number).collect();
            problem(RunProblem::ResultLineDuplicated {
                prefix,
                lines: &numbers,
            });
            return fields;
        }
    };
    let Some(captures) = contract.result_pattern().captures(&line.text) else {
        problem(RunProblem::ResultLineUnmatched {
            line: number,
            text: &line.text,
        });
        return fields;
    };
    let mut parsed = Vec::new();
    for field in &spec.result_line.fields {
        let Some(text) = captures.name(&field.name) else {
            problem(RunProblem::FieldNotCaptured {
                line: number,
                field: &field.name,
            });
            return fields;
        };
        match field.kind.parse(text.as_str()) {
            Some(value) => parsed.push(value),
            None => {
                problem(RunProblem::FieldUnreadable {
                    line: number,
                    field: &field.name,
                    kind: field.kind,
                    text: text.as_str(),
                });
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
                problem(RunProblem::FieldDiffers {
                    field: &field.name,
                    value,
                    expectation,
                    resolved: expectation.resolve(case_spec),
                });
            }
        }
        if let (Some(minimum), Some(number)) = (field.at_least, value.as_number()) {
            if number < minimum as f64 {
                problem(RunProblem::FieldBelowMinimum {
                    field: &field.name,
                    value,
                    minimum,
                });
            }
        }
    }
    for (slot, value) in fields.iter_mut().zip(parsed) {
        *slot = Some(value);
    }
    fields
}

/// Read and judge the run stored in `run_dir`. With `guest_measure` (the
/// kernel was built with the `measure` feature), a capOS run must also
/// hold one well-formed `[measure]` block, and its `measure.log` exactly
/// those lines.
pub fn evaluate_run_dir(
    contract: &Contract,
    case: usize,
    repetition: u32,
    files: &BundleFiles,
    run_dir: &str,
    wording: Wording,
    guest_measure: bool,
) -> Result<RunRecord, SummaryError> {
    let serial_path = format!("{run_dir}/{SERIAL_FILE}");
    let timed_path = format!("{run_dir}/{TIMED_FILE}");
    let exit_path = format!("{run_dir}/{EXIT_FILE}");
    let serial = files.read(&serial_path)?;
    let timed_text =
        String::from_utf8(files.read(&timed_path)?).map_err(|_| SummaryError::Format {
            path: timed_path.clone(),
            detail: "not valid UTF-8".into(),
        })?;
    let timed = parse_timed_log(&timed_text, &timed_path)?;
    check_consistent(&split_serial(&serial), &timed, &timed_path)?;
    let exit: ExitRecord =
        serde_json::from_slice(&files.read(&exit_path)?).map_err(|error| SummaryError::Format {
            path: exit_path.clone(),
            detail: error.to_string(),
        })?;
    let mut record = judge_run(contract, case, repetition, &timed, &exit, wording);
    if guest_measure && contract.spec.cases[case].os.is_capos() {
        let serial = timed.iter().map(|line| line.text.as_str());
        check_measure_log(files, run_dir, serial.clone())?;
        if let Err(error) = measure::parse_block(&measure::measure_lines(serial)) {
            record
                .problems
                .push(wording.run_problem(&RunProblem::GuestMeasurement { error: &error }));
        }
    }
    Ok(record)
}

/// `measure.log` of `run_dir` holds exactly the `[measure]` lines of its
/// serial log (the copy the report reads cannot differ from the log).
fn check_measure_log<'a>(
    files: &BundleFiles,
    run_dir: &str,
    serial: impl IntoIterator<Item = &'a str>,
) -> Result<(), SummaryError> {
    let path = format!("{run_dir}/{}", measure::MEASURE_FILE);
    let stored = files.read(&path)?;
    let expected = measure::measure_log_text(serial);
    if stored != expected.as_bytes() {
        let stored = String::from_utf8_lossy(&stored);
        let line = stored
            .lines()
            .zip(expected.lines())
            .take_while(|(stored, expected)| stored == expected)
            .count()
            + 1;
        return Err(SummaryError::Inconsistent {
            path,
            line,
            detail: "it is not the `[measure]` lines of serial.log".into(),
        });
    }
    Ok(())
}
