//! The frozen record types of the bundle format: what a run writes into a
//! bundle and every later reader (verify, report, reproduce) reads back.
//!
//! Invariants a reader must know:
//! - Fields are never removed or renamed within a format version; a change
//!   of meaning is a new version (see `proof::summary::wording`).
//! - These types only describe records: they know no contract, no figure
//!   and no wording, so this folder depends on nothing else in the crate.
//!
//! Parts: [`accel`] (the accelerator tag recorded with every run), [`exit`]
//! (`exit.json`: how each run ended).

pub mod accel;
pub mod exit;

pub use accel::Accel;
pub use exit::{ExitRecord, EXIT_FILE};
