//! Physical memory, kernel page tables, kernel heap and guarded kernel stacks.
//!
//! Layout of the kernel half of every address space:
//! - `PHYSICAL_WINDOW + p` maps physical RAM `p` (RW, NX, 2 MiB pages);
//! - `MMIO_WINDOW + p` maps device registers uncached (RW, NX, 4 KiB);
//! - `STACK_REGION` holds kernel stacks, each with an unmapped guard page below;
//! - `KERNEL_BASE + p` maps the kernel image with per-section permissions.

pub mod address_space;
pub mod frames;
pub mod heap;
pub mod paging;
pub mod stacks;

use crate::kprintln;
use multiboot2::BootInformation;

/// Virtual base of the window onto all physical RAM.
pub const PHYSICAL_WINDOW: u64 = 0xFFFF_8000_0000_0000;
/// Virtual base of the uncached device-register window.
pub const MMIO_WINDOW: u64 = 0xFFFF_C000_0000_0000;
/// Virtual base of guarded kernel stacks.
pub const STACK_REGION: u64 = 0xFFFF_FF00_0000_0000;
/// Virtual base of the kernel image (physical + this).
pub const KERNEL_BASE: u64 = 0xFFFF_FFFF_8000_0000;
/// Size of a page.
pub const PAGE_SIZE: u64 = 4096;

/// Memory set-up cannot continue: report why and end the run.
pub(crate) fn fail(message: core::fmt::Arguments) -> ! {
    kprintln!("[mem] error: {message}");
    crate::platform::exit::failure()
}

/// The virtual address at which physical `address` is visible.
pub fn physical_to_virtual(address: u64) -> u64 {
    PHYSICAL_WINDOW + address
}

/// Frame allocator, kernel page tables (switched to), heap.
pub fn init(boot_info: &BootInformation) {
    let layout = frames::init(boot_info);
    paging::init(&layout);
    stacks::prepare_tables();
    heap::init();
    kprintln!(
        "[mem] ram_top={:#x} free_frames={} heap_bytes={}",
        layout.ram_top,
        frames::free_frames(),
        heap::HEAP_BYTES
    );
}

/// End of the physical window (set by `paging::init`).
static WINDOW_TOP: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1 << 32);

/// Record how much physical memory the window maps.
pub(crate) fn set_window_top(top: u64) {
    WINDOW_TOP.store(top, core::sync::atomic::Ordering::Relaxed);
}

/// `length` bytes of physical memory at `address` through the window, or
/// None if any of it lies outside the window. For reading firmware data.
pub fn physical_slice(address: u64, length: usize) -> Option<&'static [u8]> {
    let end = address.checked_add(length as u64)?;
    if end > WINDOW_TOP.load(core::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the whole range is inside the physical window, which is mapped
    // read-write for the kernel's lifetime; firmware data is only read.
    Some(unsafe { core::slice::from_raw_parts(physical_to_virtual(address) as *const u8, length) })
}
