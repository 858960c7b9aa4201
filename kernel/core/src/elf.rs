//! The user-ELF policy: which images the kernel may load as a user program, shared by the kernel
//! loader and the host checker so the rules exist in one place.
//!
//! [`check_user_image`] is a hand-written parser that reads the image byte by byte, so it has no
//! alignment requirement and never panics. It accepts a static little-endian ELF64 x86_64
//! executable (`ET_EXEC`, `EM_X86_64`) whose program headers (56 bytes each) lie inside the
//! image, with no `PT_INTERP`, `PT_DYNAMIC` or `PT_TLS`, and at least one loaded segment.
//! A loaded segment is a `PT_LOAD` with a nonzero memory size (empty ones are skipped); each is
//! never both writable and executable, starts page-aligned, lies inside
//! [`USER_IMAGE_BASE`]..[`RING_BASE`] without overflow, has file size <= memory size and its file
//! bytes inside the image, and starts on a page after the previous one's last page (ascending,
//! no shared page). The entry point lies inside an executable loaded segment.
//!
//! Invariants:
//! - An accepted [`UserImage`] satisfies every rule above; its segments are in table order.
//! - At most `MAX_SEGMENTS` loaded segments; more is [`UserImageError::TooManySegments`].
//! - Nothing allocates; malformed input is reported through [`UserImageError`].

use core::fmt;

use capos_abi::layout::{RING_BASE, USER_IMAGE_BASE};

use crate::bytes;

/// Size of one ELF64 program header.
pub const PROGRAM_HEADER_SIZE: u16 = 56;

/// Size of the ELF64 file header.
pub const FILE_HEADER_SIZE: usize = 64;

/// Size of a user page; loaded segments start on page boundaries and never share a page.
pub const PAGE_SIZE: u64 = 4096;

/// The four bytes every ELF file starts with.
const MAGIC: [u8; 4] = *b"\x7fELF";
/// `EI_CLASS` of a 64-bit ELF.
const CLASS_64: u8 = 2;
/// `EI_DATA` of a little-endian ELF.
const DATA_LITTLE_ENDIAN: u8 = 1;
/// `e_type` of a static executable.
const TYPE_EXECUTABLE: u16 = 2;
/// `e_machine` of x86_64.
const MACHINE_X86_64: u16 = 62;
/// `p_type` of a loadable segment.
const SEGMENT_LOAD: u32 = 1;
/// `p_type` of dynamic-linking information.
const SEGMENT_DYNAMIC: u32 = 2;
/// `p_type` naming a program interpreter (dynamic loader).
const SEGMENT_INTERPRETER: u32 = 3;
/// `p_type` of the thread-local storage template.
const SEGMENT_THREAD_LOCAL_STORAGE: u32 = 7;
/// `p_flags` bit: executable.
const FLAG_EXECUTE: u32 = 1;
/// `p_flags` bit: writable.
const FLAG_WRITE: u32 = 2;
/// `p_flags` bit: readable.
const FLAG_READ: u32 = 4;

/// One loaded segment (`PT_LOAD` with a nonzero memory size) of an accepted image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// First virtual address; page-aligned.
    pub virtual_address: u64,
    /// Where the segment's file bytes start in the image.
    pub file_offset: u64,
    /// Bytes copied from the image; the rest of the memory size is zero-filled.
    pub file_size: u64,
    /// Bytes of address space the segment covers; nonzero.
    pub memory_size: u64,
    /// Mapped readable (`PF_R`).
    pub readable: bool,
    /// Mapped writable (`PF_W`); never together with `executable`.
    pub writable: bool,
    /// Mapped executable (`PF_X`); never together with `writable`.
    pub executable: bool,
}

impl LoadSegment {
    /// A placeholder for unused array entries.
    const EMPTY: Self = Self {
        virtual_address: 0,
        file_offset: 0,
        file_size: 0,
        memory_size: 0,
        readable: false,
        writable: false,
        executable: false,
    };

    /// One past the last virtual address (cannot overflow for an accepted segment).
    pub const fn end(&self) -> u64 {
        self.virtual_address.saturating_add(self.memory_size)
    }

    /// Whether `address` lies inside the segment.
    pub const fn contains(&self, address: u64) -> bool {
        self.virtual_address <= address && address < self.end()
    }

