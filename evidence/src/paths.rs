//! Locating the workspace and the fixed output paths under `target/`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The target triple kernel and user programs are compiled for: the host's,
/// the only one installed (bare-metal codegen comes from flags, see `guest::cargo`).
pub const KERNEL_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The workspace root: `explicit` if given, else the nearest ancestor of the
/// current directory that holds both `Cargo.toml` and `kernel/`.
pub fn workspace_root(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(root) = explicit {
        if !is_workspace(root) {
            bail!(
                "{} is not a capOS checkout (no Cargo.toml and kernel/); fix --root or CAPOS_ROOT",
                root.display()
            );
        }
        return root
            .canonicalize()
            .with_context(|| format!("resolving {}", root.display()));
    }
    let current = std::env::current_dir().context("reading the current directory")?;
    for candidate in current.ancestors() {
        if is_workspace(candidate) {
            return Ok(candidate.to_path_buf());
        }
    }
    bail!("not inside a capOS checkout; cd into one or pass --root <dir> (or set CAPOS_ROOT)")
}

fn is_workspace(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("kernel").is_dir()
}

/// Root of everything the CLI writes: `CAPOS_TARGET_DIR` if set (Nix apps
/// run from a read-only store and point it at the user's directory), else
/// `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CAPOS_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => root.join("target"),
    }
}

/// Where the kernel crate is built (separate from the host target dir,
/// because its RUSTFLAGS differ).
pub fn kernel_target_dir(root: &Path) -> PathBuf {
    target_dir(root).join("kernel")
}

/// The kernel ELF produced by `capos build kernel`.
pub fn kernel_elf(root: &Path) -> PathBuf {
    kernel_target_dir(root)
        .join(KERNEL_TARGET)
        .join("release")
        .join("capos-kernel")
}

/// The ISO produced by `capos build iso`.
pub fn iso(root: &Path) -> PathBuf {
    target_dir(root).join("iso").join("capos.iso")
}

/// Directory for raw logs of ad-hoc `capos qemu` runs.
pub fn qemu_log_root(root: &Path) -> PathBuf {
    target_dir(root).join("qemu")
}
