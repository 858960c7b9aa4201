//! `exit.json`: how each run ended (QEMU's status, a timeout, the CPUs a
//! native baseline was pinned to), as the runner records it and the judge
//! reads it back (`proof::exit` says what an exit means).
//!
//! Part of the bundle format: fields are never removed or renamed within a
//! format version.

use serde::{Deserialize, Serialize};

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
