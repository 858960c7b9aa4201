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

use crate::bundle::keys;
use crate::bundle::verify::{LimitArgs, Limits, VerifiedBundle};
use crate::guest::build::{self, KernelFlavor};
use crate::proof::attestation::{self, AttestedBundle, VerificationResult};
use crate::proof::audit;
pub use crate::proof::compare::{
    compare, Comparison, GateComparison, MedianComparison, SpeedupComparison,
};
use crate::proof::contract::RepetitionChoice;
use crate::proof::run::{self, RunPlan};
use crate::proof::stats;
use crate::proof::summary::{self, GateVerdict, SummaryDocument};
use crate::terminal::untrusted;
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::path::{Path, PathBuf};

/// Default tolerance for medians, in percent of the recorded median.
pub const DEFAULT_TOLERANCE_PERCENT: f64 = 25.0;

/// Arguments of `capos reproduce`.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {
    /// Bundle directory or packed `.tar` archive to reproduce.
    pub bundle: PathBuf,
    /// Public key (SPKI PEM) the bundle's provenance must be signed with.
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// Boot this ISO instead of rebuilding (needed unless HEAD is the recorded clean commit).
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// A new median agrees when within this many percent of the recorded one.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE_PERCENT)]
    pub tolerance: f64,
    /// Bundle store for the new run (default: target/evidence).
    #[arg(long, env = "CAPOS_EVIDENCE_STORE")]
    pub store: Option<PathBuf>,
    /// Ed25519 signing key for the new bundle.
    #[arg(long, env = "CAPOS_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Verify the bundle and print the recorded configuration and what a
    /// reproduction needs, without building or booting (needs no checkout).
    #[arg(long)]
    pub check_only: bool,
    /// Size cap.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `capos reproduce`: verify, decide the ISO, re-run, compare, and say whether it reproduced.
///
/// `workspace` finds the checkout; it is called only when the run goes
/// beyond `--check-only`.
pub fn run_command(args: ReproduceArgs, workspace: impl FnOnce() -> Result<PathBuf>) -> Result<()> {
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bail!(
            "--tolerance {} must be a non-negative percentage",
            args.tolerance
        );
    }
    let trusted = keys::load_verifying_key(&args.trusted_key)?;
    let verified = audit::verify_bundle(&args.bundle, &trusted, args.limits.limits())
        .with_context(|| {
            format!(
                "refusing to reproduce {}: verification failed",
                args.bundle.display()
            )
        })?;
    let (contract, inputs, old) = summary::read_bundle(&verified.files)?;
    println!(
        "[reproduce] bundle {} (proof {}, {} runs per case, accel {} requested {})",
        verified.name,
        untrusted(&contract.spec.name),
        inputs.repetitions.count,
        inputs.accelerator.name,
        untrusted(&inputs.accelerator.requested)
    );
    if args.check_only {
        print_requirements(&inputs);
        return Ok(());
    }
    let root = workspace()?;
    let root = root.as_path();

    let (iso, iso_sha256, iso_built, iso_matches) = choose_iso(root, &inputs, args.iso)?;
    let accel_request =
        run::parse_accel_request(&inputs.accelerator.requested).with_context(|| {
            format!(
                "inputs.json records an unknown accelerator request {:?}",
                inputs.accelerator.requested
            )
        })?;
    let plan = RunPlan {
        contract: &contract,
        repetitions: RepetitionChoice {
            count: inputs.repetitions.count,
            source: format!("reproduce of bundle {}", verified.name),
            adaptive: None,
        },
        accel_request,
        iso,
        iso_sha256,
        iso_built,
        kernel_flavor: kernel_flavor(&inputs)?,
        store: run::store_dir(root, args.store),
        signing_key: keys::ensure_signing_key(root, args.signing_key.as_deref())?,
    };
    let signing_key = plan.signing_key.clone();
    let store = plan.store.clone();
    let outcome = run::execute(root, &plan)?;
    let comparison = compare(&old, &outcome.summary, args.tolerance);
    print_comparison(&old, &outcome.summary, &comparison, args.tolerance);
    let written = attest_into_store(
        &verified,
        &outcome.bundle,
        &signing_key,
        args.tolerance,
        &args.bundle.display().to_string(),
        &store,
        args.limits.limits(),
    )?;
    println!(
        "[reproduce] attestation {} ({}, key {})",
        written.path.display(),
        if written.passed { "PASSED" } else { "FAILED" },
        crate::bundle::provenance::key_id(&signing_key.verifying_key())
    );

    let reproduced = comparison.agrees() && iso_matches;
    if !iso_matches {
        println!("[reproduce] the booted ISO is not the recorded one, so this is not a reproduction of the same build");
    }
    println!(
        "[reproduce] verdict: {} (old bundle {}, new bundle {})",
        if reproduced { "REPRODUCED" } else { "DIFFERS" },
        verified.name,
        outcome.bundle.display()
    );
    if !reproduced {
        bail!(
            "the reproduction differs from bundle {}; both bundles are stored",
            verified.name
        );
    }
    Ok(())
}

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

