//! Placeholder: filled in by the evidence-bundle work.

use anyhow::{bail, Result};
use std::path::Path;

/// Arguments of this subcommand.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {}

/// Render the proof-contract report (Markdown and HTML) from a verified bundle.
pub fn run_command(_root: &Path, _args: ReportArgs) -> Result<()> {
    bail!("not implemented yet")
}
