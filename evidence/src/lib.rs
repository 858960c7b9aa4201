//! Library half of the `capos` host CLI, so integration tests drive the same code.

pub mod baseline;
pub mod boot_options;
pub mod build;
pub mod bundle;
pub mod contract;
pub mod fuzz;
pub mod keys;
pub mod manifest;
pub mod pack;
pub mod paths;
pub mod provenance;
pub mod qemu;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod smokes;
pub mod soak;
pub mod stats;
pub mod summary;
pub mod tools;
pub mod userland;
pub mod verify;
