//! Placeholder: filled in by the evidence-bundle work.

use anyhow::{bail, Result};
use std::path::Path;

/// Arguments of this subcommand.
#[derive(clap::Args, Debug)]
pub struct RunArgs {}

/// Run a proof contract: every case and repetition under QEMU, then store a signed bundle.
pub fn run_command(_root: &Path, _args: RunArgs) -> Result<()> {
    bail!("not implemented yet")
}
