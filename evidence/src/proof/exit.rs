//! What a recorded exit means: the problem, if any, that an `exit.json`
//! ([`ExitRecord`], a frozen type of `bundle::format`) shows for a capOS run.

pub use crate::bundle::format::exit::{ExitRecord, EXIT_FILE};

use crate::guest::qemu;
use crate::proof::summary::wording::RunProblem;

/// Why `record` is not a pass, or None when the guest reported success.
/// The codes follow the runner's classification (`qemu::judge_exit`).
#[must_use]
pub fn problem(record: &ExitRecord) -> Option<RunProblem<'static>> {
    if record.timed_out {
        return Some(RunProblem::TimedOut);
    }
    match record.exit_code {
        Some(code) if code == qemu::exit_status_for(qemu::GUEST_SUCCESS) => None,
        Some(code) if code == qemu::exit_status_for(qemu::GUEST_FAILURE) => {
            Some(RunProblem::GuestFailure { status: code })
        }
        Some(0) => Some(RunProblem::NoGuestVerdict),
        Some(code) => Some(RunProblem::QemuStatus { status: code }),
        None => Some(RunProblem::Killed),
    }
}