    /// The segment's file bytes in `image` (the image it was checked against), or `None` when
    /// they do not lie inside it.
    pub fn file_bytes<'image>(&self, image: &'image [u8]) -> Option<&'image [u8]> {
        let start = usize::try_from(self.file_offset).ok()?;
        let length = usize::try_from(self.file_size).ok()?;
        bytes::field(image, start, length)
    }
}

/// What [`check_user_image`] found in an acceptable image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserImage<const MAX_SEGMENTS: usize> {
    /// Entry point; inside an executable segment.
    entry: u64,
    /// `segments[..segment_count]` are the loaded segments in table order.
    segments: [LoadSegment; MAX_SEGMENTS],
    /// Number of loaded segments; at least 1 and at most `MAX_SEGMENTS`.
    segment_count: usize,
}

impl<const MAX_SEGMENTS: usize> UserImage<MAX_SEGMENTS> {
    /// The entry point, inside an executable segment.
    pub const fn entry(&self) -> u64 {
        self.entry
    }

    /// The loaded segments, in ascending address order; never empty.
    pub fn segments(&self) -> &[LoadSegment] {
        self.segments.get(..self.segment_count).unwrap_or(&[])
    }
}

/// Why an image is not a program the kernel may load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserImageError {
    /// The image is shorter than an ELF64 file header.
    TooShort {
        /// Length of the image.
        length: usize,
    },
    /// The image does not start with `\x7fELF`.
    NoMagic,
    /// `EI_CLASS` is not ELF64.
    NotElf64 {
        /// The class byte found.
        class: u8,
    },
    /// `EI_DATA` is not little-endian.
    NotLittleEndian {
        /// The data-encoding byte found.
        data: u8,
    },
    /// `e_type` is not `ET_EXEC` (static executable).
    NotExecutable {
        /// The `e_type` found.
        file_type: u16,
    },
    /// `e_machine` is not `EM_X86_64`.
    NotX86_64 {
        /// The `e_machine` found.
        machine: u16,
    },
    /// `e_phentsize` is not 56.
    ProgramHeaderSize {
        /// The entry size found.
        entry_size: u16,
    },
    /// The program header table runs past the end of the image.
    ProgramHeadersOutsideImage {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// A `PT_INTERP` header asks for a dynamic loader.
    HasInterpreter {
        /// Index of the header in the table.
        index: u16,
    },
    /// A `PT_DYNAMIC` header: the program is dynamically linked.
    HasDynamic {
        /// Index of the header in the table.
        index: u16,
    },
    /// A `PT_TLS` header: thread-local storage is not supported.
    HasThreadLocalStorage {
        /// Index of the header in the table.
        index: u16,
    },
    /// A loaded segment is both writable and executable.
    WritableAndExecutable {
        /// The segment's virtual address.
        virtual_address: u64,
    },
    /// A loaded segment does not start on a page boundary.
    NotPageAligned {
        /// The segment's virtual address.
        virtual_address: u64,
    },
    /// A loaded segment reaches outside the user image range (or its end overflows).
    OutsideUserRange {
        /// The segment's virtual address.
        virtual_address: u64,
        /// The segment's memory size.
        memory_size: u64,
    },
    /// A loaded segment has more file bytes than memory.
    FileSizeExceedsMemorySize {
        /// The segment's virtual address.
        virtual_address: u64,
        /// The segment's file size.
        file_size: u64,
        /// The segment's memory size.
        memory_size: u64,
    },
    /// A loaded segment's file bytes run past the end of the image.
    FileBytesOutsideImage {
        /// The segment's virtual address.
        virtual_address: u64,
        /// The segment's file offset.
        file_offset: u64,
        /// The segment's file size.
        file_size: u64,
    },
    /// A loaded segment starts before the page after the previous segment's end (it shares a
    /// page with it, overlaps it, or is out of ascending order).
    SharesPageWithPrevious {
        /// The segment's virtual address.
        virtual_address: u64,
        /// One past the previous segment's last address.
        previous_end: u64,
    },
    /// More loaded segments than the caller has room for.
    TooManySegments {
        /// The caller's limit.
        maximum: usize,
    },
    /// No loaded segment.
    NoLoadSegments,
    /// The entry point is not inside an executable loaded segment.
    EntryNotExecutable {
        /// The entry point.
        entry: u64,
    },
}

