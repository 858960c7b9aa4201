//! Verbs of the `capos` binary that live beside it rather than in the
//! library: each file holds one verb's clap arguments and its printing, and
//! calls library functions that return values.
//!
//! Invariant: no library module parses arguments or prints; a long run
//! reports its progress through a callback (`&mut dyn FnMut(&Step)`) that
//! the verb here turns into lines.

pub mod archive_test;
pub mod boot_options;
pub mod build;
pub mod fuzz;
pub mod keygen;
pub mod manifest;
pub mod pack;
pub mod qemu;
pub mod run;
pub mod smokes;
pub mod soak;
