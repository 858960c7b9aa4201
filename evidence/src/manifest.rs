//! Placeholder: YAML boot manifests — validation and packing.

use anyhow::{bail, Result};
use std::path::Path;

/// Manifest subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ManifestCommand {}

/// `capos manifest ...`
pub fn run_command(_root: &Path, _command: ManifestCommand) -> Result<()> {
    bail!("not implemented yet")
}
