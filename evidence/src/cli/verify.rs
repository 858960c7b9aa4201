//! `capos verify`: the clap arguments and printing of the full audit
//! ([`crate::proof::audit::audit`]) of a bundle or packed archive, local or
//! pulled from a registry.
//!
//! Invariant: `verified:` is printed only after every check, reproduction
//! attestations included, has passed.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::limits::LimitArgs;
use crate::proof::audit;

/// Arguments of `capos verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Bundle directory or packed `.tar` archive.
    pub bundle: PathBuf,
    /// Public key (SPKI PEM, e.g. `capos-signing.pem.pub`) the provenance must be signed with.
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// Size cap.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Reproduction attestations and the trust policy.
    #[command(flatten)]
    pub reproductions: crate::cli::reproduction_options::ReproductionOptions,
}

/// Audit a bundle (directory or packed archive) offline against a trusted public key.
pub fn run_command(args: VerifyArgs) -> Result<()> {
    let trusted = crate::bundle::keys::load_verifying_key(&args.trusted_key)?;
    let limits = args.limits.limits();
    let source = crate::cli::source::resolve(
        &args.bundle,
        &args.reproductions.registry,
        limits.max_bundle_bytes,
    )?;
    if let Some((_, artifact)) = &source.pulled {
        println!("pulled {} ({} bytes)", artifact.reference, artifact.size);
    }
    let audit = audit::audit(&source.path, &trusted, limits)?;
    // Every check (reproductions included) before anything that reads as success.
    let reproductions = crate::cli::reproduction_options::check(
        &args.reproductions,
        &source,
        &audit.bundle.name,
        &trusted,
    )?;
    println!(
        "verified: {} ({} files, key {})",
        audit.bundle.name, audit.bundle.file_count, audit.bundle.key_id
    );
    println!("run history: {}", audit.history);
    if let Some((_, view)) = &reproductions {
        crate::cli::reproduction_options::print(view);
    }
    Ok(())
}
