//! The boot archive: every user program and packed manifest in one boot module, a newc
//! ("new ASCII") cpio archive that `capos build iso` writes and the kernel reads in place.
//!
//! Invariants:
//! - An entry is a 110-byte header (`070701` and thirteen 8-digit hexadecimal fields), its
//!   NUL-terminated path, padding to a multiple of four bytes from the archive's start, its
//!   data, and padding again. The archive ends with the entry `TRAILER!!!`; only zero bytes
//!   may follow it.
//! - Every other entry is a regular file named `programs/<name>` or `manifests/<name>`, where
//!   `<name>` is 1 to [`NAME_MAX`] bytes of ASCII letters, digits, `-`, `_` and `.`, not
//!   starting with `.`.
//! - Paths are in strictly ascending byte order, so no path appears twice and an archive's
//!   bytes follow from its contents alone (the host writes them sorted).
//! - [`BootArchive::parse`] checks all of the above before it returns, so the lookups on a
//!   parsed archive cannot meet a malformed entry; nothing here panics or allocates, whatever
//!   the bytes.

use core::fmt;

/// Magic of a newc header (no checksum).
pub const MAGIC: &[u8; 6] = b"070701";
/// Bytes of a newc header before the path.
pub const HEADER_SIZE: usize = 110;
/// Path of the entry that ends the archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Longest program or manifest name, in bytes.
pub const NAME_MAX: usize = 64;

/// File-type bits of a header's `mode`, and the value of a regular file.
const MODE_TYPE_MASK: u32 = 0o170_000;
const MODE_REGULAR: u32 = 0o100_000;

/// Byte offsets of the header fields the reader uses (each eight hexadecimal digits).
const FIELD_MODE: usize = 14;
const FIELD_FILE_SIZE: usize = 54;
const FIELD_NAME_SIZE: usize = 94;

/// What an archive entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A user program's ELF image, under `programs/`.
    Program,
    /// A packed boot manifest, under `manifests/`.
    Manifest,
}

impl EntryKind {
    /// Every kind, in archive order (`manifests/` sorts before `programs/`).
    pub const ALL: [EntryKind; 2] = [EntryKind::Manifest, EntryKind::Program];

    /// The directory (with its trailing `/`) entries of this kind live in.
    pub const fn directory(self) -> &'static str {
        match self {
            EntryKind::Program => "programs/",
            EntryKind::Manifest => "manifests/",
        }
    }

    /// The kind and name a valid entry path stands for.
    fn classify(path: &str) -> Option<(EntryKind, &str)> {
        Self::ALL.into_iter().find_map(|kind| {
            path.strip_prefix(kind.directory())
                .filter(|name| is_valid_name(name))
                .map(|name| (kind, name))
        })
    }
}

/// Whether `name` may name a program or manifest (see the module invariants).
pub fn is_valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// One program or manifest of a parsed archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Program or manifest.
    pub kind: EntryKind,
    /// Its name without the directory.
    pub name: &'a str,
    /// Its bytes, borrowed from the archive.
    pub data: &'a [u8],
}

/// Why bytes are not a valid boot archive. Offsets count from the archive's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveError<'a> {
    /// The archive ends inside an entry.
    Truncated {
        /// Where the cut entry starts.
        offset: usize,
        /// The part that does not fit: header, path or data.
        part: &'static str,
    },
    /// A header does not start with `070701`.
    BadMagic {
        /// Where the header starts.
        offset: usize,
    },
    /// A header field is not eight hexadecimal digits.
    BadHeaderField {
        /// Where the header starts.
        offset: usize,
        /// The field's name.
        field: &'static str,
    },
    /// A path is empty, lacks its closing NUL, holds another NUL, or is not UTF-8.
    BadPath {
        /// Where the entry starts.
        offset: usize,
    },
    /// An entry is not a regular file.
    NotARegularFile {
        /// Where the entry starts.
        offset: usize,
        /// Its path.
        path: &'a str,
        /// Its `mode` field.
        mode: u32,
    },
    /// A path is not `programs/<name>` or `manifests/<name>` with a valid name.
    UnexpectedPath {
        /// Where the entry starts.
        offset: usize,
        /// Its path.
        path: &'a str,
    },
    /// A path does not sort strictly after the one before it (a duplicate or a misordered entry).
    OutOfOrder {
        /// Where the entry starts.
        offset: usize,
        /// Its path.
        path: &'a str,
        /// The path before it.
        previous: &'a str,
    },
    /// The bytes end without the `TRAILER!!!` entry.
    MissingTrailer,
    /// A non-zero byte follows the trailer.
    TrailingBytes {
        /// Where the first such byte is.
        offset: usize,
    },
}

