//! Running baseline cases: the Linux guest under the capOS cases' QEMU
//! envelope, and the native program pinned on the host.
//!
//! Invariants a reader must know:
//! - Everything a baseline run uses is built or found once per proof run
//!   ([`prepare`]) and recorded with its digest in inputs.json
//!   ([`BaselineInputs`]) before the first run.
//! - A Linux guest gets the same QEMU binary, accelerator arguments, CPU
//!   model, `-smp` and memory as a capOS case; only the boot source differs
//!   (`-kernel`/`-initrd`/`-append` instead of the ISO).
//! - Raw logs are kept exactly like a capOS run's (command.txt,
//!   serial.log = console or stdout, serial.timed.log, stderr.log), and the
//!   run's exit record says how it ended (and, natively, how many CPUs the
//!   program was pinned to).

use super::initramfs;
use super::linux_kernel::{self, LinuxKernel};
use super::program::{self, Artifact};
use super::Os;
use crate::guest::build;
use crate::guest::qemu::{self, Accel};
use crate::host::watch::{RunHost, Watch};
use crate::proof::contract::{CaseSpec, Contract};
use crate::proof::exit::ExitRecord;
use crate::tools;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What inputs.json records about the baselines of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineInputs {
    /// The `capos-baseline` mode the baseline cases run.
    pub program: String,
    /// The static program: the native executable and the guest's `/init`.
    pub init: Artifact,
    /// The empty program the spawn micro-baseline starts (the guest's `/empty`).
    pub empty: Artifact,
    /// The Linux guest kernel, when a case boots Linux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_kernel: Option<LinuxKernel>,
    /// The initramfs written for the guest, when a case boots Linux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<Artifact>,
    /// Kernel command line of the Linux guest, before the program's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_append: Option<String>,
}

/// Console on the first serial port, quiet boot, reboot (and with
/// `-no-reboot`, exit) at once on a panic.
pub const LINUX_APPEND: &str = "console=ttyS0 quiet panic=-1";

/// The baselines of a run, ready to start.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What is recorded.
    pub inputs: BaselineInputs,
    init: PathBuf,
    kernel: Option<PathBuf>,
    initramfs: Option<PathBuf>,
}

