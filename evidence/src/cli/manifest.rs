//! `capos manifest check|pack`: validate YAML boot manifests and pack them
//! for the kernel (see `crate::guest::manifest`).

use crate::guest::manifest::{self, MANIFEST_DIRECTORY};
use anyhow::{bail, Context as _, Result};
use std::path::{Path, PathBuf};

/// Manifest subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ManifestCommand {
    /// Validate manifests; print `ok <file> (N processes, M objects)` or every problem found.
    Check(CheckArgs),
    /// Validate one manifest and write its packed binary form (atomically).
    Pack(PackArgs),
}

/// Arguments of `capos manifest check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Manifests to check (default: every userland/manifests/system-*.yaml).
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub binaries: BinariesArgs,
}

/// Arguments of `capos manifest pack`.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The manifest to pack.
    pub file: PathBuf,
    /// Where to write the packed manifest (parent directories are created).
    #[arg(long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub binaries: BinariesArgs,
}

/// Which boot-module names a manifest may use as `binary`.
#[derive(clap::Args, Debug)]
pub struct BinariesArgs {
    /// Known binaries, comma-separated (default: the programs of userland/programs, from cargo metadata).
    #[arg(long, value_delimiter = ',')]
    pub binaries: Option<Vec<String>>,
}

impl BinariesArgs {
    /// The names given with `--binaries`, else those of the workspace's user programs.
    fn resolve(&self, root: &Path) -> Result<Vec<String>> {
        match &self.binaries {
            Some(names) => Ok(names.clone()),
            None => manifest::known_binaries(root),
        }
    }
}

/// `capos manifest ...`
pub fn run_command(root: &Path, command: ManifestCommand) -> Result<()> {
    match command {
        ManifestCommand::Check(args) => check_command(root, &args),
        ManifestCommand::Pack(args) => pack_command(root, &args),
    }
}

/// Validate each file, reporting on all of them before failing.
fn check_command(root: &Path, args: &CheckArgs) -> Result<()> {
    let known = args.binaries.resolve(root)?;
    let files = if args.files.is_empty() {
        manifest::discover(root)?
            .into_iter()
            .map(manifest::relative_to_current_directory)
            .collect()
    } else {
        args.files.clone()
    };
    if files.is_empty() {
        bail!("no manifests to check (none under {MANIFEST_DIRECTORY}/ and none given)");
    }
    let mut failed = 0usize;
    for file in &files {
        match manifest::load(file, &known) {
            Ok(spec) => println!(
                "ok {} ({} processes, {} objects)",
                file.display(),
                spec.processes.len(),
                spec.objects.len()
            ),
            Err(error) => {
                failed += 1;
                eprintln!("{error:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} manifests failed validation", files.len());
    }
    Ok(())
}

/// Validate, pack, and write the result atomically.
fn pack_command(root: &Path, args: &PackArgs) -> Result<()> {
    let known = args.binaries.resolve(root)?;
    let bytes = manifest::pack(&args.file, &known)?;
    manifest::write_atomically(&args.output, &bytes).with_context(|| {
        format!(
            "cannot write the packed manifest to {}",
            args.output.display()
        )
    })?;
    println!(
        "packed {} -> {} ({} bytes)",
        args.file.display(),
        args.output.display(),
        bytes.len()
    );
    Ok(())
}