impl fmt::Display for ArchiveError<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset, part } => {
                write!(
                    formatter,
                    "the entry at byte {offset} is cut short in its {part}"
                )
            }
            Self::BadMagic { offset } => write!(
                formatter,
                "no newc header (magic 070701) at byte {offset}"
            ),
            Self::BadHeaderField { offset, field } => write!(
                formatter,
                "the header at byte {offset} has a malformed {field} field"
            ),
            Self::BadPath { offset } => write!(
                formatter,
                "the entry at byte {offset} has no valid NUL-terminated UTF-8 path"
            ),
            Self::NotARegularFile { offset, path, mode } => write!(
                formatter,
                "entry {path:?} at byte {offset} is not a regular file (mode {mode:#o})"
            ),
            Self::UnexpectedPath { offset, path } => write!(
                formatter,
                "entry {path:?} at byte {offset} is not programs/<name> or manifests/<name>"
            ),
            Self::OutOfOrder {
                offset,
                path,
                previous,
            } => write!(
                formatter,
                "entry {path:?} at byte {offset} does not sort after {previous:?} (duplicate or out of order)"
            ),
            Self::MissingTrailer => write!(formatter, "the archive ends without {TRAILER:?}"),
            Self::TrailingBytes { offset } => {
                write!(
                    formatter,
                    "non-zero byte at {offset}, after the archive's trailer"
                )
            }
        }
    }
}

/// A validated boot archive borrowed from its bytes.
#[derive(Clone, Copy, Debug)]
pub struct BootArchive<'a> {
    bytes: &'a [u8],
    entries: usize,
}

impl<'a> BootArchive<'a> {
    /// Check every entry of `bytes` (module invariants) and return the archive.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError<'a>> {
        let mut offset = 0;
        let mut previous: Option<&'a str> = None;
        let mut entries = 0;
        loop {
            if offset >= bytes.len() {
                return Err(ArchiveError::MissingTrailer);
            }
            let raw = read_entry(bytes, offset)?;
            if raw.path == TRAILER {
                let rest = bytes.get(raw.next.min(bytes.len())..).unwrap_or_default();
                if let Some(position) = rest.iter().position(|&byte| byte != 0) {
                    return Err(ArchiveError::TrailingBytes {
                        offset: raw.next + position,
                    });
                }
                return Ok(Self { bytes, entries });
            }
            if raw.mode & MODE_TYPE_MASK != MODE_REGULAR {
                return Err(ArchiveError::NotARegularFile {
                    offset,
                    path: raw.path,
                    mode: raw.mode,
                });
            }
            if EntryKind::classify(raw.path).is_none() {
                return Err(ArchiveError::UnexpectedPath {
                    offset,
                    path: raw.path,
                });
            }
            if let Some(previous) = previous.filter(|previous| raw.path <= *previous) {
                return Err(ArchiveError::OutOfOrder {
                    offset,
                    path: raw.path,
                    previous,
                });
            }
            previous = Some(raw.path);
            entries += 1;
            offset = raw.next;
        }
    }

    /// Number of programs and manifests.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the archive holds no program and no manifest.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Every program and manifest, in archive (path) order.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            bytes: self.bytes,
            offset: 0,
        }
    }

    /// The bytes of the `kind` entry called `name`.
    pub fn find(&self, kind: EntryKind, name: &str) -> Option<&'a [u8]> {
        self.entries()
            .find(|entry| entry.kind == kind && entry.name == name)
            .map(|entry| entry.data)
    }

    /// The names of every `kind` entry, in order.
    pub fn names(&self, kind: EntryKind) -> impl Iterator<Item = &'a str> {
        self.entries()
            .filter(move |entry| entry.kind == kind)
            .map(|entry| entry.name)
    }
}

