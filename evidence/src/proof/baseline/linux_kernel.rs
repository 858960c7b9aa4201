//! The Linux guest kernel: where it comes from and what it is.
//!
//! Sources, in order: `CAPOS_LINUX_KERNEL` (the flake's apps set it to
//! nixpkgs' kernel), else the distro cloud kernel that `ci/install-deps`
//! unpacks under `target/linux-kernel/boot/`. Nothing is downloaded here.
//!
//! Invariants: the image must be an x86 boot-protocol kernel (bzImage,
//! `HdrS` header); its version string is read from the image itself, not
//! from a file name, and recorded with its sha256 in every bundle.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable naming a kernel image explicitly.
pub const KERNEL_VARIABLE: &str = "CAPOS_LINUX_KERNEL";

/// What a bundle records about the guest kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinuxKernel {
    /// Where it was (relative to the workspace when inside it).
    pub path: String,
    /// Lowercase hex sha256 of the image.
    pub sha256: String,
    /// The kernel's own version string (boot protocol `kernel_version`).
    pub version: String,
    /// Where the image came from (`CAPOS_LINUX_KERNEL` or the package name).
    pub source: String,
}

/// Directory `ci/install-deps` unpacks the cloud kernel package into.
pub fn unpacked_dir(root: &Path) -> PathBuf {
    crate::paths::target_dir(root).join("linux-kernel")
}

/// The message when no kernel is found.
fn missing(root: &Path) -> String {
    format!(
        "no Linux guest kernel for the baseline cases: run `ci/install-deps` (Debian/Ubuntu: downloads the linux-image-cloud-amd64 package, without installing it, into {}), or run the proof through the flake (`nix run .#smp-process-scale` provides nixpkgs' kernel), or set {KERNEL_VARIABLE} to a bzImage",
        crate::guest::build::display_relative(root, &unpacked_dir(root).join("boot"))
    )
}

/// Find the kernel image and describe it.
pub fn locate(root: &Path) -> Result<LinuxKernel> {
    let (path, source) = match std::env::var_os(KERNEL_VARIABLE).filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            ensure!(
                path.is_file(),
                "{KERNEL_VARIABLE}={} is not a file",
                path.display()
            );
            (path, KERNEL_VARIABLE.to_string())
        }
        None => {
            let boot = unpacked_dir(root).join("boot");
            let mut images: Vec<PathBuf> = std::fs::read_dir(&boot)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("vmlinuz-"))
                })
                .collect();
            images.sort();
            let Some(image) = images.pop() else {
                bail!("{}", missing(root));
            };
            ensure!(
                images.is_empty(),
                "{} holds several kernels; keep one (or remove the directory and run ci/install-deps again)",
                boot.display()
            );
            let package = std::fs::read_to_string(unpacked_dir(root).join("PACKAGE"))
                .map(|text| text.trim().to_string())
                .unwrap_or_else(|_| "unpacked kernel package".into());
            (image, package)
        }
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let version = kernel_version(&bytes)
        .with_context(|| format!("{} is not a bootable x86 Linux kernel", path.display()))?;
    Ok(LinuxKernel {
        path: crate::guest::build::display_relative(root, &path),
        sha256: crate::digest::sha256_hex(&bytes),
        version,
        source,
    })
}

/// The full path of a located kernel (its recorded path may be relative).
pub fn image_path(root: &Path, kernel: &LinuxKernel) -> PathBuf {
    let path = PathBuf::from(&kernel.path);
    if path.is_absolute() {
        path
    } else {
        root.join(path)
    }
}

/// The version string of an x86 boot-protocol image: `HdrS` at 0x202,
/// protocol >= 2.00, and a NUL-terminated string at `kernel_version` + 0x200.
pub fn kernel_version(image: &[u8]) -> Result<String> {
    let u16_at = |offset: usize| -> Result<usize> {
        let bytes = image.get(offset..offset + 2).context("image too short")?;
        Ok(usize::from(u16::from_le_bytes([bytes[0], bytes[1]])))
    };
    ensure!(
        image.get(0x202..0x206) == Some(b"HdrS".as_slice()),
        "no boot protocol header (HdrS)"
    );
    ensure!(u16_at(0x206)? >= 0x200, "boot protocol older than 2.00");
    let offset = u16_at(0x20E)? + 0x200;
    let tail = image
        .get(offset..)
        .context("kernel_version points past the image")?;
    let end = tail
        .iter()
        .take(256)
        .position(|&byte| byte == 0)
        .context("kernel_version is not NUL-terminated")?;
    let version = std::str::from_utf8(&tail[..end]).context("kernel_version is not UTF-8")?;
    ensure!(!version.trim().is_empty(), "kernel_version is empty");
    Ok(version.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(version: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x600];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        bytes[0x206..0x208].copy_from_slice(&0x020Fu16.to_le_bytes());
        bytes[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        bytes[0x300..0x300 + version.len()].copy_from_slice(version);
        bytes
    }

    #[test]
    fn reads_the_version_from_the_header() {
        let version = kernel_version(&image(b"6.1.0-56-cloud-amd64 (x) #1 SMP\0")).unwrap();
        assert_eq!(version, "6.1.0-56-cloud-amd64 (x) #1 SMP");
    }

    #[test]
    fn refuses_what_is_not_a_kernel() {
        assert!(kernel_version(b"MZ").is_err());
        let mut no_magic = image(b"x\0");
        no_magic[0x202] = b'X';
        assert!(kernel_version(&no_magic).is_err());
        assert!(kernel_version(&image(&[b'a'; 300])).is_err());
    }

    #[test]
    fn a_missing_kernel_names_install_deps_and_the_flake() {
        let message = missing(Path::new("/nowhere"));
        assert!(message.contains("ci/install-deps") && message.contains("nix run"));
    }
}
