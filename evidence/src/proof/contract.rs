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
//! gates: [{id, description, kind: all_runs_pass | field_equals | speedup_at_least | ratio_at_least, ...}]
//! ```
//!
//! Baseline cases and their rules are described in [`crate::proof::baseline`].
//!
//! Expectations (`must_equal`, `field_equals.value`, `line_counts.equals`) are
//! literals (`true`, `5`, `"0x1f"`) or a case attribute with an optional
//! offset: `case.cpus`, `case.workers`, `case.cpus - 1`.

use crate::proof::baseline::{BaselineSpec, CaseCondition, Os, Ratio, RatioSpec};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
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
    #[error("{}: {cause}", path.display())]
    Syntax {
        path: PathBuf,
        cause: serde_yaml::Error,
    },
    /// The YAML parsed but is inconsistent; every problem found is listed.
    #[error("{}: invalid contract:\n  - {}", path.display(), problems.join("\n  - "))]
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

/// The contract exactly as written in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    /// Proof name; equals the file stem and names the bundle's proof.
    pub name: String,
    /// What the proof runs, for readers of the report.
    pub description: String,
    /// The claim the evidence supports when every gate passes.
    pub claim: String,
    /// Which accelerator a publishable claim needs.
    pub accelerator: AcceleratorPolicy,
    /// How many times every case runs.
    pub repetitions: Repetitions,
    /// QEMU configurations, one per case.
    pub cases: Vec<CaseSpec>,
    /// The one compact result line every run must print.
    pub result_line: ResultLineSpec,
    /// Extra counts of serial lines every run must show.
    #[serde(default)]
    pub line_counts: Vec<LineCountSpec>,
    /// Figures taken from every run.
    pub metrics: Vec<MetricSpec>,
    /// Median ratios between cases.
    #[serde(default)]
    pub speedups: Vec<SpeedupSpec>,
    /// Ratios of two speedups (e.g. capOS's over the Linux guest's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratios: Vec<RatioSpec>,
    /// The program `os: linux` and `os: native` cases run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSpec>,
    /// Checks that decide the claim.
    pub gates: Vec<GateSpec>,
}

/// Accelerator requirement for a publishable claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorPolicy {
    /// `kvm`: results under TCG are diagnostic only. `any`: TCG is enough.
    pub publishable_requires: RequiredAccelerator,
}

/// See [`AcceleratorPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequiredAccelerator {
    /// Timing claims need hardware virtualization.
    Kvm,
    /// Correctness claims hold under any accelerator.
    Any,
}

/// Repetition count and the environment variable that overrides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repetitions {
    /// Runs per case when nothing overrides it (1..=100).
    pub default: u32,
    /// Environment variable (`CAPOS_...`) that overrides the default.
    pub env: String,
}

/// One configuration: a QEMU boot of capOS, or a baseline run (`os`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// Unique case name, used in log paths and tables.
    pub id: String,
    /// Virtual CPUs (`-smp`).
    pub cpus: u32,
    /// Worker count the guest uses, when the proof has workers.
    #[serde(default)]
    pub workers: Option<u32>,
    /// Kernel boot options (fw_cfg `opt/capos/cmdline`).
    #[serde(default)]
    pub cmdline: String,
    /// QEMU is killed and the run fails after this many seconds.
    pub timeout_secs: u64,
    /// Guest memory; default 256 MiB.
    #[serde(default)]
    pub memory_mib: Option<u32>,
    /// The system the case runs on (`capos`, `linux`, `native`); see
    /// [`crate::proof::baseline`].
    #[serde(default, skip_serializing_if = "Os::is_capos")]
    pub os: Os,
    /// Run the case only when this holds (recorded when it does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<CaseCondition>,
}

impl CaseSpec {
    /// Guest memory for this case.
    pub fn memory(&self) -> u32 {
        self.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB)
    }
}

