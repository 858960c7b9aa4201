//! Placeholder: filled in by the evidence-bundle work.

use anyhow::{bail, Result};
use std::path::Path;

/// Arguments of this subcommand.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {}

/// Audit a bundle (directory or packed archive) offline against a trusted public key.
pub fn run_command(_root: &Path, _args: VerifyArgs) -> Result<()> {
    bail!("not implemented yet")
}