/// What a reproduction of a bundle with these `inputs` needs, for `--check-only`.
fn print_requirements(inputs: &crate::proof::inputs::Inputs) {
    let source = &inputs.source;
    let commit = source.git_commit.as_deref().map(untrusted);
    match (commit, source.git_dirty) {
        (Some(commit), Some(false)) => println!(
            "[reproduce] built from clean commit {commit}: run `capos reproduce` in a clean checkout of it to rebuild the ISO"
        ),
        (Some(commit), _) => println!(
            "[reproduce] built from commit {commit} with uncommitted changes: the ISO cannot be rebuilt from git"
        ),
        (None, _) => println!("[reproduce] built outside a git checkout: the ISO cannot be rebuilt from git"),
    }
    println!(
        "[reproduce] or pass --iso <path> to an ISO with sha256 {}",
        untrusted(&inputs.iso.sha256)
    );
    println!(
        "[reproduce] recorded host: {} ({} CPUs), {}",
        untrusted(&inputs.host.cpu_model),
        inputs.host.cpu_count,
        untrusted(&inputs.qemu.version)
    );
    println!("[reproduce] check only: nothing was built or run");
}

/// The kernel the bundle's `kernel_features` record.
fn kernel_flavor(inputs: &crate::proof::inputs::Inputs) -> Result<KernelFlavor> {
    match inputs.kernel_features.as_slice() {
        [] => Ok(KernelFlavor::Standard),
        [feature] if feature == "measure" => Ok(KernelFlavor::Measure),
        other => {
            bail!("inputs.json records kernel features {other:?}, which this capos cannot build")
        }
    }
}

/// The ISO to boot: `--iso`, or a rebuild when HEAD is the recorded clean commit.
/// Returns (path, sha256, built by this process, digest equals the recorded one).
fn choose_iso(
    root: &Path,
    inputs: &crate::proof::inputs::Inputs,
    explicit: Option<PathBuf>,
) -> Result<(PathBuf, String, bool, bool)> {
    let recorded = &inputs.iso.sha256;
    if let Some(iso) = explicit {
        let digest = crate::digest::file_sha256(&iso)
            .with_context(|| format!("reading {}", iso.display()))?
            .0;
        let matches = &digest == recorded;
        println!(
            "[reproduce] ISO {}: sha256 {digest} {}",
            iso.display(),
            if matches {
                "matches the recorded ISO".to_string()
            } else {
                format!("DIFFERS from the recorded {recorded}")
            }
        );
        return Ok((iso, digest, false, matches));
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
    println!(
        "[reproduce] rebuilt ISO sha256 {}: {}",
        built.sha256,
        if matches {
            "bit-identical to the recorded ISO".to_string()
        } else {
            format!("MISMATCH, recorded {recorded}")
        }
    );
    Ok((built.path, built.sha256, true, matches))
}

fn print_comparison(
    old: &SummaryDocument,
    new: &SummaryDocument,
    comparison: &Comparison,
    tolerance: f64,
) {
    let show = |value: Option<f64>| {
        value
            .map(stats::format_figure)
            .unwrap_or_else(|| "none".into())
    };
    for median in &comparison.medians {
        let change = median
            .change_percent
            .map(|change| format!("{change:+.1}%"))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "[reproduce] case={} metric={} old_median={} new_median={} change={change} {}",
            untrusted(&median.case),
            untrusted(&median.metric),
            show(median.old),
            show(median.new),
            if median.agrees {
                format!("within ±{tolerance}%")
            } else {
                format!("OUTSIDE ±{tolerance}%")
            }
        );
    }
    for speedup in &comparison.speedups {
        let change = speedup
            .change_percent
            .map(|change| format!("{change:+.1}%"))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "[reproduce] speedup={} old={} new={} change={change} {}",
            untrusted(&speedup.id),
            show(speedup.old),
            show(speedup.new),
            if speedup.agrees {
                format!("within ±{tolerance}%")
            } else {
                format!("OUTSIDE ±{tolerance}%")
            }
        );
    }
    let verdict = |verdict: Option<GateVerdict>| match verdict {
        Some(GateVerdict::Pass) => "pass",
        Some(GateVerdict::Fail) => "fail",
        Some(GateVerdict::Inconclusive) => "inconclusive",
        None => "missing",
    };
    for gate in &comparison.gates {
        println!(
            "[reproduce] gate={} old={} new={} {}",
            untrusted(&gate.id),
            verdict(Some(gate.old)),
            verdict(gate.new),
            if gate.agrees() { "agree" } else { "DISAGREE" }
        );
    }
    println!(
        "[reproduce] claim old={} new={}",
        old.claim.level, new.claim.level
    );
    if let Some(blocker) = &comparison.blocker {
        println!("[reproduce] not comparable: {}", untrusted(blocker));
    }
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
