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
/// because its RUSTFLAGS differ): `target/kernel`, or `target/kernel-<flavor>`
/// for a kernel built with extra features (see `guest::build::KernelFlavor`),
/// so the two builds never overwrite each other.
pub fn kernel_target_dir(root: &Path, flavor: Option<&str>) -> PathBuf {
    target_dir(root).join(flavored("kernel", flavor))
}

/// The kernel ELF produced by `capos build kernel` (of `flavor`, as for
/// [`kernel_target_dir`]).
pub fn kernel_elf(root: &Path, flavor: Option<&str>) -> PathBuf {
    kernel_target_dir(root, flavor)
        .join(KERNEL_TARGET)
        .join("release")
        .join("capos-kernel")
}

/// Where `capos build iso` stages and writes the ISO: `target/iso`, or
/// `target/iso-<flavor>`.
pub fn iso_dir(root: &Path, flavor: Option<&str>) -> PathBuf {
    target_dir(root).join(flavored("iso", flavor))
}

/// The ISO produced by `capos build iso` (of `flavor`, as for [`iso_dir`]).
pub fn iso(root: &Path, flavor: Option<&str>) -> PathBuf {
    iso_dir(root, flavor).join("capos.iso")
}

/// `base`, or `base-<flavor>`.
fn flavored(base: &str, flavor: Option<&str>) -> String {
    match flavor {
        Some(flavor) => format!("{base}-{flavor}"),
        None => base.to_string(),
    }
}

/// Directory for raw logs of ad-hoc `capos qemu` runs.
pub fn qemu_log_root(root: &Path) -> PathBuf {
    target_dir(root).join("qemu")
}
