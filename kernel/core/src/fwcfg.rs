//! QEMU fw_cfg file directory lookup (the blob behind selector 0x0019).
//!
//! Layout: a big-endian `u32` entry count, then `count` entries of 64 bytes each: big-endian
//! `u32` size, big-endian `u16` selector, `u16` reserved, and a 56-byte NUL-padded name.
//!
//! Invariants:
//! - A directory is only searched once all `count` announced entries are present in the blob;
//!   otherwise the result is [`FwCfgError::Truncated`]. Bytes past the last entry are ignored.
//! - An entry name is the bytes before its first NUL (all 56 bytes when it has none).
//! - Nothing panics, whatever the blob holds.

use core::fmt;

use crate::bytes::{field, read_u16_be, read_u32_be};

/// Selector of the fw_cfg file directory.
pub const FILE_DIRECTORY_SELECTOR: u16 = 0x0019;
/// Size of the directory header (the entry count).
pub const DIRECTORY_HEADER_LEN: usize = 4;
/// Size of one directory entry.
pub const DIRECTORY_ENTRY_LEN: usize = 64;
/// Size of the NUL-padded name field in an entry.
const NAME_FIELD_LEN: usize = 56;
/// Offset of the name field inside an entry.
const NAME_OFFSET: usize = 8;

/// A file found in the fw_cfg directory.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct FwCfgFile {
    /// Size of the file in bytes.
    pub size: u32,
    /// Selector to write before reading the file's bytes.
    pub select: u16,
}

/// Why a fw_cfg directory lookup failed.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum FwCfgError {
    /// The blob is shorter than its header and announced entries.
    Truncated,
    /// The requested name is empty, contains NUL, or is longer than 55 bytes, so it can never
    /// match a directory entry.
    BadName,
}

impl fmt::Display for FwCfgError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(formatter, "fw_cfg file directory is truncated"),
            Self::BadName => write!(formatter, "invalid fw_cfg file name"),
        }
    }
}

/// Look `name` up in a raw directory blob.
///
/// Returns the first entry whose name equals `name` exactly, `Ok(None)` when none does.
pub fn find_file(directory: &[u8], name: &str) -> Result<Option<FwCfgFile>, FwCfgError> {
    let wanted = valid_name(name)?;
    let entries = directory_entries(directory)?;
    Ok(entries
        .chunks_exact(DIRECTORY_ENTRY_LEN)
        .find(|entry| entry_name(entry) == wanted)
        .map(entry_file))
}

/// Number of entries the directory header announces (so the kernel knows how many bytes to
/// read: 4 + 64*count).
pub fn directory_len(header: [u8; 4]) -> usize {
    usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX)
}

/// Total bytes of the directory blob the header announces (`4 + 64 * count`), or `None` if
/// that does not fit in `usize`.
pub fn directory_byte_len(header: [u8; 4]) -> Option<usize> {
    directory_len(header)
        .checked_mul(DIRECTORY_ENTRY_LEN)?
        .checked_add(DIRECTORY_HEADER_LEN)
}

/// The name as bytes when it could appear in a directory entry.
fn valid_name(name: &str) -> Result<&[u8], FwCfgError> {
    let bytes = name.as_bytes();
    let fits = !bytes.is_empty() && bytes.len() < NAME_FIELD_LEN && !bytes.contains(&0);
    if fits {
        Ok(bytes)
    } else {
        Err(FwCfgError::BadName)
    }
}

/// The bytes of all announced entries, or `Truncated` if some are missing.
fn directory_entries(directory: &[u8]) -> Result<&[u8], FwCfgError> {
    let header = field(directory, 0, DIRECTORY_HEADER_LEN).ok_or(FwCfgError::Truncated)?;
    let header: [u8; 4] = header.try_into().map_err(|_| FwCfgError::Truncated)?;
    let entries_len = directory_len(header)
        .checked_mul(DIRECTORY_ENTRY_LEN)
        .ok_or(FwCfgError::Truncated)?;
    field(directory, DIRECTORY_HEADER_LEN, entries_len).ok_or(FwCfgError::Truncated)
}

/// The name of a 64-byte entry: its name field up to the first NUL.
fn entry_name(entry: &[u8]) -> &[u8] {
    let raw = field(entry, NAME_OFFSET, NAME_FIELD_LEN).unwrap_or(&[]);
    let end = raw.iter().position(|&byte| byte == 0).unwrap_or(raw.len());
    raw.get(..end).unwrap_or(raw)
}

