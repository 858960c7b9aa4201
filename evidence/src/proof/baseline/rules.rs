//! The per-system rules: how a run on each system is judged (what a
//! contract with baseline cases must satisfy is `contract::baseline`).
//!
//! Invariants a reader must know:
//! - Judging is pure: it reads only the recorded logs and exit record, so
//!   `capos verify` recomputes exactly what the run stored.
//! - Fail closed: a baseline line without its `os=` word, a capOS line from
//!   another process, a missing pinned-CPU record or a kernel panic make the
//!   run fail with a message naming the problem.

use super::Os;
use crate::proof::contract::CaseSpec;
use crate::proof::exit::ExitRecord;
use crate::proof::summary::wording::{Note, RunProblem};

/// A Linux console line that means the guest kernel died.
pub const KERNEL_PANIC: &str = "Kernel panic";

/// Why a run on `os` did not end well, or None.
pub fn exit_problem(os: Os, exit: &ExitRecord) -> Option<RunProblem<'static>> {
    match os {
        Os::Capos => crate::proof::exit::problem(exit),
        Os::Linux | Os::Native if exit.timed_out => Some(RunProblem::BaselineTimedOut),
        Os::Linux => match exit.exit_code {
            Some(0) => None,
            Some(status) => Some(RunProblem::LinuxStatus { status }),
            None => Some(RunProblem::Killed),
        },
        Os::Native => match exit.exit_code {
            Some(0) => None,
            Some(status) => Some(RunProblem::NativeStatus { status }),
            None => Some(RunProblem::NativeKilled),
        },
    }
}

/// Problems visible in the serial lines of a run on `os` (a Linux kernel panic).
pub fn serial_problems<'a>(os: Os, lines: impl Iterator<Item = &'a str>) -> Vec<RunProblem<'a>> {
    if os != Os::Linux {
        return Vec::new();
    }
    lines
        .enumerate()
        .filter(|(_, line)| line.contains(KERNEL_PANIC))
        .map(|(index, line)| RunProblem::LinuxPanic {
            line: index + 1,
            text: line,
        })
        .collect()
}

/// How a result line of a run on `os` starts: the contract prefix, behind
/// the capOS process's console frame or followed by the baseline's
/// `os=` word.
pub fn expected_start(os: Os, process: Option<&str>, prefix: &str) -> String {
    match (os, process) {
        (Os::Capos, Some(process)) => format!("[u:{process}] {prefix}"),
        (Os::Capos, None) => prefix.to_string(),
        (os, _) => format!("{}os={} ", with_space(prefix), os.name()),
    }
}

/// `prefix` ending in one space.
fn with_space(prefix: &str) -> String {
    format!("{} ", prefix.trim_end())
}

/// If `line` is a result line of a run on `os`, the text the contract's
/// pattern must match: the capOS line without its frame, or the baseline
/// line without its `os=` word.
pub fn result_text(os: Os, process: Option<&str>, prefix: &str, line: &str) -> Option<String> {
    let start = expected_start(os, process, prefix);
    let rest = line.strip_prefix(start.as_str())?;
    Some(match (os, process) {
        (Os::Capos, Some(_)) => format!("{prefix}{rest}"),
        (Os::Capos, None) => line.to_string(),
        _ => format!("{}{rest}", with_space(prefix)),
    })
}

/// Whether `line` starts like a baseline result line but names another
/// system (or none), which the judge reports instead of ignoring.
pub fn misattributed(os: Os, prefix: &str, line: &str) -> bool {
    !os.is_capos()
        && line.starts_with(prefix.trim_end())
        && result_text(os, None, prefix, line).is_none()
}

/// The case as its result line is judged: a native run's `case.cpus` is
/// the number of CPUs it was pinned to (exit.json), since a host may have
/// fewer CPUs than the case asks for. The problem when that record is missing.
pub fn judged_case(case: &CaseSpec, exit: &ExitRecord) -> (CaseSpec, Option<RunProblem<'static>>) {
    let mut judged = case.clone();
    if case.os != Os::Native {
        return (judged, None);
    }
    match exit.pinned_cpus {
        Some(cpus) if (1..=case.cpus).contains(&cpus) => {
            judged.cpus = cpus;
            (judged, None)
        }
        Some(cpus) => (
            judged,
            Some(RunProblem::PinnedOutOfRange {
                cpus,
                maximum: case.cpus,
            }),
        ),
        None => (judged, Some(RunProblem::PinnedMissing)),
    }
}

