//! Command-line options shared by the commands that boot the ISO many
//! times (`capos fuzz`, `capos soak`): CPU count, accelerator, and an
//! already built ISO.

use crate::cli::accel::AccelOption;
use crate::guest::build;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// How every boot of a multi-boot command is made.
#[derive(clap::Args, Debug, Clone)]
pub struct BootOptions {
    /// Virtual CPUs for every boot.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Accelerator: auto probes KVM and falls back to multi-threaded TCG.
    #[arg(long, value_enum, default_value_t = AccelOption::Auto)]
    pub accel: AccelOption,
    /// Boot this ISO instead of building target/iso/capos.iso first.
    #[arg(long)]
    pub iso: Option<PathBuf>,
}

impl BootOptions {
    /// The ISO to boot: the one given, or a fresh build of the checkout.
    pub fn iso(&self, root: &Path) -> Result<PathBuf> {
        match &self.iso {
            Some(iso) => Ok(iso.clone()),
            None => Ok(
                build::build_default_iso(root, &mut |notice| eprintln!("capos: {notice}"))?.path,
            ),
        }
    }
}
