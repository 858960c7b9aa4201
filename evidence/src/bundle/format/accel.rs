//! The accelerator tag (`kvm` or `tcg`) that `inputs.json` and
//! `summary.json` record for a run and that reports show.
//!
//! Part of the bundle format: the lowercase spellings never change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which accelerator QEMU runs the guest with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// The kernel's virtual machine monitor.
    Kvm,
    /// QEMU's own translator (multi-threaded).
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}
