//! Host noise during one run: how much CPU time other processes took, how
//! much the hypervisor stole, and the load, from `/proc` samples taken just
//! before the run's process starts and just after it exits (before it is
//! reaped, so its own CPU time is still readable).
//!
//! Invariants:
//! - The raw sample lines are what a bundle records; [`figures`] derives
//!   every number from them, so an auditor recomputes the same figures.
//! - All times are in clock ticks (`USER_HZ`), the unit `/proc/stat` and
//!   `/proc/<pid>/stat` share; only ratios leave this module.
//! - "Other processes" is the host's busy time minus the run's process
//!   (with its reaped children) and minus this harness; tick rounding can
//!   make it slightly negative, which counts as zero.
//! - A run is flagged, never dropped, when other processes kept more than
//!   [`OTHER_CPUS_LIMIT`] CPUs busy on average or steal exceeded
//!   [`STEAL_SHARE_LIMIT`] of the host's time (the defaults of [`Limits`]).
//!   The 1-minute load average is recorded but not judged: it lags a run
//!   of a few seconds and counts the run's own threads.

use serde::{Deserialize, Serialize};

/// Flag a run when other processes kept more than this many CPUs busy on average.
pub const OTHER_CPUS_LIMIT: f64 = 0.25;
/// Flag a run when more than this share of the host's CPU time was stolen.
pub const STEAL_SHARE_LIMIT: f64 = 0.05;

/// The limits a run is flagged against (recorded with the bundle, so a
/// later capos with other defaults recomputes the same flags).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Average CPUs other processes may keep busy.
    pub other_cpus: f64,
    /// Share of host CPU time that may be stolen.
    pub steal_share: f64,
}

impl Limits {
    /// [`OTHER_CPUS_LIMIT`] and [`STEAL_SHARE_LIMIT`].
    pub const DEFAULT: Limits = Limits {
        other_cpus: OTHER_CPUS_LIMIT,
        steal_share: STEAL_SHARE_LIMIT,
    };
}

/// Why a sample could not be taken or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// Reading `/proc` failed.
    #[error("reading {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// A recorded line is not in the kernel's format.
    #[error("{what}: {problem} in {line:?}")]
    Format {
        /// Which sample line.
        what: &'static str,
        /// What is wrong.
        problem: String,
        /// The line (shortened).
        line: String,
    },
    /// The two samples do not fit together.
    #[error("{0}")]
    Inconsistent(String),
}

/// One snapshot of the host, as raw lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcSample {
    /// The `cpu` and `cpuN` lines of `/proc/stat`.
    pub stat: Vec<String>,
    /// `/proc/loadavg`.
    pub loadavg: String,
    /// `/proc/<pid>/stat` of the run's process; absent before it started.
    pub process: Option<String>,
    /// `/proc/self/stat` of this harness.
    pub harness: String,
}

fn read(path: &str) -> Result<String, NoiseError> {
    std::fs::read_to_string(path).map_err(|cause| NoiseError::Read {
        path: path.to_string(),
        cause: cause.to_string(),
    })
}

impl ProcSample {
    /// Sample the live host; `pid` is the run's process once it exists.
    pub fn take(pid: Option<u32>) -> Result<ProcSample, NoiseError> {
        let stat = read("/proc/stat")?
            .lines()
            .filter(|line| line.starts_with("cpu"))
            .map(str::to_string)
            .collect();
        let process = match pid {
            Some(pid) => Some(read(&format!("/proc/{pid}/stat"))?.trim_end().to_string()),
            None => None,
        };
        Ok(ProcSample {
            stat,
            loadavg: read("/proc/loadavg")?.trim_end().to_string(),
            process,
            harness: read("/proc/self/stat")?.trim_end().to_string(),
        })
    }
}

/// The start and end samples of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Samples {
    /// Just before the process started.
    pub start: ProcSample,
    /// Just after it exited (or was about to be killed), before it was reaped.
    pub end: ProcSample,
}

