//! `inputs.json`: everything a run used, recorded before its first boot.
//!
//! Recomputation reads it back (repetitions, accelerator, host CPU count),
//! so these types are part of the bundle format: fields are never removed
//! or renamed within a format version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::guest::qemu::Accel;
use crate::proof::baseline::runner::BaselineInputs;
use crate::proof::bootstrap::BootstrapPlan;
use crate::proof::contract::RepetitionChoice;
use crate::proof::summary::wording::Wording;

/// Format tag of inputs.json written by this capos; it also selects the
/// frozen wording the bundle's summary is recomputed with.
pub const INPUTS_FORMAT: &str = Wording::CURRENT.inputs_format();

/// Everything a run used, recorded in inputs.json before the first boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Always [`INPUTS_FORMAT`].
    pub format: String,
    /// Contract name.
    pub proof: String,
    /// Repetitions per case and where the number came from.
    pub repetitions: RepetitionChoice,
    /// Accelerator requested, used, and why.
    pub accelerator: AcceleratorRecord,
    /// The booted ISO.
    pub iso: ArtifactRecord,
    /// The kernel ELF in the ISO, when this run built it.
    pub kernel: Option<ArtifactRecord>,
    /// Optional cargo features the kernel was built with (`measure`: guest
    /// measurement, `CAPOS_THREAD_SCALE_GUEST_MEASURE=1`); absent for the
    /// standard kernel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_features: Vec<String>,
    /// The QEMU binary.
    pub qemu: QemuRecord,
    /// The machine.
    pub host: HostRecord,
    /// The checkout.
    pub source: SourceRecord,
    /// Environment variables the run read, with their values.
    pub environment: BTreeMap<String, String>,
    /// Conditional cases that did not run, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_cases: Vec<SkippedCase>,
    /// The Linux guest and native baselines, when the contract has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineInputs>,
    /// How confidence intervals are computed (format v2 onward, where it
    /// is required: its seed makes every bound reproducible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<BootstrapPlan>,
}

/// A conditional case that did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedCase {
    /// Case id.
    pub id: String,
    /// Why it did not run.
    pub reason: String,
}

impl Inputs {
    /// Whether the kernel measured itself (feature `measure`): every capOS
    /// run must then carry its `[measure]` lines (`proof::measure`).
    pub fn guest_measure(&self) -> bool {
        self.kernel_features
            .iter()
            .any(|feature| feature == "measure")
    }

    /// Host CPUs a case may use without oversubscription: the recorded
    /// affinity-mask count when there is one, else the logical CPU count.
    pub fn free_host_cpus(&self) -> u32 {
        self.host.available_cpus.unwrap_or(self.host.cpu_count)
    }

    /// Why case `id` did not run, or None if it ran.
    pub fn skipped_reason(&self, id: &str) -> Option<String> {
        self.skipped_cases
            .iter()
            .find(|skipped| skipped.id == id)
            .map(|skipped| skipped.reason.clone())
    }
}

/// Accelerator facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceleratorRecord {
    /// What `--accel` asked for: auto, kvm or tcg.
    pub requested: String,
    /// What the runs used.
    pub name: Accel,
    /// Why (probe timings or the explicit request).
    pub reason: String,
}

/// A file the run consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    /// Path on the recording machine (relative to the workspace when inside it).
    pub path: String,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Whether this run built it (false: given with `--iso`).
    pub built_by_run: bool,
}

/// QEMU facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuRecord {
    /// First line of `qemu-system-x86_64 --version`.
    pub version: String,
    /// Binary path.
    pub path: String,
    /// sha256 of the binary.
    pub sha256: String,
}

/// Host facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRecord {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// CPUs this run could use (its affinity mask; format v2 onward): a
    /// case with more virtual CPUs is oversubscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_cpus: Option<u32>,
    /// Host kernel release (/proc/sys/kernel/osrelease).
    pub kernel: String,
}

/// Checkout facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    /// HEAD commit, when the workspace is a git checkout.
    pub git_commit: Option<String>,
    /// Whether tracked or untracked (not ignored) files differ from HEAD.
    pub git_dirty: Option<bool>,
    /// sha256 of Cargo.lock.
    pub cargo_lock_sha256: Option<String>,
    /// sha256 of flake.lock.
    pub flake_lock_sha256: Option<String>,
}
