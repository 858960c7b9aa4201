//! The heap: a linked-list allocator over a static 256 KiB array in `.bss`,
//! so `alloc` (Vec, String, format!) works. Set up by `start` before `main`.
//!
//! All threads of the process share it. Its lock is a spin lock (atomic,
//! so correct across CPUs); it is held only for the allocator's own list
//! walk, never across a kernel call, so a waiter spins at most until the
//! holder runs again (at the latest after the holder's CPU's next tick).

#[cfg(not(test))]
mod allocator {
    use core::mem::MaybeUninit;
    use core::sync::atomic::{AtomicBool, Ordering};
    use linked_list_allocator::LockedHeap;

    /// Bytes of heap.
    pub const HEAP_SIZE: usize = 256 * 1024;

    #[global_allocator]
    static ALLOCATOR: LockedHeap = LockedHeap::empty();

    static mut HEAP_SPACE: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
    static INITIALISED: AtomicBool = AtomicBool::new(false);

    /// Hand the heap space to the allocator (idempotent).
    pub fn init() {
        if INITIALISED.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: the swap above lets exactly one call get here, and nothing
        // else names HEAP_SPACE, so this is the only reference ever made.
        let space: &'static mut [MaybeUninit<u8>] =
            unsafe { &mut *core::ptr::addr_of_mut!(HEAP_SPACE) };
        ALLOCATOR.lock().init_from_slice(space);
    }
}

#[cfg(not(test))]
pub(crate) use allocator::init;

/// Host tests use the system allocator.
#[cfg(test)]
pub(crate) fn init() {}
