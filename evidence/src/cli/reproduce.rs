//! `capos reproduce`: the clap arguments and printing of a reproduction
//! ([`crate::proof::reproduce`]): verify the bundle, choose the ISO, re-run
//! the recorded configuration, compare, and sign an attestation.
//!
//! Invariant: `REPRODUCED` is printed only when every gate and median
//! agrees and the booted ISO is the recorded one; otherwise the command
//! fails (both bundles stay in the store).

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::cli::limits::LimitArgs;
use crate::proof::audit;
use crate::proof::compare::Comparison;
use crate::proof::contract::RepetitionChoice;
use crate::proof::reproduce::{self, DEFAULT_TOLERANCE_PERCENT};
use crate::proof::run::{self, RunPlan};
use crate::proof::stats;
use crate::proof::summary::{self, GateVerdict, SummaryDocument};
use crate::terminal::untrusted;

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
    let trusted = crate::bundle::keys::load_verifying_key(&args.trusted_key)?;
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

    let iso_choice = reproduce::choose_iso(root, &inputs, args.iso)?;
    let recorded = &inputs.iso.sha256;
    if iso_choice.built {
        println!(
            "[reproduce] rebuilt ISO sha256 {}: {}",
            iso_choice.sha256,
            if iso_choice.matches {
                "bit-identical to the recorded ISO".to_string()
            } else {
                format!("MISMATCH, recorded {recorded}")
            }
        );
    } else {
        println!(
            "[reproduce] ISO {}: sha256 {} {}",
            iso_choice.path.display(),
            iso_choice.sha256,
            if iso_choice.matches {
                "matches the recorded ISO".to_string()
            } else {
                format!("DIFFERS from the recorded {recorded}")
            }
        );
    }
    let iso_matches = iso_choice.matches;
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
        iso: iso_choice.path,
        iso_sha256: iso_choice.sha256,
        iso_built: iso_choice.built,
        kernel_flavor: reproduce::kernel_flavor(&inputs)?,
        store: run::store_dir(root, args.store),
        signing_key: crate::bundle::keys::ensure_signing_key(root, args.signing_key.as_deref())?,
    };
    let signing_key = plan.signing_key.clone();
    let store = plan.store.clone();
    let outcome = run::execute(root, &plan)?;
    let comparison = reproduce::compare(&old, &outcome.summary, args.tolerance);
    print_comparison(&old, &outcome.summary, &comparison, args.tolerance);
    let written = reproduce::attest_into_store(
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

/// The per-case, per-gate comparison lines.
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