/// The size and selector of a 64-byte entry.
fn entry_file(entry: &[u8]) -> FwCfgFile {
    FwCfgFile {
        size: read_u32_be(entry, 0).unwrap_or(0),
        select: read_u16_be(entry, 4).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(name: &[u8], size: u32, select: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&select.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        let mut name_field = [0u8; NAME_FIELD_LEN];
        name_field[..name.len()].copy_from_slice(name);
        bytes.extend_from_slice(&name_field);
        bytes
    }

    fn directory(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = (entries.len() as u32).to_be_bytes().to_vec();
        for entry in entries {
            bytes.extend_from_slice(entry);
        }
        bytes
    }

    fn sample() -> Vec<u8> {
        directory(&[
            entry(b"bootorder", 0, 0x20),
            entry(b"etc/acpi/rsdp", 36, 0x21),
            entry(b"etc/e820", 80, 0x22),
            entry(b"opt/capos/mode", 6, 0x23),
        ])
    }

    #[test]
    fn finds_files() {
        let directory = sample();
        assert_eq!(
            find_file(&directory, "etc/e820"),
            Ok(Some(FwCfgFile {
                size: 80,
                select: 0x22
            }))
        );
        assert_eq!(
            find_file(&directory, "opt/capos/mode"),
            Ok(Some(FwCfgFile {
                size: 6,
                select: 0x23
            }))
        );
    }

    #[test]
    fn missing_and_prefix_names_are_not_found() {
        let blob = sample();
        assert_eq!(find_file(&blob, "etc/acpi"), Ok(None));
        assert_eq!(find_file(&blob, "etc/acpi/rsdp2"), Ok(None));
        assert_eq!(find_file(&blob, "nothing"), Ok(None));
        assert_eq!(find_file(&directory(&[]), "bootorder"), Ok(None));
    }

    #[test]
    fn longest_name_matches() {
        let long = [b'x'; 55];
        let directory = directory(&[entry(&long, 1, 2)]);
        let name = core::str::from_utf8(&long).unwrap();
        assert_eq!(
            find_file(&directory, name),
            Ok(Some(FwCfgFile { size: 1, select: 2 }))
        );
    }

    #[test]
    fn unterminated_entry_name_never_matches_valid_name() {
        let full = [b'y'; 56];
        let directory = directory(&[entry(&full, 1, 2)]);
        let name = core::str::from_utf8(&full[..55]).unwrap();
        assert_eq!(find_file(&directory, name), Ok(None));
    }

    #[test]
    fn bad_names_are_rejected() {
        let directory = sample();
        assert_eq!(find_file(&directory, ""), Err(FwCfgError::BadName));
        assert_eq!(find_file(&directory, "a\0b"), Err(FwCfgError::BadName));
        let long = "z".repeat(56);
        assert_eq!(find_file(&directory, &long), Err(FwCfgError::BadName));
    }

    #[test]
    fn truncated_directories_are_rejected() {
        let directory = sample();
        assert_eq!(
            find_file(&directory[..3], "etc/e820"),
            Err(FwCfgError::Truncated)
        );
        assert_eq!(
            find_file(&directory[..directory.len() - 1], "bootorder"),
            Err(FwCfgError::Truncated)
        );
        assert_eq!(
            find_file(&[0xff, 0xff, 0xff, 0xff], "bootorder"),
            Err(FwCfgError::Truncated)
        );
        let mut padded = directory.clone();
        padded.extend_from_slice(&[0; 10]);
        assert!(find_file(&padded, "etc/e820").unwrap().is_some());
    }

    #[test]
    fn directory_length_from_header() {
        assert_eq!(directory_len([0, 0, 0, 4]), 4);
        assert_eq!(directory_len([0, 0, 1, 0]), 256);
        assert_eq!(directory_byte_len([0, 0, 0, 4]), Some(4 + 4 * 64));
        let directory = sample();
        let header: [u8; 4] = directory[..4].try_into().unwrap();
        assert_eq!(directory_byte_len(header), Some(directory.len()));
    }

    #[test]
    fn display_messages() {
        assert!(!FwCfgError::Truncated.to_string().is_empty());
        assert!(!FwCfgError::BadName.to_string().is_empty());
    }

    proptest! {
        #[test]
        fn find_file_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
            name in ".{0,60}",
        ) {
            let _ = find_file(&bytes, &name);
        }

        #[test]
        fn find_file_never_panics_with_plausible_count(
            count in 0u32..8,
            body in prop::collection::vec(any::<u8>(), 0..600),
            name in "[a-z/]{1,20}",
        ) {
            let mut bytes = count.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            let result = find_file(&bytes, &name);
            let complete = body.len() >= count as usize * DIRECTORY_ENTRY_LEN;
            prop_assert_eq!(result.is_ok(), complete);
        }

        #[test]
        fn built_directory_finds_every_entry(
            names in prop::collection::btree_set("[a-z/]{1,55}", 0..6),
        ) {
            let entries: Vec<Vec<u8>> = names
                .iter()
                .enumerate()
                .map(|(index, name)| entry(name.as_bytes(), index as u32, index as u16))
                .collect();
            let directory = directory(&entries);
            for (index, name) in names.iter().enumerate() {
                let found = find_file(&directory, name).unwrap();
                prop_assert_eq!(found, Some(FwCfgFile { size: index as u32, select: index as u16 }));
            }
        }
    }
}
