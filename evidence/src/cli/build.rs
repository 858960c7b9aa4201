//! `capos build`: the kernel ELF, the bootable ISO or the Linux baseline
//! programs (see `crate::guest::build` and
//! `crate::proof::baseline::program`); prints `<sha256>  <path>`
//! per file built, paths relative to the checkout.

use crate::digest;
use crate::guest::build::{self, display_relative, KernelFlavor};
use crate::proof::baseline;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Subcommands of `capos build`.
#[derive(clap::Subcommand, Debug)]
pub enum BuildCommand {
    /// Build the kernel ELF (target/kernel/.../capos-kernel; target/kernel-measure
    /// with CAPOS_THREAD_SCALE_GUEST_MEASURE=1) and print its sha256.
    Kernel,
    /// Build kernel and ISO (target/iso/capos.iso; target/iso-measure with
    /// CAPOS_THREAD_SCALE_GUEST_MEASURE=1) and print the ISO's sha256.
    Iso {
        /// Write the ISO here instead of target/iso/capos.iso.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Build the static Linux baseline programs (capos-baseline, capos-empty) and print their sha256.
    Baseline {
        /// Also copy them into this directory.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Entry point of `capos build`.
pub fn run_command(root: &Path, command: BuildCommand) -> Result<()> {
    match command {
        BuildCommand::Kernel => {
            let flavor = KernelFlavor::from_environment()?;
            let elf = build::build_kernel(root, build::source_date_epoch(root)?, flavor)?;
            print_digest(root, &elf)?;
        }
        BuildCommand::Baseline { output } => {
            let built = baseline::program::build(root, build::source_date_epoch(root)?)?;
            for program in [&built.baseline, &built.empty] {
                let path = match &output {
                    Some(directory) => copy_into(program, directory)?,
                    None => program.clone(),
                };
                print_digest(root, &path)?;
            }
        }
        BuildCommand::Iso { output } => {
            let flavor = KernelFlavor::from_environment()?;
            let iso = output.unwrap_or_else(|| flavor.iso_path(root));
            let built = build::build_iso(root, &iso, flavor)?;
            println!("{}  {}", built.sha256, display_relative(root, &built.path));
        }
    }
    Ok(())
}

/// Copy `program` into `directory` (created if missing); returns the copy.
fn copy_into(program: &Path, directory: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    let copy = directory.join(program.file_name().unwrap_or_default());
    std::fs::copy(program, &copy)
        .with_context(|| format!("copying {} to {}", program.display(), copy.display()))?;
    Ok(copy)
}

/// Print `<sha256>  <path>` for a file just built.
fn print_digest(root: &Path, path: &Path) -> Result<()> {
    let sha256 = digest::file_sha256(path)
        .with_context(|| format!("reading {}", path.display()))?
        .0;
    println!("{sha256}  {}", display_relative(root, path));
    Ok(())
}