/// Build the program, and for Linux cases find the kernel and write the
/// initramfs; None when no case of `cases` is a baseline case.
pub fn prepare(root: &Path, contract: &Contract, cases: &[&CaseSpec]) -> Result<Option<Prepared>> {
    if cases.iter().all(|case| case.os.is_capos()) {
        return Ok(None);
    }
    let Some(baseline) = &contract.spec.baseline else {
        bail!("the contract has baseline cases but no `baseline` section");
    };
    let needs_linux = cases.iter().any(|case| case.os == Os::Linux);
    // Fail on a missing kernel before spending minutes on builds.
    let kernel = needs_linux
        .then(|| linux_kernel::locate(root))
        .transpose()?;
    let epoch = build::source_date_epoch(root)?;
    let programs = program::locate_or_build(root, epoch)?;
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let (init_bytes, empty_bytes) = (read(&programs.baseline)?, read(&programs.empty)?);
    let record = |path: &Path, bytes: &[u8]| Artifact {
        path: build::display_relative(root, path),
        sha256: crate::digest::sha256_hex(bytes),
    };
    let init_record = record(&programs.baseline, &init_bytes);
    let empty_record = record(&programs.empty, &empty_bytes);
    let init = programs.baseline;
    let (initramfs, initramfs_record) = if needs_linux {
        let mtime = u32::try_from(epoch).unwrap_or(u32::MAX);
        let bytes = initramfs::archive(&init_bytes, &empty_bytes, mtime)?;
        let path = program::target_dir(root).join("initramfs.cpio");
        write_atomically(&path, &bytes)?;
        let initramfs_record = record(&path, &bytes);
        (Some(path), Some(initramfs_record))
    } else {
        (None, None)
    };
    let kernel_path = kernel
        .as_ref()
        .map(|kernel| linux_kernel::image_path(root, kernel));
    Ok(Some(Prepared {
        inputs: BaselineInputs {
            program: baseline.program.clone(),
            init: init_record,
            empty: empty_record,
            linux_kernel: kernel,
            initramfs: initramfs_record,
            linux_append: needs_linux.then(|| LINUX_APPEND.to_string()),
        },
        init,
        kernel: kernel_path,
        initramfs,
    }))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension("cpio.partial");
    std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The program's arguments for `case`: its mode, then `--workers`, then
/// the words a run put in the case's `cmdline` (a baseline case's is empty
/// as written; a chosen workload size adds `--blocks <n> --expect <n>`,
/// see `Contract::with_workload_size`).
fn program_arguments(prepared: &Prepared, case: &CaseSpec) -> Vec<String> {
    let mut arguments = vec![prepared.inputs.program.clone()];
    if let Some(workers) = case.workers {
        arguments.extend(["--workers".to_string(), workers.to_string()]);
    }
    arguments.extend(case.cmdline.split_whitespace().map(str::to_string));
    arguments
}

/// The QEMU arguments of a Linux guest for `case`.
pub fn linux_arguments(prepared: &Prepared, case: &CaseSpec, accel: Accel) -> Result<Vec<String>> {
    let (Some(kernel), Some(initramfs)) = (&prepared.kernel, &prepared.initramfs) else {
        bail!("case {} boots Linux but no kernel was prepared", case.id);
    };
    let mut arguments = qemu::envelope_arguments(accel, case.cpus, case.memory());
    arguments.extend([
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initramfs.display().to_string(),
        "-append".into(),
        format!(
            "{LINUX_APPEND} -- {}",
            program_arguments(prepared, case).join(" ")
        ),
    ]);
    Ok(arguments)
}

/// CPUs this process may run on (its affinity), at least 1.
fn available_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|count| u32::try_from(count.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Run one baseline case into `log_dir`; returns how it ended and, when
/// `watch` is given, its pinning and host noise. A native program given a
/// watch with CPUs starts on exactly those CPUs (and pins itself to all of
/// them); without one it pins itself to the first `min(cpus, host CPUs)`.
pub fn run_case(
    prepared: &Prepared,
    case: &CaseSpec,
    accel: Accel,
    log_dir: &Path,
    watch: Option<&mut Watch>,
) -> Result<(ExitRecord, Option<RunHost>)> {
    let timeout = Duration::from_secs(case.timeout_secs);
    let (captured, pinned_cpus) = match case.os {
        Os::Capos => bail!("case {} is a capOS case, not a baseline", case.id),
        Os::Linux => {
            let qemu = tools::require(&tools::QEMU)?;
            let arguments = linux_arguments(prepared, case, accel)?;
            let captured = qemu::run_captured_watched(
                &qemu,
                tools::QEMU.program,
                &arguments,
                timeout,
                log_dir,
                watch,
            )?;
            (captured, None)
        }
        Os::Native => {
            let planned = watch
                .as_deref()
                .and_then(Watch::spawn_cpus)
                .map(|cpus| u32::try_from(cpus.len()).unwrap_or(u32::MAX));
            let pinned = planned.unwrap_or_else(|| case.cpus.min(available_cpus()));
            let mut arguments = program_arguments(prepared, case);
            arguments.extend(["--cpus".to_string(), pinned.to_string()]);
            let captured = qemu::run_captured_watched(
                &prepared.init,
                &prepared.inputs.init.path,
                &arguments,
                timeout,
                log_dir,
                watch,
            )?;
            (captured, Some(pinned))
        }
    };
    let exit = ExitRecord {
        exit_code: captured.status.and_then(|status| status.code()),
        timed_out: captured.status.is_none(),
        wall_ms: u64::try_from(captured.wall.as_millis()).unwrap_or(u64::MAX),
        pinned_cpus,
    };
    Ok((exit, captured.host))
}
