//! Building the user programs (`userland/programs`) as static bare-metal
//! ELFs, and checking each one fits the process start contract.
//!
//! Like the kernel they are compiled for the host target with codegen flags
//! for bare metal (static relocation, small code model, low addresses) into
//! their own target directory, with the same path remapping and
//! `SOURCE_DATE_EPOCH`, so the ELFs are reproducible. `-Ccode-model=small`
//! is also the marker that makes `userland/programs/build.rs` pass the link
//! arguments. Every ELF is then checked by the kernel's own user-image
//! policy (`capos_kcore::elf::check_user_image`): ELF64 x86_64 `EXEC`,
//! page-aligned `PT_LOAD`s inside the user image range, none both writable
//! and executable, no `INTERP`, `DYNAMIC` or `TLS`, entry in an executable
//! segment.

use crate::guest::cargo::{cargo, cargo_build_bare_metal};
use crate::paths::KERNEL_TARGET;
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo package holding the programs, one `[[bin]]` each.
pub const PROGRAMS_PACKAGE: &str = "capos-programs";

/// Codegen flags for user programs. The red zone stays on: user code may
/// use it (the kernel never pushes onto a user stack).
const USER_RUSTFLAGS: &[&str] = &["-Crelocation-model=static", "-Ccode-model=small"];

/// Where the programs are built (separate from the host and kernel target
/// directories, because the RUSTFLAGS differ).
pub fn user_target_dir(root: &Path) -> PathBuf {
    crate::paths::target_dir(root).join("user")
}

/// The ELF of program `name` after [`build_userland`].
pub fn program_elf(root: &Path, name: &str) -> PathBuf {
    user_target_dir(root)
        .join(KERNEL_TARGET)
        .join("release")
        .join(name)
}

/// Compile every program (stamped with `epoch`, see
/// `build::source_date_epoch`) and return (program name, ELF path)
/// in the order of the package's `[[bin]]` list. Fails if the build fails,
/// if a program's ELF is missing, or if one breaks the start contract
/// ([`check_user_elf`]).
pub fn build_userland(root: &Path, epoch: u64) -> Result<Vec<(String, PathBuf)>> {
    let names = program_names(root)?;
    cargo_build_bare_metal(
        root,
        PROGRAMS_PACKAGE,
        &user_target_dir(root),
        USER_RUSTFLAGS,
        &[],
        epoch,
    )
    .context("user program build failed")?;
    let mut programs = Vec::with_capacity(names.len());
    for name in names {
        let elf = program_elf(root, &name);
        if !elf.is_file() {
            bail!(
                "user program build reported success but {} (program `{name}`) is missing",
                elf.display()
            );
        }
        check_user_elf(&elf).with_context(|| format!("user program `{name}`"))?;
        programs.push((name, elf));
    }
    Ok(programs)
}

/// The `[[bin]]` names of [`PROGRAMS_PACKAGE`], from `cargo metadata`.
pub fn program_names(root: &Path) -> Result<Vec<String>> {
    let output = Command::new(cargo())
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .output()
        .context("starting cargo metadata to list the user programs")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata output")?;
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == PROGRAMS_PACKAGE)
        .with_context(|| format!("the workspace has no package {PROGRAMS_PACKAGE}"))?;
    let names: Vec<String> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_string))
        .collect();
    ensure!(
        !names.is_empty(),
        "package {PROGRAMS_PACKAGE} declares no programs"
    );
    Ok(names)
}

/// What [`check_user_elf`] found in a valid program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserElf {
    pub entry: u64,
    pub segments: Vec<LoadSegment>,
}

/// One `PT_LOAD` program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub virtual_address: u64,
    pub file_size: u64,
    pub memory_size: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
}

/// Most `PT_LOAD` segments a program may have (as the kernel loader).
const MAX_SEGMENTS: usize = 16;

