//! Cargo as the guest build driver: one way to compile kernel and user programs for bare metal.
//!
//! Invariant: every bare-metal build goes through [`cargo_build_bare_metal`],
//! so kernel and programs get the same path remapping, `SOURCE_DATE_EPOCH`
//! and separate target directories (their flags differ from the host build's).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::KERNEL_TARGET;

/// `cargo build --release --locked -p <package>` for bare metal: the host
/// target with `codegen_flags` and the cargo `features` of the package,
/// checkout and cargo-home paths remapped out of the output,
/// `SOURCE_DATE_EPOCH=epoch`, into its own `target_dir` (the flags differ
/// from the host build's). Shared by kernel and user programs.
pub fn cargo_build_bare_metal(
    root: &Path,
    package: &str,
    target_dir: &Path,
    codegen_flags: &[&str],
    features: &[&str],
    epoch: u64,
) -> Result<()> {
    let mut flags: Vec<String> = codegen_flags.iter().map(|s| s.to_string()).collect();
    flags.push(format!("--remap-path-prefix={}=.", root.display()));
    if let Some(cargo_home) = cargo_home() {
        flags.push(format!(
            "--remap-path-prefix={}=/cargo",
            cargo_home.display()
        ));
    }
    let mut command = Command::new(cargo());
    command
        .current_dir(root)
        .args(["build", "--release", "--locked", "-p", package]);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    let status = command
        .args(["--target", KERNEL_TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .status()
        .with_context(|| format!("starting cargo to build {package}"))?;
    if !status.success() {
        bail!("building {package} failed ({status}); see the cargo output above");
    }
    Ok(())
}

/// The cargo that runs us (or `cargo` from PATH).
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}
