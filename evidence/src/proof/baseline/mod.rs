//! Reference systems measured beside capOS in the same run: the same
//! workload as a Linux guest under the same QEMU envelope, and natively on
//! the host, pinned.
//!
//! A contract marks a case with `os: linux` or `os: native` (default
//! `capos`) and names the baseline program (`baseline: {program: ...}`, a
//! mode of `userland/baseline`). Invariants a reader must know:
//! - Baseline cases are ordinary cases: same log layout, same result-line
//!   pattern, same metrics, statistics and gates. Their result line is the
//!   capOS line with `os=<os> ` right after the contract's prefix; nothing
//!   else differs, so one pattern judges all three systems.
//! - A Linux guest boots with the same QEMU binary, accelerator, CPU model,
//!   memory and `-smp` as the capOS cases; it passes when QEMU exits 0
//!   (init powered off) and no kernel panic is logged. A native run passes
//!   when the program exits 0; it is pinned to `min(cpus, host CPUs)` CPUs,
//!   recorded in its exit.json, and `case.cpus` means that count when its
//!   result line is judged.
//! - capOS result lines are accepted only from the process the contract
//!   names (`result_line.process`): the kernel frames every user line as
//!   `[u:<process>] `.
//! - `line_counts` check capOS serial output only.
//! - Ratios compare two speedups (capOS over Linux) measured in one run.
//!
//! Parts: [`rules`] (contract validation and per-system judging),
//! [`program`] (the static baseline program), [`linux_kernel`] (the guest
//! kernel), [`initramfs`] (the newc archive), [`runner`] (running a case),
//! [`comparison`] (the side-by-side figures of report and summary).

pub mod comparison;
pub mod initramfs;
pub mod linux_kernel;
pub mod program;
pub mod rules;
pub mod runner;
pub mod view;

use serde::{Deserialize, Serialize};
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