/// A caveat about one case for summary.json: vCPUs sharing host CPUs, or a
/// native run pinned to fewer CPUs than the case names.
pub fn case_note(case: &CaseSpec, host_cpus: u32) -> Option<Note<'_>> {
    if case.cpus <= host_cpus {
        return None;
    }
    Some(match case.os {
        Os::Capos => Note::Oversubscribed {
            case: &case.id,
            cpus: case.cpus,
            host_cpus,
        },
        Os::Linux => Note::OversubscribedLinux {
            case: &case.id,
            cpus: case.cpus,
            host_cpus,
        },
        Os::Native => Note::NativeSharesCpus {
            case: &case.id,
            workers: case.workers.unwrap_or(case.cpus),
            host_cpus,
        },
    })
}

/// Why a conditional case does not run here, or None when it runs:
/// its variable (read through `variable`) must be `1` and the host must
/// have enough logical CPUs.
pub fn skip_reason(
    case: &CaseSpec,
    host_cpus: u32,
    variable: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let condition = case.condition.as_ref()?;
    if variable(&condition.env).as_deref() != Some("1") {
        return Some(format!(
            "not requested (set {}=1 to include it)",
            condition.env
        ));
    }
    (host_cpus < condition.min_host_cpus).then(|| {
        format!(
            "{}=1, but the host has {host_cpus} logical CPUs and the case needs at least {}",
            condition.env, condition.min_host_cpus
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "[smp-process-scale] ";

    #[test]
    fn capos_lines_count_only_from_the_named_process() {
        let framed = "[u:smp-process-scale] [smp-process-scale] cpus=1";
        assert_eq!(
            result_text(Os::Capos, Some("smp-process-scale"), PREFIX, framed).as_deref(),
            Some("[smp-process-scale] cpus=1")
        );
        let other = "[u:init] [smp-process-scale] cpus=1";
        assert_eq!(
            result_text(Os::Capos, Some("smp-process-scale"), PREFIX, other),
            None
        );
        let bare = "[smp-process-scale] cpus=1";
        assert_eq!(
            result_text(Os::Capos, Some("smp-process-scale"), PREFIX, bare),
            None
        );
        assert_eq!(
            result_text(Os::Capos, None, PREFIX, bare).as_deref(),
            Some(bare)
        );
    }

    #[test]
    fn baseline_lines_need_their_own_os_word() {
        let linux = "[smp-process-scale] os=linux cpus=2 workers=2";
        assert_eq!(
            result_text(Os::Linux, None, PREFIX, linux).as_deref(),
            Some("[smp-process-scale] cpus=2 workers=2")
        );
        assert_eq!(result_text(Os::Native, None, PREFIX, linux), None);
        assert!(misattributed(Os::Native, PREFIX, linux));
        assert!(misattributed(
            Os::Linux,
            PREFIX,
            "[smp-process-scale] cpus=2"
        ));
        assert!(!misattributed(Os::Linux, PREFIX, "[    0.1] booting"));
    }

    #[test]
    fn linux_and_native_exits() {
        let exit = |code: Option<i32>, timed_out| ExitRecord {
            exit_code: code,
            timed_out,
            wall_ms: 1,
            pinned_cpus: None,
        };
        assert_eq!(exit_problem(Os::Linux, &exit(Some(0), false)), None);
        assert!(exit_problem(Os::Linux, &exit(Some(33), false)).is_some());
        assert!(exit_problem(Os::Linux, &exit(Some(0), true)).is_some());
        assert_eq!(exit_problem(Os::Native, &exit(Some(0), false)), None);
        assert!(exit_problem(Os::Native, &exit(None, false)).is_some());
        assert!(exit_problem(Os::Capos, &exit(Some(0), false)).is_some());
    }

    #[test]
    fn conditional_cases_need_their_variable_and_enough_host_cpus() {
        let case: CaseSpec = serde_yaml::from_str(
            "{id: cpus8, cpus: 8, timeout_secs: 1, condition: {env: CAPOS_X, min_host_cpus: 8}}",
        )
        .unwrap();
        let set = |value: &'static str| move |_: &str| Some(value.to_string());
        assert!(skip_reason(&case, 16, |_| None)
            .unwrap()
            .contains("CAPOS_X=1"));
        assert!(skip_reason(&case, 16, set("0")).is_some());
        assert!(skip_reason(&case, 2, set("1"))
            .unwrap()
            .contains("2 logical CPUs"));
        assert_eq!(skip_reason(&case, 8, set("1")), None);
        let plain: CaseSpec = serde_yaml::from_str("{id: a, cpus: 1, timeout_secs: 1}").unwrap();
        assert_eq!(skip_reason(&plain, 1, |_| None), None);
    }

    #[test]
    fn panics_are_found() {
        let lines = [
            "ok",
            "[    1.0] Kernel panic - not syncing: Attempted to kill init!",
        ];
        assert_eq!(serial_problems(Os::Linux, lines.into_iter()).len(), 1);
        assert!(serial_problems(Os::Capos, lines.into_iter()).is_empty());
    }
}
