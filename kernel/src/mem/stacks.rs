//! Kernel stacks in their own region, each with an unmapped guard page below,
//! so an overflow faults instead of corrupting a neighbour.

use super::{frames, paging, PAGE_SIZE, STACK_REGION};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;
use x86_64::structures::paging::PageTableFlags as Flags;

/// Next free virtual address in the stack region.
static NEXT: AtomicU64 = AtomicU64::new(STACK_REGION);

/// Why a stack could not be made.
#[derive(Debug)]
pub enum StackError {
    OutOfMemory,
    MapFailed,
}

/// Bytes at the start of the stack region whose page tables exist from boot
/// ([`prepare_tables`]): 3,640 thread stacks (8 pages and a guard), more
/// than the kernel's thread limit with every stack cached and retired. New
/// stack ranges there take no frames but their pages, so the frames the
/// kernel holds come back exactly when its threads and cached stacks do.
const PREPARED_BYTES: u64 = 128 << 20;

/// Make the page tables of the first [`PREPARED_BYTES`] of the stack
/// region (at boot, before other CPUs run): map a page in each 2 MiB and
/// unmap it again, which leaves its tables in place.
pub fn prepare_tables() {
    let Some(frame) = frames::allocate_zeroed() else {
        return;
    };
    let mut chunk = STACK_REGION;
    while chunk < STACK_REGION + PREPARED_BYTES {
        if paging::map_page(chunk, frame, Flags::PRESENT | Flags::NO_EXECUTE).is_ok() {
            paging::unmap_page(chunk);
        }
        chunk += 2 << 20;
    }
    frames::free(frame);
}

/// A kernel stack of `pages` pages; returns its top (16-byte aligned). On
/// failure every frame taken so far is unmapped and freed again (the
/// virtual range is not reused; it is small and the stack cache bounds how
/// often this runs).
pub fn allocate(pages: u64) -> Result<u64, StackError> {
    let guard = NEXT.fetch_add((pages + 1) * PAGE_SIZE, Ordering::Relaxed);
    let top = guard + PAGE_SIZE + pages * PAGE_SIZE;
    map(top, pages)?;
    Ok(top)
}

/// Map `pages` fresh zeroed frames below `top`: a range [`allocate`] made
/// and [`unmap`] emptied (every CPU shot down since). On failure nothing of
/// it stays mapped.
pub fn map(top: u64, pages: u64) -> Result<(), StackError> {
    let bottom = top - pages * PAGE_SIZE;
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
    Ok(())
}

/// The most pages [`unmap`] takes at once.
pub const UNMAP_PAGES_MAX: usize = 8;

/// Unmap the `pages` (at most [`UNMAP_PAGES_MAX`]) pages below `top` and
/// return their frames: the caller frees them once every CPU that may
/// cache the range has been shot down (kernel pages are global), and only
/// then may the range be mapped again.
pub fn unmap(top: u64, pages: u64) -> ([u64; UNMAP_PAGES_MAX], usize) {
    let mut frames = [0; UNMAP_PAGES_MAX];
    let mut count = 0;
    let bottom = top - pages * PAGE_SIZE;
    for index in 0..pages.min(UNMAP_PAGES_MAX as u64) {
        if let Some(frame) = paging::unmap_page(bottom + index * PAGE_SIZE) {
            frames[count] = frame;
            count += 1;
        }
    }
    (frames, count)
}

/// Mapped stacks a [`StackCache`] keeps for reuse.
const CACHED_MAX: usize = capos_abi::limits::KERNEL_STACKS_CACHED;
/// Unmapped ranges a [`StackCache`] keeps for reuse; a range beyond them is
/// abandoned (virtual space only: its frames are freed).
const SPARE_MAX: usize = 4096;

