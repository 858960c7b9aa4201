//! Proof contracts: what a proof claims, how its runs are judged, which gates decide it.
//!
//! A contract is one YAML file, `evidence/contracts/<name>.yaml`. Loading it
//! is strict: unknown fields, dangling references, invalid or incomplete
//! regular expressions and speedups without a gate are errors that name the
//! file and the offending item. A [`Contract`] that exists has passed every
//! check, and carries its compiled patterns and resolved expectations, so
//! the judging code never re-validates and never meets a dangling name.
//!
//! Format (every field is described on the serde types below):
//!
//! ```yaml
//! name: smp-boot                      # must equal the file stem
//! description: ...
//! claim: ...                          # the sentence the evidence supports
//! accelerator: {publishable_requires: kvm | any}
//! repetitions: {default: 5, env: CAPOS_SMP_BOOT_RUNS}
//! cases: [{id, cpus, workers?, cmdline, timeout_secs, memory_mib?,
//!          os?: capos | linux | native, condition?: {env, min_host_cpus}}]
//! baseline: {program: smp-process-scale}   # what os: linux/native cases run
//! result_line:
//!   process: smp-process-scale        # optional: the capOS process whose
//!                                     # (framed) line counts
//!   prefix: "[smp-boot] cpus="        # every line starting with it must match
//!   pattern: '^...(?P<online>\d+)...$'
//!   fields: [{name, kind: integer|hex|text|bool, must_equal?, at_least?}]
//! line_counts: [{pattern, equals}]    # optional cross-checks on other lines
//! metrics: [{name, unit, better?: lower|higher, source: {field: x} | {arrival_ms: regex}}]
//! speedups: [{id, metric, baseline_case, case, diagnostic?}]
//! ratios: [{id, speedup, reference, diagnostic?}]   # speedup / reference
//! gates: [{id, description, kind: all_runs_pass | field_equals | speedup_at_least | ratio_at_least, ...,
//!          threshold_env?: CAPOS_...}]   # a variable that, set at run time,
//!                                     # replaces threshold (recorded in inputs.json)
//! phases: [metric, ...]               # optional: same-unit metrics that add up
//!                                     # to a run, drawn stacked in the report
//! ```
//!
//! Baseline cases and their rules are described in [`crate::proof::baseline`].
//!
//! Expectations (`must_equal`, `field_equals.value`, `line_counts.equals`) are
//! literals (`true`, `5`, `"0x1f"`) or a case attribute with an optional
//! offset: `case.cpus`, `case.workers`, `case.cpus - 1`.

mod baseline;
mod schema;
mod validate;

pub use schema::*;

pub use baseline::{BaselineSpec, CaseCondition, Os, Ratio, RatioSpec, PROGRAMS};

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Directory of the contracts, relative to the workspace root.
pub const CONTRACTS_DIR: &str = "evidence/contracts";

/// Largest repetition count a contract or an override may ask for.
pub const MAX_REPETITIONS: u32 = 100;

/// Guest memory when a case does not say.
pub const DEFAULT_MEMORY_MIB: u32 = 256;

/// Why a contract could not be loaded; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The file could not be read.
    #[error("{}: cannot read the contract: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The YAML does not fit the contract format (unknown field, wrong type, ...).
    #[error("{}: {}", path.display(), crate::terminal::untrusted(&cause.to_string()))]
    Syntax {
        path: PathBuf,
        cause: serde_yaml::Error,
    },
    /// The YAML parsed but is inconsistent; every problem found is listed.
    #[error("{}: invalid contract:\n  - {}", path.display(), problems.iter().map(|problem| crate::terminal::untrusted(problem)).collect::<Vec<_>>().join("\n  - "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// No contract of that name exists.
    #[error("no proof contract named {name:?} in {}; available: {}", directory.display(), if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    UnknownProof {
        name: String,
        directory: PathBuf,
        available: Vec<String>,
    },
}

/// Where a metric's value comes from, resolved.
#[derive(Debug, Clone)]
pub enum MetricSource {
    /// Index into the result line's fields.
    Field(usize),
    /// Host arrival time of the first line matching the regex (whole line).
    ArrivalMs(Regex),
}

/// A speedup with its references resolved to indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speedup {
    /// Index into [`ContractSpec::metrics`].
    pub metric: usize,
    /// Index into [`ContractSpec::cases`].
    pub baseline_case: usize,
    /// Index into [`ContractSpec::cases`].
    pub case: usize,
}

/// A gate with its references resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// See [`GateKind::AllRunsPass`].
    AllRunsPass,
    /// See [`GateKind::FieldEquals`]; `field` indexes the result line's fields.
    FieldEquals {
        field: usize,
        expectation: Expectation,
    },
    /// See [`GateKind::SpeedupAtLeast`]; `speedup` indexes [`ContractSpec::speedups`].
    SpeedupAtLeast { speedup: usize, threshold: f64 },
    /// See [`GateKind::RatioAtLeast`]; `ratio` indexes [`ContractSpec::ratios`].
    RatioAtLeast { ratio: usize, threshold: f64 },
}

