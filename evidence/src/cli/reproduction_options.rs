//! `--reproductions` and `--policy` for `capos verify` and `capos report`:
//! check every reproduction attestation about the bundle against a trust
//! policy, and say how many independent keys reproduced it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ed25519_dalek::VerifyingKey;

use crate::bundle::oci::{self, Archive};
use crate::bundle::provenance::key_id;
use crate::proof::attestation::{self, Judged, ReproductionsView};
use crate::proof::policy;

use super::source::{BundleSource, RegistryArgs};

/// The flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReproductionOptions {
    /// Reproduction attestations about the bundle: a directory (searched for
    /// `*.vsa.dsse.json`, e.g. a store), a `.tar` holding such files, or
    /// `oci://<registry>/<repository>[:tag|@digest]` (the bundle's referrers).
    /// Default for an `oci://` bundle with `--policy`: its own referrers.
    #[arg(long, value_name = "DIR|TAR|oci://REF", requires = "policy")]
    pub reproductions: Option<String>,
    /// Trust policy (YAML): builder keys and independent reproducer keys.
    /// The bundle's trusted key must be one of its builders.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Attestation envelopes found at `origin`, each with where it came from.
pub fn collect(origin: &str, registry: &RegistryArgs) -> Result<Vec<(String, Vec<u8>)>> {
    if oci::is_oci(origin) {
        let reference = oci::parse_reference(origin)?;
        let archive = Archive::connect(&reference, &registry.connection())?;
        return Ok(archive
            .attestations(&reference)?
            .into_iter()
            .map(|referrer| {
                (
                    format!("{}@{}", reference.repository(), referrer.manifest_digest),
                    referrer.envelope,
                )
            })
            .collect());
    }
    attestation::collect_local(Path::new(origin))
}

/// Judge the attestations the options name about bundle `name` signed by
/// `trusted`; None when no policy is given. Prints the headline.
pub fn check(
    options: &ReproductionOptions,
    source: &BundleSource,
    name: &str,
    trusted: &VerifyingKey,
) -> Result<Option<(Vec<Judged>, ReproductionsView)>> {
    let Some(policy_path) = &options.policy else {
        return Ok(None);
    };
    let policy = policy::load(policy_path)?;
    let trusted_id = key_id(trusted);
    if policy.builder(&trusted_id).is_none() {
        bail!(
            "the bundle's key {trusted_id} is not a builder in the trust policy {}",
            policy_path.display()
        );
    }
    let origin = match (&options.reproductions, &source.pulled) {
        (Some(origin), _) => origin.clone(),
        (None, Some((reference, artifact))) => {
            format!(
                "{}{}",
                oci::SCHEME,
                oci::by_digest(reference, &artifact.manifest_digest).whole()
            )
        }
        (None, None) => {
            bail!("--policy needs --reproductions <dir|tar|oci://ref> for a local bundle")
        }
    };
    let found = collect(&origin, &options.registry)?;
    let judged: Vec<Judged> = found
        .iter()
        .map(|(source, bytes)| attestation::judge(bytes, source, name, trusted, &policy))
        .collect();
    let view = attestation::view(&judged, &origin);
    Ok(Some((judged, view)))
}

/// Print what [`check`] found: the headline, each counted and each refused
/// attestation (every string from an attestation is already escaped).
pub fn print(view: &ReproductionsView) {
    println!("reproductions: {}", view.headline);
    for row in &view.rows {
        println!(
            "  counted: {} (key {}) on {}, {}, {}, tolerance {}: {}{}",
            row.key_name,
            row.key_id,
            row.host,
            row.accelerator,
            row.date,
            row.tolerance,
            row.result,
            if row.moved.is_empty() {
                String::new()
            } else {
                format!(" ({})", row.moved)
            }
        );
    }
    for row in &view.refused {
        println!(
            "  refused: {} (key {}): {}",
            row.source, row.key_id, row.reason
        );
    }
}