/// The compact result line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultLineSpec {
    /// The capOS process that prints the line. The kernel frames its
    /// console lines as `[u:<process>] `, and only lines so framed count;
    /// `prefix` and `pattern` are then written without the frame. Without
    /// it, they must spell out whatever the line starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// Any serial line starting with this literal is a result line and must match `pattern`.
    pub prefix: String,
    /// Regex matched against the whole line, with a named group per field.
    pub pattern: String,
    /// The captured fields, in the order of results.csv.
    pub fields: Vec<FieldSpec>,
}

/// One captured field of the result line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Name of the regex group and of the results.csv column.
    pub name: String,
    /// How the captured text is parsed.
    pub kind: FieldKind,
    /// The run fails unless the value equals this expectation.
    #[serde(default)]
    pub must_equal: Option<Literal>,
    /// The run fails unless the (numeric) value is at least this.
    #[serde(default)]
    pub at_least: Option<i64>,
}

/// Type of a captured field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Signed decimal that fits in 64 bits.
    Integer,
    /// Hexadecimal (optional `0x`) that fits in 64 bits.
    Hex,
    /// Any text.
    Text,
    /// `true` or `false`.
    Bool,
}

/// A YAML scalar as written in an expectation, before it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Integer(i64),
    /// Text, a hex literal, or a `case.<attribute> [+|- n]` reference.
    Text(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(value) => write!(formatter, "{value}"),
            Literal::Integer(value) => write!(formatter, "{value}"),
            Literal::Text(value) => formatter.write_str(value),
        }
    }
}

/// A count of serial lines every run must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineCountSpec {
    /// Regex matched against each whole line.
    pub pattern: String,
    /// Required number of matching lines (integer or case reference).
    pub equals: Literal,
}

/// A figure taken from every run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Name in results.csv and summary.json.
    pub name: String,
    /// Unit, for readers (`ms`, `cycles`).
    pub unit: String,
    /// Which direction is an improvement; decides the speedup ratio. Default `lower`.
    #[serde(default)]
    pub better: Better,
    /// Where the value comes from: exactly one of the two.
    pub source: MetricSourceSpec,
}

/// Direction of improvement of a metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Time-like: speedup = median(baseline) / median(case).
    #[default]
    Lower,
    /// Throughput-like: speedup = median(case) / median(baseline).
    Higher,
}

/// Source of a metric, as written: exactly one field is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSourceSpec {
    /// A numeric field of the result line.
    #[serde(default)]
    pub field: Option<String>,
    /// Host arrival time, in ms since QEMU started, of the first line matching this regex.
    #[serde(default)]
    pub arrival_ms: Option<String>,
}

/// A ratio of medians between two cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedupSpec {
    /// Name gates refer to.
    pub id: String,
    /// Metric compared.
    pub metric: String,
    /// Case the ratio is relative to (usually one CPU).
    pub baseline_case: String,
    /// Case compared against the baseline.
    pub case: String,
    /// Reported without a gate (a figure for readers, not a claim).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// A check that decides the claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Stable name in summary.json and the report.
    pub id: String,
    /// What the gate checks, for readers.
    pub description: String,
    /// Which check.
    pub kind: GateKind,
    /// `speedup_at_least`: the speedup id.
    #[serde(default)]
    pub speedup: Option<String>,
    /// `speedup_at_least`: the minimum speedup (compared after rounding to 3 decimals).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `field_equals`: the result-line field.
    #[serde(default)]
    pub field: Option<String>,
    /// `field_equals`: the expected value (literal or case reference).
    #[serde(default)]
    pub value: Option<Literal>,
    /// `ratio_at_least`: the ratio id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<String>,
}

/// The kinds of gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Every run passed (exit code, result line, field checks, line counts, metrics).
    AllRunsPass,
    /// In every run, `field` was present and equal to `value`.
    FieldEquals,
    /// The named speedup exists and is at least `threshold`.
    SpeedupAtLeast,
    /// The named ratio of two speedups exists and is at least `threshold`.
    RatioAtLeast,
}

impl fmt::Display for GateKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            GateKind::AllRunsPass => "all_runs_pass",
            GateKind::FieldEquals => "field_equals",
            GateKind::SpeedupAtLeast => "speedup_at_least",
            GateKind::RatioAtLeast => "ratio_at_least",
        })
    }
}

