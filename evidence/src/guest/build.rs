//! `capos build`: the bare-metal kernel ELF and the bootable, bit-reproducible GRUB ISO.
//!
//! Reproducibility rests on: pinned toolchain and Cargo.lock, path remapping
//! (no checkout path reaches the binary), `SOURCE_DATE_EPOCH` from the commit
//! time, fixed file mtimes in the ISO tree and fixed xorriso volume dates.
//! Outputs are written beside their final path and renamed into place, so a
//! failed build never leaves a file that looks valid.
//!
//! A kernel with optional features (a [`KernelFlavor`] other than the
//! standard one, chosen by the environment) is built into its own target
//! and ISO directories, so a measuring build never replaces the normal one.

use crate::guest::cargo::cargo_build_bare_metal;
use crate::{paths, tools};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Codegen flags that make host-target code fit a higher-half kernel.
const KERNEL_RUSTFLAGS: &[&str] = &[
    "-Crelocation-model=static",
    "-Ccode-model=kernel",
    "-Cno-redzone=yes",
    "-Cforce-frame-pointers=yes",
];

/// Set to `1` to build the kernel with the `measure` feature (guest
/// measurement, docs/scheduler.md) wherever `capos` builds one.
pub const GUEST_MEASURE_VARIABLE: &str = "CAPOS_THREAD_SCALE_GUEST_MEASURE";

/// Which kernel a build makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFlavor {
    /// The normal kernel, without optional features.
    Standard,
    /// With the `measure` feature (counters, PC samples and `[measure]`
    /// lines at the last phase mark), in `target/kernel-measure` and
    /// `target/iso-measure`.
    Measure,
}

impl KernelFlavor {
    /// The flavor [`GUEST_MEASURE_VARIABLE`] asks for.
    pub fn from_environment() -> Result<Self> {
        Self::parse(std::env::var(GUEST_MEASURE_VARIABLE).ok().as_deref())
    }

    /// The flavor for a value of [`GUEST_MEASURE_VARIABLE`]: unset, empty
    /// or `0` is the standard kernel, `1` the measuring one.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("") | Some("0") => Ok(Self::Standard),
            Some("1") => Ok(Self::Measure),
            Some(other) => bail!("{GUEST_MEASURE_VARIABLE}={other:?} is neither 0 nor 1"),
        }
    }

    /// The kernel crate's cargo features.
    pub fn features(self) -> &'static [&'static str] {
        match self {
            Self::Standard => &[],
            Self::Measure => &["measure"],
        }
    }

    /// The suffix of its kernel and ISO directories (None: the standard ones).
    pub fn directory_suffix(self) -> Option<&'static str> {
        match self {
            Self::Standard => None,
            Self::Measure => Some("measure"),
        }
    }

    /// Where `capos build iso` writes this flavor's ISO.
    pub fn iso_path(self, root: &Path) -> PathBuf {
        paths::iso(root, self.directory_suffix())
    }

    /// Where this flavor's kernel ELF is built.
    pub fn kernel_elf(self, root: &Path) -> PathBuf {
        paths::kernel_elf(root, self.directory_suffix())
    }
}