impl fmt::Display for UserImageError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { length } => {
                write!(formatter, "image of {length} bytes is shorter than an ELF64 header")
            }
            Self::NoMagic => formatter.write_str("no ELF magic"),
            Self::NotElf64 { class } => write!(formatter, "not ELF64 (class {class})"),
            Self::NotLittleEndian { data } => write!(formatter, "not little-endian (data {data})"),
            Self::NotExecutable { file_type } => write!(
                formatter,
                "not a static executable (e_type {file_type}, want EXEC)"
            ),
            Self::NotX86_64 { machine } => write!(formatter, "not x86_64 (e_machine {machine})"),
            Self::ProgramHeaderSize { entry_size } => {
                write!(formatter, "program header size {entry_size}, want 56")
            }
            Self::ProgramHeadersOutsideImage { offset, count } => write!(
                formatter,
                "{count} program headers at offset {offset:#x} run past the end of the image"
            ),
            Self::HasInterpreter { index } => write!(
                formatter,
                "program header {index} is PT_INTERP (wants a dynamic loader)"
            ),
            Self::HasDynamic { index } => write!(
                formatter,
                "program header {index} is PT_DYNAMIC (dynamically linked)"
            ),
            Self::HasThreadLocalStorage { index } => write!(
                formatter,
                "program header {index} is PT_TLS (thread-local storage is not supported)"
            ),
            Self::WritableAndExecutable { virtual_address } => write!(
                formatter,
                "segment at {virtual_address:#x} is both writable and executable"
            ),
            Self::NotPageAligned { virtual_address } => write!(
                formatter,
                "segment at {virtual_address:#x} is not page-aligned"
            ),
            Self::OutsideUserRange {
                virtual_address,
                memory_size,
            } => write!(
                formatter,
                "segment at {virtual_address:#x} (+{memory_size:#x}) is outside [{USER_IMAGE_BASE:#x}, {RING_BASE:#x})"
            ),
            Self::FileSizeExceedsMemorySize {
                virtual_address,
                file_size,
                memory_size,
            } => write!(
                formatter,
                "segment at {virtual_address:#x} has file size {file_size:#x} > memory size {memory_size:#x}"
            ),
            Self::FileBytesOutsideImage {
                virtual_address,
                file_offset,
                file_size,
            } => write!(
                formatter,
                "segment at {virtual_address:#x} has file bytes {file_offset:#x}+{file_size:#x} past the end of the image"
            ),
            Self::SharesPageWithPrevious {
                virtual_address,
                previous_end,
            } => write!(
                formatter,
                "segment at {virtual_address:#x} shares a page with the one before (ending at {previous_end:#x}) or is out of order"
            ),
            Self::TooManySegments { maximum } => {
                write!(formatter, "more than {maximum} loaded segments")
            }
            Self::NoLoadSegments => formatter.write_str("no PT_LOAD segments"),
            Self::EntryNotExecutable { entry } => {
                write!(formatter, "entry {entry:#x} is not in an executable segment")
            }
        }
    }
}

/// The ELF64 file header fields the policy looks at.
struct FileHeader {
    /// `e_ident[0..4]`.
    magic: [u8; 4],
    /// `e_ident[EI_CLASS]`.
    class: u8,
    /// `e_ident[EI_DATA]`.
    data: u8,
    /// `e_type`.
    file_type: u16,
    /// `e_machine`.
    machine: u16,
    /// `e_entry`.
    entry: u64,
    /// `e_phoff`.
    program_header_offset: u64,
    /// `e_phentsize`.
    program_header_size: u16,
    /// `e_phnum`.
    program_header_count: u16,
}

impl FileHeader {
    /// Read the header at the start of `image`, or `None` when the image is too short.
    fn read(image: &[u8]) -> Option<Self> {
        Some(Self {
            magic: bytes::read_signature(image, 0)?,
            class: bytes::read_u8(image, 4)?,
            data: bytes::read_u8(image, 5)?,
            file_type: bytes::read_u16_le(image, 16)?,
            machine: bytes::read_u16_le(image, 18)?,
            entry: bytes::read_u64_le(image, 24)?,
            program_header_offset: bytes::read_u64_le(image, 32)?,
            program_header_size: bytes::read_u16_le(image, 54)?,
            program_header_count: bytes::read_u16_le(image, 56)?,
        })
    }

