//! `capos pull <ref>`: fetch a bundle artifact (digest-checked, size-capped)
//! as its packed tar, and optionally its reproduction attestations.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::bundle::oci::{self, Archive};
use crate::cli::limits::LimitArgs;

use super::source::RegistryArgs;

/// Arguments of `capos pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// `[oci://]<registry>/<repository>[:tag|@sha256:...]`.
    pub reference: String,
    /// Directory to write `<bundle-name>.tar` into (default: the current directory).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Also write the bundle's reproduction attestations (unverified; check
    /// them with `capos report --policy`) under `attestations/<bundle-name>/`.
    #[arg(long)]
    pub with_attestations: bool,
    /// Size cap.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `capos pull`.
pub fn run_command(args: PullArgs) -> Result<()> {
    let reference = oci::parse_reference(&args.reference)?;
    let archive = Archive::connect(&reference, &args.registry.connection())?;
    let (artifact, tar) = archive.pull_bundle(&reference, args.limits.limits().max_bundle_bytes)?;
    // The name is the registry's word until the tar is verified: use it as a
    // file name only when it looks like a bundle name.
    let looks_like_name = artifact.bundle_name.len() == 64
        && artifact.bundle_name.bytes().all(|b| b.is_ascii_hexdigit());
    let index_name = if looks_like_name {
        artifact.bundle_name.clone()
    } else {
        "bundle".to_owned()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(format!("{index_name}.tar"));
    std::fs::write(&path, &tar).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "pulled {} ({} bytes, manifest {}) to {} — verify it with `capos verify`",
        artifact.reference,
        artifact.size,
        artifact.manifest_digest,
        path.display()
    );
    if args.with_attestations {
        let dir = args
            .out
            .join(crate::proof::attestation::STORE_DIR)
            .join(&index_name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let found = archive.attestations(&reference)?;
        for referrer in &found {
            let file = dir.join(format!(
                "{}{}",
                referrer.manifest_digest.replace(':', "-"),
                crate::proof::attestation::FILE_SUFFIX
            ));
            std::fs::write(&file, &referrer.envelope)
                .with_context(|| format!("writing {}", file.display()))?;
        }
        println!("{} attestations in {}", found.len(), dir.display());
    }
    Ok(())
}
