//! `capos attest <original> <reproduction>`: sign a reproduction attestation
//! for a reproduction run that already exists (e.g. made before attestations
//! existed, or by `capos run` with `--iso`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::bundle::keys;
use crate::cli::limits::LimitArgs;
use crate::proof::audit;
use crate::proof::reproduce::{self, DEFAULT_TOLERANCE_PERCENT};

use super::source::{self, RegistryArgs};

/// Arguments of `capos attest`.
#[derive(clap::Args, Debug)]
pub struct AttestArgs {
    /// The original bundle: directory, `.tar`, or `oci://` reference.
    pub original: PathBuf,
    /// The reproduction bundle (directory or `.tar`), signed with `--signing-key`.
    pub reproduction: PathBuf,
    /// Public key (SPKI PEM) the original's provenance must be signed with.
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// The reproducer's Ed25519 private key (PKCS#8 PEM); it must be the key
    /// that signed the reproduction bundle.
    #[arg(long, env = "CAPOS_SIGNING_KEY")]
    pub signing_key: PathBuf,
    /// A median or speedup agrees when within this many percent.
    #[arg(long, default_value_t = DEFAULT_TOLERANCE_PERCENT)]
    pub tolerance: f64,
    /// Store to write `attestations/<original>/<reproduction>.vsa.dsse.json`
    /// into (default: the directory holding the reproduction bundle).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Size cap.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Registry options (for an `oci://` original).
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `capos attest`.
pub fn run_command(args: AttestArgs) -> Result<()> {
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        anyhow::bail!(
            "--tolerance {} must be a non-negative percentage",
            args.tolerance
        );
    }
    let trusted = keys::load_verifying_key(&args.trusted_key)?;
    let key = keys::load_signing_key(&args.signing_key)?;
    let limits = args.limits.limits();
    let original = source::resolve(&args.original, &args.registry, limits.max_bundle_bytes)?;
    let verified = audit::verify_bundle(&original.path, &trusted, limits).with_context(|| {
        format!(
            "refusing to attest about {}: verification failed",
            args.original.display()
        )
    })?;
    let store = match args.store {
        Some(store) => store,
        None => args
            .reproduction
            .canonicalize()
            .with_context(|| format!("resolving {}", args.reproduction.display()))?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let written = reproduce::attest_into_store(
        &verified,
        &args.reproduction,
        &key,
        args.tolerance,
        &args.original.display().to_string(),
        &store,
        limits,
    )?;
    println!(
        "attestation {} ({}, about bundle {}, key {})",
        written.path.display(),
        if written.passed { "PASSED" } else { "FAILED" },
        verified.name,
        crate::bundle::provenance::key_id(&key.verifying_key())
    );
    Ok(())
}
