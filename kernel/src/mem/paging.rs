//! Kernel page tables: per-section permissions for the image, the physical
//! and device windows, and mapping services for stacks and MMIO.
//!
//! Invariants: text is read-execute, rodata read-only no-execute, data/bss
//! read-write no-execute; the BSP stack guard page is never mapped. All
//! mappings live in the upper half, which every address space will share,
//! except the one identity-mapped AP trampoline page.

use super::frames::PhysicalLayout;
use super::{
    fail, frames, physical_to_virtual, KERNEL_BASE, MMIO_WINDOW, PAGE_SIZE, PHYSICAL_WINDOW,
};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame,
    Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// Physical address of the kernel's top-level table (below 4 GiB, so the
/// 32-bit AP trampoline can load it).
static KERNEL_TABLE: AtomicU64 = AtomicU64::new(0);
/// Serialises changes to the kernel page tables across CPUs.
static MAPPER: Mutex<()> = Mutex::new(());

/// Physical address of the AP start-up page, identity mapped executable.
pub const AP_TRAMPOLINE_PAGE: u64 = 0x8000;

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static BSP_STACK_GUARD: u8;
}

struct KernelFrames;

// SAFETY: frames come from the global allocator, zeroed and owned by no one else.
unsafe impl FrameAllocator<Size4KiB> for KernelFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        frames::allocate_zeroed()
            .map(|address| PhysFrame::containing_address(PhysAddr::new(address)))
    }
}

/// The physical address of the kernel page table root.
pub fn kernel_table() -> u64 {
    KERNEL_TABLE.load(Ordering::Acquire)
}

fn with_mapper<R>(body: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    let _guard = MAPPER.lock();
    // SAFETY: the root table is a frame owned by the kernel for its lifetime,
    // visible in the physical window; the MAPPER lock makes this the only
    // mutable reference while `body` runs.
    let mut mapper = unsafe {
        let root = &mut *(physical_to_virtual(kernel_table()) as *mut PageTable);
        OffsetPageTable::new(root, VirtAddr::new(PHYSICAL_WINDOW))
    };
    body(&mut mapper)
}

/// Map one 4 KiB page. Mapping an already-mapped page is an error.
pub fn map_page(
    virtual_address: u64,
    physical_address: u64,
    flags: Flags,
) -> Result<(), MapToError<Size4KiB>> {
    with_mapper(|mapper| {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virtual_address));
        let frame = PhysFrame::containing_address(PhysAddr::new(physical_address));
        // SAFETY: callers map frames they own (fresh frames, the kernel image,
        // device registers) at addresses reserved for that purpose.
        unsafe { mapper.map_to(page, frame, flags, &mut KernelFrames) }.map(|flush| flush.flush())
    })
}

/// Unmap one 4 KiB kernel page; returns the frame it mapped. Only for
/// pages that no other CPU can be using (a stack that never ran), so the
/// local flush is enough.
pub fn unmap_page(virtual_address: u64) -> Option<u64> {
    with_mapper(|mapper| {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virtual_address));
        let (frame, flush) = mapper.unmap(page).ok()?;
        flush.flush();
        Some(frame.start_address().as_u64())
    })
}

/// Map device registers at `physical_address` uncached; returns the virtual address.
pub fn map_mmio(physical_address: u64, length: u64) -> u64 {
    let first = physical_address & !(PAGE_SIZE - 1);
    let flags = Flags::PRESENT
        | Flags::WRITABLE
        | Flags::NO_EXECUTE
        | Flags::NO_CACHE
        | Flags::WRITE_THROUGH;
    let mut page = first;
    while page < physical_address + length {
        match map_page(MMIO_WINDOW + page, page, flags) {
            Ok(()) | Err(MapToError::PageAlreadyMapped(_)) => {}
            Err(error) => fail(format_args!("mapping MMIO {page:#x}: {error:?}")),
        }
        page += PAGE_SIZE;
    }
    MMIO_WINDOW + physical_address
}

/// Build the kernel page tables and switch to them.
pub fn init(layout: &PhysicalLayout) {
    let Some(root) = frames::allocate_contiguous_zeroed(1, PAGE_SIZE, 1 << 32) else {
        fail(format_args!(
            "no frame below 4 GiB for the kernel page table"
        ))
    };
    KERNEL_TABLE.store(root, Ordering::Release);

    // Linker-script symbols: only their addresses are used.
    let (text, rodata, data, guard) = (
        (&raw const __text_start as u64, &raw const __text_end as u64),
        (
            &raw const __rodata_start as u64,
            &raw const __rodata_end as u64,
        ),
        (&raw const __data_start as u64, &raw const __data_end as u64),
        &raw const BSP_STACK_GUARD as u64,
    );
    map_image(text, Flags::PRESENT, None);
    map_image(rodata, Flags::PRESENT | Flags::NO_EXECUTE, None);
    map_image(
        data,
        Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE,
        Some(guard),
    );
    let window_top = layout.ram_top.max(1 << 32).next_multiple_of(2 << 20);
    map_physical_window(window_top);
    super::set_window_top(window_top);
    if let Err(error) = map_page(AP_TRAMPOLINE_PAGE, AP_TRAMPOLINE_PAGE, Flags::PRESENT) {
        fail(format_args!("mapping the AP trampoline: {error:?}"));
    }

    let frame = PhysFrame::containing_address(PhysAddr::new(root));
    // SAFETY: the new tables map everything the kernel touches from here on:
    // its image (the code running now and the BSP stack), the physical
    // window (boot information, frame bitmap, heap) and the trampoline.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}

/// Map the image range `[start, end)` (virtual) with `flags`, skipping `hole`.
fn map_image((start, end): (u64, u64), flags: Flags, hole: Option<u64>) {
    let mut page = start;
    while page < end {
        if Some(page) != hole {
            if let Err(error) = map_page(page, page - KERNEL_BASE, flags) {
                fail(format_args!("mapping kernel page {page:#x}: {error:?}"));
            }
        }
        page += PAGE_SIZE;
    }
}

/// Map physical `[0, top)` at `PHYSICAL_WINDOW` with 2 MiB pages, RW and NX.
fn map_physical_window(top: u64) {
    const HUGE: u64 = 2 << 20;
    let flags = Flags::PRESENT | Flags::WRITABLE | Flags::NO_EXECUTE;
    with_mapper(|mapper| {
        let mut physical = 0;
        while physical < top {
            let page =
                Page::<Size2MiB>::containing_address(VirtAddr::new(PHYSICAL_WINDOW + physical));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(physical));
            // SAFETY: the window is reserved for this mapping; it aliases RAM
            // the kernel manages through the frame allocator.
            match unsafe { mapper.map_to(page, frame, flags, &mut KernelFrames) } {
                Ok(flush) => flush.ignore(),
                Err(error) => fail(format_args!(
                    "mapping the physical window at {physical:#x}: {error:?}"
                )),
            }
            physical += HUGE;
        }
    });
}