    /// Refuse anything but a little-endian ELF64 x86_64 static executable.
    fn check(&self) -> Result<(), UserImageError> {
        if self.magic != MAGIC {
            return Err(UserImageError::NoMagic);
        }
        if self.class != CLASS_64 {
            return Err(UserImageError::NotElf64 { class: self.class });
        }
        if self.data != DATA_LITTLE_ENDIAN {
            return Err(UserImageError::NotLittleEndian { data: self.data });
        }
        if self.file_type != TYPE_EXECUTABLE {
            return Err(UserImageError::NotExecutable {
                file_type: self.file_type,
            });
        }
        if self.machine != MACHINE_X86_64 {
            return Err(UserImageError::NotX86_64 {
                machine: self.machine,
            });
        }
        Ok(())
    }
}

/// The byte offset of the program header table and its entries, after checking the table lies
/// inside an image of `image_length` bytes.
fn program_header_table(header: &FileHeader, image_length: usize) -> Result<usize, UserImageError> {
    let count = header.program_header_count;
    if count > 0 && header.program_header_size != PROGRAM_HEADER_SIZE {
        return Err(UserImageError::ProgramHeaderSize {
            entry_size: header.program_header_size,
        });
    }
    let outside = UserImageError::ProgramHeadersOutsideImage {
        offset: header.program_header_offset,
        count,
    };
    let table_bytes = u64::from(count) * u64::from(PROGRAM_HEADER_SIZE);
    let fits = header
        .program_header_offset
        .checked_add(table_bytes)
        .is_some_and(|end| end <= image_length as u64);
    if !fits {
        return Err(outside);
    }
    usize::try_from(header.program_header_offset).map_err(|_| outside)
}

/// The type of program header `index` and, for a `PT_LOAD`, the segment it describes.
fn read_program_header(image: &[u8], table: usize, index: u16) -> Option<(u32, LoadSegment)> {
    let start = usize::from(index)
        .checked_mul(usize::from(PROGRAM_HEADER_SIZE))?
        .checked_add(table)?;
    let header = bytes::field(image, start, usize::from(PROGRAM_HEADER_SIZE))?;
    let flags = bytes::read_u32_le(header, 4)?;
    let segment = LoadSegment {
        file_offset: bytes::read_u64_le(header, 8)?,
        virtual_address: bytes::read_u64_le(header, 16)?,
        file_size: bytes::read_u64_le(header, 32)?,
        memory_size: bytes::read_u64_le(header, 40)?,
        readable: flags & FLAG_READ != 0,
        writable: flags & FLAG_WRITE != 0,
        executable: flags & FLAG_EXECUTE != 0,
    };
    Some((bytes::read_u32_le(header, 0)?, segment))
}

/// Check one loaded segment against the rules, given the previous loaded segment.
fn check_segment(
    segment: &LoadSegment,
    previous: Option<&LoadSegment>,
    image_length: usize,
) -> Result<(), UserImageError> {
    let virtual_address = segment.virtual_address;
    if segment.writable && segment.executable {
        return Err(UserImageError::WritableAndExecutable { virtual_address });
    }
    if !virtual_address.is_multiple_of(PAGE_SIZE) {
        return Err(UserImageError::NotPageAligned { virtual_address });
    }
    let end = virtual_address.checked_add(segment.memory_size);
    if virtual_address < USER_IMAGE_BASE || end.is_none_or(|end| end > RING_BASE) {
        return Err(UserImageError::OutsideUserRange {
            virtual_address,
            memory_size: segment.memory_size,
        });
    }
    if segment.file_size > segment.memory_size {
        return Err(UserImageError::FileSizeExceedsMemorySize {
            virtual_address,
            file_size: segment.file_size,
            memory_size: segment.memory_size,
        });
    }
    let file_end = segment.file_offset.checked_add(segment.file_size);
    if file_end.is_none_or(|file_end| file_end > image_length as u64) {
        return Err(UserImageError::FileBytesOutsideImage {
            virtual_address,
            file_offset: segment.file_offset,
            file_size: segment.file_size,
        });
    }
    if let Some(previous) = previous {
        let previous_end = previous.end();
        let next_free_page = previous_end.checked_next_multiple_of(PAGE_SIZE);
        if next_free_page.is_none_or(|page| virtual_address < page) {
            return Err(UserImageError::SharesPageWithPrevious {
                virtual_address,
                previous_end,
            });
        }
    }
    Ok(())
}

