//! `exit.json`: how each run ended (QEMU's status, a timeout, the CPUs a
//! native baseline was pinned to), as the runner records it and the judge
//! reads it back.
//!
//! Part of the bundle format: fields are never removed or renamed within a
//! format version.

use serde::{Deserialize, Serialize};

use crate::guest::qemu;
use crate::proof::summary::wording::RunProblem;

/// The file, in each run's log directory.
pub const EXIT_FILE: &str = "exit.json";

/// How QEMU ended, recorded per run in [`EXIT_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitRecord {
    /// QEMU's exit status; None when it was killed (timeout or signal).
    pub exit_code: Option<i32>,
    /// Whether the harness killed QEMU at the case's timeout.
    pub timed_out: bool,
    /// Wall time of the run in milliseconds (recorded, not used in figures).
    pub wall_ms: u64,
    /// Native baseline runs: how many CPUs the program was pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_cpus: Option<u32>,
}

impl ExitRecord {
    /// Why this exit is not a pass, or None when the guest reported success.
    /// The codes follow the runner's classification (`qemu::judge_exit`).
    #[must_use]
    pub fn problem(&self) -> Option<RunProblem<'static>> {
        if self.timed_out {
            return Some(RunProblem::TimedOut);
        }
        match self.exit_code {
            Some(code) if code == qemu::exit_status_for(qemu::GUEST_SUCCESS) => None,
            Some(code) if code == qemu::exit_status_for(qemu::GUEST_FAILURE) => {
                Some(RunProblem::GuestFailure { status: code })
            }
            Some(0) => Some(RunProblem::NoGuestVerdict),
            Some(code) => Some(RunProblem::QemuStatus { status: code }),
            None => Some(RunProblem::Killed),
        }
    }
}