/// A validated contract: the YAML as written, its exact text, and what
/// validation resolved (compiled regexes, expectations, indexes).
#[derive(Debug, Clone)]
pub struct Contract {
    /// The contract as written.
    pub spec: ContractSpec,
    /// Exact text of the file, copied verbatim into bundles.
    pub text: String,
    /// Where it was read from (for messages).
    pub origin: PathBuf,
    result_pattern: Regex,
    field_expectations: Vec<Option<Expectation>>,
    line_count_patterns: Vec<(Regex, Expectation)>,
    metric_sources: Vec<MetricSource>,
    speedups: Vec<Speedup>,
    ratios: Vec<Ratio>,
    gates: Vec<Gate>,
}

impl Contract {
    /// This contract with its `workload_size` fixed to `blocks` and the
    /// host's `checksum` for them: the size and checksum fields must equal
    /// them, capOS cases get `user.<option>=<blocks> user.expect=<checksum>`
    /// boot options and baseline cases (whose `cmdline` is otherwise empty)
    /// the program arguments `--<option> <blocks> --expect <checksum>`.
    /// Without a `workload_size`, the contract unchanged.
    #[must_use]
    pub fn with_workload_size(&self, blocks: u32, checksum: u64) -> Contract {
        let mut sized = self.clone();
        let Some(size) = &self.spec.workload_size else {
            return sized;
        };
        for (field, expectation) in self
            .spec
            .result_line
            .fields
            .iter()
            .zip(sized.field_expectations.iter_mut())
        {
            if field.name == size.field {
                *expectation = Some(Expectation::Value(FieldValue::Integer(i64::from(blocks))));
            } else if field.name == size.checksum_field {
                *expectation = Some(Expectation::Value(FieldValue::Hex(checksum)));
            }
        }
        for case in &mut sized.spec.cases {
            let words = if case.os.is_capos() {
                format!("user.{}={blocks} user.expect={checksum}", size.option)
            } else {
                format!("--{} {blocks} --expect {checksum}", size.option)
            };
            case.cmdline = if case.cmdline.is_empty() {
                words
            } else {
                format!("{} {words}", case.cmdline)
            };
        }
        sized
    }

    /// The ratios with resolved speedup indexes, in ratio order.
    pub fn ratios(&self) -> &[Ratio] {
        &self.ratios
    }

    /// The result-line regex, anchored to the whole line.
    pub fn result_pattern(&self) -> &Regex {
        &self.result_pattern
    }

    /// The `must_equal` expectation of each result field, in field order.
    pub fn field_expectations(&self) -> &[Option<Expectation>] {
        &self.field_expectations
    }

    /// The `line_counts` checks, compiled (regex anchored to the whole line).
    pub fn line_counts(&self) -> &[(Regex, Expectation)] {
        &self.line_count_patterns
    }

    /// The source of each metric, in metric order.
    pub fn metric_sources(&self) -> &[MetricSource] {
        &self.metric_sources
    }

    /// The speedups with resolved indexes, in speedup order.
    pub fn speedups(&self) -> &[Speedup] {
        &self.speedups
    }

    /// The gates with resolved references, in gate order.
    pub fn gates(&self) -> &[Gate] {
        &self.gates
    }
}

/// How many repetitions a run uses, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepetitionChoice {
    /// Runs per case.
    pub count: u32,
    /// Where the number came from: `--runs`, `env CAPOS_...`, or `contract default`.
    pub source: String,
    /// With `auto`: the stopping rule the rounds followed (`count` is then
    /// the number of rounds that ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<crate::proof::adaptive::StoppingRule>,
}

/// A repetition override that is not a whole number in 1..=100.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin}={value:?} is not a repetition count: give a whole number from 1 to {MAX_REPETITIONS}, `auto` (rounds until every gated interval is narrow enough, at most 15), `auto:<cap>` (at most <cap> rounds, 3 to {MAX_REPETITIONS}) or `auto:<cap>:<width>%` (stop once every gated interval spans at most <width>% of its figure; default 5%; the cap may be left empty: `auto::20%`)"
)]
pub struct RepetitionError {
    /// `--runs` or the environment variable's name.
    pub origin: String,
    /// The rejected text.
    pub value: String,
}

/// Parse a repetition count from `origin` (flag or environment variable).
pub fn parse_repetitions(origin: &str, value: &str) -> Result<u32, RepetitionError> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|count| (1..=MAX_REPETITIONS).contains(count))
        .ok_or_else(|| RepetitionError {
            origin: origin.to_string(),
            value: value.to_string(),
        })
}

