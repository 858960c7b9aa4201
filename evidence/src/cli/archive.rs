//! `capos archive audit <store | oci://registry/repository>`: verify every
//! bundle, run log and attestation an archive holds, and write the index
//! (index.md, index.html with charts, one SVG per contract).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::bundle::keys;
use crate::bundle::oci::{self, Archive};
use crate::cli::limits::LimitArgs;
use crate::proof::archive_audit::{self, BundleInput, Gathered};
use crate::proof::policy;

use super::source::RegistryArgs;

/// `capos archive` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ArchiveCommand {
    /// Verify everything in a store or OCI repository and write its index.
    Audit(AuditArgs),
}

/// Arguments of `capos archive audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// A store directory, or `oci://<registry>/<repository>` (every tag).
    pub archive: String,
    /// Public key (SPKI PEM) of the builder whose bundles and run logs these are.
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// Trust policy (YAML) for judging reproduction attestations; without it
    /// they are listed as not judged.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Directory for index.md, index.html and the charts (default: ./archive-index).
    #[arg(long, default_value = "archive-index")]
    pub out: PathBuf,
    /// Size cap, per bundle.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `capos archive`.
pub fn run_command(command: ArchiveCommand) -> Result<()> {
    let ArchiveCommand::Audit(args) = command;
    let trusted = keys::load_verifying_key(&args.trusted_key)?;
    let policy = args.policy.as_deref().map(policy::load).transpose()?;
    let limits = args.limits.limits();
    let temporary = tempfile::tempdir().context("creating a temporary directory")?;
    let gathered = if oci::is_oci(&args.archive) {
        gather_repository(&args, temporary.path(), limits.max_bundle_bytes)?
    } else {
        let store = PathBuf::from(&args.archive);
        if !store.is_dir() {
            bail!(
                "{}: no such store directory (or give oci://<registry>/<repository>)",
                store.display()
            );
        }
        archive_audit::gather_store(&store)?
    };
    let audit =
        archive_audit::audit_archive(&args.archive, &gathered, &trusted, policy.as_ref(), limits);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: &str| {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("index.md", &archive_audit::render_markdown(&audit))?;
    write("index.html", &archive_audit::render_html(&audit))?;
    for section in &audit.sections {
        write(
            &format!("{}.svg", archive_audit::file_stem(&section.contract)),
            &section.chart,
        )?;
    }
    println!("{}", archive_audit::summary_line(&audit));
    for (origin, error) in &audit.failed {
        println!("FAILED: {origin}: {error}");
    }
    for name in &audit.unlogged {
        println!("no run log mentions bundle {name}");
    }
    for (origin, reason) in audit.bad_logs.iter().chain(&audit.attestations_refused) {
        println!("refused: {origin}: {reason}");
    }
    println!("{}", args.out.join("index.md").display());
    println!("{}", args.out.join("index.html").display());
    if !audit.clean() {
        bail!("the archive does not fully verify (see above and the index)");
    }
    Ok(())
}

/// Pull every bundle tagged in the repository, and its attestations.
fn gather_repository(args: &AuditArgs, into: &std::path::Path, max_bytes: u64) -> Result<Gathered> {
    let reference =
        oci::parse_reference(&format!("{}:latest", args.archive.trim_end_matches('/')))?;
    let archive = Archive::connect(&reference, &args.registry.connection())?;
    let mut gathered = Gathered::default();
    let mut seen = BTreeSet::new();
    for tag in archive.tags(&reference)? {
        if tag.starts_with("sha256-") {
            continue;
        }
        let tagged = oci_client::Reference::with_tag(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            tag.clone(),
        );
        let Ok((digest, _)) = archive.resolve_bundle(&tagged) else {
            eprintln!(
                "capos: tag {} is not a capOS bundle; skipped",
                crate::terminal::untrusted(&tag)
            );
            continue;
        };
        if !seen.insert(digest.clone()) {
            continue;
        }
        let pinned = oci::by_digest(&reference, &digest);
        let origin = format!("{}{}", oci::SCHEME, pinned.whole());
        match archive.pull_bundle(&pinned, max_bytes) {
            Ok((_, tar)) => {
                let path = into.join(format!("{}.tar", digest.replace(':', "-")));
                std::fs::write(&path, tar)
                    .with_context(|| format!("writing {}", path.display()))?;
                gathered.bundles.push(BundleInput {
                    path,
                    origin: origin.clone(),
                });
            }
            Err(error) => {
                // Recorded as a bundle that cannot be verified.
                let path = into.join(format!("{}.missing", digest.replace(':', "-")));
                eprintln!("capos: {origin}: {error}");
                gathered.bundles.push(BundleInput {
                    path,
                    origin: format!("{origin} ({error})"),
                });
            }
        }
        for referrer in archive.attestations(&pinned)? {
            gathered.attestations.push((
                format!("{}@{}", reference.repository(), referrer.manifest_digest),
                referrer.envelope,
            ));
        }
    }
    Ok(gathered)
}
