//! Building the baseline programs (`userland/baseline`) as static Linux
//! executables: `capos-baseline` is the Linux guest's `/init` and the native
//! run; `capos-empty` (no libc, exits at once) is what the spawn-to-exit
//! micro-baseline starts, the guest's `/empty`.
//!
//! Invariants: it is built like the capOS programs (pinned toolchain,
//! `--locked`, paths remapped, `SOURCE_DATE_EPOCH`) but for Linux, with
//! `-Ctarget-feature=+crt-static`, into its own target directory; a result
//! that asks for a dynamic loader (`PT_INTERP`) is refused, because the
//! initramfs holds no loader and no libraries.

use crate::guest::cargo::cargo_build_bare_metal;
use crate::paths::KERNEL_TARGET;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The cargo package and its main binary.
pub const PACKAGE: &str = "capos-baseline";

/// The empty program, beside the main binary.
pub const EMPTY: &str = "capos-empty";

/// The two built programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// `capos-baseline`.
    pub baseline: PathBuf,
    /// `capos-empty`, in the same directory.
    pub empty: PathBuf,
}

impl Programs {
    /// The programs in `directory`, each checked to be static.
    fn in_directory(directory: &Path) -> Result<Programs> {
        let programs = Programs {
            baseline: directory.join(PACKAGE),
            empty: directory.join(EMPTY),
        };
        for path in [&programs.baseline, &programs.empty] {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            check_static(&bytes).with_context(|| format!("{}", path.display()))?;
        }
        Ok(programs)
    }
}

/// Environment variable naming a prebuilt static program to use instead of
/// building one (the flake's apps point it at the `baseline` package).
pub const PROGRAM_VARIABLE: &str = "CAPOS_BASELINE_PROGRAM";

/// Codegen flags: link glibc statically.
const STATIC_RUSTFLAGS: &[&str] = &["-Ctarget-feature=+crt-static"];

/// A built file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Where it was (relative to the workspace when inside it).
    pub path: String,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// Where the static program is built.
pub fn target_dir(root: &Path) -> PathBuf {
    crate::paths::target_dir(root).join("baseline")
}

/// The static programs: those beside the file `CAPOS_BASELINE_PROGRAM`
/// names (checked, not rebuilt), else [`build`] them stamped with `epoch`.
pub fn locate_or_build(root: &Path, epoch: u64) -> Result<Programs> {
    match std::env::var_os(PROGRAM_VARIABLE).filter(|value| !value.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            let directory = path.parent().unwrap_or(Path::new("."));
            Programs::in_directory(directory).with_context(|| {
                format!(
                    "{PROGRAM_VARIABLE}={} (it and {EMPTY} beside it must be static programs)",
                    path.display()
                )
            })
        }
        None => build(root, epoch),
    }
}

/// Build the static programs stamped with `epoch`.
pub fn build(root: &Path, epoch: u64) -> Result<Programs> {
    let target_dir = target_dir(root);
    cargo_build_bare_metal(root, PACKAGE, &target_dir, STATIC_RUSTFLAGS, &[], epoch)
        .context("building the static baseline programs failed (Debian: libc6-dev provides the static glibc; ci/install-deps installs it)")?;
    Programs::in_directory(&target_dir.join(KERNEL_TARGET).join("release"))
}

/// Refuse anything but a 64-bit x86_64 ELF executable without `PT_INTERP`.
pub fn check_static(bytes: &[u8]) -> Result<()> {
    const PT_INTERP: u32 = 3;
    let field = |offset: usize, size: usize| -> Result<u64> {
        let slice = bytes
            .get(offset..offset + size)
            .context("truncated ELF header")?;
        let mut word = [0u8; 8];
        word[..size].copy_from_slice(slice);
        Ok(u64::from_le_bytes(word))
    };
    ensure!(
        bytes.starts_with(b"\x7fELF\x02\x01"),
        "not a little-endian ELF64 file"
    );
    ensure!(field(18, 2)? == 62, "not an x86_64 executable");
    let (offset, size, count) = (field(32, 8)?, field(54, 2)?, field(56, 2)?);
    for index in 0..count {
        let at = usize::try_from(offset + index * size).context("program header offset")?;
        if field(at, 4)? == u64::from(PT_INTERP) {
            bail!("is dynamically linked (has PT_INTERP); the baseline program must be static");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(kinds: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[18] = 62;
        bytes[32] = 64;
        bytes[54] = 56;
        bytes[56] = kinds.len() as u8;
        for kind in kinds {
            let mut header = [0u8; 56];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(&header);
        }
        bytes
    }

    #[test]
    fn static_executables_pass_and_dynamic_ones_do_not() {
        assert!(check_static(&elf(&[1, 1, 7])).is_ok());
        let error = check_static(&elf(&[1, 3])).unwrap_err().to_string();
        assert!(error.contains("PT_INTERP"), "{error}");
        assert!(check_static(b"#!/bin/sh\n").is_err());
        assert!(check_static(&elf(&[1])[..60]).is_err());
    }
}
