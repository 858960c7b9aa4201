//! `capos archive-test`: build an ISO whose boot archive holds `--copies`
//! extra programs and manifests, boot the last of them, and boot a damaged
//! copy of the archive that the kernel must refuse (see
//! `crate::guest::archive_test`).

use crate::cli::accel::AccelOption;
use crate::guest::archive_test::{self, ArchiveBoot, ArchiveTestOptions};
use crate::guest::build::display_relative;
use crate::guest::qemu;
use crate::paths;
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// Arguments of `capos archive-test`.
#[derive(clap::Args, Debug)]
pub struct ArchiveTestArgs {
    /// Extra programs (copies of `hello`) and as many generated manifests to
    /// pack beside the real ones.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=5000))]
    pub copies: u16,
    /// Number of virtual CPUs (-smp) for both boots.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Accelerator: auto probes KVM and falls back to multi-threaded TCG.
    #[arg(long, value_enum, default_value_t = AccelOption::Auto)]
    pub accel: AccelOption,
    /// Kill QEMU and fail after this many seconds, per boot.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub timeout: u64,
}

/// Run the test and print what it built and what each boot showed.
pub fn run_command(root: &Path, args: ArchiveTestArgs) -> Result<()> {
    let choice = qemu::detect_accel(root, args.accel.into())?;
    eprintln!("capos: accel={} ({})", choice.accel, choice.reason);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    let log_root = paths::qemu_log_root(root).join(format!("archive-test-{stamp}"));
    let options = ArchiveTestOptions {
        copies: usize::from(args.copies),
        cpus: args.smp,
        accel: choice.accel,
        timeout: Duration::from_secs(args.timeout),
    };
    let report = archive_test::run(root, &options, &log_root)?;
    println!(
        "archive-test: {} archive_bytes={} programs={} manifests={}",
        display_relative(root, &report.iso),
        report.archive_bytes,
        report.programs,
        report.manifests
    );
    print_boot(root, "boot", &report.boot);
    print_boot(root, "damaged archive", &report.damaged);
    println!("archive-test: pass");
    Ok(())
}

fn print_boot(root: &Path, label: &str, boot: &ArchiveBoot) {
    println!(
        "archive-test: {label} `{}`: {} in {:.2}s (logs {})",
        boot.cmdline,
        boot.outcome.verdict,
        boot.outcome.wall.as_secs_f64(),
        display_relative(root, &boot.log_dir)
    );
    for line in &boot.evidence {
        println!("  {line}");
    }
}