/// A parsed field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// From an `integer` field.
    Integer(i64),
    /// From a `hex` field.
    Hex(u64),
    /// From a `text` field.
    Text(String),
    /// From a `bool` field.
    Bool(bool),
}

impl FieldValue {
    /// The value as a number, for metrics and `at_least`; None for text and bools.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            FieldValue::Integer(value) => Some(*value as f64),
            FieldValue::Hex(value) => Some(*value as f64),
            FieldValue::Text(_) | FieldValue::Bool(_) => None,
        }
    }

    /// The value as a signed 128-bit integer, for exact comparisons.
    fn as_integer(&self) -> Option<i128> {
        match self {
            FieldValue::Integer(value) => Some(i128::from(*value)),
            FieldValue::Hex(value) => Some(i128::from(*value)),
            FieldValue::Text(_) | FieldValue::Bool(_) => None,
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Integer(value) => write!(formatter, "{value}"),
            FieldValue::Hex(value) => write!(formatter, "{value:#x}"),
            FieldValue::Text(value) => formatter.write_str(value),
            FieldValue::Bool(value) => write!(formatter, "{value}"),
        }
    }
}

impl FieldKind {
    /// Parse captured text strictly; the error says what was expected.
    pub fn parse(self, text: &str) -> Result<FieldValue, String> {
        match self {
            FieldKind::Integer => text
                .parse::<i64>()
                .map(FieldValue::Integer)
                .map_err(|_| format!("{text:?} is not a 64-bit decimal integer")),
            FieldKind::Hex => {
                let digits = text
                    .strip_prefix("0x")
                    .or_else(|| text.strip_prefix("0X"))
                    .unwrap_or(text);
                u64::from_str_radix(digits, 16)
                    .ok()
                    .filter(|_| !digits.starts_with('+'))
                    .map(FieldValue::Hex)
                    .ok_or_else(|| format!("{text:?} is not a 64-bit hexadecimal number"))
            }
            FieldKind::Text => Ok(FieldValue::Text(text.to_string())),
            FieldKind::Bool => match text {
                "true" => Ok(FieldValue::Bool(true)),
                "false" => Ok(FieldValue::Bool(false)),
                _ => Err(format!("{text:?} is not `true` or `false`")),
            },
        }
    }
}

/// A case attribute an expectation may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseAttribute {
    /// `case.cpus`
    Cpus,
    /// `case.workers`
    Workers,
}

impl fmt::Display for CaseAttribute {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            CaseAttribute::Cpus => "case.cpus",
            CaseAttribute::Workers => "case.workers",
        })
    }
}

/// A resolved expectation: a typed literal, or a case attribute plus an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// A fixed value of the field's kind.
    Value(FieldValue),
    /// `case.<attribute> + offset`.
    Case {
        attribute: CaseAttribute,
        offset: i64,
    },
}

impl fmt::Display for Expectation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Value(value) => write!(formatter, "{value}"),
            Expectation::Case { attribute, offset } if *offset == 0 => {
                write!(formatter, "{attribute}")
            }
            Expectation::Case { attribute, offset } if *offset < 0 => {
                write!(formatter, "{attribute} - {}", offset.unsigned_abs())
            }
            Expectation::Case { attribute, offset } => write!(formatter, "{attribute} + {offset}"),
        }
    }
}

impl Expectation {
    /// The expected value for `case`; None when the case lacks the attribute
    /// (ruled out by validation) or the value does not fit.
    pub fn resolve(&self, case: &CaseSpec) -> Option<FieldValue> {
        match self {
            Expectation::Value(value) => Some(value.clone()),
            Expectation::Case { attribute, offset } => {
                let base = match attribute {
                    CaseAttribute::Cpus => Some(case.cpus),
                    CaseAttribute::Workers => case.workers,
                }?;
                i64::from(base)
                    .checked_add(*offset)
                    .map(FieldValue::Integer)
            }
        }
    }