/// Check that `image` is a program the kernel may load (see the module documentation for the
/// rules) and return its entry point and its loaded segments. Up to `MAX_SEGMENTS` loaded
/// segments are accepted. Refusals name the first rule broken, in table order.
pub fn check_user_image<const MAX_SEGMENTS: usize>(
    image: &[u8],
) -> Result<UserImage<MAX_SEGMENTS>, UserImageError> {
    let header = FileHeader::read(image).ok_or(UserImageError::TooShort {
        length: image.len(),
    })?;
    header.check()?;
    let table = program_header_table(&header, image.len())?;
    let mut accepted = UserImage {
        entry: header.entry,
        segments: [LoadSegment::EMPTY; MAX_SEGMENTS],
        segment_count: 0,
    };
    for index in 0..header.program_header_count {
        let (segment_type, segment) = read_program_header(image, table, index).ok_or(
            UserImageError::ProgramHeadersOutsideImage {
                offset: header.program_header_offset,
                count: header.program_header_count,
            },
        )?;
        match segment_type {
            SEGMENT_INTERPRETER => return Err(UserImageError::HasInterpreter { index }),
            SEGMENT_DYNAMIC => return Err(UserImageError::HasDynamic { index }),
            SEGMENT_THREAD_LOCAL_STORAGE => {
                return Err(UserImageError::HasThreadLocalStorage { index })
            }
            SEGMENT_LOAD if segment.memory_size > 0 => {}
            _ => continue,
        }
        check_segment(&segment, accepted.segments().last(), image.len())?;
        let slot = accepted.segments.get_mut(accepted.segment_count).ok_or(
            UserImageError::TooManySegments {
                maximum: MAX_SEGMENTS,
            },
        )?;
        *slot = segment;
        accepted.segment_count += 1;
    }
    if accepted.segment_count == 0 {
        return Err(UserImageError::NoLoadSegments);
    }
    let entry = header.entry;
    if !accepted
        .segments()
        .iter()
        .any(|segment| segment.executable && segment.contains(entry))
    {
        return Err(UserImageError::EntryNotExecutable { entry });
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `check_user_image` with room for eight segments.
    fn check(image: &[u8]) -> Result<UserImage<8>, UserImageError> {
        check_user_image::<8>(image)
    }

    /// One program header: (type, flags, virtual address, file offset, file size, memory size).
    type Header = (u32, u32, u64, u64, u64, u64);

    /// A minimal ELF64 header, then the program headers, then `padding` zero bytes.
    fn elf(entry: u64, headers: &[Header], padding: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[16..18].copy_from_slice(&2u16.to_le_bytes());
        bytes[18..20].copy_from_slice(&62u16.to_le_bytes());
        bytes[24..32].copy_from_slice(&entry.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        for &(kind, flags, address, offset, file_size, memory_size) in headers {
            let mut header = [0u8; 56];
            header[..4].copy_from_slice(&kind.to_le_bytes());
            header[4..8].copy_from_slice(&flags.to_le_bytes());
            header[8..16].copy_from_slice(&offset.to_le_bytes());
            header[16..24].copy_from_slice(&address.to_le_bytes());
            header[32..40].copy_from_slice(&file_size.to_le_bytes());
            header[40..48].copy_from_slice(&memory_size.to_le_bytes());
            bytes.extend_from_slice(&header);
        }
        bytes.resize(bytes.len() + padding, 0);
        bytes
    }

    /// A program header with no file bytes.
    const fn bss(kind: u32, flags: u32, address: u64, memory_size: u64) -> Header {
        (kind, flags, address, 0, 0, memory_size)
    }

    const R: u32 = FLAG_READ;
    const W: u32 = FLAG_WRITE;
    const X: u32 = FLAG_EXECUTE;
    const TEXT: Header = (SEGMENT_LOAD, R | X, 0x40_0000, 0, 0x100, 0x1000);
    const DATA: Header = (SEGMENT_LOAD, R | W, 0x40_1000, 0x100, 0x40, 0x2000);

    #[test]
    fn accepts_separate_segments() {
        let image = elf(0x40_0010, &[TEXT, DATA], 0x200);
        let accepted = check(&image).unwrap();
        assert_eq!(accepted.entry(), 0x40_0010);
        assert_eq!(
            accepted.segments(),
            &[
                LoadSegment {
                    virtual_address: 0x40_0000,
                    file_offset: 0,
                    file_size: 0x100,
                    memory_size: 0x1000,
                    readable: true,
                    writable: false,
                    executable: true,
                },
                LoadSegment {
                    virtual_address: 0x40_1000,
                    file_offset: 0x100,
                    file_size: 0x40,
                    memory_size: 0x2000,
                    readable: true,
                    writable: true,
                    executable: false,
                },
            ]
        );
        assert_eq!(
            accepted.segments()[1].file_bytes(&image),
            Some(&image[0x100..0x140])
        );
    }

    #[test]
    fn skips_empty_and_unknown_headers_and_reads_unaligned_images() {
        let image = elf(
            0x40_0010,
            &[
                bss(SEGMENT_LOAD, R | W | X, 0x10, 0),
                bss(4, R, 0, 0x10),
                TEXT,
            ],
            0x100,
        );
        assert_eq!(check(&image).unwrap().segments().len(), 1);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&image);
        assert!(check(&shifted[1..]).is_ok(), "no alignment requirement");
    }

    /// The host checker's refusals (`evidence/src/guest/userland.rs`), plus the kernel's.
    #[test]
    fn refuses_what_the_kernel_must_not_load() {
        use UserImageError::*;
        let cases: [(Vec<u8>, UserImageError, &str); 15] = [
            (
                elf(
                    0x40_0010,
                    &[bss(SEGMENT_LOAD, R | W | X, 0x40_0000, 0x1000)],
                    0,
                ),
                WritableAndExecutable {
                    virtual_address: 0x40_0000,
                },
                "both writable",
            ),
            (
                elf(
                    0x40_0010,
                    &[TEXT, bss(SEGMENT_INTERPRETER, R, 0x40_1000, 0x10)],
                    0x100,
                ),
                HasInterpreter { index: 1 },
                "PT_INTERP",
            ),
            (
                elf(
                    0x40_0010,
                    &[TEXT, bss(SEGMENT_DYNAMIC, R, 0x40_1000, 0x10)],
                    0x100,
                ),
                HasDynamic { index: 1 },
                "PT_DYNAMIC",
            ),
            (
                elf(
                    0x40_0010,
                    &[TEXT, bss(SEGMENT_THREAD_LOCAL_STORAGE, R, 0x40_1000, 0x10)],
                    0x100,
                ),
                HasThreadLocalStorage { index: 1 },
                "PT_TLS",
            ),
            (
                elf(0x1000, &[bss(SEGMENT_LOAD, R | X, 0x1000, 0x1000)], 0),
                OutsideUserRange {
                    virtual_address: 0x1000,
                    memory_size: 0x1000,
                },
                "outside",
            ),
            (
                elf(
                    0x40_0010,
                    &[bss(SEGMENT_LOAD, R | X, RING_BASE - 0x1000, 0x2000)],
                    0,
                ),
                OutsideUserRange {
                    virtual_address: RING_BASE - 0x1000,
                    memory_size: 0x2000,
                },
                "outside",
            ),
            (
                elf(
                    0x40_0010,
                    &[bss(SEGMENT_LOAD, R | X, 0x40_0000, u64::MAX)],
                    0,
                ),
                OutsideUserRange {
                    virtual_address: 0x40_0000,
                    memory_size: u64::MAX,
                },
                "outside",
            ),
            (
                elf(0x40_1010, &[TEXT, DATA], 0x200),
                EntryNotExecutable { entry: 0x40_1010 },
                "not in an executable segment",
            ),
            (
                elf(
                    0x40_0010,
                    &[TEXT, bss(SEGMENT_LOAD, R, 0x40_0800, 0x10)],
                    0x100,
                ),
                NotPageAligned {
                    virtual_address: 0x40_0800,
                },
                "not page-aligned",
            ),
            (
                elf(
                    0x40_0010,
                    &[TEXT, bss(SEGMENT_LOAD, R, 0x40_0000, 0x10)],
                    0x100,
                ),
                SharesPageWithPrevious {
                    virtual_address: 0x40_0000,
                    previous_end: 0x40_1000,
                },
                "shares a page",
            ),
            (
                elf(
                    0x40_0010,
                    &[(SEGMENT_LOAD, R | X, 0x40_0000, 0, 0x2000, 0x1000)],
                    0x3000,
                ),
                FileSizeExceedsMemorySize {
                    virtual_address: 0x40_0000,
                    file_size: 0x2000,
                    memory_size: 0x1000,
                },
                "file size",
            ),
            (
                elf(
                    0x40_0010,
                    &[(SEGMENT_LOAD, R | X, 0x40_0000, 0x10, 0x1000, 0x1000)],
                    0,
                ),
                FileBytesOutsideImage {
                    virtual_address: 0x40_0000,
                    file_offset: 0x10,
                    file_size: 0x1000,
                },
                "past the end",
            ),
            (elf(0x40_0010, &[], 0), NoLoadSegments, "no PT_LOAD"),
            (
                elf(0x40_0010, &[bss(SEGMENT_LOAD, R, 0x40_0000, 0)], 0),
                NoLoadSegments,
                "no PT_LOAD",
            ),
            (
                elf(0x40_0010, &[TEXT, DATA], 0x200),
                TooManySegments { maximum: 1 },
                "more than 1",
            ),
        ];
        for (index, (image, expected, message)) in cases.into_iter().enumerate() {
            let error = if index == 14 {
                check_user_image::<1>(&image).unwrap_err()
            } else {
                check(&image).unwrap_err()
            };
            assert_eq!(error, expected, "case {index}");
            let text = error.to_string();
            assert!(text.contains(message), "{text:?} lacks {message:?}");
        }
    }

    #[test]
    fn refuses_bad_file_headers_truncation_and_emptiness() {
        use UserImageError::*;
        let good = elf(0x40_0010, &[TEXT], 0x100);
        assert_eq!(check(&[]), Err(TooShort { length: 0 }));
        assert_eq!(check(b"\x7fELF"), Err(TooShort { length: 4 }));
        let with = |offset: usize, value: &[u8]| {
            let mut image = good.clone();
            image[offset..offset + value.len()].copy_from_slice(value);
            check(&image)
        };
        assert_eq!(with(0, b"\x7fELG"), Err(NoMagic));
        assert_eq!(with(4, &[1]), Err(NotElf64 { class: 1 }));
        assert_eq!(with(5, &[2]), Err(NotLittleEndian { data: 2 }));
        assert_eq!(
            with(16, &3u16.to_le_bytes()),
            Err(NotExecutable { file_type: 3 })
        );
        assert_eq!(with(18, &3u16.to_le_bytes()), Err(NotX86_64 { machine: 3 }));
        assert_eq!(
            with(54, &64u16.to_le_bytes()),
            Err(ProgramHeaderSize { entry_size: 64 })
        );
        assert_eq!(
            with(32, &u64::MAX.to_le_bytes()),
            Err(ProgramHeadersOutsideImage {
                offset: u64::MAX,
                count: 1
            })
        );
        // Cut inside the program header table.
        assert_eq!(
            check(&good[..100]),
            Err(ProgramHeadersOutsideImage {
                offset: 64,
                count: 1
            })
        );
        // Cut inside the segment's file bytes.
        assert_eq!(
            check(&good[..0x80]),
            Err(FileBytesOutsideImage {
                virtual_address: 0x40_0000,
                file_offset: 0,
                file_size: 0x100
            })
        );
    }

    /// Independent re-check of an accepted image against every rule, reading the raw bytes.
    fn assert_rules_hold(image: &[u8], accepted: &UserImage<4>) {
        let read = |offset: usize, length: usize| -> u64 {
            let mut raw = [0u8; 8];
            raw[..length].copy_from_slice(&image[offset..offset + length]);
            u64::from_le_bytes(raw)
        };
        assert_eq!(&image[..4], b"\x7fELF");
        assert_eq!((image[4], image[5]), (2, 1));
        assert_eq!((read(16, 2), read(18, 2)), (2, 62));
        assert_eq!(read(24, 8), accepted.entry());
        let table = read(32, 8) as usize;
        let count = read(56, 2) as usize;
        let mut loads = Vec::new();
        for index in 0..count {
            let at = table + index * 56;
            let kind = read(at, 4) as u32;
            assert!(![2, 3, 7].contains(&kind), "accepted PT_INTERP/DYNAMIC/TLS");
            if kind == 1 && read(at + 40, 8) > 0 {
                loads.push((
                    read(at + 16, 8),
                    read(at + 8, 8),
                    read(at + 32, 8),
                    read(at + 40, 8),
                    read(at + 4, 4),
                ));
            }
        }
        let segments = accepted.segments();
        assert!(!segments.is_empty() && segments.len() <= 4);
        assert_eq!(segments.len(), loads.len());
        let mut previous_end: Option<u64> = None;
        for (segment, &(address, offset, file_size, memory_size, flags)) in
            segments.iter().zip(&loads)
        {
            assert_eq!(
                (
                    segment.virtual_address,
                    segment.file_offset,
                    segment.file_size,
                    segment.memory_size
                ),
                (address, offset, file_size, memory_size)
            );
            assert_eq!(segment.executable, flags & 1 != 0);
            assert_eq!(segment.writable, flags & 2 != 0);
            assert!(!(segment.writable && segment.executable));
            assert_eq!(address % 4096, 0);
            assert!(address >= USER_IMAGE_BASE);
            assert!(u128::from(address) + u128::from(memory_size) <= u128::from(RING_BASE));
            assert!(file_size <= memory_size);
            assert!(u128::from(offset) + u128::from(file_size) <= image.len() as u128);
            assert!(segment.file_bytes(image).is_some());
            if let Some(end) = previous_end {
                assert!(address >= end.div_ceil(4096) * 4096);
            }
            previous_end = Some(address + memory_size);
        }
        let entry = accepted.entry();
        assert!(segments.iter().any(|segment| segment.executable
            && segment.virtual_address <= entry
            && entry < segment.virtual_address + segment.memory_size));
    }

    /// Program headers drawn near the rules' boundaries, so many images are accepted.
    fn header() -> impl Strategy<Value = Header> {
        let kind = prop_oneof![6 => Just(SEGMENT_LOAD), 1 => Just(SEGMENT_INTERPRETER), 1 => Just(SEGMENT_DYNAMIC), 1 => Just(SEGMENT_THREAD_LOCAL_STORAGE), 1 => Just(6u32)];
        let address = prop_oneof![
            (0x400u64..0x410).prop_map(|page| page * 4096),
            Just(RING_BASE - 0x1000),
            any::<u64>(),
            (0x40_0000u64..0x41_0000),
        ];
        let size = prop_oneof![0u64..0x3000, Just(u64::MAX), any::<u64>()];
        (kind, 0u32..8, address, 0u64..0x200, 0u64..0x200, size)
    }

    /// An image built from headers drawn near the rules' boundaries (mostly refused).
    fn random_header_image() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![0x40_0000u64..0x41_0000, any::<u64>()],
            proptest::collection::vec(header(), 0..6),
            0usize..0x300,
        )
            .prop_map(|(entry, headers, padding)| elf(entry, &headers, padding))
    }

    /// An image every rule accepts: 1 to 4 ascending loaded segments with page gaps, the first
    /// executable and holding the entry, possibly interleaved with ignored headers.
    fn valid_image() -> impl Strategy<Value = Vec<u8>> {
        let segment = (0u64..3, 1u64..0x3000, 0u64..0x100, 0u64..0x100, 0usize..3);
        (
            proptest::collection::vec(segment, 1..5),
            any::<u64>(),
            any::<bool>(),
        )
            .prop_map(|(segments, entry_choice, with_note)| {
                let mut headers = Vec::new();
                let mut address = USER_IMAGE_BASE;
                let mut entry = 0;
                for (index, &(gap_pages, memory_size, offset, file_size, kind)) in
                    segments.iter().enumerate()
                {
                    address += gap_pages * 4096;
                    let flags = if index == 0 {
                        R | X
                    } else {
                        [R, R | X, R | W][kind]
                    };
                    if index == 0 {
                        entry = address + entry_choice % memory_size;
                    }
                    headers.push((
                        SEGMENT_LOAD,
                        flags,
                        address,
                        offset,
                        file_size.min(memory_size),
                        memory_size,
                    ));
                    address = (address + memory_size).div_ceil(4096) * 4096;
                }
                if with_note {
                    headers.insert(0, bss(4, R, 0, 0x10));
                }
                elf(entry, &headers, 0x200)
            })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(image in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(accepted) = check_user_image::<4>(&image) {
                assert_rules_hold(&image, &accepted);
            }
        }

        #[test]
        fn generated_and_mutated_images_obey_every_rule(
            image in prop_oneof![valid_image(), random_header_image()],
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            truncate in proptest::bool::weighted(0.2),
        ) {
            let mut image = image;
            let length = image.len();
            for (position, value) in mutations {
                image[position % length] = value;
            }
            if truncate {
                image.truncate(cut % (length + 1));
            }
            if let Ok(accepted) = check_user_image::<4>(&image) {
                assert_rules_hold(&image, &accepted);
            }
        }

        #[test]
        fn generated_valid_images_are_accepted(image in valid_image()) {
            let accepted = check_user_image::<4>(&image);
            prop_assert!(accepted.is_ok(), "{:?}", accepted);
            assert_rules_hold(&image, &accepted.unwrap());
        }
    }
}
