//! Kernel stacks in their own region, each with an unmapped guard page below,
//! so an overflow faults instead of corrupting a neighbour.

use super::{frames, paging, PAGE_SIZE, STACK_REGION};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::structures::paging::PageTableFlags as Flags;

/// Next free virtual address in the stack region.
static NEXT: AtomicU64 = AtomicU64::new(STACK_REGION);

/// Why a stack could not be made.
#[derive(Debug)]
pub enum StackError {
    OutOfMemory,
    MapFailed,
}

/// A kernel stack of `pages` pages; returns its top (16-byte aligned). On
/// failure every frame taken so far is unmapped and freed again (the
/// virtual range is not reused; it is small and the stack cache bounds how
/// often this runs).
pub fn allocate(pages: u64) -> Result<u64, StackError> {
    let guard = NEXT.fetch_add((pages + 1) * PAGE_SIZE, Ordering::Relaxed);
    let bottom = guard + PAGE_SIZE;
    for index in 0..pages {
        let mapped = frames::allocate_zeroed()
            .ok_or(StackError::OutOfMemory)
            .and_then(|frame| {
                paging::map_page(
                    bottom + index * PAGE_SIZE,
                    frame,
                    Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE,
                )
                .map_err(|_| {
                    frames::free(frame);
                    StackError::MapFailed
                })
            });
        if let Err(error) = mapped {
            for done in 0..index {
                if let Some(frame) = paging::unmap_page(bottom + done * PAGE_SIZE) {
                    frames::free(frame);
                }
            }
            return Err(error);
        }
    }
    Ok(bottom + pages * PAGE_SIZE)
}
