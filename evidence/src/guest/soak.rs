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
//!
//! A soak can be stopped and continued: after every round the counts so far
//! go to `target/soak/smp<N>/ledger.json` (written beside and renamed), with
//! the SHA-256 of the ISO, the CPU count and the smoke selection. A later
//! soak with the same three continues after the last round recorded there
//! (so a 300-round soak may span several sittings, every round on the same
//! ISO); with anything different, or with `fresh`, it starts at round 1. A
//! ledger that cannot be read is an error, never a guess.

use crate::guest::qemu::AccelRequest;
use crate::paths;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
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
    /// Start at round 1 even if the ledger could be continued.
    pub fresh: bool,
}

/// The counts of a soak so far, as `ledger.json` keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// SHA-256 (hex) of the ISO every recorded round booted.
    pub iso_sha256: String,
    /// Virtual CPUs of every recorded round.
    pub cpus: u32,
    /// The smoke selection (empty: the whole suite).
    pub only: Vec<String>,
    /// Rounds recorded, numbered 1..=rounds_done.
    pub rounds_done: u32,
    pub rounds_passed: u32,
    pub rounds_failed: u32,
    pub smoke_runs: u32,
    /// Failure count per smoke that failed at least once.
    pub failures: BTreeMap<String, u32>,
    /// Wall-clock seconds of the recorded rounds.
    pub wall_seconds: f64,
}

/// Where a soak starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// At round 1; the reason when a ledger was there but not continued.
    Fresh(Option<String>),
    /// After the rounds of this ledger.
    Continue(Ledger),
}

/// Decide where a soak on the ISO with digest `iso_sha256` starts, given
/// the ledger text found (if any). A ledger that does not parse, or that
/// records more rounds than counted, is an error unless `options.fresh`.
pub fn plan(existing: Option<&str>, iso_sha256: &str, options: &SoakOptions) -> Result<Start> {
    let Some(text) = existing else {
        return Ok(Start::Fresh(None));
    };
    if options.fresh {
        return Ok(Start::Fresh(Some("--fresh".into())));
    }
    let ledger: Ledger = serde_json::from_str(text)
        .context("the soak ledger is not valid (start over with --fresh)")?;
    if ledger.rounds_passed + ledger.rounds_failed != ledger.rounds_done {
        bail!(
            "the soak ledger counts {} passed and {} failed rounds but {} rounds done (start over with --fresh)",
            ledger.rounds_passed,
            ledger.rounds_failed,
            ledger.rounds_done
        );
    }
    let reason = if ledger.iso_sha256 != iso_sha256 {
        Some(format!(
            "its rounds booted another ISO ({}…)",
            &ledger.iso_sha256[..ledger.iso_sha256.len().min(12)]
        ))
    } else if ledger.cpus != options.cpus {
        Some(format!("its rounds ran at -smp {}", ledger.cpus))
    } else if ledger.only != options.only {
        Some("its rounds ran another selection of smokes".into())
    } else {
        None
    };
    Ok(match reason {
        Some(reason) => Start::Fresh(Some(reason)),
        None => Start::Continue(ledger),
    })
}