/// Kernel stacks of `PAGES` pages for threads, kept for reuse but bounded,
/// so threads that have ended pin no memory beyond [`CACHED_MAX`] stacks:
/// - a stack given back goes to the cache while it has room, else it is
///   retired;
/// - the scheduler loop, holding no lock, unmaps each retired stack, shoots
///   down every CPU (kernel pages are global), frees its frames and keeps
///   its virtual range as spare;
/// - a stack is taken from the cache, else a spare range gets fresh frames,
///   else a new range is made ([`allocate`]).
///
/// No heap but the retired list, which is emptied (and its buffer freed)
/// by every reap.
pub struct StackCache<const PAGES: u64> {
    state: Mutex<CacheState>,
    retired_count: AtomicUsize,
}

/// Retired stacks unmapped before one shootdown, in [`StackCache::reap`].
const REAP_BATCH: usize = 8;

struct CacheState {
    mapped: [u64; CACHED_MAX],
    mapped_len: usize,
    spare: [u64; SPARE_MAX],
    spare_len: usize,
    retired: Vec<u64>,
}

impl<const PAGES: u64> StackCache<PAGES> {
    pub const fn new() -> Self {
        // `unmap` returns at most UNMAP_PAGES_MAX frames: a larger stack
        // would leak its other pages.
        assert!(PAGES as usize <= UNMAP_PAGES_MAX);
        Self {
            state: Mutex::new(CacheState {
                mapped: [0; CACHED_MAX],
                mapped_len: 0,
                spare: [0; SPARE_MAX],
                spare_len: 0,
                retired: Vec::new(),
            }),
            retired_count: AtomicUsize::new(0),
        }
    }

    /// A stack's top: cached, remapped or new. None when out of memory.
    pub fn take(&self) -> Option<u64> {
        let spare = {
            let mut state = self.state.lock();
            if state.mapped_len > 0 {
                state.mapped_len -= 1;
                return Some(state.mapped[state.mapped_len]);
            }
            if state.spare_len > 0 {
                state.spare_len -= 1;
                Some(state.spare[state.spare_len])
            } else {
                None
            }
        };
        match spare {
            Some(top) => match map(top, PAGES) {
                Ok(()) => Some(top),
                Err(_) => {
                    self.keep_spare(top);
                    None
                }
            },
            None => allocate(PAGES).ok(),
        }
    }

    /// A stack no thread uses any more: cached, or retired for the next
    /// [`Self::reap`]. When even the retired list cannot grow (no heap) the
    /// stack stays mapped and is lost, as it was before the cache had a bound.
    pub fn give_back(&self, top: u64) {
        let mut state = self.state.lock();
        if state.mapped_len < CACHED_MAX {
            let index = state.mapped_len;
            state.mapped[index] = top;
            state.mapped_len += 1;
        } else if state.retired.try_reserve(1).is_ok() {
            state.retired.push(top);
            self.retired_count.fetch_add(1, Ordering::Release);
        }
    }

    /// Unmap the retired stacks and free their frames (see the type). Call
    /// with no lock held: it waits for every CPU to flush.
    pub fn reap(&self) {
        if self.retired_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let retired = {
            let mut state = self.state.lock();
            self.retired_count.store(0, Ordering::Release);
            core::mem::take(&mut state.retired)
        };
        // Unmap a batch, shoot down every CPU once, then free its frames.
        for batch in retired.chunks(REAP_BATCH) {
            let mut unmapped = [([0; UNMAP_PAGES_MAX], 0); REAP_BATCH];
            for (slot, &top) in unmapped.iter_mut().zip(batch) {
                *slot = unmap(top, PAGES);
            }
            crate::platform::tlb::shootdown(u64::MAX);
            for ((frames, count), &top) in unmapped.iter().zip(batch) {
                for &frame in &frames[..*count] {
                    frames::free(frame);
                }
                self.keep_spare(top);
            }
        }
    }

    fn keep_spare(&self, top: u64) {
        let mut state = self.state.lock();
        if state.spare_len < SPARE_MAX {
            let index = state.spare_len;
            state.spare[index] = top;
            state.spare_len += 1;
        }
    }

    /// Mapped stacks in the cache.
    pub fn cached(&self) -> u64 {
        self.state.lock().mapped_len as u64
    }
}