    /// Whether `actual` equals this expectation for `case` (numbers compare by value).
    pub fn matches(&self, actual: &FieldValue, case: &CaseSpec) -> bool {
        let Some(expected) = self.resolve(case) else {
            return false;
        };
        match (expected.as_integer(), actual.as_integer()) {
            (Some(expected), Some(actual)) => expected == actual,
            _ => expected == *actual,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepetitionChoice {
    /// Runs per case.
    pub count: u32,
    /// Where the number came from: `--runs`, `env CAPOS_...`, or `contract default`.
    pub source: String,
}

/// A repetition override that is not a whole number in 1..=100.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin}={value:?} is not a repetition count: give a whole number from 1 to {MAX_REPETITIONS}"
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

impl Contract {
    /// Repetitions for a run: `flag` (from `--runs`) wins, then the contract's
    /// environment variable, then its default. A bad value is an error, never ignored.
    pub fn choose_repetitions(
        &self,
        flag: Option<&str>,
    ) -> Result<RepetitionChoice, RepetitionError> {
        if let Some(value) = flag {
            return Ok(RepetitionChoice {
                count: parse_repetitions("--runs", value)?,
                source: "--runs".into(),
            });
        }
        let variable = &self.spec.repetitions.env;
        match std::env::var(variable) {
            Ok(value) => Ok(RepetitionChoice {
                count: parse_repetitions(variable, &value)?,
                source: format!("env {variable}"),
            }),
            Err(std::env::VarError::NotUnicode(value)) => Err(RepetitionError {
                origin: variable.clone(),
                value: value.to_string_lossy().into_owned(),
            }),
            Err(std::env::VarError::NotPresent) => Ok(RepetitionChoice {
                count: self.spec.repetitions.default,
                source: "contract default".into(),
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
    let mut validator = Validator {
        spec: &spec,
        problems: Vec::new(),
    };
    let resolved = validator.validate();
    match resolved {
        Some(resolved) if validator.problems.is_empty() => Ok(Contract {
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
        _ => Err(ContractError::Invalid {
            path: origin.to_path_buf(),
            problems: validator.problems,
        }),
    }
}

/// What validation computes besides the list of problems.
struct Resolved {
    result_pattern: Regex,
    field_expectations: Vec<Option<Expectation>>,
    line_count_patterns: Vec<(Regex, Expectation)>,
    metric_sources: Vec<MetricSource>,
    speedups: Vec<Speedup>,
    ratios: Vec<Ratio>,
    gates: Vec<Gate>,
}

/// Collects every problem of a contract instead of stopping at the first.
struct Validator<'a> {
    spec: &'a ContractSpec,
    problems: Vec<String>,
}

impl Validator<'_> {
    fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// Check everything; None if some part could not be resolved at all.
    fn validate(&mut self) -> Option<Resolved> {
        self.check_header();
        self.check_cases();
        let result_pattern = self.check_result_line();
        let field_expectations = self.resolve_field_expectations();
        let line_count_patterns = self.resolve_line_counts();
        let metric_sources = self.resolve_metrics();
        let speedups = self.resolve_speedups();
        let (problems, ratios) = crate::proof::baseline::rules::check_contract(self.spec);
        self.problems.extend(problems);
        let gates = self.resolve_gates(&speedups, &ratios);
        Some(Resolved {
            result_pattern: result_pattern?,
            field_expectations,
            line_count_patterns,
            metric_sources,
            speedups: speedups.into_iter().collect::<Option<Vec<_>>>()?,
            ratios: ratios.into_iter().collect::<Option<Vec<_>>>()?,
            gates,
        })
    }

    fn check_header(&mut self) {
        let spec = self.spec;
        if !is_identifier(&spec.name) {
            self.problem(format!(
                "name {:?} must be non-empty and use only letters, digits, '-' and '_'",
                spec.name
            ));
        }
        if spec.claim.trim().is_empty() {
            self.problem("claim is empty: say what the evidence supports".into());
        }
        if !(1..=MAX_REPETITIONS).contains(&spec.repetitions.default) {
            self.problem(format!(
                "repetitions.default is {}, must be 1..={MAX_REPETITIONS}",
                spec.repetitions.default
            ));
        }
        let env = &spec.repetitions.env;
        if !env.starts_with("CAPOS_")
            || !env
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            self.problem(format!(
                "repetitions.env {env:?} must be an upper-case variable named CAPOS_..."
            ));
        }
        if spec.gates.is_empty() {
            self.problem("gates is empty: a contract without a gate decides nothing".into());
        }
    }

    fn check_cases(&mut self) {
        let spec = self.spec;
        if spec.cases.is_empty() {
            self.problem("cases is empty".into());
        }
        let mut seen = BTreeSet::new();
        for case in &spec.cases {
            if !is_identifier(&case.id) {
                self.problem(format!(
                    "case id {:?} must use only letters, digits, '-' and '_' (it names a log directory)",
                    case.id
                ));
            }
            if !seen.insert(case.id.as_str()) {
                self.problem(format!("duplicate case id {:?}", case.id));
            }
            if !(1..=64).contains(&case.cpus) {
                self.problem(format!(
                    "case {:?}: cpus {} must be 1..=64",
                    case.id, case.cpus
                ));
            }
            if case.workers == Some(0) {
                self.problem(format!("case {:?}: workers must be at least 1", case.id));
            }
            if !(1..=86_400).contains(&case.timeout_secs) {
                self.problem(format!(
                    "case {:?}: timeout_secs {} must be 1..=86400",
                    case.id, case.timeout_secs
                ));
            }
            if !(32..=65_536).contains(&case.memory()) {
                self.problem(format!(
                    "case {:?}: memory_mib {} must be 32..=65536",
                    case.id,
                    case.memory()
                ));
            }
            if case.cmdline.contains(',') {
                self.problem(format!(
                    "case {:?}: cmdline may not contain ',' (QEMU -fw_cfg syntax)",
                    case.id
                ));
            }
        }
    }

    /// Compile the result pattern and check its groups against the fields.
    fn check_result_line(&mut self) -> Option<Regex> {
        let line = &self.spec.result_line;
        if line.prefix.is_empty() {
            self.problem(
                "result_line.prefix is empty: it decides which lines are result lines".into(),
            );
        }
        let mut names = BTreeSet::new();
        for field in &line.fields {
            if !is_identifier(&field.name) {
                self.problem(format!(
                    "result_line field name {:?} must use only letters, digits, '-' and '_'",
                    field.name
                ));
            }
            if !names.insert(field.name.as_str()) {
                self.problem(format!("duplicate result_line field {:?}", field.name));
            }
            if field.at_least.is_some()
                && !matches!(field.kind, FieldKind::Integer | FieldKind::Hex)
            {
                self.problem(format!(
                    "result_line field {:?}: at_least needs an integer or hex field",
                    field.name
                ));
            }
        }
        if line.fields.is_empty() {
            self.problem("result_line.fields is empty".into());
        }
        let pattern = self.compile("result_line.pattern", &line.pattern)?;
        let groups: BTreeSet<&str> = pattern.capture_names().flatten().collect();
        for field in &line.fields {
            if !groups.contains(field.name.as_str()) {
                self.problem(format!(
                    "result_line.pattern has no named group (?P<{}>...) for declared field {:?}",
                    field.name, field.name
                ));
            }
        }
        for group in &groups {
            if !names.contains(group) {
                self.problem(format!(
                    "result_line.pattern group {group:?} is not a declared field (declare it or make it unnamed)"
                ));
            }
        }
        Some(pattern)
    }

    /// Compile `pattern` anchored to the whole line, recording an error.
    fn compile(&mut self, what: &str, pattern: &str) -> Option<Regex> {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => Some(regex),
            Err(error) => {
                let detail = match Regex::new(pattern) {
                    Err(original) => original.to_string(),
                    Ok(_) => error.to_string(),
                };
                self.problem(format!("{what} is not a valid regex: {detail}"));
                None
            }
        }
    }

    fn resolve_field_expectations(&mut self) -> Vec<Option<Expectation>> {
        let spec = self.spec;
        spec.result_line
            .fields
            .iter()
            .map(|field| {
                let literal = field.must_equal.as_ref()?;
                let what = format!("result_line field {:?} must_equal", field.name);
                self.resolve_expectation(&what, literal, field.kind)
            })
            .collect()
    }

    fn resolve_line_counts(&mut self) -> Vec<(Regex, Expectation)> {
        let spec = self.spec;
        let mut resolved = Vec::new();
        for (index, count) in spec.line_counts.iter().enumerate() {
            let what = format!("line_counts[{index}]");
            let pattern = self.compile(&format!("{what}.pattern"), &count.pattern);
            let expectation = self.resolve_expectation(
                &format!("{what}.equals"),
                &count.equals,
                FieldKind::Integer,
            );
            if let (Some(pattern), Some(expectation)) = (pattern, expectation) {
                resolved.push((pattern, expectation));
            }
        }
        resolved
    }

    /// Turn a written literal into an expectation for a field of `kind`.
    fn resolve_expectation(
        &mut self,
        what: &str,
        literal: &Literal,
        kind: FieldKind,
    ) -> Option<Expectation> {
        if let Literal::Text(text) = literal {
            if let Some(reference) = text.trim().strip_prefix("case.") {
                return self.resolve_case_reference(what, reference, kind);
            }
        }
        let value = match (kind, literal) {
            (FieldKind::Integer, Literal::Integer(value)) => Some(FieldValue::Integer(*value)),
            (FieldKind::Hex, Literal::Integer(value)) => {
                u64::try_from(*value).ok().map(FieldValue::Hex)
            }
            (FieldKind::Hex, Literal::Text(text)) => FieldKind::Hex.parse(text).ok(),
            (FieldKind::Text, Literal::Text(text)) => Some(FieldValue::Text(text.clone())),
            (FieldKind::Bool, Literal::Bool(value)) => Some(FieldValue::Bool(*value)),
            _ => None,
        };
        if value.is_none() {
            self.problem(format!(
                "{what}: {literal:?} is not a {kind:?} value or a case.cpus/case.workers reference"
            ));
        }
        value.map(Expectation::Value)
    }

    /// `cpus`, `workers`, optionally followed by `+ n` or `- n`.
    fn resolve_case_reference(
        &mut self,
        what: &str,
        reference: &str,
        kind: FieldKind,
    ) -> Option<Expectation> {
        if !matches!(kind, FieldKind::Integer | FieldKind::Hex) {
            self.problem(format!(
                "{what}: a case reference needs an integer or hex field"
            ));
            return None;
        }
        let (name, rest) = match reference.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        {
            Some(end) => (&reference[..end], reference[end..].trim()),
            None => (reference, ""),
        };
        let attribute = match name {
            "cpus" => CaseAttribute::Cpus,
            "workers" => CaseAttribute::Workers,
            _ => {
                self.problem(format!(
                    "{what}: unknown case attribute case.{name} (known: case.cpus, case.workers)"
                ));
                return None;
            }
        };
        let offset = if rest.is_empty() {
            Some(0)
        } else {
            let (sign, number) = rest.split_at(1);
            let number: Option<i64> = number.trim().parse().ok();
            match (sign, number) {
                ("+", Some(number)) => Some(number),
                ("-", Some(number)) => number.checked_neg(),
                _ => None,
            }
        };
        let Some(offset) = offset else {
            self.problem(format!(
                "{what}: cannot read case.{reference:?}; write case.cpus, case.cpus - 1 or case.cpus + 1"
            ));
            return None;
        };
        if attribute == CaseAttribute::Workers {
            let spec = self.spec;
            for case in spec.cases.iter().filter(|case| case.workers.is_none()) {
                self.problem(format!(
                    "{what} refers to case.workers but case {:?} has no workers",
                    case.id
                ));
            }
        }
        Some(Expectation::Case { attribute, offset })
    }

    fn field_index(&self, name: &str) -> Option<usize> {
        self.spec
            .result_line
            .fields
            .iter()
            .position(|field| field.name == name)
    }

    fn resolve_metrics(&mut self) -> Vec<MetricSource> {
        let spec = self.spec;
        let mut names = BTreeSet::new();
        let mut sources = Vec::new();
        if spec.metrics.is_empty() {
            self.problem("metrics is empty: a proof records at least one figure".into());
        }
        for metric in &spec.metrics {
            let what = format!("metric {:?}", metric.name);
            if !is_identifier(&metric.name) {
                self.problem(format!(
                    "{what}: name must use only letters, digits, '-' and '_'"
                ));
            }
            if !names.insert(metric.name.as_str()) {
                self.problem(format!("duplicate metric {:?}", metric.name));
            }
            if spec
                .result_line
                .fields
                .iter()
                .any(|field| field.name == metric.name)
            {
                self.problem(format!(
                    "{what} has the same name as a result_line field (they share results.csv columns)"
                ));
            }
            match (&metric.source.field, &metric.source.arrival_ms) {
                (Some(field), None) => match self.field_index(field) {
                    Some(index) => {
                        let kind = spec.result_line.fields[index].kind;
                        if matches!(kind, FieldKind::Integer | FieldKind::Hex) {
                            sources.push(MetricSource::Field(index));
                        } else {
                            self.problem(format!(
                                "{what}: field {field:?} is {kind:?}, not a number"
                            ));
                        }
                    }
                    None => self.problem(format!(
                        "{what} refers to unknown result_line field {field:?}"
                    )),
                },
                (None, Some(pattern)) => {
                    if let Some(regex) = self.compile(&format!("{what} source.arrival_ms"), pattern)
                    {
                        sources.push(MetricSource::ArrivalMs(regex));
                    }
                }
                _ => self.problem(format!(
                    "{what}: source must set exactly one of `field` and `arrival_ms`"
                )),
            }
        }
        sources
    }

    fn resolve_speedups(&mut self) -> Vec<Option<Speedup>> {
        let spec = self.spec;
        let mut ids = BTreeSet::new();
        let mut resolved = Vec::new();
        for speedup in &spec.speedups {
            let what = format!("speedup {:?}", speedup.id);
            if !ids.insert(speedup.id.as_str()) {
                self.problem(format!("duplicate speedup id {:?}", speedup.id));
            }
            let metric = spec.metrics.iter().position(|m| m.name == speedup.metric);
            if metric.is_none() {
                self.problem(format!(
                    "{what} refers to unknown metric {:?}",
                    speedup.metric
                ));
            }
            let case_index = |id: &str| spec.cases.iter().position(|case| case.id == id);
            let baseline = case_index(&speedup.baseline_case);
            if baseline.is_none() {
                self.problem(format!(
                    "{what} refers to unknown baseline_case {:?}",
                    speedup.baseline_case
                ));
            }
            let case = case_index(&speedup.case);
            if case.is_none() {
                self.problem(format!("{what} refers to unknown case {:?}", speedup.case));
            }
            if baseline.is_some() && baseline == case {
                self.problem(format!(
                    "{what} compares case {:?} with itself",
                    speedup.case
                ));
            }
            resolved.push(match (metric, baseline, case) {
                (Some(metric), Some(baseline_case), Some(case)) => Some(Speedup {
                    metric,
                    baseline_case,
                    case,
                }),
                _ => None,
            });
        }
        if !spec.speedups.is_empty()
            && spec.accelerator.publishable_requires != RequiredAccelerator::Kvm
        {
            self.problem(
                "the contract has speedups, so accelerator.publishable_requires must be kvm (a scaling claim is publishable only under KVM)"
                    .into(),
            );
        }
        resolved
    }

    fn resolve_gates(
        &mut self,
        speedups: &[Option<Speedup>],
        ratios: &[Option<Ratio>],
    ) -> Vec<Gate> {
        let spec = self.spec;
        let mut ids = BTreeSet::new();
        let mut gated_speedups = BTreeSet::new();
        let mut gated_ratios = BTreeSet::new();
        let mut gates = Vec::new();
        for gate in &spec.gates {
            let what = format!("gate {:?}", gate.id);
            if !ids.insert(gate.id.as_str()) {
                self.problem(format!("duplicate gate id {:?}", gate.id));
            }
            let mut unexpected = Vec::new();
            let parameters: [(&str, bool); 5] = [
                ("speedup", gate.speedup.is_some()),
                ("threshold", gate.threshold.is_some()),
                ("field", gate.field.is_some()),
                ("value", gate.value.is_some()),
                ("ratio", gate.ratio.is_some()),
            ];
            let allowed: &[&str] = match gate.kind {
                GateKind::AllRunsPass => &[],
                GateKind::FieldEquals => &["field", "value"],
                GateKind::SpeedupAtLeast => &["speedup", "threshold"],
                GateKind::RatioAtLeast => &["ratio", "threshold"],
            };
            for (name, present) in parameters {
                if present && !allowed.contains(&name) {
                    unexpected.push(name);
                }
                if !present && allowed.contains(&name) {
                    self.problem(format!("{what} ({}) needs `{name}`", gate.kind));
                }
            }
            if !unexpected.is_empty() {
                self.problem(format!(
                    "{what} ({}) does not take {}",
                    gate.kind,
                    unexpected.join(", ")
                ));
            }
            match gate.kind {
                GateKind::AllRunsPass => gates.push(Gate::AllRunsPass),
                GateKind::FieldEquals => {
                    let (Some(field), Some(value)) = (&gate.field, &gate.value) else {
                        continue;
                    };
                    let Some(index) = self.field_index(field) else {
                        self.problem(format!(
                            "{what} refers to unknown result_line field {field:?}"
                        ));
                        continue;
                    };
                    let kind = spec.result_line.fields[index].kind;
                    if let Some(expectation) =
                        self.resolve_expectation(&format!("{what} value"), value, kind)
                    {
                        gates.push(Gate::FieldEquals {
                            field: index,
                            expectation,
                        });
                    }
                }
                GateKind::SpeedupAtLeast => {
                    let (Some(id), Some(threshold)) = (&gate.speedup, gate.threshold) else {
                        continue;
                    };
                    if !(threshold.is_finite() && threshold > 0.0) {
                        self.problem(format!(
                            "{what}: threshold {threshold} must be a positive number"
                        ));
                    }
                    match spec.speedups.iter().position(|speedup| &speedup.id == id) {
                        Some(index) => {
                            gated_speedups.insert(index);
                            if speedups.get(index).is_some_and(Option::is_some) {
                                gates.push(Gate::SpeedupAtLeast {
                                    speedup: index,
                                    threshold,
                                });
                            }
                        }
                        None => self.problem(format!("{what} refers to unknown speedup {id:?}")),
                    }
                }
                GateKind::RatioAtLeast => {
                    let (Some(id), Some(threshold)) = (&gate.ratio, gate.threshold) else {
                        continue;
                    };
                    if !(threshold.is_finite() && threshold > 0.0) {
                        self.problem(format!(
                            "{what}: threshold {threshold} must be a positive number"
                        ));
                    }
                    match spec.ratios.iter().position(|ratio| &ratio.id == id) {
                        Some(index) => {
                            gated_ratios.insert(index);
                            if let Some(Some(ratio)) = ratios.get(index) {
                                gated_speedups.insert(ratio.speedup);
                                gated_speedups.insert(ratio.reference);
                                gates.push(Gate::RatioAtLeast {
                                    ratio: index,
                                    threshold,
                                });
                            }
                        }
                        None => self.problem(format!("{what} refers to unknown ratio {id:?}")),
                    }
                }
            }
        }
        for (index, ratio) in spec.ratios.iter().enumerate() {
            if !gated_ratios.contains(&index) && !ratio.diagnostic {
                self.problem(format!(
                    "missing gate: ratio {:?} has no ratio_at_least gate (mark it diagnostic: true to report it without one)",
                    ratio.id
                ));
            }
        }
        for (index, speedup) in spec.speedups.iter().enumerate() {
            if !gated_speedups.contains(&index) && !speedup.diagnostic {
                self.problem(format!(
                    "missing gate: speedup {:?} has no speedup_at_least gate (a speedup without a threshold claims nothing; mark it diagnostic: true to report it anyway)",
                    speedup.id
                ));
            }
        }
        gates
    }
}

/// Letters, digits, '-' and '_', non-empty: safe in paths and CSV headers.
fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
