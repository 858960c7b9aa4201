//! Guest measurement for the thread-scale benchmark, compiled in only with
//! the kernel's cargo feature `measure` (`docs/scheduler.md`, *Guest
//! measurement*).
//!
//! The rest of the kernel calls the same functions either way: with the
//! feature they are `active`'s per-CPU counters, user-PC sampler and
//! phase marks; without it they are `inert`'s empty inline bodies, the
//! run-queue lock is the plain spin lock, and `MeasureMark` is answered
//! `InvalidOpcode`. So no scheduler path carries a `cfg`, and a normal
//! kernel carries no measurement code at all.
//!
//! Invariants:
//! - A leaf: this module calls only the per-CPU index, the time-stamp
//!   counter and the console, so the architecture layer may call it too
//!   (as it calls `kprintln!`).
//! - Counting happens only between mark 0 and mark 3; outside that window
//!   every hook returns after one read of a flag that is written only by
//!   the marks.
//! - Each CPU writes only its own counters and samples (with interrupts
//!   off, as all kernel code runs), on its own cache lines; only a mark
//!   reads all of them.
//!
//! The counters, phases and line formats are `capos_kcore::measure`'s.

#[cfg(feature = "measure")]
mod active;
#[cfg(feature = "measure")]
pub use active::*;

#[cfg(not(feature = "measure"))]
mod inert;
#[cfg(not(feature = "measure"))]
pub use inert::*;

pub use capos_kcore::measure::Counter;
