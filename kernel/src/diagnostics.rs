//! Kernel resource counters for the `diagnostics` capability and the end-of-run line.
//!
//! The counters are read one by one without a global lock, so they are a
//! consistent snapshot only when nothing else runs (e.g. after a test loop
//! has waited for every child).

use capos_abi::KernelCounters;

/// The counters now.
pub fn counters() -> KernelCounters {
    KernelCounters {
        free_frames: crate::mem::frames::free_frames(),
        heap_used_bytes: crate::mem::heap::used_bytes() as u64,
        live_threads: crate::thread::live_threads(),
        live_processes: crate::process::live_processes(),
        timer_waiters: crate::timer::registered(),
        endpoint_waiters: crate::objects::endpoint_waiters(),
        exit_waiters: crate::process::exit_waiters(),
        cached_stacks: crate::sched::cached_stacks(),
        parked_threads: crate::park::parked(),
    }
}

/// The counters as the bytes the ABI defines (little-endian `u64`s in field order).
pub fn to_bytes(counters: &KernelCounters) -> [u8; core::mem::size_of::<KernelCounters>()] {
    let fields = [
        counters.free_frames,
        counters.heap_used_bytes,
        counters.live_threads,
        counters.live_processes,
        counters.timer_waiters,
        counters.endpoint_waiters,
        counters.exit_waiters,
        counters.cached_stacks,
        counters.parked_threads,
    ];
    let mut bytes = [0u8; core::mem::size_of::<KernelCounters>()];
    for (chunk, field) in bytes.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&field.to_le_bytes());
    }
    bytes
}