#[derive(Subcommand, Debug)]
pub enum BuildCommand {
    /// Build the kernel ELF (target/kernel/.../capos-kernel; target/kernel-measure
    /// with CAPOS_THREAD_SCALE_GUEST_MEASURE=1) and print its sha256.
    Kernel,
    /// Build kernel and ISO (target/iso/capos.iso; target/iso-measure with
    /// CAPOS_THREAD_SCALE_GUEST_MEASURE=1) and print the ISO's sha256.
    Iso {
        /// Write the ISO here instead of target/iso/capos.iso.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Build the static Linux baseline programs (capos-baseline, capos-empty) and print their sha256.
    Baseline {
        /// Also copy them into this directory.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Entry point of `capos build`.
pub fn run(root: &Path, command: BuildCommand) -> Result<()> {
    match command {
        BuildCommand::Kernel => {
            let flavor = KernelFlavor::from_environment()?;
            let elf = build_kernel(root, source_date_epoch(root)?, flavor)?;
            println!(
                "{}  {}",
                crate::digest::file_sha256(&elf)
                    .with_context(|| format!("reading {}", elf.display()))?
                    .0,
                display_relative(root, &elf)
            );
        }
        BuildCommand::Baseline { output } => {
            let built = crate::proof::baseline::program::build(root, source_date_epoch(root)?)?;
            for program in [&built.baseline, &built.empty] {
                let path = match &output {
                    Some(directory) => {
                        std::fs::create_dir_all(directory)
                            .with_context(|| format!("creating {}", directory.display()))?;
                        let copy = directory.join(program.file_name().unwrap_or_default());
                        std::fs::copy(program, &copy).with_context(|| {
                            format!("copying {} to {}", program.display(), copy.display())
                        })?;
                        copy
                    }
                    None => program.clone(),
                };
                println!(
                    "{}  {}",
                    crate::digest::file_sha256(&path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .0,
                    display_relative(root, &path)
                );
            }
        }
        BuildCommand::Iso { output } => {
            let flavor = KernelFlavor::from_environment()?;
            let iso = output.unwrap_or_else(|| flavor.iso_path(root));
            let built = build_iso(root, &iso, flavor)?;
            println!("{}  {}", built.sha256, display_relative(root, &built.path));
        }
    }
    Ok(())
}

/// Compile the kernel of `flavor` for bare metal (stamped with `epoch`, see
/// [`source_date_epoch`]) and return the ELF path.
pub fn build_kernel(root: &Path, epoch: u64, flavor: KernelFlavor) -> Result<PathBuf> {
    cargo_build_bare_metal(
        root,
        "capos-kernel",
        &paths::kernel_target_dir(root, flavor.directory_suffix()),
        KERNEL_RUSTFLAGS,
        flavor.features(),
        epoch,
    )
    .context("kernel build failed")?;
    let elf = flavor.kernel_elf(root);
    if !elf.is_file() {
        bail!(
            "kernel build reported success but {} is missing",
            elf.display()
        );
    }
    Ok(elf)
}

/// A finished ISO and its digest.
pub struct BuiltIso {
    pub path: PathBuf,
    pub sha256: String,
    /// The kernel inside it.
    pub flavor: KernelFlavor,
}

/// Build the ISO of the flavor the environment asks for at its usual path
/// (`target/iso/capos.iso`, or `target/iso-measure/capos.iso`).
pub fn build_default_iso(root: &Path) -> Result<BuiltIso> {
    let flavor = KernelFlavor::from_environment()?;
    if flavor != KernelFlavor::Standard {
        eprintln!(
            "capos: {GUEST_MEASURE_VARIABLE}=1: building the kernel with features [{}] into {}",
            flavor.features().join(", "),
            display_relative(root, &flavor.iso_path(root))
        );
    }
    build_iso(root, &flavor.iso_path(root), flavor)
}

/// Build the kernel of `flavor`, then pack it with GRUB and the boot archive
/// (every program and manifest) into a bootable ISO at `output`.
pub fn build_iso(root: &Path, output: &Path, flavor: KernelFlavor) -> Result<BuiltIso> {
    let grub = preflight(output)?;
    let inputs = iso_inputs(root, flavor)?;
    let archive = crate::guest::boot_archive::write(&inputs.files, inputs.epoch)?;
    let staging = paths::iso_dir(root, flavor.directory_suffix()).join("staging");
    make_iso(&grub, &inputs, &archive, &staging, output)?;
    Ok(BuiltIso {
        path: output.to_path_buf(),
        sha256: crate::digest::file_sha256(output)
            .with_context(|| format!("reading {}", output.display()))?
            .0,
        flavor,
    })
}

/// GRUB's tools, found before anything expensive is built.
pub struct GrubTools {
    grub_mkrescue: PathBuf,
    platform: PathBuf,
}

/// Check that the ISO tools are installed and that `output`'s directory is
/// writable (created if missing).
pub fn preflight(output: &Path) -> Result<GrubTools> {
    let grub_mkrescue = tools::require(&tools::GRUB_MKRESCUE)?;
    tools::require(&tools::XORRISO)?;
    tools::require(&tools::MFORMAT)?;
    let platform = grub_platform_dir();
    if !platform.join("cdboot.img").is_file() {
        bail!(
            "GRUB BIOS images missing ({}); install them with `sudo ci/install-deps` (Debian package: grub-pc-bin), or set CAPOS_GRUB_PLATFORM_DIR",
            platform.display()
        );
    }
    let output_dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(output_dir)
        .with_context(|| format!("cannot create output directory {}", output_dir.display()))?;
    let probe = output_dir.join(".capos-write-probe");
    std::fs::write(&probe, b"")
        .with_context(|| format!("output directory {} is not writable", output_dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(GrubTools {
        grub_mkrescue,
        platform,
    })
}

/// What an ISO is made of besides GRUB: the kernel ELF and the files of its
/// boot archive, built at one `SOURCE_DATE_EPOCH`.
pub struct IsoInputs {
    pub epoch: u64,
    pub kernel: PathBuf,
    /// Every user program (in the `[[bin]]` order) and packed manifest (by name).
    pub files: Vec<crate::guest::boot_archive::ArchiveFile>,
}

/// Build the kernel of `flavor` and the user programs, and validate and pack
/// every manifest against the program list.
pub fn iso_inputs(root: &Path, flavor: KernelFlavor) -> Result<IsoInputs> {
    use crate::guest::boot_archive::ArchiveFile;
    use capos_kcore::boot_archive::EntryKind;
    let epoch = source_date_epoch(root)?;
    let kernel = build_kernel(root, epoch, flavor)?;
    let programs = crate::guest::userland::build_userland(root, epoch)?;
    let program_names: Vec<String> = programs.iter().map(|(name, _)| name.clone()).collect();
    let mut files = Vec::with_capacity(programs.len());
    for (name, elf) in programs {
        let bytes = std::fs::read(&elf)
            .with_context(|| format!("reading program {name} ({})", elf.display()))?;
        files.push(ArchiveFile {
            kind: EntryKind::Program,
            name,
            bytes,
        });
    }
    for path in crate::guest::manifest::discover(root)? {
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .with_context(|| format!("manifest file name {} is not UTF-8", path.display()))?
            .to_string();
        let bytes = crate::guest::manifest::pack(&path, &program_names)?;
        files.push(ArchiveFile {
            kind: EntryKind::Manifest,
            name,
            bytes,
        });
    }
    Ok(IsoInputs {
        epoch,
        kernel,
        files,
    })
}

/// Stage `inputs.kernel` and `archive` (the boot archive's bytes, taken as
/// they are) in `staging` and pack them with GRUB into the ISO `output`,
/// written beside it and renamed into place.
pub fn make_iso(
    grub: &GrubTools,
    inputs: &IsoInputs,
    archive: &[u8],
    staging: &Path,
    output: &Path,
) -> Result<()> {
    let epoch = inputs.epoch;
    stage_iso_tree(staging, &inputs.kernel, archive, epoch)?;
    let partial = output.with_extension("iso.partial");
    let _ = std::fs::remove_file(&partial);
    let volume_date = utc_stamp(epoch);
    let result = Command::new(&grub.grub_mkrescue)
        .arg("-d")
        .arg(&grub.platform)
        .arg("-o")
        .arg(&partial)
        .args(["--fonts=", "--locales=", "--themes=", "--compress=no"])
        .arg(staging)
        .arg("--")
        .args(["-volume_date", "all_file_dates", &format!("={epoch}")])
        .args(["-volume_date", "c", &format!("={epoch}")])
        .args(["-volume_date", "m", &format!("={epoch}")])
        .args(["-volume_date", "f", &format!("={epoch}")])
        .args(["-volume_date", "uuid", &volume_date])
        .args(["-volid", "CAPOS"])
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .output()
        .context("starting grub-mkrescue")?;
    if !result.status.success() || !partial.is_file() {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "grub-mkrescue failed ({}): {}",
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    check_iso_signature(&partial)?;
    std::fs::rename(&partial, output)
        .with_context(|| format!("moving the ISO into place at {}", output.display()))
}

/// GRUB's BIOS platform files: `CAPOS_GRUB_PLATFORM_DIR`, else Debian's path.
fn grub_platform_dir() -> PathBuf {
    std::env::var_os("CAPOS_GRUB_PLATFORM_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/grub/i386-pc"))
}

/// Path of the boot archive inside the ISO.
pub const ARCHIVE_PATH: &str = "/boot/capos.cpio";

/// Lay out `boot/` (kernel, boot archive, grub.cfg), every mtime set to
/// `epoch`.
fn stage_iso_tree(staging: &Path, kernel: &Path, archive: &[u8], epoch: u64) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging)
            .with_context(|| format!("clearing {}", staging.display()))?;
    }
    let boot = staging.join("boot");
    std::fs::create_dir_all(boot.join("grub"))?;
    std::fs::copy(kernel, boot.join("capos.elf"))
        .context("copying the kernel into the ISO tree")?;
    std::fs::write(staging.join(ARCHIVE_PATH.trim_start_matches('/')), archive)
        .context("writing the boot archive into the ISO tree")?;
    std::fs::write(boot.join("grub").join("grub.cfg"), GRUB_CONFIG)?;
    set_tree_mtime(
        staging,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch),
    )
}

/// Set the mtime of `path` and everything under it.
fn set_tree_mtime(path: &Path, time: std::time::SystemTime) -> Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            set_tree_mtime(&entry?.path(), time)?;
        }
    }
    std::fs::File::open(path)?
        .set_modified(time)
        .with_context(|| format!("setting mtime of {}", path.display()))
}

