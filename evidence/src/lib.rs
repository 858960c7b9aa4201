//! Library half of the `capos` host CLI, so integration tests drive the same code.

pub mod build;
pub mod paths;
pub mod qemu;
pub mod tools;