/// A repetition choice from `origin`'s `value`: a count, `auto` (the
/// default stopping rule; `count` is its cap until the rounds are done),
/// `auto:<cap>` (the same rule with at most `cap` rounds, 3..=100) or
/// `auto:<cap>:<width>%` (also a target width other than 5%; `auto::<width>%`
/// keeps the default cap).
fn choice_from(
    origin: &str,
    value: &str,
    source: String,
) -> Result<RepetitionChoice, RepetitionError> {
    let text = value.trim();
    if let Some(rest) = text.strip_prefix("auto") {
        let refused = || RepetitionError {
            origin: origin.to_string(),
            value: value.to_string(),
        };
        let mut rule = crate::proof::adaptive::DEFAULT_RULE;
        if !rest.is_empty() {
            let rest = rest.strip_prefix(':').ok_or_else(refused)?;
            let (cap, width) = match rest.split_once(':') {
                Some((cap, width)) => (cap, Some(width)),
                None => (rest, None),
            };
            if cap.is_empty() && width.is_none() {
                return Err(refused());
            }
            if !cap.is_empty() {
                rule.max_rounds = cap
                    .parse::<u32>()
                    .ok()
                    .filter(|cap| (rule.min_rounds..=MAX_REPETITIONS).contains(cap))
                    .ok_or_else(refused)?;
            }
            if let Some(width) = width {
                rule.target_relative_width = width
                    .strip_suffix('%')
                    .and_then(|percent| percent.parse::<f64>().ok())
                    .filter(|percent| percent.is_finite() && *percent > 0.0 && *percent <= 100.0)
                    .map(|percent| percent / 100.0)
                    .ok_or_else(refused)?;
            }
        }
        return Ok(RepetitionChoice {
            count: rule.max_rounds,
            source,
            adaptive: Some(rule),
        });
    }
    Ok(RepetitionChoice {
        count: parse_repetitions(origin, value)?,
        source,
        adaptive: None,
    })
}

impl Contract {
    /// Repetitions for a run: `flag` (from `--runs`) wins, then the contract's
    /// environment variable, then its default. A bad value is an error, never ignored.
    pub fn choose_repetitions(
        &self,
        flag: Option<&str>,
    ) -> Result<RepetitionChoice, RepetitionError> {
        if let Some(value) = flag {
            return choice_from("--runs", value, "--runs".into());
        }
        let variable = &self.spec.repetitions.env;
        match std::env::var(variable) {
            Ok(value) => choice_from(variable, &value, format!("env {variable}")),
            Err(std::env::VarError::NotUnicode(value)) => Err(RepetitionError {
                origin: variable.clone(),
                value: value.to_string_lossy().into_owned(),
            }),
            Err(std::env::VarError::NotPresent) => Ok(RepetitionChoice {
                count: self.spec.repetitions.default,
                source: "contract default".into(),
                adaptive: None,
            }),
        }
    }
}

/// Read and validate the contract at `path`; its `name` must equal the file stem.
pub fn load(path: &Path) -> Result<Contract, ContractError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ContractError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    let contract = parse(&text, path)?;
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("");
    if contract.spec.name != stem {
        return Err(ContractError::Invalid {
            path: path.to_path_buf(),
            problems: vec![format!(
                "name {:?} does not match the file name {:?} (a contract is found by its name)",
                contract.spec.name, stem
            )],
        });
    }
    Ok(contract)
}

/// The contract named `name` in `<root>/evidence/contracts/`.
pub fn find(root: &Path, name: &str) -> Result<Contract, ContractError> {
    let directory = root.join(CONTRACTS_DIR);
    let is_plain_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let path = directory.join(format!("{name}.yaml"));
    if !is_plain_name || !path.is_file() {
        return Err(ContractError::UnknownProof {
            name: name.to_string(),
            available: available(root),
            directory,
        });
    }
    load(&path)
}

/// Names of every contract in `<root>/evidence/contracts/`, sorted.
pub fn available(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(CONTRACTS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                return None;
            }
            path.file_stem()
                .and_then(|stem| stem.to_str())
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Parse and validate contract text; `origin` is only used in messages.
pub fn parse(text: &str, origin: &Path) -> Result<Contract, ContractError> {
    let spec: ContractSpec = serde_yaml::from_str(text).map_err(|cause| ContractError::Syntax {
        path: origin.to_path_buf(),
        cause,
    })?;
    match validate::validate(&spec) {
        Ok(resolved) => Ok(Contract {
            spec: spec.clone(),
            text: text.to_string(),
            origin: origin.to_path_buf(),
            result_pattern: resolved.result_pattern,
            field_expectations: resolved.field_expectations,
            line_count_patterns: resolved.line_count_patterns,
            metric_sources: resolved.metric_sources,
            speedups: resolved.speedups,
            ratios: resolved.ratios,
            gates: resolved.gates,
        }),
        Err(problems) => Err(ContractError::Invalid {
            path: origin.to_path_buf(),
            problems,
        }),
    }
}
