//! The global physical frame allocator, built from the multiboot2 memory map.
//!
//! Reserved before anything is handed out: the first MiB (real-mode data,
//! the AP trampoline page), the kernel image, the boot information and
//! every boot module, and the allocator's own bitmap.
//!
//! The reserved table holds page-widened ranges merged when they overlap or
//! touch (`kcore::memmap::add_reserved`), so modules GRUB lays end to end
//! take one entry; a table that still overflows fails the boot with the
//! module count, never silently.

use super::fail;
use crate::kprintln;
use capos_kcore::frame::FrameBitmap;
use capos_kcore::memmap::{add_reserved, usable_ranges, PhysRange};
use multiboot2::{BootInformation, MemoryAreaType};
use spin::Mutex;

static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);

/// Most memory-map entries and (merged) reserved ranges the kernel handles.
const MAX_RANGES: usize = 64;

/// What the rest of memory set-up needs to know about physical memory.
pub struct PhysicalLayout {
    /// End of the highest RAM range (page aligned).
    pub ram_top: u64,
}

extern "C" {
    static __boot_start: u8;
    static __kernel_end: u8;
}

/// Build the allocator from the memory map. Fails the boot with a message on
/// a malformed map.
pub fn init(boot_info: &BootInformation) -> PhysicalLayout {
    let Some(map) = boot_info.memory_map_tag() else {
        fail(format_args!("the boot loader gave no memory map"))
    };
    let mut available = [PhysRange::new(0, 0); MAX_RANGES];
    let mut available_count = 0;
    for area in map.memory_areas() {
        if MemoryAreaType::from(area.typ()) != MemoryAreaType::Available {
            continue;
        }
        if available_count == MAX_RANGES {
            fail(format_args!("more than 64 available memory ranges"));
        }
        available[available_count] = PhysRange::new(area.start_address(), area.end_address());
        available_count += 1;
    }
    let mut reserved = [PhysRange::new(0, 0); MAX_RANGES];
    let mut reserved_count = 0;
    let modules = boot_info.module_tags().count();
    let mut reserve = |range: PhysRange| {
        reserved_count = match add_reserved(&mut reserved, reserved_count, range) {
            Ok(count) => count,
            Err(error) => fail(format_args!(
                "reserved ranges: {error} ({modules} boot modules; programs and manifests belong in the one boot archive)"
            )),
        };
    };
    reserve(PhysRange::new(0, 0x10_0000));
    // Linker-script symbols: only their addresses are used.
    let (image_start, image_end) = (
        &raw const __boot_start as u64,
        &raw const __kernel_end as u64 - crate::mem::KERNEL_BASE,
    );
    reserve(PhysRange::new(image_start, image_end));
    let info_start = boot_info.start_address() as u64 - crate::mem::PHYSICAL_WINDOW;
    reserve(PhysRange::new(
        info_start,
        info_start + boot_info.total_size() as u64,
    ));
    for module in boot_info.module_tags() {
        let (start, end) = (
            u64::from(module.start_address()),
            u64::from(module.end_address()),
        );
        if end < start {
            fail(format_args!(
                "boot module at {start:#x} ends before it starts ({end:#x})"
            ));
        }
        reserve(PhysRange::new(start, end));
    }

    let mut usable = [PhysRange::new(0, 0); MAX_RANGES];
    let count = match usable_ranges(
        &available[..available_count],
        &reserved[..reserved_count],
        &mut usable,
    ) {
        Ok(count) if count > 0 => count,
        Ok(_) => fail(format_args!("no usable memory")),
        Err(error) => fail(format_args!("memory map: {error}")),
    };
    let usable = &usable[..count];
    let ram_top = usable[count - 1].end;
    let frames = ram_top / crate::mem::PAGE_SIZE;
    let words = FrameBitmap::words_for(frames);
    let bitmap_bytes = (words as u64 * 8).next_multiple_of(crate::mem::PAGE_SIZE);
    let Some(home) = usable
        .iter()
        .find(|range| range.len() >= bitmap_bytes && range.end <= 1 << 32)
    else {
        fail(format_args!("no memory range can hold the frame bitmap"))
    };
    let bitmap_range = PhysRange::new(home.start, home.start + bitmap_bytes);
    // SAFETY: `bitmap_range` is usable RAM that nothing else owns yet (it is
    // reserved in the bitmap right below) and the boot page tables map it in
    // the physical window, as do the kernel tables later.
    let storage = unsafe {
        core::slice::from_raw_parts_mut(
            crate::mem::physical_to_virtual(bitmap_range.start) as *mut u64,
            words,
        )
    };
    let mut bitmap = match FrameBitmap::new(storage, 0, frames) {
        Ok(bitmap) => bitmap,
        Err(error) => fail(format_args!("frame bitmap: {error}")),
    };
    for range in usable {
        bitmap.add_free_range(*range);
    }
    bitmap.reserve_range(bitmap_range);
    kprintln!(
        "[mem] usable_ranges={} frames_total={} frames_free={}",
        count,
        frames,
        bitmap.free_frames()
    );
    *FRAMES.lock() = Some(bitmap);
    PhysicalLayout { ram_top }
}

/// One zeroed 4 KiB frame, or None when memory is exhausted.
pub fn allocate_zeroed() -> Option<u64> {
    let frame = FRAMES.lock().as_mut()?.allocate()?;
    zero(frame, 1);
    Some(frame)
}

/// `count` contiguous zeroed frames aligned to `align`, ending at or below `limit`.
pub fn allocate_contiguous_zeroed(count: u64, align: u64, limit: u64) -> Option<u64> {
    let first = FRAMES
        .lock()
        .as_mut()?
        .allocate_contiguous(count, align, limit)?;
    zero(first, count);
    Some(first)
}

fn zero(first: u64, count: u64) {
    // SAFETY: the frames were just allocated, so nothing else refers to them,
    // and the physical window maps all RAM.
    unsafe {
        core::ptr::write_bytes(
            crate::mem::physical_to_virtual(first) as *mut u8,
            0,
            (count * crate::mem::PAGE_SIZE) as usize,
        );
    }
}

/// Frames still free.
pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, FrameBitmap::free_frames)
}

/// Return a frame to the allocator. A double free is reported, not fatal.
pub fn free(frame: u64) {
    let result = FRAMES.lock().as_mut().map(|bitmap| bitmap.free(frame));
    if let Some(Err(error)) = result {
        kprintln!("[mem] error: freeing frame {frame:#x}: {error}");
    }
}
