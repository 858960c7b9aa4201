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
use crate::bundle::verify::LimitArgs;
use crate::guest::build::{self, KernelFlavor};
use crate::proof::audit;
use crate::proof::contract::RepetitionChoice;
use crate::proof::run::{self, RunPlan};
use crate::proof::stats;
use crate::proof::summary::{self, GateVerdict, SummaryDocument};
use crate::terminal::untrusted;
use anyhow::{bail, Context, Result};
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

/// One median, recorded and reproduced.
#[derive(Debug, Clone, PartialEq)]
pub struct MedianComparison {
    /// Case id.
    pub case: String,
    /// Metric name.
    pub metric: String,
    /// Recorded median.
    pub old: Option<f64>,
    /// Reproduced median.
    pub new: Option<f64>,
    /// Relative change in percent, when both exist and the old is non-zero.
    pub change_percent: Option<f64>,
    /// Whether the medians agree within the tolerance.
    pub agrees: bool,
}

/// One gate, recorded and reproduced.
#[derive(Debug, Clone, PartialEq)]
pub struct GateComparison {
    /// Gate id.
    pub id: String,
    /// Recorded verdict.
    pub old: GateVerdict,
    /// Reproduced verdict (None if the new run lacks the gate).
    pub new: Option<GateVerdict>,
}

impl GateComparison {
    /// Whether both runs reached the same verdict.
    pub fn agrees(&self) -> bool {
        self.new == Some(self.old)
    }
}

/// The comparison of a recorded and a reproduced summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every case and metric of the recorded summary.
    pub medians: Vec<MedianComparison>,
    /// Every gate of the recorded summary.
    pub gates: Vec<GateComparison>,
    /// Why the two summaries cannot be compared as a reproduction, if so.
    pub blocker: Option<String>,
}

impl Comparison {
    /// Whether the reproduction agrees: no blocker, all gates and medians agree.
    pub fn agrees(&self) -> bool {
        self.blocker.is_none()
            && self.gates.iter().all(GateComparison::agrees)
            && self.medians.iter().all(|median| median.agrees)
    }
}

/// Compare `new` with `old`: gates by verdict, medians within `tolerance_percent`.
#[must_use]
pub fn compare(old: &SummaryDocument, new: &SummaryDocument, tolerance_percent: f64) -> Comparison {
    let mut medians = Vec::new();
    for case in &old.cases {
        for metric in &case.metrics {
            let old_median = metric
                .statistics
                .as_ref()
                .map(|statistics| statistics.median);
            let new_median = new.median(&case.id, &metric.name);
            let change_percent = match (old_median, new_median) {
                (Some(old), Some(new)) if old != 0.0 => Some(100.0 * (new - old) / old),
                _ => None,
            };
            let agrees = match (old_median, new_median, change_percent) {
                (Some(_), Some(_), Some(change)) => change.abs() <= tolerance_percent,
                (Some(old), Some(new), None) => old == new,
                _ => false,
            };
            medians.push(MedianComparison {
                case: case.id.clone(),
                metric: metric.name.clone(),
                old: old_median,
                new: new_median,
                change_percent,
                agrees,
            });
        }
    }
    let gates = old
        .gates
        .iter()
        .map(|gate| GateComparison {
            id: gate.id.clone(),
            old: gate.verdict,
            new: new
                .gates
                .iter()
                .find(|candidate| candidate.id == gate.id)
                .map(|candidate| candidate.verdict),
        })
        .collect();
    let blocker = if old.contract != new.contract {
        Some(format!(
            "different proofs ({} vs {})",
            old.contract, new.contract
        ))
    } else if old.accelerator.name != new.accelerator.name {
        Some(format!(
            "the recorded runs used {} but this machine runs {} ({}); timings under different accelerators are not comparable",
            old.accelerator.name, new.accelerator.name, new.accelerator.reason
        ))
    } else {
        None
    };
    Comparison {
        medians,
        gates,
        blocker,
    }
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
    let outcome = run::execute(root, &plan)?;
    let comparison = compare(&old, &outcome.summary, args.tolerance);
    print_comparison(&old, &outcome.summary, &comparison, args.tolerance);

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
    for speedup in &old.speedups {
        let new_value = new
            .speedups
            .iter()
            .find(|candidate| candidate.id == speedup.id)
            .and_then(|s| s.value);
        println!(
            "[reproduce] speedup={} old={} new={}",
            untrusted(&speedup.id),
            show(speedup.value),
            show(new_value)
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
