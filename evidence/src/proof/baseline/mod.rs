//! Reference systems measured beside capOS in the same run: the same
//! workload as a Linux guest under the same QEMU envelope, and natively on
//! the host, pinned.
//!
//! A contract marks a case with `os: linux` or `os: native` (default
//! `capos`) and names the baseline program (`baseline: {program: ...}`, a
//! mode of `userland/baseline`). Invariants a reader must know:
//! - Baseline cases are ordinary cases: same log layout, same result-line
//!   pattern, same metrics, statistics and gates. Their result line is the
//!   capOS line with `os=<os> ` right after the contract's prefix; nothing
//!   else differs, so one pattern judges all three systems.
//! - A Linux guest boots with the same QEMU binary, accelerator, CPU model,
//!   memory and `-smp` as the capOS cases; it passes when QEMU exits 0
//!   (init powered off) and no kernel panic is logged. A native run passes
//!   when the program exits 0; it is pinned to `min(cpus, host CPUs)` CPUs,
//!   recorded in its exit.json, and `case.cpus` means that count when its
//!   result line is judged.
//! - capOS result lines are accepted only from the process the contract
//!   names (`result_line.process`): the kernel frames every user line as
//!   `[u:<process>] `.
//! - `line_counts` check capOS serial output only.
//! - Ratios compare two speedups (capOS over Linux) measured in one run.
//!
//! Parts: [`rules`] (per-system judging; the contract side is
//! `contract::baseline`),
//! [`program`] (the static baseline program), [`linux_kernel`] (the guest
//! kernel), [`initramfs`] (the newc archive), [`runner`] (running a case),
//! [`comparison`] (the side-by-side figures of report and summary).

pub mod comparison;
pub mod initramfs;
pub mod linux_kernel;
pub mod program;
pub mod rules;
pub mod runner;
pub mod view;

/// The contract-side types of baselines live with the contract
/// (`contract::baseline`); they are re-exported here under their old paths.
pub use crate::proof::contract::{BaselineSpec, CaseCondition, Os, Ratio, RatioSpec, PROGRAMS};
