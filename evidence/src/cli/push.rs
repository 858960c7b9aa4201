//! `capos push <bundle|tar|attestation> <registry>/<repository>[:tag]`:
//! put a bundle (with its run-log segment) or a reproduction attestation
//! into the shared OCI archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::bundle::oci::{self, Archive};
use crate::bundle::{archive, pack, runlog};
use crate::proof::attestation::{self, AttestationStatement};

use super::source::RegistryArgs;

/// Arguments of `capos push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// A bundle directory (packed with its store's run-log segment when the
    /// store has a run log), a packed `.tar`, or a `*.vsa.dsse.json`
    /// reproduction attestation (attached to the bundle at the reference).
    pub what: PathBuf,
    /// `[oci://]<registry>/<repository>[:tag]` (default tag: the bundle name
    /// for a bundle; for an attestation, the reference of the bundle it is about).
    pub reference: String,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `capos push`.
pub fn run_command(args: PushArgs) -> Result<()> {
    let reference = oci::parse_reference(&args.reference)?;
    let name = args.what.to_string_lossy();
    if args.what.is_file() && name.ends_with(attestation::FILE_SUFFIX) {
        return push_attestation(&args, &reference);
    }
    let (tar, bundle_name) = bundle_tar(&args.what)?;
    // oci-client fills in `latest` for a reference without a tag; look at
    // what was typed instead.
    let last = args.reference.rsplit('/').next().unwrap_or_default();
    let explicit = last.contains(':') || last.contains('@');
    let reference = if !explicit {
        oci_client::Reference::with_tag(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            bundle_name.clone(),
        )
    } else {
        reference
    };
    let archive = Archive::connect(&reference, &args.registry.connection())?;
    let pushed = archive.push_bundle(&reference, tar, &bundle_name)?;
    println!(
        "pushed bundle {} ({} bytes) as {} (tag {})",
        pushed.bundle_name,
        pushed.size,
        pushed.reference,
        reference.tag().unwrap_or("none")
    );
    Ok(())
}

/// The tar to push and the bundle's name.
fn bundle_tar(path: &Path) -> Result<(Vec<u8>, String)> {
    if path.is_dir() {
        let dir = path
            .canonicalize()
            .with_context(|| format!("resolving {}", path.display()))?;
        let name = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let store = dir.parent().unwrap_or(Path::new("/"));
        let log = if runlog::present(store) {
            Some(runlog::segment_for_bundle(store, &name).with_context(|| {
                format!(
                    "reading the run-log segment of {name} from {}",
                    store.display()
                )
            })?)
        } else {
            None
        };
        let tar = pack::pack_with_log_to_writer(&dir, log.as_ref(), Vec::new())?;
        if log.is_none() {
            eprintln!(
                "capos: {} has no run log; pushing the bundle without a run-log segment",
                store.display()
            );
        }
        return Ok((tar, name));
    }
    if path.is_file() {
        let index = archive::index(path, crate::bundle::verify::DEFAULT_MAX_BUNDLE_BYTES)
            .with_context(|| format!("{} is not a bundle archive", path.display()))?;
        let tar = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok((tar, index.top.clone()));
    }
    bail!(
        "{}: no such bundle directory, archive or attestation",
        path.display()
    )
}

fn push_attestation(args: &PushArgs, reference: &oci_client::Reference) -> Result<()> {
    let envelope =
        std::fs::read(&args.what).with_context(|| format!("reading {}", args.what.display()))?;
    // Unverified peek: only to refuse attaching it to the wrong bundle and to
    // annotate it; readers verify it against their policy.
    let parsed = crate::bundle::provenance::parse_envelope(&envelope)
        .with_context(|| format!("{} is not an attestation envelope", args.what.display()))?;
    let body = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &parsed.payload)
        .context("the envelope payload is not base64")?;
    let statement: AttestationStatement = serde_json::from_slice(&body)
        .with_context(|| format!("{} is not a reproduction attestation", args.what.display()))?;
    let subject = statement
        .subject
        .first()
        .and_then(|subject| subject.digest.get("sha256"))
        .cloned()
        .unwrap_or_default();
    let archive = Archive::connect(reference, &args.registry.connection())?;
    let (manifest_digest, bundle_name) = archive.resolve_bundle(reference)?;
    if bundle_name != subject {
        bail!(
            "{} attests bundle {}, but {} is bundle {}",
            args.what.display(),
            crate::terminal::untrusted(&subject),
            reference.whole(),
            crate::terminal::untrusted(&bundle_name)
        );
    }
    let annotations = BTreeMap::from([
        (
            oci::KEY_ANNOTATION.to_owned(),
            parsed
                .signatures
                .first()
                .map(|signature| signature.keyid.clone())
                .unwrap_or_default(),
        ),
        (
            oci::RESULT_ANNOTATION.to_owned(),
            match statement.predicate.verification_result {
                attestation::VerificationResult::Passed => "PASSED",
                attestation::VerificationResult::Failed => "FAILED",
            }
            .to_owned(),
        ),
        (oci::BUNDLE_NAME_ANNOTATION.to_owned(), subject.clone()),
    ]);
    let digest = archive.push_attestation(reference, &manifest_digest, envelope, &annotations)?;
    println!(
        "attached attestation {digest} to bundle {subject} ({}@{manifest_digest})",
        reference.repository(),
    );
    Ok(())
}
