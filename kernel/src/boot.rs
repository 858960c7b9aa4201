//! The multiboot2 hand-off: validate the magic and load the boot information.

use crate::{kprintln, mem, platform};
use multiboot2::{BootInformation, BootInformationHeader};

/// The value a multiboot2 loader leaves in EAX.
const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36D7_6289;

/// Parse the boot information GRUB left at physical `info_address`, read
/// through the physical window so it stays valid after the page-table switch.
pub fn load(magic: u32, info_address: u32) -> BootInformation<'static> {
    if magic != MULTIBOOT2_BOOTLOADER_MAGIC {
        kprintln!("[boot] error: not started by a multiboot2 loader (magic {magic:#x})");
        platform::exit::failure();
    }
    let pointer = mem::physical_to_virtual(u64::from(info_address)) as *const BootInformationHeader;
    // SAFETY: the loader placed a multiboot2 information structure at this
    // address; the physical window maps it for the kernel's whole lifetime and
    // the frame allocator reserves its range.
    match unsafe { BootInformation::load(pointer) } {
        Ok(info) => info,
        Err(error) => {
            kprintln!("[boot] error: malformed multiboot2 information: {error:?}");
            platform::exit::failure()
        }
    }
}