/// What the samples say about the run's host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    /// Logical CPUs `/proc/stat` lists.
    pub host_cpus: u32,
    /// Host CPU time that passed, summed over CPUs (ticks).
    pub total_ticks: u64,
    /// Of it, busy (not idle, not iowait, not stolen).
    pub busy_ticks: u64,
    /// Of it, stolen by the hypervisor.
    pub steal_ticks: u64,
    /// CPU time of the run's process and its reaped children.
    pub process_ticks: u64,
    /// CPU time of this harness.
    pub harness_ticks: u64,
    /// Busy time of everything else.
    pub other_ticks: u64,
    /// Average number of CPUs other processes kept busy (3 decimals).
    pub other_cpus: f64,
    /// Share of the host's time stolen (3 decimals).
    pub steal_share: f64,
    /// 1-minute load average at the start and at the end.
    pub load_start: f64,
    /// 1-minute load average at the end.
    pub load_end: f64,
    /// Why the run is flagged noisy; empty when it is not.
    pub flags: Vec<String>,
}

fn format_error(what: &'static str, problem: impl Into<String>, line: &str) -> NoiseError {
    NoiseError::Format {
        what,
        problem: problem.into(),
        line: line.chars().take(120).collect(),
    }
}

/// The eight time fields of a `cpu` line that partition time: user, nice,
/// system, idle, iowait, irq, softirq, steal (guest time is inside user).
fn cpu_fields(line: &str) -> Result<(String, [u64; 8]), NoiseError> {
    let mut words = line.split_ascii_whitespace();
    let name = words.next().unwrap_or("").to_string();
    if !name.starts_with("cpu") {
        return Err(format_error("/proc/stat", "not a cpu line", line));
    }
    let mut fields = [0u64; 8];
    for field in &mut fields {
        let word = words
            .next()
            .ok_or_else(|| format_error("/proc/stat", "fewer than 8 time fields", line))?;
        *field = word
            .parse()
            .map_err(|_| format_error("/proc/stat", format!("{word:?} is not a number"), line))?;
    }
    Ok((name, fields))
}

/// utime+stime (and, when `children`, cutime+cstime) of a `/proc/<pid>/stat` line.
fn process_ticks(line: &str, what: &'static str, children: bool) -> Result<u64, NoiseError> {
    // The command name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = line
        .rfind(')')
        .map(|end| &line[end + 1..])
        .ok_or_else(|| format_error(what, "no ')' after the command name", line))?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state is field 3, utime field 14 ... cstime field 17.
    let field = |number: usize| -> Result<u64, NoiseError> {
        let word = fields
            .get(number - 3)
            .ok_or_else(|| format_error(what, format!("no field {number}"), line))?;
        word.parse().map_err(|_| {
            format_error(
                what,
                format!("field {number} {word:?} is not a number"),
                line,
            )
        })
    };
    let own = field(14)? + field(15)?;
    Ok(if children {
        own + field(16)? + field(17)?
    } else {
        own
    })
}

