//! `capos soak`: boot the whole smoke suite again and again to catch rare
//! races, counting failures per smoke.
//!
//! Each round runs `capos smokes` (this same executable) as a child process
//! on one ISO built up front, so one round's crash or hang cannot end the
//! soak and the suite is judged by exactly the smoke rules. A round's output
//! goes to `target/soak/smp<N>/round-<i>.log`; the raw logs of every failing
//! smoke are copied to `target/soak/smp<N>/round-<i>/<smoke>/` before the
//! next round overwrites them. Ends with the per-smoke failure counts and
//! `N passed, N failed` counted in rounds.

use crate::guest::boot_options::BootOptions;
use crate::guest::build;
use crate::guest::qemu::AccelRequest;
use crate::paths;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Arguments of `capos soak`.
#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    /// Rounds: boots of the whole suite.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub boots: u32,
    #[command(flatten)]
    pub boot: BootOptions,
    /// Soak only the smokes with these names (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
}

/// What `capos smokes` reported for one smoke.
#[derive(Debug, PartialEq, Eq)]
pub enum SmokeReport {
    Pass(String),
    /// Name and the raw serial log's path, as printed.
    Fail(String, Option<String>),
}

/// The `[smoke] <name> smp=<n> pass|FAIL ...` lines of a `capos smokes` run.
pub fn parse_smoke_lines(output: &str) -> Vec<SmokeReport> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("[smoke] ")?;
            let (name, rest) = rest.split_once(' ')?;
            let (_, verdict) = rest.split_once(' ')?;
            if verdict.starts_with("pass") {
                Some(SmokeReport::Pass(name.to_string()))
            } else if verdict.starts_with("FAIL") {
                let log = verdict
                    .rsplit_once("(raw log: ")
                    .and_then(|(_, tail)| tail.strip_suffix(')'))
                    .map(str::to_string);
                Some(SmokeReport::Fail(name.to_string(), log))
            } else {
                None
            }
        })
        .collect()
}

/// `capos soak`: the rounds, a progress line each, then the summary.
pub fn run_command(root: &Path, args: SoakArgs) -> Result<()> {
    let iso = args.boot.iso(root)?;
    let executable = std::env::current_exe().context("locating the capos executable")?;
    let soak_dir = paths::target_dir(root)
        .join("soak")
        .join(format!("smp{}", args.boot.smp));
    std::fs::create_dir_all(&soak_dir)
        .with_context(|| format!("creating {}", soak_dir.display()))?;
    let accel = match args.boot.accel {
        AccelRequest::Auto => "auto",
        AccelRequest::Kvm => "kvm",
        AccelRequest::Tcg => "tcg",
    };
    let started = Instant::now();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let (mut rounds_passed, mut rounds_failed, mut smoke_runs) = (0u32, 0u32, 0u32);
    for round in 1..=args.boots {
        let round_start = Instant::now();
        let mut command = Command::new(&executable);
        command
            .arg("--root")
            .arg(root)
            .args([
                "smokes",
                "--smp",
                &args.boot.smp.to_string(),
                "--accel",
                accel,
            ])
            .arg("--iso")
            .arg(&iso);
        for name in &args.only {
            command.args(["--only", name]);
        }
        let output = command
            .output()
            .with_context(|| format!("round {round}: starting capos smokes"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let log = soak_dir.join(format!("round-{round}.log"));
        std::fs::write(
            &log,
            format!(
                "{stdout}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&output.stderr)
            ),
        )
        .with_context(|| format!("writing {}", log.display()))?;
        let reports = parse_smoke_lines(&stdout);
        if reports.is_empty() {
            bail!(
                "round {round}: capos smokes ran no smoke ({}); see {}",
                output.status,
                log.display()
            );
        }
        let mut failed_here = Vec::new();
        for report in &reports {
            smoke_runs += 1;
            if let SmokeReport::Fail(name, serial_log) = report {
                *failures.entry(name.clone()).or_default() += 1;
                failed_here.push(name.as_str());
                if let Some(serial_log) = serial_log {
                    keep_logs(
                        root,
                        serial_log,
                        &soak_dir.join(format!("round-{round}")).join(name),
                    )?;
                }
            }
        }
        if failed_here.is_empty() && output.status.success() {
            rounds_passed += 1;
        } else {
            rounds_failed += 1;
        }
        println!(
            "[soak] round {round}/{} smp={}: {} smokes, failed: {} ({:.1}s; {} failures in {} runs so far)",
            args.boots,
            args.boot.smp,
            reports.len(),
            if failed_here.is_empty() {
                "none".to_string()
            } else {
                failed_here.join(", ")
            },
            round_start.elapsed().as_secs_f64(),
            failures.values().sum::<u32>(),
            smoke_runs
        );
    }
    println!(
        "[soak] boots={} smp={} smoke-runs={smoke_runs} failures={} wall={:.0}s logs={}",
        args.boots,
        args.boot.smp,
        failures.values().sum::<u32>(),
        started.elapsed().as_secs_f64(),
        build::display_relative(root, &soak_dir)
    );
    for (name, count) in &failures {
        println!("[soak] {name} failed {count} of {} rounds", args.boots);
    }
    println!("{rounds_passed} passed, {rounds_failed} failed");
    if rounds_failed > 0 {
        bail!("{rounds_failed} of {} soak rounds failed", args.boots);
    }
    Ok(())
}

/// Copy the log directory holding `serial_log` (as printed, relative to
/// `root` or absolute) to `destination`.
fn keep_logs(root: &Path, serial_log: &str, destination: &Path) -> Result<()> {
    let serial_log = root.join(serial_log);
    let Some(source) = serial_log.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(destination)
        .with_context(|| format!("creating {}", destination.display()))?;
    for entry in
        std::fs::read_dir(source).with_context(|| format!("reading {}", source.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), destination.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_lines_are_parsed_with_their_logs() {
        let output = "\
[smoke] manifest smp=2 pass (0.91s)
[smoke] hostile-flags smp=2 FAIL: missing line starting with \"x (y)\" (raw log: target/smokes/smp2/hostile-flags/serial.log)
something else
1 passed, 1 failed
";
        assert_eq!(
            parse_smoke_lines(output),
            [
                SmokeReport::Pass("manifest".into()),
                SmokeReport::Fail(
                    "hostile-flags".into(),
                    Some("target/smokes/smp2/hostile-flags/serial.log".into())
                ),
            ]
        );
    }

    #[test]
    fn failing_logs_are_copied() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("target/smokes/smp2/x");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("serial.log"), "boot").unwrap();
        let destination = root.path().join("kept");
        keep_logs(root.path(), "target/smokes/smp2/x/serial.log", &destination).unwrap();
        assert_eq!(
            std::fs::read_to_string(destination.join("serial.log")).unwrap(),
            "boot"
        );
    }
}
