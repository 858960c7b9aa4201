//! Soaking (`capos soak`): boot the whole smoke suite again and again to
//! catch rare races, counting failures per smoke.
//!
//! Each round runs `capos smokes` (this same executable) as a child process
//! on one ISO built up front, so one round's crash or hang cannot end the
//! soak and the suite is judged by exactly the smoke rules. A round's output
//! goes to `target/soak/smp<N>/round-<i>.log`; the raw logs of every failing
//! smoke are copied to `target/soak/smp<N>/round-<i>/<smoke>/` before the
//! next round overwrites them. [`run`] hands each round to the caller's
//! callback as it ends and returns the per-smoke failure counts; it prints
//! nothing.

use crate::guest::qemu::AccelRequest;
use crate::paths;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What a soak boots, and how often.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Rounds: boots of the whole suite.
    pub boots: u32,
    /// Virtual CPUs for every boot.
    pub cpus: u32,
    /// Accelerator request passed to each round's `capos smokes`.
    pub accel: AccelRequest,
    /// The ISO every round boots.
    pub iso: PathBuf,
    /// Soak only the smokes with these names (all when empty).
    pub only: Vec<String>,
}

/// How one round ended, with the counts so far.
#[derive(Debug)]
pub struct RoundReport {
    /// The round's number, from 1.
    pub round: u32,
    /// Smokes the round ran.
    pub smokes: usize,
    /// The smokes that failed in it.
    pub failed: Vec<String>,
    /// Wall-clock time of the round.
    pub wall: Duration,
    /// Smoke failures in every round so far, this one included.
    pub failures_so_far: u32,
    /// Smoke runs in every round so far, this one included.
    pub runs_so_far: u32,
}

/// What a whole soak found.
#[derive(Debug)]
#[must_use]
pub struct SoakReport {
    /// Smoke runs over all rounds.
    pub smoke_runs: u32,
    /// Failure count per smoke that failed at least once.
    pub failures: BTreeMap<String, u32>,
    /// Rounds in which every smoke passed and `capos smokes` succeeded.
    pub rounds_passed: u32,
    /// The other rounds.
    pub rounds_failed: u32,
    /// Wall-clock time of the whole soak.
    pub wall: Duration,
    /// Where the round logs and kept failing logs are.
    pub directory: PathBuf,
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

/// Run `options.boots` rounds of `capos smokes` (the executable `capos`)
/// on one ISO, handing each round to `observe` as it ends. An error means a
/// round could not be run or ran no smoke, not that a smoke failed.
pub fn run(
    root: &Path,
    capos: &Path,
    options: &SoakOptions,
    observe: &mut dyn FnMut(&RoundReport),
) -> Result<SoakReport> {
    let soak_dir = paths::target_dir(root)
        .join("soak")
        .join(format!("smp{}", options.cpus));
    std::fs::create_dir_all(&soak_dir)
        .with_context(|| format!("creating {}", soak_dir.display()))?;
    let accel = match options.accel {
        AccelRequest::Auto => "auto",
        AccelRequest::Kvm => "kvm",
        AccelRequest::Tcg => "tcg",
    };
    let started = Instant::now();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let (mut rounds_passed, mut rounds_failed, mut smoke_runs) = (0u32, 0u32, 0u32);
    for round in 1..=options.boots {
        let round_start = Instant::now();
        let mut command = Command::new(capos);
        command
            .arg("--root")
            .arg(root)
            .args([
                "smokes",
                "--smp",
                &options.cpus.to_string(),
                "--accel",
                accel,
            ])
            .arg("--iso")
            .arg(&options.iso);
        for name in &options.only {
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
                failed_here.push(name.clone());
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
        observe(&RoundReport {
            round,
            smokes: reports.len(),
            failed: failed_here,
            wall: round_start.elapsed(),
            failures_so_far: failures.values().sum(),
            runs_so_far: smoke_runs,
        });
    }
    Ok(SoakReport {
        smoke_runs,
        failures,
        rounds_passed,
        rounds_failed,
        wall: started.elapsed(),
        directory: soak_dir,
    })
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
