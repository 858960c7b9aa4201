//! `capos reproductions <ref>`: list the reproduction attestations attached
//! to a bundle in the OCI archive, judged against a trust policy when given.

use std::path::PathBuf;

use anyhow::Result;

use crate::bundle::keys;
use crate::bundle::oci::{self, Archive};
use crate::proof::{attestation, policy};

use super::source::RegistryArgs;

/// Arguments of `capos reproductions`.
#[derive(clap::Args, Debug)]
pub struct ReproductionsArgs {
    /// `[oci://]<registry>/<repository>[:tag|@sha256:...]` of a bundle.
    pub reference: String,
    /// Trust policy (YAML); with `--trusted-key`, each attestation is
    /// verified and shown as counted or refused.
    #[arg(long, requires = "trusted_key")]
    pub policy: Option<PathBuf>,
    /// Public key the bundle is signed with (its builder's).
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: Option<PathBuf>,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `capos reproductions`.
pub fn run_command(args: ReproductionsArgs) -> Result<()> {
    let reference = oci::parse_reference(&args.reference)?;
    let archive = Archive::connect(&reference, &args.registry.connection())?;
    let (digest, name) = archive.resolve_bundle(&reference)?;
    let found = archive.attestations(&reference)?;
    println!(
        "bundle {} ({}@{digest}): {} attestations",
        crate::terminal::untrusted(&name),
        reference.repository(),
        found.len()
    );
    let judging = match (&args.policy, &args.trusted_key) {
        (Some(policy_path), Some(key)) => {
            Some((policy::load(policy_path)?, keys::load_verifying_key(key)?))
        }
        _ => None,
    };
    let mut judged = Vec::new();
    for referrer in &found {
        let annotation = |key: &str| {
            referrer
                .annotations
                .get(key)
                .map_or("?".to_owned(), |value| {
                    crate::terminal::untrusted(value).into_owned()
                })
        };
        let verdict = match &judging {
            Some((policy, trusted)) => {
                let one = attestation::judge(
                    &referrer.envelope,
                    &referrer.manifest_digest,
                    &name,
                    trusted,
                    policy,
                );
                let text = match &one.outcome {
                    Ok((key_name, statement)) => format!(
                        "counted ({key_name}): {}",
                        attestation::result_word(statement.predicate.verification_result)
                    ),
                    Err(refusal) => format!("refused: {refusal}"),
                };
                judged.push(one);
                text
            }
            None => "unverified (pass --policy and --trusted-key to check)".to_owned(),
        };
        println!(
            "{} key {} says {}: {verdict}",
            referrer.manifest_digest,
            annotation(oci::KEY_ANNOTATION),
            annotation(oci::RESULT_ANNOTATION)
        );
    }
    if judging.is_some() {
        println!("{}", attestation::headline(&judged));
    }
    Ok(())
}