/// Iterator over a parsed archive's entries (ends at the trailer).
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        // The archive was validated, so an error here cannot happen; ending
        // the iteration is the safe answer if it did.
        let raw = read_entry(self.bytes, self.offset).ok()?;
        let (kind, name) = EntryKind::classify(raw.path)?;
        self.offset = raw.next;
        Some(Entry {
            kind,
            name,
            data: raw.data,
        })
    }
}

/// One entry as the header describes it, before the archive rules are applied.
struct RawEntry<'a> {
    path: &'a str,
    mode: u32,
    data: &'a [u8],
    /// Offset of the next header (past the data's padding; may pass the end of the bytes).
    next: usize,
}

/// Read the header, path and data of the entry at `offset`.
fn read_entry(bytes: &[u8], offset: usize) -> Result<RawEntry<'_>, ArchiveError<'_>> {
    let truncated = |part| ArchiveError::Truncated { offset, part };
    let header = offset
        .checked_add(HEADER_SIZE)
        .and_then(|end| bytes.get(offset..end))
        .ok_or(truncated("header"))?;
    if !header.starts_with(MAGIC) {
        return Err(ArchiveError::BadMagic { offset });
    }
    let field = |position: usize, name: &'static str| {
        header
            .get(position..position + 8)
            .and_then(hexadecimal)
            .ok_or(ArchiveError::BadHeaderField {
                offset,
                field: name,
            })
    };
    let mode = field(FIELD_MODE, "mode")?;
    let file_size = field(FIELD_FILE_SIZE, "file size")? as usize;
    let name_size = field(FIELD_NAME_SIZE, "name size")? as usize;
    let name_start = offset + HEADER_SIZE;
    let name_end = name_start.checked_add(name_size).ok_or(truncated("path"))?;
    let name = bytes.get(name_start..name_end).ok_or(truncated("path"))?;
    let path = match name.split_last() {
        Some((0, path)) if !path.is_empty() && !path.contains(&0) => {
            core::str::from_utf8(path).map_err(|_| ArchiveError::BadPath { offset })?
        }
        _ => return Err(ArchiveError::BadPath { offset }),
    };
    let data_start = align4(name_end).ok_or(truncated("data"))?;
    let data_end = data_start.checked_add(file_size).ok_or(truncated("data"))?;
    let data = bytes.get(data_start..data_end).ok_or(truncated("data"))?;
    let next = align4(data_end).ok_or(truncated("data"))?;
    Ok(RawEntry {
        path,
        mode,
        data,
        next,
    })
}

/// Eight ASCII hexadecimal digits (either case) as a number.
fn hexadecimal(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some((value << 4) | nibble)
    })
}

