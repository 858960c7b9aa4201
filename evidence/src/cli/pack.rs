//! `capos pack`: a bundle directory as one deterministic tar archive (see
//! `crate::bundle::pack`); prints the archive's path.

use crate::bundle::pack;
use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `capos pack`.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The bundle directory to pack.
    pub bundle: PathBuf,
    /// Where to write the archive (default: `<bundle-dir>.tar`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also pack the segment of the store's run log for the bundle's commit
    /// (every run of that commit since its first, with the signed head), so
    /// an auditor sees the runs behind the bundle, failed ones included.
    #[arg(long)]
    pub with_log: bool,
}

/// Pack the bundle and print where the archive went.
pub fn run_command(args: PackArgs) -> Result<()> {
    let out = pack::pack_bundle(&args.bundle, args.out.as_deref(), args.with_log)?;
    println!("{}", out.display());
    Ok(())
}
