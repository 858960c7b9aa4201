//! Library half of the `capos` host CLI, so integration tests drive the same code.
//! It takes typed inputs and returns values, reports or typed errors; it
//! never parses arguments or prints. Long runs report progress through a
//! callback the caller passes in (`&mut dyn FnMut(&Step)`); the binary's
//! `cli/` folder owns argument parsing and the terminal.
//!
//! Three layers, each a folder, each depending only on the ones listed before it:
//! - [`guest`]: building the kernel, the user programs, the boot manifests and
//!   the ISO, and booting it under QEMU (also the smoke suite, fuzzing and soaking);
//! - [`bundle`]: the evidence bundle as a format — its manifest of digests,
//!   signed provenance, keys, packed archives and offline verification of
//!   integrity and signature; it knows nothing about contracts;
//! - [`proof`]: proof contracts, runs and baselines, statistics and summaries,
//!   reports and reproduction; it uses the two layers above.
//!
//! [`cli`] holds the command-line arguments and printing of every verb, on top of all three.
//!
//! [`paths`], [`tools`], [`digest`], [`git`], [`time`], [`terminal`] and [`tool`] are leaves every
//! layer may use; so is [`host`] (the machine's CPU topology, vCPU pinning
//! and `/proc` noise samples).

pub mod bundle;
pub mod cli;
pub mod digest;
pub mod git;
pub mod guest;
pub mod host;
pub mod paths;
pub mod proof;
pub mod terminal;
pub mod time;
pub mod tool;
pub mod tools;
