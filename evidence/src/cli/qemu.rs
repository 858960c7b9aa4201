//! `capos qemu`: boot the ISO once under QEMU (see
//! `crate::guest::qemu`), echo the serial lines, and make the
//! guest's verdict the exit status.

use crate::cli::accel::AccelOption;
use crate::guest::build;
use crate::guest::qemu::{self, CaseSpec, Verdict};
use crate::paths;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `capos qemu`.
#[derive(clap::Args, Debug)]
pub struct QemuArgs {
    /// Number of virtual CPUs (-smp).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Accelerator: auto probes KVM and falls back to multi-threaded TCG.
    #[arg(long, value_enum, default_value_t = AccelOption::Auto)]
    pub accel: AccelOption,
    /// Kill QEMU and fail after this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=65_536))]
    pub memory: u32,
    /// Boot options for the kernel, e.g. `mode=fault` or `mode=hang`.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Boot this ISO instead of building target/iso/capos.iso first.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// Directory for the raw logs (default: target/qemu/<timestamp>).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
}

/// `capos qemu`: one boot, serial echoed, verdict as the exit status.
pub fn run_command(root: &Path, args: QemuArgs) -> Result<()> {
    let iso = match args.iso {
        Some(iso) => iso,
        None => build::build_default_iso(root, &mut |notice| eprintln!("capos: {notice}"))?.path,
    };
    let choice = qemu::detect_accel(root, args.accel.into())?;
    eprintln!("capos: accel={} ({})", choice.accel, choice.reason);
    let log_dir = args.log_dir.unwrap_or_else(|| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        paths::qemu_log_root(root).join(format!("run-{stamp}"))
    });
    let spec = CaseSpec {
        iso,
        cpus: args.smp,
        memory_mib: args.memory,
        accel: choice.accel,
        cmdline: args.cmdline,
        timeout: Duration::from_secs(args.timeout),
        log_dir,
    };
    let outcome = qemu::run_case(&spec)?;
    for line in &outcome.lines {
        println!("{}", line.text);
    }
    eprintln!(
        "capos: {} in {:.2}s; raw logs in {}",
        outcome.verdict,
        outcome.wall.as_secs_f64(),
        build::display_relative(root, &spec.log_dir)
    );
    match outcome.verdict {
        Verdict::Pass => Ok(()),
        Verdict::Timeout => bail!("timed out after {}s", args.timeout),
        Verdict::Fail { reason, .. } => bail!("{reason}"),
    }
}
