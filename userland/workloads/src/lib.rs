//! The proof workloads, one crate for every system: built `no_std` for the
//! capOS guest and linked into the Linux baseline program, so capOS, the
//! Linux guest and the host run exactly the same computation.
//!
//! Invariants a reader must know:
//! - No allocation and no system calls anywhere in this crate: a caller's
//!   timed section is pure computation over memory the caller provides.
//! - Known answers live here ([`DEFAULT_INTERVAL`], [`DEFAULT_TALLY`]) and
//!   host tests check them against an independent implementation.
//! - Result lines are formatted here ([`line`]), once, for every system.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod hash;
pub mod line;
pub mod primes;
pub mod thread_scale;
pub mod wire;

pub use primes::{Interval, SieveScratch, Tally};

/// The interval the smp-process-scale proof counts.
pub const DEFAULT_INTERVAL: Interval = Interval {
    low: 1_000_000_000,
    high: 1_200_000_000,
};

/// Primes in [`DEFAULT_INTERVAL`] and their sum (`work` is not part of the answer).
pub const DEFAULT_TALLY: Tally = Tally {
    count: 9_607_171,
    sum: 10_566_436_676_784_677,
    work: 0,
};

/// Cycle counter for timed sections: `lfence; rdtsc; lfence`, so the read
/// is not reordered around the work it brackets (`rdtscp` is an invalid
/// opcode under QEMU's default TCG CPU model). Inlined, so a sample does
/// not also time a call and a return.
#[allow(unsafe_code)]
#[inline(always)]
pub fn cycles() -> u64 {
    use core::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: LFENCE and RDTSC have no memory effects; SSE2 (LFENCE) is part
    // of x86_64, and RDTSC is allowed in user mode on capOS and Linux
    // (CR4.TSD clear).
    unsafe {
        _mm_lfence();
        let now = _rdtsc();
        _mm_lfence();
        now
    }
}
