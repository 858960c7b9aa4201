//! Placeholder: filled in by the evidence-bundle work.

use anyhow::{bail, Result};
use std::path::Path;

/// Arguments of this subcommand.
#[derive(clap::Args, Debug)]
pub struct PackArgs {}

/// Pack a bundle directory into a deterministic tar archive.
pub fn run_command(_root: &Path, _args: PackArgs) -> Result<()> {
    bail!("not implemented yet")
}
