//! Pure kernel logic for capOS, kept free of hardware access so it can be tested on the host.
//!
//! Invariants:
//! - No allocation and no `unsafe`: every function works on caller-provided slices.
//! - No panics on bad input: firmware tables, memory maps and boot options are untrusted, so
//!   malformed input is reported through a typed error enum instead.
//! - The crate is `no_std` outside of tests; tests run on the host with `std` and `proptest`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acpi;
pub mod boot_archive;
pub mod captable;
pub mod cmdline;
pub mod elf;
pub mod frame;
pub mod fwcfg;
pub mod measure;
pub mod memmap;
pub mod ring;
pub mod sched;
pub mod timer_queue;
pub mod usermem;

mod bytes;
