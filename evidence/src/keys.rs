//! Placeholder: filled in by the evidence-bundle work.

use anyhow::{bail, Result};
use std::path::Path;

/// Arguments of this subcommand.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {}

/// Generate an Ed25519 signing key pair for provenance.
pub fn run_command(_root: &Path, _args: KeygenArgs) -> Result<()> {
    bail!("not implemented yet")
}
