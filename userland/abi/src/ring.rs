//! Capability ring layout: one per thread, two pages of shared memory.
//!
//! Page 0 holds the [`RingHeader`] (offset 0) and the completion queue
//! (offset [`CQ_OFFSET`]); page 1 holds the submission queue. Indices are
//! free-running `u32` counters; the slot of index `i` is `i % entries`.
//! User space produces submissions (advances `sq_tail`) and consumes
//! completions (advances `cq_head`); the kernel does the opposite. Both sides
//! access the four indices with acquire/release atomics.
//!
//! Back-pressure instead of loss: the kernel consumes a submission only while
//! the completion queue has room for its completion (counting operations
//! still in flight), so a full CQ leaves submissions queued, never dropped.

/// Pages in a ring mapping.
pub const RING_PAGES: u64 = 2;
/// Submission-queue entries (power of two).
pub const SQ_ENTRIES: u32 = 64;
/// Completion-queue entries (power of two).
pub const CQ_ENTRIES: u32 = 64;
/// Byte offset of the completion queue.
pub const CQ_OFFSET: usize = 64;
/// Byte offset of the submission queue.
pub const SQ_OFFSET: usize = 4096;

/// Byte offsets of the header fields (each a `u32`).
pub mod header {
    pub const SQ_HEAD: usize = 0;
    pub const SQ_TAIL: usize = 4;
    pub const CQ_HEAD: usize = 8;
    pub const CQ_TAIL: usize = 12;
    pub const SQ_ENTRIES: usize = 16;
    pub const CQ_ENTRIES: usize = 20;
}

/// The ring header as laid out in memory (for documentation and host tests;
/// live code accesses the fields atomically through the offsets above).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingHeader {
    pub sq_head: u32,
    pub sq_tail: u32,
    pub cq_head: u32,
    pub cq_tail: u32,
    pub sq_entries: u32,
    pub cq_entries: u32,
    pub reserved: [u32; 2],
}

/// One request: 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Submission {
    /// An [`crate::Opcode`] number.
    pub opcode: u16,
    /// Must be 0 (reserved).
    pub flags: u16,
    /// A [`crate::CapabilityHandle`] value (ignored by `Nop`).
    pub capability: u32,
    /// Copied to the completion untouched.
    pub user_data: u64,
    /// Operation arguments.
    pub arguments: [u64; 6],
}

/// One answer: 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// The submission's `user_data`.
    pub user_data: u64,
    /// Non-negative on success, `-(Error)` on failure.
    pub result: i64,
    /// Operation-specific second value.
    pub value: u64,
    /// Operation-specific third value.
    pub extra: u32,
    /// Reserved, 0.
    pub flags: u32,
}

/// Size of a submission in bytes.
pub const SUBMISSION_SIZE: usize = 64;
/// Size of a completion in bytes.
pub const COMPLETION_SIZE: usize = 32;
const _: () = assert!(core::mem::size_of::<Submission>() == SUBMISSION_SIZE);
const _: () = assert!(core::mem::size_of::<Completion>() == COMPLETION_SIZE);
const _: () = assert!(core::mem::size_of::<RingHeader>() <= CQ_OFFSET);
const _: () = assert!(CQ_OFFSET + CQ_ENTRIES as usize * COMPLETION_SIZE <= SQ_OFFSET);
const _: () = assert!(SQ_OFFSET + SQ_ENTRIES as usize * SUBMISSION_SIZE <= 2 * 4096);

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

impl Submission {
    /// Decode from the little-endian memory image.
    pub fn from_bytes(bytes: &[u8; SUBMISSION_SIZE]) -> Self {
        let mut arguments = [0u64; 6];
        for (index, argument) in arguments.iter_mut().enumerate() {
            *argument = u64_at(bytes, 16 + 8 * index);
        }
        Self {
            opcode: u16_at(bytes, 0),
            flags: u16_at(bytes, 2),
            capability: u32_at(bytes, 4),
            user_data: u64_at(bytes, 8),
            arguments,
        }
    }

    /// Encode to the little-endian memory image.
    pub fn to_bytes(&self) -> [u8; SUBMISSION_SIZE] {
        let mut bytes = [0u8; SUBMISSION_SIZE];
        bytes[0..2].copy_from_slice(&self.opcode.to_le_bytes());
        bytes[2..4].copy_from_slice(&self.flags.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.capability.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.user_data.to_le_bytes());
        for (index, argument) in self.arguments.iter().enumerate() {
            bytes[16 + 8 * index..24 + 8 * index].copy_from_slice(&argument.to_le_bytes());
        }
        bytes
    }
}

impl Completion {
    /// Decode from the little-endian memory image.
    pub fn from_bytes(bytes: &[u8; COMPLETION_SIZE]) -> Self {
        Self {
            user_data: u64_at(bytes, 0),
            result: u64_at(bytes, 8) as i64,
            value: u64_at(bytes, 16),
            extra: u32_at(bytes, 24),
            flags: u32_at(bytes, 28),
        }
    }

    /// Encode to the little-endian memory image.
    #[inline]
    pub fn to_bytes(&self) -> [u8; COMPLETION_SIZE] {
        let mut bytes = [0u8; COMPLETION_SIZE];
        bytes[0..8].copy_from_slice(&self.user_data.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.result.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.value.to_le_bytes());
        bytes[24..28].copy_from_slice(&self.extra.to_le_bytes());
        bytes[28..32].copy_from_slice(&self.flags.to_le_bytes());
        bytes
    }
}

/// Byte offset of submission slot for index `index`.
pub const fn submission_offset(index: u32) -> usize {
    SQ_OFFSET + (index % SQ_ENTRIES) as usize * SUBMISSION_SIZE
}

/// Byte offset of completion slot for index `index`.
pub const fn completion_offset(index: u32) -> usize {
    CQ_OFFSET + (index % CQ_ENTRIES) as usize * COMPLETION_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_round_trips() {
        let submission = Submission {
            opcode: 4,
            flags: 0,
            capability: 0x0003_0002,
            user_data: 0xDEAD_BEEF,
            arguments: [1, 2, 3, 4, 5, u64::MAX],
        };
        assert_eq!(Submission::from_bytes(&submission.to_bytes()), submission);
    }

    #[test]
    fn completion_round_trips_negative_results() {
        let completion = Completion {
            user_data: 7,
            result: crate::Error::BadAddress.as_result(),
            value: 9,
            extra: u32::MAX,
            flags: 0,
        };
        assert_eq!(Completion::from_bytes(&completion.to_bytes()), completion);
    }

    #[test]
    fn slots_wrap() {
        assert_eq!(submission_offset(SQ_ENTRIES), SQ_OFFSET);
        assert_eq!(
            completion_offset(CQ_ENTRIES + 1),
            CQ_OFFSET + COMPLETION_SIZE
        );
    }
}
