//! Placeholder: filled in by the evidence-bundle work.

use anyhow::{bail, Result};
use std::path::Path;

/// Arguments of this subcommand.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {}

/// Rebuild and re-run a bundle's recorded configuration and compare.
pub fn run_command(_root: &Path, _args: ReproduceArgs) -> Result<()> {
    bail!("not implemented yet")
}
