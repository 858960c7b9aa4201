//! Asking git about a checkout: one helper shared by the CLI and its build
//! script (which includes this file), so both read git the same way.
//!
//! Invariant: no answer is ever invented — a missing git, a failing command
//! or a directory outside any checkout all give `None`.

use std::path::Path;
use std::process::Command;

/// `git <args>` in `dir`: its stdout without surrounding whitespace when it
/// succeeds, else None.
#[must_use]
pub fn output(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