/// Write `ledger` to `path` (beside it first, then renamed into place).
fn write_ledger(path: &Path, ledger: &Ledger) -> Result<()> {
    let staging = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(ledger).context("encoding the soak ledger")?;
    std::fs::write(&staging, text + "\n")
        .with_context(|| format!("writing {}", staging.display()))?;
    std::fs::rename(&staging, path).with_context(|| format!("renaming to {}", path.display()))
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

/// What a whole soak found (the rounds of earlier sittings included).
#[derive(Debug)]
#[must_use]
pub struct SoakReport {
    /// Rounds an earlier sitting recorded in the ledger, continued here
    /// (0: this soak started at round 1), and why a ledger found was not
    /// continued.
    pub continued_after: u32,
    pub not_continued: Option<String>,
    /// Smoke runs over all rounds.
    pub smoke_runs: u32,
    /// Failure count per smoke that failed at least once.
    pub failures: BTreeMap<String, u32>,
    /// Rounds in which every smoke passed and `capos smokes` succeeded.
    pub rounds_passed: u32,
    /// The other rounds.
    pub rounds_failed: u32,
    /// Wall-clock time of every round, earlier sittings included.
    pub wall: Duration,
    /// The ledger file.
    pub ledger: PathBuf,
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

/// Run rounds of `capos smokes` (the executable `capos`) on one ISO until
/// `options.boots` are recorded (continuing the ledger when [`plan`] says
/// so), handing each round to `observe` as it ends. An error means a round
/// could not be run or ran no smoke, not that a smoke failed.
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
    let ledger_path = soak_dir.join("ledger.json");
    let existing = match std::fs::read_to_string(&ledger_path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", ledger_path.display()))
        }
    };
    let (iso_sha256, _) = crate::digest::file_sha256(&options.iso)
        .with_context(|| format!("hashing {}", options.iso.display()))?;
    let start = plan(existing.as_deref(), &iso_sha256, options)
        .with_context(|| format!("in {}", ledger_path.display()))?;
    let (mut ledger, not_continued) = match start {
        Start::Continue(ledger) => (ledger, None),
        Start::Fresh(reason) => (
            Ledger {
                iso_sha256,
                cpus: options.cpus,
                only: options.only.clone(),
                rounds_done: 0,
                rounds_passed: 0,
                rounds_failed: 0,
                smoke_runs: 0,
                failures: BTreeMap::new(),
                wall_seconds: 0.0,
            },
            reason,
        ),
    };
    let continued_after = ledger.rounds_done;
    let accel = match options.accel {
        AccelRequest::Auto => "auto",
        AccelRequest::Kvm => "kvm",
        AccelRequest::Tcg => "tcg",
    };
    for round in continued_after + 1..=options.boots {
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
            ledger.smoke_runs += 1;
            if let SmokeReport::Fail(name, serial_log) = report {
                *ledger.failures.entry(name.clone()).or_default() += 1;
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
            ledger.rounds_passed += 1;
        } else {
            ledger.rounds_failed += 1;
        }
        ledger.rounds_done = round;
        let wall = round_start.elapsed();
        ledger.wall_seconds += wall.as_secs_f64();
        write_ledger(&ledger_path, &ledger)?;
        observe(&RoundReport {
            round,
            smokes: reports.len(),
            failed: failed_here,
            wall,
            failures_so_far: ledger.failures.values().sum(),
            runs_so_far: ledger.smoke_runs,
        });
    }
    Ok(SoakReport {
        continued_after,
        not_continued,
        smoke_runs: ledger.smoke_runs,
        failures: ledger.failures,
        rounds_passed: ledger.rounds_passed,
        rounds_failed: ledger.rounds_failed,
        wall: Duration::from_secs_f64(ledger.wall_seconds),
        directory: soak_dir,
        ledger: ledger_path,
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

    fn options(cpus: u32, only: &[&str], fresh: bool) -> SoakOptions {
        SoakOptions {
            boots: 300,
            cpus,
            accel: AccelRequest::Tcg,
            iso: PathBuf::from("capos.iso"),
            only: only.iter().map(|name| name.to_string()).collect(),
            fresh,
        }
    }

    fn ledger(rounds_done: u32) -> Ledger {
        Ledger {
            iso_sha256: "ab".repeat(32),
            cpus: 2,
            only: vec![],
            rounds_done,
            rounds_passed: rounds_done,
            rounds_failed: 0,
            smoke_runs: 28 * rounds_done,
            failures: BTreeMap::new(),
            wall_seconds: 35.0 * f64::from(rounds_done),
        }
    }

    #[test]
    fn a_matching_ledger_is_continued() {
        let text = serde_json::to_string(&ledger(61)).unwrap();
        let start = plan(Some(&text), &"ab".repeat(32), &options(2, &[], false)).unwrap();
        assert_eq!(start, Start::Continue(ledger(61)));
        assert_eq!(
            plan(None, &"ab".repeat(32), &options(2, &[], false)).unwrap(),
            Start::Fresh(None)
        );
    }

    #[test]
    fn another_iso_cpu_count_or_selection_starts_over() {
        let text = serde_json::to_string(&ledger(61)).unwrap();
        let iso = "ab".repeat(32);
        let fresh = |start: Start| match start {
            Start::Fresh(Some(reason)) => reason,
            other => panic!("expected a fresh start, got {other:?}"),
        };
        assert!(
            fresh(plan(Some(&text), &"cd".repeat(32), &options(2, &[], false)).unwrap())
                .contains("another ISO")
        );
        assert!(
            fresh(plan(Some(&text), &iso, &options(4, &[], false)).unwrap()).contains("-smp 2")
        );
        assert!(
            fresh(plan(Some(&text), &iso, &options(2, &["thread-hostile"], false)).unwrap())
                .contains("selection")
        );
        assert!(
            fresh(plan(Some(&text), &iso, &options(2, &[], true)).unwrap()).contains("--fresh")
        );
    }

    #[test]
    fn a_bad_ledger_is_an_error_not_a_guess() {
        let iso = "ab".repeat(32);
        for text in [
            "{".to_string(),
            "{}".to_string(),
            serde_json::to_string(&Ledger {
                rounds_passed: 70,
                ..ledger(61)
            })
            .unwrap(),
            serde_json::to_string(&ledger(61))
                .unwrap()
                .replace("\"cpus\"", "\"extra\":1,\"cpus\""),
        ] {
            let error = plan(Some(&text), &iso, &options(2, &[], false)).unwrap_err();
            assert!(format!("{error:#}").contains("--fresh"), "{error:#}");
            // --fresh replaces it.
            assert!(matches!(
                plan(Some(&text), &iso, &options(2, &[], true)).unwrap(),
                Start::Fresh(_)
            ));
        }
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
