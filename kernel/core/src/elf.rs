//! The ELF64 program-header table rule the kernel checks before letting an
//! ELF library read a boot-module image.
//!
//! `xmas-elf` slices the table without bounds checks and its reads assert
//! alignment, so a truncated or misaligned image would panic the kernel.
//! [`program_headers_fit`] says whether every header lies inside the image
//! at an 8-byte-aligned address.

/// Size of one ELF64 program header.
pub const PROGRAM_HEADER_SIZE: u16 = 56;

/// Whether `count` program headers of `entry_size` bytes at `offset` lie
/// inside an image of `image_length` bytes that starts at `image_address`,
/// each 8-byte aligned. An empty table always fits.
pub fn program_headers_fit(
    image_address: usize,
    image_length: usize,
    offset: u64,
    count: u16,
    entry_size: u16,
) -> bool {
    if count == 0 {
        return true;
    }
    let table_bytes = u64::from(count) * u64::from(PROGRAM_HEADER_SIZE);
    entry_size == PROGRAM_HEADER_SIZE
        && image_address.is_multiple_of(8)
        && offset.is_multiple_of(8)
        && offset
            .checked_add(table_bytes)
            .is_some_and(|end| end <= image_length as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_inside_an_aligned_image_fits() {
        assert!(program_headers_fit(0x1000, 64 + 3 * 56, 64, 3, 56));
        assert!(program_headers_fit(0x1000, 0, 0, 0, 0));
    }

    #[test]
    fn truncated_misaligned_or_odd_tables_do_not() {
        assert!(!program_headers_fit(0x1000, 64 + 3 * 56 - 1, 64, 3, 56));
        assert!(!program_headers_fit(0x1000, 1 << 20, 60, 1, 56));
        assert!(!program_headers_fit(0x1004, 1 << 20, 64, 1, 56));
        assert!(!program_headers_fit(0x1000, 1 << 20, 64, 1, 32));
        assert!(!program_headers_fit(0x1000, 1 << 20, u64::MAX - 7, 1, 56));
    }

    proptest::proptest! {
        #[test]
        fn fitting_tables_are_in_bounds(address in 0usize..4096, length in 0usize..4096, offset in 0u64..4096, count in 0u16..80) {
            if count > 0 && program_headers_fit(address, length, offset, count, 56) {
                proptest::prop_assert!(offset as usize + count as usize * 56 <= length);
                proptest::prop_assert!((address + offset as usize).is_multiple_of(8));
            }
        }
    }
}
