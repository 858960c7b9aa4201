//! Bounds-checked little- and big-endian field readers shared by the table parsers.
//!
//! Invariants:
//! - Every reader returns `None` instead of panicking when the field does not fit in the slice.
//! - Offsets are added with overflow checks, so huge offsets are simply "out of bounds".

/// The `length` bytes starting at `offset`, or `None` when they do not all exist.
pub(crate) fn field(bytes: &[u8], offset: usize, length: usize) -> Option<&[u8]> {
    let end = offset.checked_add(length)?;
    bytes.get(offset..end)
}

/// Interpret up to eight bytes as a little-endian unsigned integer.
pub(crate) fn little_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |value, &byte| (value << 8) | u64::from(byte))
}

/// Interpret up to eight bytes as a big-endian unsigned integer.
pub(crate) fn big_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0, |value, &byte| (value << 8) | u64::from(byte))
}

/// Read the byte at `offset`.
pub(crate) fn read_u8(bytes: &[u8], offset: usize) -> Option<u8> {
    bytes.get(offset).copied()
}

/// Read a little-endian `u16` at `offset`.
pub(crate) fn read_u16_le(bytes: &[u8], offset: usize) -> Option<u16> {
    field(bytes, offset, 2).and_then(|raw| u16::try_from(little_endian(raw)).ok())
}

/// Read a little-endian `u32` at `offset`.
pub(crate) fn read_u32_le(bytes: &[u8], offset: usize) -> Option<u32> {
    field(bytes, offset, 4).and_then(|raw| u32::try_from(little_endian(raw)).ok())
}

/// Read a little-endian `u64` at `offset`.
pub(crate) fn read_u64_le(bytes: &[u8], offset: usize) -> Option<u64> {
    field(bytes, offset, 8).map(little_endian)
}

/// Read a big-endian `u16` at `offset`.
pub(crate) fn read_u16_be(bytes: &[u8], offset: usize) -> Option<u16> {
    field(bytes, offset, 2).and_then(|raw| u16::try_from(big_endian(raw)).ok())
}

/// Read a big-endian `u32` at `offset`.
pub(crate) fn read_u32_be(bytes: &[u8], offset: usize) -> Option<u32> {
    field(bytes, offset, 4).and_then(|raw| u32::try_from(big_endian(raw)).ok())
}

/// Read four bytes at `offset` as a table signature.
pub(crate) fn read_signature(bytes: &[u8], offset: usize) -> Option<[u8; 4]> {
    field(bytes, offset, 4).and_then(|raw| raw.try_into().ok())
}

/// The byte-wise wrapping sum used by ACPI checksums (valid when it is zero).
pub(crate) fn wrapping_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_decode_both_endiannesses() {
        let raw = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        assert_eq!(read_u16_le(&raw, 0), Some(0x0201));
        assert_eq!(read_u32_le(&raw, 0), Some(0x0403_0201));
        assert_eq!(read_u64_le(&raw, 0), Some(0x0807_0605_0403_0201));
        assert_eq!(read_u16_be(&raw, 0), Some(0x0102));
        assert_eq!(read_u32_be(&raw, 4), Some(0x0506_0708));
        assert_eq!(read_u8(&raw, 7), Some(8));
    }

    #[test]
    fn readers_reject_out_of_bounds_fields() {
        let raw = [0u8; 4];
        assert_eq!(read_u32_le(&raw, 1), None);
        assert_eq!(read_u64_le(&raw, 0), None);
        assert_eq!(read_u8(&raw, 4), None);
        assert_eq!(field(&raw, usize::MAX, 2), None);
    }

    #[test]
    fn wrapping_sum_wraps() {
        assert_eq!(wrapping_sum(&[0xff, 0x02]), 0x01);
        assert_eq!(wrapping_sum(&[]), 0);
    }
}
