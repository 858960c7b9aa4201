//! `capos fuzz`: boot the random submission fuzzer once per seed, each boot
//! judged as a one-entry smoke list (see `crate::guest::fuzz`);
//! a line per seed, then `N passed, N failed` (one per seed).

use crate::cli::boot_options::BootOptions;
use crate::cli::smokes::{self, SmokeArgs};
use crate::guest::fuzz;
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Instant;

/// Arguments of `capos fuzz`.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Seeds, one boot each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 2, 3])]
    pub seeds: Vec<u64>,
    /// Random submissions per boot.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: u64,
    #[command(flatten)]
    pub boot: BootOptions,
}

/// One boot per seed, a line per boot, then the summary.
pub fn run_command(root: &Path, args: FuzzArgs) -> Result<()> {
    if args.seeds.is_empty() {
        bail!("no seeds given");
    }
    let iso = args.boot.iso(root)?;
    let (mut passed, mut failed) = (0, 0);
    for (index, seed) in args.seeds.iter().enumerate() {
        eprintln!(
            "[fuzz] seed={seed} ops={} ({}/{})",
            args.ops,
            index + 1,
            args.seeds.len()
        );
        let list = fuzz::write_smoke_list(root, *seed, args.ops)?;
        let start = Instant::now();
        let outcome = smokes::run_command(
            root,
            SmokeArgs {
                smp: args.boot.smp,
                accel: args.boot.accel,
                iso: Some(iso.clone()),
                only: Vec::new(),
                list: Some(list),
            },
        );
        let seconds = start.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!(
                    "[fuzz] seed={seed} ops={} smp={} pass ({seconds:.1}s)",
                    args.ops, args.boot.smp
                );
            }
            Err(error) => {
                failed += 1;
                println!(
                    "[fuzz] seed={seed} ops={} smp={} FAIL: {error:#} ({seconds:.1}s)",
                    args.ops, args.boot.smp
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} of {} fuzz seeds failed", args.seeds.len());
    }
    Ok(())
}
