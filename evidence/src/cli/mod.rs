//! The command-line verbs of `capos`, one file each: a verb's clap
//! arguments and its printing, over library calls that return values
//! (`bundle::oci`,
//! `proof::attestation`, `proof::policy`, `proof::archive_audit`, ...).
//!
//! Invariant: no library module parses arguments or prints; a long run
//! reports its progress through a callback (`&mut dyn FnMut(&Step)`) that
//! the verb here turns into lines.

pub mod accel;
pub mod archive;
pub mod archive_test;
pub mod attest;
pub mod boot_options;
pub mod build;
pub mod fuzz;
pub mod keygen;
pub mod limits;
pub mod log;
pub mod manifest;
pub mod pack;
pub mod pull;
pub mod push;
pub mod qemu;
pub mod report;
pub mod reproduce;
pub mod reproduction_options;
pub mod reproductions;
pub mod run;
pub mod smokes;
pub mod soak;
pub mod source;
pub mod verify;
