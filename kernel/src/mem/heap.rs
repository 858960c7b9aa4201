//! The kernel heap: `linked_list_allocator` over contiguous frames in the physical window.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Kernel heap size.
pub const HEAP_BYTES: usize = 8 << 20;

/// Take `HEAP_BYTES` of contiguous frames and hand them to the allocator.
pub fn init() {
    let pages = HEAP_BYTES as u64 / super::PAGE_SIZE;
    let Some(start) = super::frames::allocate_contiguous_zeroed(pages, super::PAGE_SIZE, u64::MAX)
    else {
        super::fail(format_args!(
            "no {HEAP_BYTES} contiguous bytes for the kernel heap"
        ))
    };
    // SAFETY: the range was just allocated for the heap alone and is mapped
    // read-write in the physical window for the kernel's lifetime.
    unsafe {
        HEAP.lock()
            .init(super::physical_to_virtual(start) as *mut u8, HEAP_BYTES);
    }
}

/// Heap kept back for the kernel's own infallible allocations (`Arc` and
/// `Box` construction has no fallible form on stable Rust): an operation
/// that user space drives is admitted only while its worst case still
/// leaves this much free, so those allocations cannot fail.
const KERNEL_RESERVE_BYTES: usize = 1 << 20;

/// Admit an operation that may allocate up to `bytes` of heap, or refuse
/// it with `OutOfMemory` (an error completion, never a panic).
pub fn admit(bytes: usize) -> Result<(), capos_abi::Error> {
    let free = HEAP.lock().free();
    if free >= bytes.saturating_add(KERNEL_RESERVE_BYTES) {
        Ok(())
    } else {
        Err(capos_abi::Error::OutOfMemory)
    }
}

/// Heap bytes in use (diagnostics).
pub fn used_bytes() -> usize {
    HEAP.lock().used()
}
