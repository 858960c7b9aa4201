//! The contract exactly as written in YAML (serde types, strict: unknown fields
//! are errors), and the typed values and expectations validation resolves.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::baseline::{BaselineSpec, CaseCondition, Os, RatioSpec};
use super::DEFAULT_MEMORY_MIB;

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
    /// Metrics (same unit) that add up to a run's whole, in order: the
    /// report draws their medians as stacked bars per case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<String>,
    /// A workload size a run may choose (thread-scale's block count, for
    /// Amdahl checks on larger workloads); see [`crate::proof::workload_size`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_size: Option<WorkloadSizeSpec>,
}

/// A workload size chosen per run through an environment variable. The
/// run passes it to capOS as `user.<option>=<n>` and to the baseline as
/// `--<option> <n>`, with the checksum the host computed for it
/// (`user.expect=`, `--expect`); the result line's `field` must then equal
/// the size and `checksum_field` that checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSizeSpec {
    /// The variable (`CAPOS_*`) holding the size.
    pub env: String,
    /// The program option naming the size (`blocks`).
    pub option: String,
    /// The integer result-line field that reports the size.
    pub field: String,
    /// The hex result-line field that reports the checksum.
    pub checksum_field: String,
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
    /// `speedup_at_least` / `ratio_at_least`: an environment variable
    /// (`CAPOS_*`) whose value, when set at run time, replaces `threshold`;
    /// the run records it in inputs.json, so recomputation uses it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_env: Option<String>,
    /// `speedup_at_least` / `ratio_at_least`: an opt-in gate. It decides
    /// the claim only when this variable (`CAPOS_*`) was `1` at run time
    /// (recorded in inputs.json); otherwise it is judged and shown but not
    /// required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_in_env: Option<String>,
}

impl GateSpec {
    /// The threshold in force: `threshold_env`'s recorded value when the
    /// run recorded one, else `threshold`. A recorded value that is not a
    /// positive number (the run refuses those before it starts, so only an
    /// edited record has one) gives infinity: the gate cannot pass.
    pub fn threshold_in(
        &self,
        threshold: f64,
        environment: &std::collections::BTreeMap<String, String>,
    ) -> f64 {
        match self
            .threshold_env
            .as_ref()
            .and_then(|name| environment.get(name))
        {
            Some(text) => parse_threshold(text).unwrap_or(f64::INFINITY),
            None => threshold,
        }
    }
}

impl GateSpec {
    /// Whether the gate decides the claim: always, unless it is opt-in and
    /// the recorded environment does not set its variable to `1`.
    pub fn required_in(&self, environment: &std::collections::BTreeMap<String, String>) -> bool {
        match &self.opt_in_env {
            Some(name) => environment.get(name).map(|value| value.trim()) == Some("1"),
            None => true,
        }
    }
}

/// A threshold from an environment variable: a positive finite number.
pub fn parse_threshold(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && *value > 0.0)
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
    /// Parse captured text strictly; None when it is not of this kind (the
    /// summary's frozen wording says what was expected).
    #[must_use]
    pub fn parse(self, text: &str) -> Option<FieldValue> {
        match self {
            FieldKind::Integer => text.parse::<i64>().ok().map(FieldValue::Integer),
            FieldKind::Hex => {
                let digits = text
                    .strip_prefix("0x")
                    .or_else(|| text.strip_prefix("0X"))
                    .unwrap_or(text);
                u64::from_str_radix(digits, 16)
                    .ok()
                    .filter(|_| !digits.starts_with('+'))
                    .map(FieldValue::Hex)
            }
            FieldKind::Text => Some(FieldValue::Text(text.to_string())),
            FieldKind::Bool => match text {
                "true" => Some(FieldValue::Bool(true)),
                "false" => Some(FieldValue::Bool(false)),
                _ => None,
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