fn load_of(line: &str) -> Result<f64, NoiseError> {
    let word = line.split_ascii_whitespace().next().unwrap_or("");
    word.parse::<f64>()
        .ok()
        .filter(|load| load.is_finite() && *load >= 0.0)
        .ok_or_else(|| format_error("/proc/loadavg", "no load average first", line))
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The aggregate `cpu` line's fields and the number of `cpuN` lines.
fn stat_of(lines: &[String]) -> Result<([u64; 8], u32), NoiseError> {
    let mut aggregate = None;
    let mut cpus = 0u32;
    for line in lines {
        let (name, fields) = cpu_fields(line)?;
        if name == "cpu" {
            if aggregate.replace(fields).is_some() {
                return Err(format_error("/proc/stat", "a second aggregate line", line));
            }
        } else {
            cpus += 1;
        }
    }
    let aggregate = aggregate.ok_or_else(|| {
        NoiseError::Inconsistent("/proc/stat sample without its aggregate cpu line".into())
    })?;
    if cpus == 0 {
        return Err(NoiseError::Inconsistent(
            "/proc/stat sample without per-CPU lines".into(),
        ));
    }
    Ok((aggregate, cpus))
}

/// Compute the figures of a run from its samples.
pub fn figures(samples: &Samples, limits: Limits) -> Result<Figures, NoiseError> {
    let (start, start_cpus) = stat_of(&samples.start.stat)?;
    let (end, host_cpus) = stat_of(&samples.end.stat)?;
    if start_cpus != host_cpus {
        return Err(NoiseError::Inconsistent(format!(
            "/proc/stat lists {start_cpus} CPUs at the start but {host_cpus} at the end (a CPU went on- or offline)"
        )));
    }
    let mut delta = [0u64; 8];
    for (index, slot) in delta.iter_mut().enumerate() {
        *slot = end[index].checked_sub(start[index]).ok_or_else(|| {
            NoiseError::Inconsistent(format!(
                "/proc/stat time field {} runs backwards ({} then {})",
                index + 1,
                start[index],
                end[index]
            ))
        })?;
    }
    let total_ticks: u64 = delta.iter().sum();
    let idle_ticks = delta[3] + delta[4];
    let steal_ticks = delta[7];
    let busy_ticks = total_ticks - idle_ticks - steal_ticks;
    let process_end =
        samples.end.process.as_deref().ok_or_else(|| {
            NoiseError::Inconsistent("the end sample lacks the run's process".into())
        })?;
    let process_start = match samples.start.process.as_deref() {
        Some(line) => process_ticks(line, "process stat", true)?,
        None => 0,
    };
    let process_ticks_total = process_ticks(process_end, "process stat", true)?
        .checked_sub(process_start)
        .ok_or_else(|| NoiseError::Inconsistent("the process's CPU time runs backwards".into()))?;
    let harness_ticks = process_ticks(&samples.end.harness, "harness stat", false)?
        .checked_sub(process_ticks(
            &samples.start.harness,
            "harness stat",
            false,
        )?)
        .ok_or_else(|| NoiseError::Inconsistent("the harness's CPU time runs backwards".into()))?;
    let other_ticks = busy_ticks.saturating_sub(process_ticks_total + harness_ticks);
    let (other_cpus, steal_share) = if total_ticks == 0 {
        (0.0, 0.0)
    } else {
        let total = total_ticks as f64;
        (
            round3(other_ticks as f64 * f64::from(host_cpus) / total),
            round3(steal_ticks as f64 / total),
        )
    };
    let mut flags = Vec::new();
    if total_ticks == 0 {
        flags.push("shorter than one clock tick: noise not measurable".to_string());
    }
    if other_cpus > limits.other_cpus {
        flags.push(format!(
            "other processes kept {other_cpus} CPUs busy (limit {})",
            limits.other_cpus
        ));
    }
    if steal_share > limits.steal_share {
        flags.push(format!(
            "{:.1}% of host CPU time stolen (limit {:.1}%)",
            steal_share * 100.0,
            limits.steal_share * 100.0
        ));
    }
    Ok(Figures {
        host_cpus,
        total_ticks,
        busy_ticks,
        steal_ticks,
        process_ticks: process_ticks_total,
        harness_ticks,
        other_ticks,
        other_cpus,
        steal_share,
        load_start: load_of(&samples.start.loadavg)?,
        load_end: load_of(&samples.end.loadavg)?,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes of real lines from this project's machine (values edited).
    fn sample(stat: [&str; 3], loadavg: &str, process: Option<&str>, harness: &str) -> ProcSample {
        ProcSample {
            stat: stat.iter().map(|line| line.to_string()).collect(),
            loadavg: loadavg.into(),
            process: process.map(str::to_string),
            harness: harness.into(),
        }
    }

    fn stat_line(pid: u32, name: &str, utime: u64, stime: u64, cutime: u64) -> String {
        format!("{pid} ({name}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} {cutime} 0 20 0 5 0 100 1000 50 18446744073709551615")
    }

    fn quiet() -> Samples {
        Samples {
            start: sample(
                [
                    "cpu  1000 0 500 10000 10 0 5 0 0 0",
                    "cpu0 500 0 250 5000 5 0 3 0 0 0",
                    "cpu1 500 0 250 5000 5 0 2 0 0 0",
                ],
                "0.50 0.40 0.30 1/200 999",
                None,
                &stat_line(10, "capos", 20, 10, 0),
            ),
            end: sample(
                [
                    // 400 ticks pass: 190 user + 10 system busy, 200 idle.
                    "cpu  1190 0 510 10200 10 0 5 0 0 0",
                    "cpu0 690 0 255 5005 5 0 3 0 0 0",
                    "cpu1 500 0 255 5195 5 0 2 0 0 0",
                ],
                "1.10 0.50 0.30 2/201 1003",
                Some(&stat_line(1003, "qemu-system-x86", 180, 8, 0)),
                &stat_line(10, "capos", 22, 11, 0),
            ),
        }
    }

    #[test]
    fn a_quiet_run_is_not_flagged() {
        let figures = figures(&quiet(), Limits::DEFAULT).unwrap();
        assert_eq!(figures.host_cpus, 2);
        assert_eq!(figures.total_ticks, 400);
        assert_eq!(figures.busy_ticks, 200);
        assert_eq!(figures.process_ticks, 188);
        assert_eq!(figures.harness_ticks, 3);
        assert_eq!(figures.other_ticks, 9);
        // 9 ticks of 200 per CPU: 0.045 CPUs.
        assert_eq!(figures.other_cpus, 0.045);
        assert_eq!(figures.steal_share, 0.0);
        assert_eq!((figures.load_start, figures.load_end), (0.5, 1.1));
        assert!(figures.flags.is_empty());
    }

    #[test]
    fn busy_neighbours_and_steal_are_flagged() {
        let mut samples = quiet();
        // Another process took 150 more ticks of the idle time, 30 were stolen.
        samples.end.stat[0] = "cpu  1340 0 510 10020 10 0 5 30 0 0".into();
        let figures = figures(&samples, Limits::DEFAULT).unwrap();
        assert_eq!(figures.total_ticks, 400);
        assert_eq!(figures.other_ticks, 159);
        assert_eq!(figures.other_cpus, 0.795);
        assert_eq!(figures.steal_share, 0.075);
        assert_eq!(figures.flags.len(), 2, "{:?}", figures.flags);
        assert!(figures.flags[0].contains("0.795 CPUs"));
        assert!(figures.flags[1].contains("7.5%"));
    }

    #[test]
    fn odd_command_names_and_children_are_read() {
        let line = stat_line(7, "a b) (c", 5, 6, 7);
        assert_eq!(process_ticks(&line, "x", true).unwrap(), 18);
        assert_eq!(process_ticks(&line, "x", false).unwrap(), 11);
        assert!(process_ticks("7 (x) S 1", "x", false).is_err());
    }

    #[test]
    fn inconsistent_or_malformed_samples_are_errors() {
        let mut backwards = quiet();
        backwards.end.stat[0] = "cpu  900 0 510 10200 10 0 5 0 0 0".into();
        assert!(matches!(
            figures(&backwards, Limits::DEFAULT),
            Err(NoiseError::Inconsistent(_))
        ));
        let mut lost_cpu = quiet();
        lost_cpu.end.stat.pop();
        assert!(figures(&lost_cpu, Limits::DEFAULT).is_err());
        let mut no_process = quiet();
        no_process.end.process = None;
        assert!(figures(&no_process, Limits::DEFAULT).is_err());
        let mut garbage = quiet();
        garbage.end.loadavg = "x".into();
        assert!(matches!(
            figures(&garbage, Limits::DEFAULT),
            Err(NoiseError::Format { .. })
        ));
        let mut short = quiet();
        short.start.stat[1] = "cpu0 1 2 3".into();
        assert!(figures(&short, Limits::DEFAULT).is_err());
    }

    #[test]
    fn a_live_sample_parses() {
        if std::path::Path::new("/proc/stat").exists() {
            let pid = std::process::id();
            let start = ProcSample::take(None).unwrap();
            let end = ProcSample::take(Some(pid)).unwrap();
            let figures = figures(&Samples { start, end }, Limits::DEFAULT).unwrap();
            assert!(figures.host_cpus >= 1);
        }
    }
}
