//! `capos reproduce <bundle>`: re-run a verified bundle's recorded configuration and compare.
//!
//! The recorded contract (the bundle's own contract.yaml), repetition count
//! and accelerator request are reused; `auto` is probed again on this
//! machine. The ISO is rebuilt only when this checkout is exactly the
//! recorded, clean commit, and its digest is compared with the recorded one;
//! otherwise `--iso` must name the ISO to boot. The verdict compares gates
//! (every gate must reach the same verdict) and medians: a median agrees when
//! it is within `--tolerance` percent (default 25%) of the recorded median,
//! because timings on shared, virtualized machines are noisy. Runs under a
//! different accelerator than recorded never count as a reproduction.

use crate::bundle::verify::{Limits, VerifiedBundle};
use crate::guest::build::{self, KernelFlavor};
use crate::proof::attestation::{self, AttestedBundle, VerificationResult};
use crate::proof::audit;
pub use crate::proof::compare::{
    compare, Comparison, GateComparison, MedianComparison, SpeedupComparison,
};
use crate::proof::run;
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};

/// Default tolerance for medians, in percent of the recorded median.
pub const DEFAULT_TOLERANCE_PERCENT: f64 = 25.0;

/// A reproduction attestation written into a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenAttestation {
    /// The envelope file.
    pub path: PathBuf,
    /// Whether its verdict is PASSED.
    pub passed: bool,
}

/// Verify the reproduction bundle at `reproduction` with `key`'s public half,
/// sign an attestation about `original` with `key`, and write it to
/// `<store>/attestations/<original>/<reproduction>.vsa.dsse.json`.
pub fn attest_into_store(
    original: &VerifiedBundle,
    reproduction: &Path,
    key: &SigningKey,
    tolerance: f64,
    resource_uri: &str,
    store: &Path,
    limits: Limits,
) -> Result<WrittenAttestation> {
    let reproduced = audit::verify_bundle(reproduction, &key.verifying_key(), limits)
        .with_context(|| {
            format!(
                "the reproduction bundle {} does not verify with the attesting key",
                reproduction.display()
            )
        })?;
    let original_facts = AttestedBundle::read(original)?;
    let reproduced_facts = AttestedBundle::read(&reproduced)?;
    let now = crate::time::rfc3339(std::time::SystemTime::now());
    let statement = attestation::build(
        &original_facts,
        &reproduced_facts,
        tolerance,
        resource_uri,
        &now,
    )?;
    let bytes = attestation::sign(&statement, key)?;
    let path = store.join(attestation::store_path(&original.name, &reproduced.name));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(WrittenAttestation {
        path,
        passed: statement.predicate.verification_result == VerificationResult::Passed,
    })
}

/// The kernel the bundle's `kernel_features` record.
pub fn kernel_flavor(inputs: &crate::proof::inputs::Inputs) -> Result<KernelFlavor> {
    match inputs.kernel_features.as_slice() {
        [] => Ok(KernelFlavor::Standard),
        [feature] if feature == "measure" => Ok(KernelFlavor::Measure),
        other => {
            bail!("inputs.json records kernel features {other:?}, which this capos cannot build")
        }
    }
}

/// The ISO a reproduction boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoChoice {
    /// The ISO file.
    pub path: PathBuf,
    /// Its sha256 (hex).
    pub sha256: String,
    /// Whether this process built it (else it was given with `--iso`).
    pub built: bool,
    /// Whether its digest equals the one the bundle records.
    pub matches: bool,
}