/// Check that the ELF at `path` is a program the kernel can start: see the
/// module documentation for the rules.
pub fn check_user_elf(path: &Path) -> Result<UserElf> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_user_elf(&bytes)
        .with_context(|| format!("{} is not a valid capOS program", path.display()))
}

/// [`check_user_elf`] on bytes: the kernel's own user-image policy
/// (`capos_kcore::elf::check_user_image`), so host and kernel cannot disagree.
pub fn parse_user_elf(bytes: &[u8]) -> Result<UserElf> {
    let image = capos_kcore::elf::check_user_image::<MAX_SEGMENTS>(bytes)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let segments = image
        .segments()
        .iter()
        .map(|segment| LoadSegment {
            virtual_address: segment.virtual_address,
            file_size: segment.file_size,
            memory_size: segment.memory_size,
            readable: segment.readable,
            writable: segment.writable,
            executable: segment.executable,
        })
        .collect();
    Ok(UserElf {
        entry: image.entry(),
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const PT_TLS: u32 = 7;
    const PF_X: u32 = 1;
    const PF_W: u32 = 2;
    const PF_R: u32 = 4;

    /// A minimal ELF64 header plus program headers `(type, flags, vaddr, memsz)`.
    fn elf(entry: u64, headers: &[(u32, u32, u64, u64)]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[16..18].copy_from_slice(&2u16.to_le_bytes());
        bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
        bytes[24..32].copy_from_slice(&entry.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        for &(kind, flags, address, size) in headers {
            let mut header = [0u8; 56];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            header[4..8].copy_from_slice(&flags.to_le_bytes());
            header[16..24].copy_from_slice(&address.to_le_bytes());
            // No file bytes (p_filesz 0): the headers alone are the image.
            header[40..48].copy_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&header);
        }
        bytes
    }

    const TEXT: (u32, u32, u64, u64) = (PT_LOAD, PF_R | PF_X, 0x40_0000, 0x1000);
    const DATA: (u32, u32, u64, u64) = (PT_LOAD, PF_R | PF_W, 0x40_1000, 0x2000);

    #[test]
    fn accepts_separate_segments() {
        let parsed = parse_user_elf(&elf(0x40_0010, &[TEXT, DATA])).unwrap();
        assert_eq!(parsed.entry, 0x40_0010);
        assert_eq!(parsed.segments.len(), 2);
        assert!(parsed.segments[0].executable && !parsed.segments[1].executable);
    }

    #[test]
    fn rejects_what_the_kernel_must_not_load() {
        let cases: [(Vec<u8>, &str); 7] = [
            (
                elf(
                    0x40_0010,
                    &[(PT_LOAD, PF_R | PF_W | PF_X, 0x40_0000, 0x1000)],
                ),
                "both writable",
            ),
            (
                elf(0x40_0010, &[TEXT, (PT_INTERP, PF_R, 0x40_1000, 0x10)]),
                "PT_INTERP",
            ),
            (
                elf(0x40_0010, &[TEXT, (PT_DYNAMIC, PF_R, 0x40_1000, 0x10)]),
                "PT_DYNAMIC",
            ),
            (
                elf(0x40_0010, &[TEXT, (PT_TLS, PF_R, 0x40_1000, 0x10)]),
                "PT_TLS",
            ),
            (
                elf(0x1000, &[(PT_LOAD, PF_R | PF_X, 0x1000, 0x1000)]),
                "outside",
            ),
            (
                elf(0x40_1010, &[TEXT, DATA]),
                "not in an executable segment",
            ),
            (
                elf(0x40_0010, &[TEXT, (PT_LOAD, PF_R, 0x40_0800, 0x10)]),
                "not page-aligned",
            ),
        ];
        for (bytes, expected) in cases {
            let error = format!("{:#}", parse_user_elf(&bytes).unwrap_err());
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        assert!(parse_user_elf(b"\x7fELF").is_err());
        assert!(parse_user_elf(&[]).is_err());
    }
}
