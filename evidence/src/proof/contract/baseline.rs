//! The baseline parts of a proof contract: the system each case runs on
//! (`os`), the baseline program, conditional cases and ratios of speedups;
//! and their validation.
//!
//! Invariants a reader must know:
//! - Validation collects every problem (the contract loader lists them all).
//! - These are contract types: `proof::baseline` (running and judging the
//!   baseline cases) uses them, never the other way round.

use super::{ContractSpec, SpeedupSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The system a case runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// capOS booted from the ISO.
    #[default]
    Capos,
    /// Linux booted by the same QEMU with the baseline program as /init.
    Linux,
    /// The baseline program on the host, pinned.
    Native,
}

impl Os {
    /// Whether this is capOS (serde skips the default when writing).
    pub fn is_capos(&self) -> bool {
        *self == Os::Capos
    }

    /// The word in result lines and tables.
    pub fn name(self) -> &'static str {
        match self {
            Os::Capos => "capos",
            Os::Linux => "linux",
            Os::Native => "native",
        }
    }

    /// How reports title it.
    pub fn title(self) -> &'static str {
        match self {
            Os::Capos => "capOS",
            Os::Linux => "Linux guest",
            Os::Native => "native",
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The baseline program a contract's Linux and native cases run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// Mode of `capos-baseline` (one of [`PROGRAMS`]).
    pub program: String,
}

/// Modes of `capos-baseline` a contract may name.
pub const PROGRAMS: &[&str] = &["smp-process-scale", "thread-scale", "user-bench"];

/// A case that runs only when asked for and when the host can hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseCondition {
    /// Environment variable (`CAPOS_...`) that must be `1`.
    pub env: String,
    /// Fewest logical host CPUs the case needs.
    #[serde(default)]
    pub min_host_cpus: u32,
}

/// A ratio of two speedups of one metric and CPU step (e.g. capOS's 1-to-2
/// speedup over Linux's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    /// Name gates refer to.
    pub id: String,
    /// The speedup measured (numerator).
    pub speedup: String,
    /// The speedup it is compared with (denominator).
    pub reference: String,
    /// Reported without a gate (a figure for readers, not a claim).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// A ratio with its speedups resolved to indexes of `ContractSpec::speedups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    /// Numerator speedup.
    pub speedup: usize,
    /// Denominator speedup.
    pub reference: usize,
}

/// Check the baseline parts of `spec`: case systems, the baseline program,
/// the result line's process, speedups within one system, conditional
/// cases, and ratios. Returns every problem and the resolved ratios (None
/// where a reference is dangling).
pub fn check_contract(spec: &ContractSpec) -> (Vec<String>, Vec<Option<Ratio>>) {
    let mut problems = Vec::new();
    let has_baselines = spec.cases.iter().any(|case| !case.os.is_capos());
    match (&spec.baseline, has_baselines) {
        (None, true) => problems.push(
            "cases with os: linux or native need `baseline: {program: ...}` (the capos-baseline mode they run)"
                .into(),
        ),
        (Some(baseline), _) if !PROGRAMS.contains(&baseline.program.as_str()) => {
            problems.push(format!(
                "baseline.program {:?} is not a capos-baseline program (known: {})",
                baseline.program,
                PROGRAMS.join(", ")
            ))
        }
        (Some(_), false) => problems
            .push("baseline is set but no case has os: linux or native".into()),
        _ => {}
    }
    for case in &spec.cases {
        if !case.os.is_capos() && !case.cmdline.is_empty() {
            problems.push(format!(
                "case {:?}: cmdline is for capOS (fw_cfg boot options); an os: {} case takes none",
                case.id, case.os
            ));
        }
        if let Some(condition) = &case.condition {
            let env = &condition.env;
            if !env.starts_with("CAPOS_")
                || !env
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                problems.push(format!(
                    "case {:?}: condition.env {env:?} must be an upper-case variable named CAPOS_...",
                    case.id
                ));
            }
        }
    }
    if let Some(process) = &spec.result_line.process {
        let valid = !process.is_empty()
            && process.len() <= 64
            && process
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            problems.push(format!(
                "result_line.process {process:?} must be a manifest process name (letters, digits, '-', '_', '.')"
            ));
        }
        if spec.result_line.prefix.starts_with("[u:") {
            problems.push(
                "result_line.prefix starts with a console frame `[u:`; with `process` set, write the prefix and pattern without it"
                    .into(),
            );
        }
    }
    let case = |id: &str| spec.cases.iter().find(|case| case.id == id);
    for speedup in &spec.speedups {
        if let (Some(baseline), Some(compared)) =
            (case(&speedup.baseline_case), case(&speedup.case))
        {
            if baseline.os != compared.os {
                problems.push(format!(
                    "speedup {:?} compares case {:?} (os {}) with case {:?} (os {}); a speedup stays within one system",
                    speedup.id, baseline.id, baseline.os, compared.id, compared.os
                ));
            }
            let conditional = baseline.condition.is_some() || compared.condition.is_some();
            if conditional && !speedup.diagnostic {
                problems.push(format!(
                    "speedup {:?} uses a conditional case, which may not run; mark it diagnostic: true",
                    speedup.id
                ));
            }
        }
    }
    let ratios = check_ratios(spec, &mut problems);
    (problems, ratios)
}

/// Resolve the ratios: both speedups exist, measure one metric over the
/// same CPU step, and ids are unique.
fn check_ratios(spec: &ContractSpec, problems: &mut Vec<String>) -> Vec<Option<Ratio>> {
    let mut ids = BTreeSet::new();
    let speedup_index = |id: &str| spec.speedups.iter().position(|speedup| speedup.id == id);
    let cpus = |id: &str| spec.cases.iter().find(|case| case.id == id).map(|c| c.cpus);
    let mut resolved = Vec::new();
    for ratio in &spec.ratios {
        let what = format!("ratio {:?}", ratio.id);
        if !ids.insert(ratio.id.as_str()) {
            problems.push(format!("duplicate ratio id {:?}", ratio.id));
        }
        let numerator = speedup_index(&ratio.speedup);
        let denominator = speedup_index(&ratio.reference);
        if numerator.is_none() {
            problems.push(format!(
                "{what} refers to unknown speedup {:?}",
                ratio.speedup
            ));
        }
        if denominator.is_none() {
            problems.push(format!(
                "{what} refers to unknown speedup {:?}",
                ratio.reference
            ));
        }
        if let (Some(numerator), Some(denominator)) = (numerator, denominator) {
            let (top, bottom) = (&spec.speedups[numerator], &spec.speedups[denominator]);
            if numerator == denominator {
                problems.push(format!("{what} compares speedup {:?} with itself", top.id));
            }
            if top.metric != bottom.metric {
                problems.push(format!(
                    "{what}: speedups {:?} and {:?} measure different metrics",
                    top.id, bottom.id
                ));
            }
            let step = |speedup: &SpeedupSpec| (cpus(&speedup.baseline_case), cpus(&speedup.case));
            if step(top) != step(bottom) {
                problems.push(format!(
                    "{what}: speedups {:?} and {:?} cover different CPU counts",
                    top.id, bottom.id
                ));
            }
        }
        resolved.push(match (numerator, denominator) {
            (Some(speedup), Some(reference)) => Some(Ratio { speedup, reference }),
            _ => None,
        });
    }
    resolved
}
