//! Library half of the `capos` host CLI, so integration tests drive the same code.

pub mod build;
pub mod keys;
pub mod manifest;
pub mod pack;
pub mod paths;
pub mod qemu;
pub mod report;
pub mod reproduce;
pub mod run;
pub mod summary;
pub mod tools;
pub mod verify;
