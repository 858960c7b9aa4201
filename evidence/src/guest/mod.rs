//! The guest side: build the kernel, user programs, boot manifests and ISO, and boot them under QEMU.
//!
//! Everything here needs a capOS checkout (the workspace root) except the
//! pure parts: ELF checks, manifest validation and QEMU argument building.

pub mod archive_test;
pub mod boot_archive;
pub mod boot_options;
pub mod build;
pub mod cargo;
pub mod fuzz;
pub mod manifest;
pub mod qemu;
pub mod smokes;
pub mod soak;
pub mod userland;
