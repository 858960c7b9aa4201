//! `capos smokes`: run the in-QEMU smoke suite (see
//! `crate::guest::smokes`), one line per smoke as it ends, then
//! `N passed, N failed`; fails when any smoke failed.

use crate::cli::accel::AccelOption;
use crate::guest::build::{self, display_relative};
use crate::guest::qemu;
use crate::guest::smokes::{self, SmokeOptions, SmokeRun};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Arguments of `capos smokes`.
#[derive(clap::Args, Debug)]
pub struct SmokeArgs {
    /// Virtual CPUs for every smoke.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Accelerator: auto probes KVM and falls back to multi-threaded TCG.
    #[arg(long, value_enum, default_value_t = AccelOption::Auto)]
    pub accel: AccelOption,
    /// Boot this ISO instead of building target/iso/capos.iso first.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// Run only the smokes with these names (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// Smoke list (default: userland/smokes.yaml).
    #[arg(long)]
    pub list: Option<PathBuf>,
}

/// Run the suite, print one line per smoke and the summary.
pub fn run_command(root: &Path, args: SmokeArgs) -> Result<()> {
    let selected = smokes::select(root, args.list.as_deref(), &args.only)?;
    let iso = match args.iso {
        Some(iso) => iso,
        None => build::build_default_iso(root, &mut |notice| eprintln!("capos: {notice}"))?.path,
    };
    let choice = qemu::detect_accel(root, args.accel.into())?;
    eprintln!("capos: accel={} ({})", choice.accel, choice.reason);
    let options = SmokeOptions {
        cpus: args.smp,
        accel: choice.accel,
        iso,
    };
    let tally = smokes::run(root, &selected, &options, &mut |run| {
        print_smoke(root, args.smp, run)
    })?;
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 {
        bail!("{} of {} smokes failed", tally.failed, selected.len());
    }
    Ok(())
}

/// `[smoke] <name> smp=<n> pass (<s>s)`, or the FAIL line with the reason,
/// the raw log and the serial lines that show how the boot ended (CI keeps
/// only the output, not the logs).
fn print_smoke(root: &Path, cpus: u32, run: &SmokeRun) {
    match &run.failure {
        None => println!(
            "[smoke] {} smp={cpus} pass ({:.2}s)",
            run.name,
            run.wall.as_secs_f64()
        ),
        Some(failure) => {
            println!(
                "[smoke] {} smp={cpus} FAIL: {} (raw log: {})",
                run.name,
                failure.reason,
                display_relative(root, &run.serial_log)
            );
            for line in &failure.context {
                println!("    | {line}");
            }
        }
    }
}
