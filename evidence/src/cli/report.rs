//! `capos report`: the clap arguments and printing of the proof-contract
//! report of a verified bundle ([`crate::proof::report`] renders it).
//!
//! Invariant: the bundle is verified in full (and its reproduction
//! attestations checked, when asked for) before anything is rendered.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::cli::limits::LimitArgs;
use crate::proof::{audit, history, report};

/// Arguments of `capos report`.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Bundle directory or packed `.tar` archive.
    pub bundle: PathBuf,
    /// Public key (SPKI PEM) the bundle's provenance must be signed with.
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// Output directory (default: <bundle>/../reports/<bundle name>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Render with the `report.md.j2` and `report.html.j2` in this directory
    /// instead of the templates built into capos.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Size cap.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Reproduction attestations and the trust policy.
    #[command(flatten)]
    pub reproductions: crate::cli::reproduction_options::ReproductionOptions,
}

/// `capos report`: verify, render, write report.md, report.html and the charts.
pub fn run_command(args: ReportArgs) -> Result<()> {
    let trusted = crate::bundle::keys::load_verifying_key(&args.trusted_key)?;
    let templates = match &args.templates {
        Some(dir) => report::Templates::from_dir(dir)?,
        None => report::Templates::builtin(),
    };
    let limits = args.limits.limits();
    let source = crate::cli::source::resolve(
        &args.bundle,
        &args.reproductions.registry,
        limits.max_bundle_bytes,
    )?;
    let verified = audit::verify_bundle(&source.path, &trusted, limits).with_context(|| {
        format!(
            "refusing to report on {}: verification failed",
            args.bundle.display()
        )
    })?;
    let reproductions = crate::cli::reproduction_options::check(
        &args.reproductions,
        &source,
        &verified.name,
        &trusted,
    )?
    .map(|(_, view)| view);
    if let Some(view) = &reproductions {
        crate::cli::reproduction_options::print(view);
    }
    let parent = match &source.pulled {
        Some(_) => Path::new("."),
        None => args
            .bundle
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    };
    let out = args
        .out
        .unwrap_or_else(|| parent.join("reports").join(&verified.name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let link_prefix = if source.pulled.is_none() && args.bundle.is_dir() {
        report::relative_link(&out, &args.bundle)
    } else {
        None
    };
    let facts = report::BundleFacts {
        name: verified.name.clone(),
        key_id: verified.key_id.clone(),
        files: verified.file_count,
        link_prefix,
        tool: verified
            .statement
            .predicate
            .run_details
            .builder
            .version
            .clone(),
        history: history::history(&verified.name, &verified.files, &trusted)
            .with_context(|| format!("refusing to report on {}", args.bundle.display()))?,
        reproductions,
    };
    let rendered = report::render(&templates, &verified.files, &facts)?;
    report::write(&out, &rendered)?;
    println!("{}", out.join("report.md").display());
    println!("{}", out.join("report.html").display());
    Ok(())
}