/// GRUB menu: the kernel and one module, the boot archive (command line
/// `archive`, which is how the kernel finds it).
const GRUB_CONFIG: &str = "set timeout=0\nset default=0\nmenuentry \"capOS\" {\n  multiboot2 /boot/capos.elf\n  module2 /boot/capos.cpio archive\n  boot\n}\n";

/// Fail unless `path` carries the ISO 9660 primary volume signature.
pub fn check_iso_signature(path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening ISO {}", path.display()))?;
    let mut signature = [0u8; 5];
    let readable =
        file.seek(SeekFrom::Start(0x8001)).is_ok() && file.read_exact(&mut signature).is_ok();
    if !readable || &signature != b"CD001" {
        bail!(
            "{} is not an ISO 9660 image (corrupt or truncated); rebuild it with `capos build iso`",
            path.display()
        );
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` from the environment, else the HEAD commit time.
pub fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Ok(value) = std::env::var("SOURCE_DATE_EPOCH") {
        return value.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds")
        });
    }
    let output = Command::new("git")
        .current_dir(root)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .context("running git to read the commit time")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.trim().is_empty() {
        bail!(
            "cannot read the commit time (not a git checkout with commits?); set SOURCE_DATE_EPOCH"
        );
    }
    text.trim()
        .parse()
        .with_context(|| format!("git printed an unexpected commit time {text:?}"))
}

/// `YYYYMMDDhhmmss00` in UTC, the form xorriso's `-volume_date uuid` takes.
fn utc_stamp(epoch: u64) -> String {
    let days = epoch / 86_400;
    let seconds = epoch % 86_400;
    let (year, month, day) = crate::time::civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}00",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `path` relative to `root` when it is inside, for messages without machine paths.
pub fn display_relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_measure_variable_chooses_the_flavor() {
        assert_eq!(KernelFlavor::parse(None).unwrap(), KernelFlavor::Standard);
        assert_eq!(
            KernelFlavor::parse(Some("")).unwrap(),
            KernelFlavor::Standard
        );
        assert_eq!(
            KernelFlavor::parse(Some("0")).unwrap(),
            KernelFlavor::Standard
        );
        assert_eq!(
            KernelFlavor::parse(Some("1")).unwrap(),
            KernelFlavor::Measure
        );
        assert!(KernelFlavor::parse(Some("yes")).is_err());
        let root = Path::new("/checkout");
        assert_ne!(
            KernelFlavor::Measure.iso_path(root),
            KernelFlavor::Standard.iso_path(root)
        );
        assert_ne!(
            KernelFlavor::Measure.kernel_elf(root),
            KernelFlavor::Standard.kernel_elf(root)
        );
        assert_eq!(KernelFlavor::Measure.features(), ["measure"]);
        assert!(KernelFlavor::Standard.features().is_empty());
    }

    #[test]
    fn grub_loads_the_kernel_and_the_one_archive() {
        assert_eq!(GRUB_CONFIG.matches("module2").count(), 1);
        assert!(GRUB_CONFIG.contains(&format!("module2 {ARCHIVE_PATH} archive\n")));
    }

    #[test]
    fn utc_stamp_matches_known_dates() {
        assert_eq!(utc_stamp(0), "1970010100000000");
        assert_eq!(utc_stamp(951_782_400), "2000022900000000");
        assert_eq!(utc_stamp(1_795_323_600), "2026112205000000");
    }
}