/// `offset` rounded up to a multiple of four.
fn align4(offset: usize) -> Option<usize> {
    Some(offset.checked_add(3)? & !3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    /// A newc archive written by the `cpio` crate (an independent writer) from
    /// `(path, mode, data)`, in the given order.
    fn archive_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (index, (path, mode, data)) in files.iter().enumerate() {
            let mut writer = cpio::newc::Builder::new(path)
                .ino(index as u32 + 1)
                .mode(*mode)
                .nlink(1)
                .write(out, data.len() as u32);
            writer.write_all(data).unwrap();
            out = writer.finish().unwrap();
        }
        cpio::newc::trailer(out).unwrap()
    }

    const FILE: u32 = 0o100_644;

    #[test]
    fn finds_programs_and_manifests_by_name() {
        let bytes = archive_of(&[
            ("manifests/system-hello", FILE, b"manifest"),
            ("programs/hello", FILE, b"\x7fELF hello"),
            ("programs/init", FILE, b"\x7fELF init!"),
        ]);
        let archive = BootArchive::parse(&bytes).unwrap();
        assert_eq!(archive.len(), 3);
        assert_eq!(
            archive.find(EntryKind::Program, "hello"),
            Some(&b"\x7fELF hello"[..])
        );
        assert_eq!(
            archive.find(EntryKind::Manifest, "system-hello"),
            Some(&b"manifest"[..])
        );
        assert_eq!(archive.find(EntryKind::Manifest, "hello"), None);
        assert_eq!(archive.find(EntryKind::Program, "missing"), None);
        assert_eq!(
            archive.names(EntryKind::Program).collect::<Vec<_>>(),
            ["hello", "init"]
        );
    }

    #[test]
    fn an_empty_archive_is_valid_and_zero_padding_may_follow() {
        let mut bytes = archive_of(&[]);
        assert!(BootArchive::parse(&bytes).unwrap().is_empty());
        bytes.resize(512, 0);
        assert!(BootArchive::parse(&bytes).unwrap().is_empty());
        bytes.push(1);
        assert_eq!(
            BootArchive::parse(&bytes).unwrap_err(),
            ArchiveError::TrailingBytes { offset: 512 }
        );
    }

    #[test]
    fn rejects_what_the_kernel_must_not_guess_about() {
        let directory = archive_of(&[("programs/hello", 0o040_755, b"")]);
        assert!(matches!(
            BootArchive::parse(&directory),
            Err(ArchiveError::NotARegularFile { mode: 0o40755, .. })
        ));
        for path in [
            "hello",
            "programs/",
            "programs/a/b",
            "programs/.hidden",
            "other/x",
        ] {
            let bytes = archive_of(&[(path, FILE, b"x")]);
            assert_eq!(
                BootArchive::parse(&bytes).unwrap_err(),
                ArchiveError::UnexpectedPath { offset: 0, path },
                "{path}"
            );
        }
        let long = format!("programs/{}", "a".repeat(NAME_MAX + 1));
        assert!(matches!(
            BootArchive::parse(&archive_of(&[(&long, FILE, b"x")])),
            Err(ArchiveError::UnexpectedPath { .. })
        ));
        let duplicate = archive_of(&[("programs/a", FILE, b"1"), ("programs/a", FILE, b"2")]);
        assert!(matches!(
            BootArchive::parse(&duplicate),
            Err(ArchiveError::OutOfOrder {
                path: "programs/a",
                previous: "programs/a",
                ..
            })
        ));
        let unsorted = archive_of(&[("programs/b", FILE, b""), ("manifests/a", FILE, b"")]);
        assert!(matches!(
            BootArchive::parse(&unsorted),
            Err(ArchiveError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn names_the_broken_part() {
        let good = archive_of(&[("programs/hello", FILE, b"0123456789")]);
        assert_eq!(
            BootArchive::parse(&[]).unwrap_err(),
            ArchiveError::MissingTrailer
        );
        assert_eq!(
            BootArchive::parse(&good[..50]).unwrap_err(),
            ArchiveError::Truncated {
                offset: 0,
                part: "header"
            }
        );
        assert_eq!(
            BootArchive::parse(&good[..HEADER_SIZE + 5]).unwrap_err(),
            ArchiveError::Truncated {
                offset: 0,
                part: "path"
            }
        );
        assert_eq!(
            BootArchive::parse(&good[..HEADER_SIZE + 20]).unwrap_err(),
            ArchiveError::Truncated {
                offset: 0,
                part: "data"
            }
        );
        let mut magic = good.clone();
        magic[5] = b'7';
        assert_eq!(
            BootArchive::parse(&magic).unwrap_err(),
            ArchiveError::BadMagic { offset: 0 }
        );
        let mut size = good.clone();
        size[FIELD_FILE_SIZE + 3] = b'x';
        assert_eq!(
            BootArchive::parse(&size).unwrap_err(),
            ArchiveError::BadHeaderField {
                offset: 0,
                field: "file size"
            }
        );
        let mut path = good.clone();
        path[HEADER_SIZE + 3] = 0;
        assert_eq!(
            BootArchive::parse(&path).unwrap_err(),
            ArchiveError::BadPath { offset: 0 }
        );
        let without_trailer = &good[..good.len() - 124];
        assert_eq!(
            BootArchive::parse(without_trailer).unwrap_err(),
            ArchiveError::MissingTrailer
        );
        let message = ArchiveError::OutOfOrder {
            offset: 8,
            path: "programs/a",
            previous: "programs/b",
        }
        .to_string();
        assert!(message.contains("\"programs/a\"") && message.contains("byte 8"));
    }

    #[test]
    fn a_huge_size_field_is_truncation_not_overflow() {
        let mut bytes = archive_of(&[("programs/a", FILE, b"")]);
        bytes[FIELD_FILE_SIZE..FIELD_FILE_SIZE + 8].copy_from_slice(b"FFFFFFFF");
        assert!(matches!(
            BootArchive::parse(&bytes),
            Err(ArchiveError::Truncated { part: "data", .. })
        ));
        bytes[FIELD_NAME_SIZE..FIELD_NAME_SIZE + 8].copy_from_slice(b"ffffffff");
        assert!(matches!(
            BootArchive::parse(&bytes),
            Err(ArchiveError::Truncated { part: "path", .. })
        ));
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,20}"
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(archive) = BootArchive::parse(&bytes) {
                prop_assert_eq!(archive.entries().count(), archive.len());
            }
        }

        #[test]
        fn parse_never_panics_on_damaged_archives(
            files in proptest::collection::btree_map(name_strategy(), proptest::collection::vec(any::<u8>(), 0..64), 0..6),
            damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let paths: Vec<String> = files.keys().map(|name| format!("programs/{name}")).collect();
            let list: Vec<(&str, u32, &[u8])> = paths
                .iter()
                .zip(files.values())
                .map(|(path, data)| (path.as_str(), FILE, data.as_slice()))
                .collect();
            let mut bytes = archive_of(&list);
            for (index, value) in damage {
                let position = index.index(bytes.len());
                bytes[position] = value;
            }
            let _ = BootArchive::parse(&bytes);
            let _ = BootArchive::parse(&bytes[..cut.index(bytes.len())]);
        }

        #[test]
        fn finds_everything_that_was_packed(
            programs in proptest::collection::btree_map(name_strategy(), proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            manifests in proptest::collection::btree_map(name_strategy(), proptest::collection::vec(any::<u8>(), 0..300), 0..12),
        ) {
            let mut files: Vec<(String, &[u8])> = programs
                .iter()
                .map(|(name, data)| (format!("programs/{name}"), data.as_slice()))
                .chain(manifests.iter().map(|(name, data)| (format!("manifests/{name}"), data.as_slice())))
                .collect();
            files.sort();
            let list: Vec<(&str, u32, &[u8])> =
                files.iter().map(|(path, data)| (path.as_str(), FILE, *data)).collect();
            let bytes = archive_of(&list);
            let archive = BootArchive::parse(&bytes).unwrap();
            prop_assert_eq!(archive.len(), programs.len() + manifests.len());
            for (name, data) in &programs {
                prop_assert_eq!(archive.find(EntryKind::Program, name), Some(data.as_slice()));
            }
            for (name, data) in &manifests {
                prop_assert_eq!(archive.find(EntryKind::Manifest, name), Some(data.as_slice()));
            }
            // A truncated archive is always refused, never read as a shorter one.
            for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
                prop_assert!(BootArchive::parse(&bytes[..cut]).is_err());
            }
        }
    }
}