/// The ISO to boot: `explicit` (`--iso`), or a rebuild when HEAD is the
/// recorded clean commit; an error saying what to do when neither applies.
pub fn choose_iso(
    root: &Path,
    inputs: &crate::proof::inputs::Inputs,
    explicit: Option<PathBuf>,
) -> Result<IsoChoice> {
    let recorded = &inputs.iso.sha256;
    if let Some(iso) = explicit {
        let digest = crate::digest::file_sha256(&iso)
            .with_context(|| format!("reading {}", iso.display()))?
            .0;
        let matches = &digest == recorded;
        return Ok(IsoChoice {
            path: iso,
            sha256: digest,
            built: false,
            matches,
        });
    }
    let (commit, dirty) = run::git_state(root);
    let recorded_commit = inputs.source.git_commit.as_deref();
    let same_commit = commit.is_some() && commit.as_deref() == recorded_commit;
    let clean_now = dirty == Some(false);
    let recorded_clean = inputs.source.git_dirty == Some(false);
    if !(same_commit && clean_now && recorded_clean) {
        let recorded_text = match recorded_commit {
            Some(commit) if recorded_clean => format!("clean commit {commit}"),
            Some(commit) => format!("commit {commit} with uncommitted changes"),
            None => "no git commit".to_string(),
        };
        let current_text = match (&commit, dirty) {
            (Some(commit), Some(false)) => format!("clean at {commit}"),
            (Some(commit), _) => format!("at {commit} with uncommitted changes"),
            (None, _) => "not a git checkout".to_string(),
        };
        let advice = if recorded_clean && recorded_commit.is_some() {
            "check out that commit with a clean tree, or pass --iso <path>"
        } else {
            "uncommitted changes cannot be rebuilt from git; pass --iso <path>"
        };
        bail!(
            "the ISO cannot be rebuilt from this checkout: the bundle was built from {recorded_text}, this checkout is {current_text}; \
             {advice} (the recorded ISO has sha256 {recorded})"
        );
    }
    let flavor = kernel_flavor(inputs)?;
    let built = build::build_iso(root, &flavor.iso_path(root), flavor)?;
    let matches = &built.sha256 == recorded;
    Ok(IsoChoice {
        path: built.path,
        sha256: built.sha256,
        built: true,
        matches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::qemu::Accel;
    use crate::proof::contract::RequiredAccelerator;
    use crate::proof::stats::Summary;
    use crate::proof::summary::*;

    fn document(accel: Accel, median: f64, gate: GateVerdict) -> SummaryDocument {
        SummaryDocument {
            format: SUMMARY_FORMAT.into(),
            contract: "smp-boot".into(),
            accelerator: AcceleratorSummary {
                name: accel,
                reason: "test".into(),
                publishable_requires: RequiredAccelerator::Any,
            },
            repetitions: 1,
            runs: RunCounts {
                total: 1,
                passed: 1,
                failed: 0,
            },
            cases: vec![CaseSummary {
                id: "cpus1".into(),
                cpus: 1,
                workers: None,
                runs: 1,
                passed: 1,
                metrics: vec![MetricSummary {
                    name: "online_ms".into(),
                    unit: "ms".into(),
                    better: crate::proof::contract::Better::Lower,
                    statistics: Some(Summary {
                        median,
                        min: median,
                        max: median,
                        mean: median,
                        stddev: None,
                        n: 1,
                    }),
                    interval: None,
                }],
                os: Default::default(),
                skipped: None,
            }],
            speedups: Vec::new(),
            ratios: Vec::new(),
            comparison: None,
            gates: vec![GateSummary {
                id: "all-runs-pass".into(),
                description: String::new(),
                kind: crate::proof::contract::GateKind::AllRunsPass,
                speedup: None,
                ratio: None,
                threshold: None,
                value: None,
                verdict: gate,
                detail: String::new(),
                interval: None,
                reason: None,
                host_capacity: None,
                required: true,
            }],
            failures: Vec::new(),
            notes: Vec::new(),
            claim: ClaimSummary {
                statement: String::new(),
                level: ClaimLevel::Publishable,
                reason: String::new(),
            },
            statistics: None,
            adaptive: None,
        }
    }

    #[test]
    fn medians_within_tolerance_and_equal_gates_agree() {
        let old = document(Accel::Tcg, 400.0, GateVerdict::Pass);
        assert!(compare(&old, &document(Accel::Tcg, 480.0, GateVerdict::Pass), 25.0).agrees());
        assert!(compare(&old, &document(Accel::Tcg, 300.0, GateVerdict::Pass), 25.0).agrees());
    }

    #[test]
    fn medians_outside_tolerance_disagree() {
        let old = document(Accel::Tcg, 400.0, GateVerdict::Pass);
        let comparison = compare(&old, &document(Accel::Tcg, 520.0, GateVerdict::Pass), 25.0);
        assert!(!comparison.agrees());
        assert_eq!(comparison.medians[0].change_percent, Some(30.0));
    }

    #[test]
    fn gate_flip_or_accelerator_change_disagrees() {
        let old = document(Accel::Tcg, 400.0, GateVerdict::Pass);
        assert!(!compare(&old, &document(Accel::Tcg, 400.0, GateVerdict::Fail), 25.0).agrees());
        let comparison = compare(&old, &document(Accel::Kvm, 400.0, GateVerdict::Pass), 25.0);
        assert!(comparison.blocker.is_some());
        assert!(!comparison.agrees());
    }
}
