//! `capos soak`: boot the whole smoke suite again and again (see
//! `crate::guest::soak`); a line per round, the per-smoke failure
//! counts, then `N passed, N failed` counted in rounds.

use crate::cli::boot_options::BootOptions;
use crate::guest::build::display_relative;
use crate::guest::soak::{self, RoundReport, SoakOptions};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Arguments of `capos soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Rounds: boots of the whole suite. A soak stopped earlier on the same
    /// ISO, CPU count and smoke selection is continued up to this many
    /// (its counts are in target/soak/smp<N>/ledger.json).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub boots: u32,
    /// Start at round 1 even if an earlier soak could be continued.
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub boot: BootOptions,
    /// Soak only the smokes with these names (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
}

/// The rounds, a progress line each, then the summary.
pub fn run_command(root: &Path, args: SoakArgs) -> Result<()> {
    let iso = args.boot.iso(root)?;
    let executable = std::env::current_exe().context("locating the capos executable")?;
    let options = SoakOptions {
        boots: args.boots,
        cpus: args.boot.smp,
        accel: args.boot.accel.into(),
        iso,
        only: args.only,
        fresh: args.fresh,
    };
    let report = soak::run(root, &executable, &options, &mut |round| {
        print_round(&options, round)
    })?;
    if let Some(reason) = &report.not_continued {
        println!("[soak] an earlier soak's ledger was not continued: {reason}");
    }
    if report.continued_after > 0 {
        println!(
            "[soak] rounds 1-{} were recorded by an earlier soak on this ISO (same smp and smokes) and count here; ledger {}",
            report.continued_after,
            display_relative(root, &report.ledger)
        );
    }
    println!(
        "[soak] boots={} smp={} smoke-runs={} failures={} wall={:.0}s logs={}",
        options.boots,
        options.cpus,
        report.smoke_runs,
        report.failures.values().sum::<u32>(),
        report.wall.as_secs_f64(),
        display_relative(root, &report.directory)
    );
    for (name, count) in &report.failures {
        println!("[soak] {name} failed {count} of {} rounds", options.boots);
    }
    println!(
        "{} passed, {} failed",
        report.rounds_passed, report.rounds_failed
    );
    if report.rounds_failed > 0 {
        bail!(
            "{} of {} soak rounds failed",
            report.rounds_failed,
            options.boots
        );
    }
    Ok(())
}

/// `[soak] round <i>/<n> smp=<n>: <k> smokes, failed: <names|none> (...)`.
fn print_round(options: &SoakOptions, round: &RoundReport) {
    let failed = if round.failed.is_empty() {
        "none".to_string()
    } else {
        round.failed.join(", ")
    };
    println!(
        "[soak] round {}/{} smp={}: {} smokes, failed: {failed} ({:.1}s; {} failures in {} runs so far)",
        round.round,
        options.boots,
        options.cpus,
        round.smokes,
        round.wall.as_secs_f64(),
        round.failures_so_far,
        round.runs_so_far
    );
}
