//! Bitmap physical frame allocator over caller-provided storage.
//!
//! Invariants:
//! - One bit per frame; a set bit means the frame is free. Frame `i` lives at
//!   `base + i * PAGE_SIZE`, and `base` is page aligned.
//! - Bits past `total_frames` in the last storage word are never set, so word scans never
//!   return an untracked frame.
//! - `free_frames` always equals the number of set bits; every mutation adjusts it by exactly
//!   the number of bits it flipped.
//! - The tracked span `[base, base + total_frames * PAGE_SIZE)` fits in `u64` without overflow.
//! - A frame is handed out only while its bit is set and its bit is cleared before returning,
//!   so no frame is handed out twice without an intervening `free`.

use core::fmt;

use crate::memmap::{page_align_down, page_align_up, PhysRange, PAGE_SIZE};

/// Frames tracked by one storage word.
const FRAMES_PER_WORD: u64 = u64::BITS as u64;

/// Why a frame allocator operation was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum FrameError {
    /// The address is not page aligned.
    Unaligned(u64),
    /// The address lies outside the tracked span (or the span itself does not fit in `u64`).
    OutOfRange(u64),
    /// The frame at this address is already free.
    DoubleFree(u64),
    /// The caller's storage cannot hold the bitmap.
    StorageTooSmall {
        /// Words the bitmap needs.
        needed_words: usize,
        /// Words the caller provided.
        have_words: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned(address) => {
                write!(formatter, "frame address {address:#x} is not page aligned")
            }
            Self::OutOfRange(address) => {
                write!(
                    formatter,
                    "frame address {address:#x} is outside the tracked memory"
                )
            }
            Self::DoubleFree(address) => write!(formatter, "frame {address:#x} is already free"),
            Self::StorageTooSmall {
                needed_words,
                have_words,
            } => write!(
                formatter,
                "frame bitmap needs {needed_words} words but only {have_words} were provided"
            ),
        }
    }
}

/// A bitmap physical frame allocator; a set bit marks a free frame.
pub struct FrameBitmap<'a> {
    /// Exactly `words_for(frames)` words of caller storage.
    words: &'a mut [u64],
    /// Physical address of frame 0.
    base: u64,
    /// Number of frames tracked.
    frames: u64,
    /// Number of set bits.
    free: u64,
    /// Word index where the next single-frame search starts.
    hint: usize,
}

impl fmt::Debug for FrameBitmap<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FrameBitmap")
            .field("span", &self.span())
            .field("total_frames", &self.frames)
            .field("free_frames", &self.free)
            .finish_non_exhaustive()
    }
}

impl<'a> FrameBitmap<'a> {
    /// Words needed to track `frames` frames (saturating at `usize::MAX`).
    pub const fn words_for(frames: u64) -> usize {
        let words = frames / FRAMES_PER_WORD + !frames.is_multiple_of(FRAMES_PER_WORD) as u64;
        if words > usize::MAX as u64 {
            usize::MAX
        } else {
            words as usize
        }
    }

    /// All frames start as used. `base` = physical address of frame 0 (page aligned), `frames`
    /// frames tracked.
    ///
    /// Fails with `Unaligned(base)` for an unaligned base, `OutOfRange(base)` when the span
    /// would pass the top of the address space, and `StorageTooSmall` when `storage` is short.
    /// Only the first `words_for(frames)` words of `storage` are used.
    pub fn new(storage: &'a mut [u64], base: u64, frames: u64) -> Result<Self, FrameError> {
        if !base.is_multiple_of(PAGE_SIZE) {
            return Err(FrameError::Unaligned(base));
        }
        let fits = frames
            .checked_mul(PAGE_SIZE)
            .and_then(|length| base.checked_add(length))
            .is_some();
        if !fits {
            return Err(FrameError::OutOfRange(base));
        }
        let needed_words = Self::words_for(frames);
        let have_words = storage.len();
        let words = storage
            .get_mut(..needed_words)
            .ok_or(FrameError::StorageTooSmall {
                needed_words,
                have_words,
            })?;
        words.fill(0);
        Ok(Self {
            words,
            base,
            frames,
            free: 0,
            hint: 0,
        })
    }

    /// Mark every whole page inside range free (clipped to the tracked span). Returns frames
    /// newly freed.
    pub fn add_free_range(&mut self, range: PhysRange) -> u64 {
        let Some(clipped) = self.clip(range) else {
            return 0;
        };
        let Some(first) = page_align_up(clipped.start) else {
            return 0;
        };
        let end = page_align_down(clipped.end);
        if first >= end {
            return 0;
        }
        self.update_frames(self.index_of(first), self.index_of(end), true)
    }

    /// Mark a range used (e.g. where the bitmap storage itself lives). Every frame the range
    /// touches is reserved (clipped to the tracked span). Returns frames newly reserved.
    pub fn reserve_range(&mut self, range: PhysRange) -> u64 {
        let Some(clipped) = self.clip(range) else {
            return 0;
        };
        let first = page_align_down(clipped.start);
        let end = page_align_up(clipped.end).unwrap_or(self.span_end());
        self.update_frames(self.index_of(first), self.index_of(end), false)
    }

    /// One free frame (next-fit search from a hint), marked used; None when exhausted.
    pub fn allocate(&mut self) -> Option<u64> {
        let word_count = self.words.len();
        let hint = self.hint.min(word_count);
        let word_index = (hint..word_count)
            .chain(0..hint)
            .find(|&index| self.words.get(index).is_some_and(|&word| word != 0))?;
        let word = self.words.get_mut(word_index)?;
        let bit = u64::from(word.trailing_zeros());
        *word &= !(1u64 << bit);
        self.free -= 1;
        self.hint = word_index;
        let index = word_index as u64 * FRAMES_PER_WORD + bit;
        Some(self.address_of(index))
    }

    /// `count` contiguous frames whose first address is aligned to `align` (power of two, >=
    /// PAGE_SIZE) and whose whole span ends at or below `limit`; None if impossible.
    ///
    /// Also `None` for `count == 0` or an invalid `align`. The lowest fitting run is chosen.
    pub fn allocate_contiguous(&mut self, count: u64, align: u64, limit: u64) -> Option<u64> {
        if count == 0 || !align.is_power_of_two() || align < PAGE_SIZE {
            return None;
        }
        let length = count.checked_mul(PAGE_SIZE)?;
        let ceiling = limit.min(self.span_end());
        let mut candidate = align_up_to(self.base, align)?;
        loop {
            if candidate.checked_add(length)? > ceiling {
                return None;
            }
            let first = self.index_of(candidate);
            match self.first_used(first, first + count) {
                None => {
                    self.update_frames(first, first + count, false);
                    return Some(candidate);
                }
                Some(used) => {
                    let next_free = self.first_free(used + 1)?;
                    candidate = align_up_to(self.address_of(next_free), align)?;
                }
            }
        }
    }

    /// Return the frame at `address` to the free pool.
    pub fn free(&mut self, address: u64) -> Result<(), FrameError> {
        if !address.is_multiple_of(PAGE_SIZE) {
            return Err(FrameError::Unaligned(address));
        }
        if !self.span().contains(address) {
            return Err(FrameError::OutOfRange(address));
        }
        let index = self.index_of(address);
        if self.is_free_index(index) {
            return Err(FrameError::DoubleFree(address));
        }
        self.update_frames(index, index + 1, true);
        Ok(())
    }

    /// Number of free frames (kept as a counter, O(1)).
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Number of frames tracked, free or used.
    pub fn total_frames(&self) -> u64 {
        self.frames
    }

    /// The physical span tracked by the bitmap.
    pub fn span(&self) -> PhysRange {
        PhysRange::new(self.base, self.span_end())
    }

    /// Whether the frame containing `address` is tracked and free.
    pub fn is_free(&self, address: u64) -> bool {
        self.span().contains(address) && self.is_free_index(self.index_of(address))
    }

    /// First address past the tracked span (cannot overflow, checked in `new`).
    fn span_end(&self) -> u64 {
        self.base + self.frames * PAGE_SIZE
    }

    /// `range` clipped to the tracked span, or `None` when nothing of it remains.
    fn clip(&self, range: PhysRange) -> Option<PhysRange> {
        let span = self.span();
        let clipped = PhysRange::new(range.start.max(span.start), range.end.min(span.end));
        (!clipped.is_empty()).then_some(clipped)
    }

    /// Frame index of a tracked address (rounds down inside a frame).
    fn index_of(&self, address: u64) -> u64 {
        (address - self.base) / PAGE_SIZE
    }

    /// Physical address of frame `index`.
    fn address_of(&self, index: u64) -> u64 {
        self.base + index * PAGE_SIZE
    }

    /// Whether frame `index` is marked free.
    fn is_free_index(&self, index: u64) -> bool {
        let (word_index, bit) = split_index(index);
        self.words
            .get(word_index)
            .is_some_and(|word| word & (1u64 << bit) != 0)
    }

    /// Set (`make_free`) or clear the bits of frames `[first, end)`; returns bits flipped.
    fn update_frames(&mut self, first: u64, end: u64, make_free: bool) -> u64 {
        let end = end.min(self.frames);
        let mut changed = 0;
        let mut index = first;
        while index < end {
            let (word_index, bit) = split_index(index);
            let span = (FRAMES_PER_WORD - bit).min(end - index);
            let Some(word) = self.words.get_mut(word_index) else {
                break;
            };
            let before = *word;
            let mask = bit_mask(bit, span);
            *word = if make_free {
                before | mask
            } else {
                before & !mask
            };
            changed += u64::from((before ^ *word).count_ones());
            index += span;
        }
        if make_free {
            self.free += changed;
        } else {
            self.free -= changed;
        }
        changed
    }

    /// Index of the first free frame at or after `first`, or `None` if there is none.
    fn first_free(&self, first: u64) -> Option<u64> {
        let (start_word, bit) = split_index(first);
        let partial = self.words.get(start_word)? & !bit_mask(0, bit);
        if partial != 0 {
            return Some(start_word as u64 * FRAMES_PER_WORD + u64::from(partial.trailing_zeros()));
        }
        let (offset, word) = self
            .words
            .get(start_word + 1..)?
            .iter()
            .enumerate()
            .find(|(_, &word)| word != 0)?;
        let word_index = (start_word + 1 + offset) as u64;
        Some(word_index * FRAMES_PER_WORD + u64::from(word.trailing_zeros()))
    }

    /// Index of the first used frame in `[first, end)`, or `None` if all are free.
    fn first_used(&self, first: u64, end: u64) -> Option<u64> {
        let mut index = first;
        while index < end {
            let (word_index, bit) = split_index(index);
            let span = (FRAMES_PER_WORD - bit).min(end - index);
            let word = self.words.get(word_index).copied().unwrap_or(0);
            let used = !word & bit_mask(bit, span);
            if used != 0 {
                return Some(
                    word_index as u64 * FRAMES_PER_WORD + u64::from(used.trailing_zeros()),
                );
            }
            index += span;
        }
        None
    }
}

/// Split a frame index into its storage word and bit position.
fn split_index(index: u64) -> (usize, u64) {
    let word_index = usize::try_from(index / FRAMES_PER_WORD).unwrap_or(usize::MAX);
    (word_index, index % FRAMES_PER_WORD)
}

/// A mask of `span` bits starting at `bit` (`bit + span <= 64`).
fn bit_mask(bit: u64, span: u64) -> u64 {
    if span >= FRAMES_PER_WORD {
        u64::MAX
    } else {
        ((1u64 << span) - 1) << bit
    }
}

/// Round `address` up to a multiple of the power of two `align`, or `None` on overflow.
fn align_up_to(address: u64, align: u64) -> Option<u64> {
    address
        .checked_add(align - 1)
        .map(|bumped| bumped & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const PAGE: u64 = PAGE_SIZE;

    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    #[test]
    fn words_for_rounds_up() {
        assert_eq!(FrameBitmap::words_for(0), 0);
        assert_eq!(FrameBitmap::words_for(1), 1);
        assert_eq!(FrameBitmap::words_for(64), 1);
        assert_eq!(FrameBitmap::words_for(65), 2);
        assert_eq!(
            FrameBitmap::words_for(u64::MAX),
            (u64::MAX / 64 + 1) as usize
        );
    }

    #[test]
    fn new_validates_arguments() {
        let mut storage = [0u64; 2];
        assert_eq!(
            FrameBitmap::new(&mut storage, 0x1001, 8).unwrap_err(),
            FrameError::Unaligned(0x1001)
        );
        assert_eq!(
            FrameBitmap::new(&mut storage, 0x1000, 129).unwrap_err(),
            FrameError::StorageTooSmall {
                needed_words: 3,
                have_words: 2
            }
        );
        assert_eq!(
            FrameBitmap::new(&mut storage, page_align_down(u64::MAX), 2).unwrap_err(),
            FrameError::OutOfRange(page_align_down(u64::MAX))
        );
        assert_eq!(
            FrameBitmap::new(&mut storage, 0, u64::MAX).unwrap_err(),
            FrameError::OutOfRange(0)
        );
    }

    #[test]
    fn new_starts_all_used_even_with_dirty_storage() {
        let mut storage = [u64::MAX; 2];
        let mut bitmap = FrameBitmap::new(&mut storage, 0x10_0000, 100).unwrap();
        assert_eq!(bitmap.free_frames(), 0);
        assert_eq!(bitmap.total_frames(), 100);
        assert_eq!(bitmap.allocate(), None);
        assert!(format!("{bitmap:?}").contains("free_frames: 0"));
    }

    #[test]
    fn add_free_range_takes_whole_pages_and_clips() {
        let mut storage = [0u64; 2];
        let base = 0x10_0000;
        let mut bitmap = FrameBitmap::new(&mut storage, base, 100).unwrap();
        assert_eq!(bitmap.add_free_range(range(base + 0x800, base + 0x3800)), 2);
        assert!(!bitmap.is_free(base));
        assert!(bitmap.is_free(base + PAGE));
        assert!(bitmap.is_free(base + 2 * PAGE));
        assert!(!bitmap.is_free(base + 3 * PAGE));
        // Re-adding is idempotent.
        assert_eq!(bitmap.add_free_range(range(base, base + 0x3000)), 1);
        // Clipped to the span on both sides.
        assert_eq!(bitmap.add_free_range(range(0, u64::MAX)), 97);
        assert_eq!(bitmap.free_frames(), 100);
        assert_eq!(bitmap.add_free_range(range(0, base)), 0);
        assert_eq!(bitmap.add_free_range(range(base + 200 * PAGE, u64::MAX)), 0);
    }

    #[test]
    fn reserve_range_widens_to_pages() {
        let mut storage = [0u64; 1];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 16).unwrap();
        bitmap.add_free_range(range(0, 16 * PAGE));
        assert_eq!(bitmap.reserve_range(range(PAGE + 1, 2 * PAGE + 1)), 2);
        assert_eq!(bitmap.reserve_range(range(PAGE, 2 * PAGE)), 0);
        assert_eq!(bitmap.reserve_range(range(15 * PAGE, u64::MAX)), 1);
        assert_eq!(bitmap.free_frames(), 13);
        assert!(!bitmap.is_free(PAGE));
        assert!(!bitmap.is_free(2 * PAGE));
        assert!(bitmap.is_free(3 * PAGE));
        assert_eq!(bitmap.reserve_range(range(5 * PAGE, 5 * PAGE)), 0);
    }

    #[test]
    fn allocate_until_exhausted_then_reuse() {
        let mut storage = [0u64; 2];
        let base = 0x20_0000;
        let mut bitmap = FrameBitmap::new(&mut storage, base, 70).unwrap();
        bitmap.add_free_range(range(base, base + 70 * PAGE));
        let mut seen = HashSet::new();
        while let Some(frame) = bitmap.allocate() {
            assert_eq!(frame % PAGE, 0);
            assert!(frame >= base && frame < base + 70 * PAGE);
            assert!(seen.insert(frame));
        }
        assert_eq!(seen.len(), 70);
        assert_eq!(bitmap.free_frames(), 0);
        bitmap.free(base + 3 * PAGE).unwrap();
        assert_eq!(bitmap.allocate(), Some(base + 3 * PAGE));
        assert_eq!(bitmap.allocate(), None);
    }

    #[test]
    fn allocate_is_next_fit() {
        let mut storage = [0u64; 2];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 128).unwrap();
        bitmap.add_free_range(range(0, 128 * PAGE));
        bitmap.reserve_range(range(0, 64 * PAGE));
        assert_eq!(bitmap.allocate(), Some(64 * PAGE));
        bitmap.add_free_range(range(0, PAGE));
        // The hint stays in the second word even though frame 0 is now free.
        assert_eq!(bitmap.allocate(), Some(65 * PAGE));
    }

    #[test]
    fn free_rejects_bad_addresses() {
        let mut storage = [0u64; 1];
        let base = 0x1000;
        let mut bitmap = FrameBitmap::new(&mut storage, base, 4).unwrap();
        bitmap.add_free_range(range(base, base + 4 * PAGE));
        let frame = bitmap.allocate().unwrap();
        assert_eq!(
            bitmap.free(frame + 8),
            Err(FrameError::Unaligned(frame + 8))
        );
        assert_eq!(bitmap.free(0), Err(FrameError::OutOfRange(0)));
        assert_eq!(
            bitmap.free(base + 4 * PAGE),
            Err(FrameError::OutOfRange(base + 4 * PAGE))
        );
        assert_eq!(bitmap.free(frame), Ok(()));
        assert_eq!(bitmap.free(frame), Err(FrameError::DoubleFree(frame)));
        assert_eq!(bitmap.free_frames(), 4);
    }

    #[test]
    fn contiguous_respects_alignment() {
        let mut storage = [0u64; 4];
        let base = 0x1000;
        let mut bitmap = FrameBitmap::new(&mut storage, base, 200).unwrap();
        bitmap.add_free_range(range(base, base + 200 * PAGE));
        let first = bitmap.allocate_contiguous(4, 0x10_000, u64::MAX).unwrap();
        assert_eq!(first, 0x10_000);
        for frame in 0..4 {
            assert!(!bitmap.is_free(first + frame * PAGE));
        }
        let second = bitmap.allocate_contiguous(3, 0x10_000, u64::MAX).unwrap();
        assert_eq!(second, 0x20_000);
        assert_eq!(bitmap.free_frames(), 193);
        // Page alignment picks the lowest free run.
        assert_eq!(bitmap.allocate_contiguous(2, PAGE, u64::MAX), Some(base));
    }

    #[test]
    fn contiguous_skips_used_frames() {
        let mut storage = [0u64; 2];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 128).unwrap();
        bitmap.add_free_range(range(0, 128 * PAGE));
        bitmap.reserve_range(range(2 * PAGE, 3 * PAGE));
        bitmap.reserve_range(range(70 * PAGE, 71 * PAGE));
        assert_eq!(bitmap.allocate_contiguous(68, PAGE, u64::MAX), None);
        assert_eq!(
            bitmap.allocate_contiguous(67, PAGE, u64::MAX),
            Some(3 * PAGE)
        );
        assert_eq!(bitmap.allocate_contiguous(58, PAGE, u64::MAX), None);
        assert_eq!(
            bitmap.allocate_contiguous(57, PAGE, u64::MAX),
            Some(71 * PAGE)
        );
        assert_eq!(bitmap.allocate_contiguous(2, PAGE, u64::MAX), Some(0));
        assert_eq!(bitmap.free_frames(), 0);
    }

    #[test]
    fn contiguous_skips_long_used_stretches() {
        let mut storage = [0u64; 16];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 1024).unwrap();
        bitmap.add_free_range(range(5 * PAGE, 6 * PAGE));
        bitmap.add_free_range(range(1014 * PAGE, 1024 * PAGE));
        assert_eq!(bitmap.allocate_contiguous(11, PAGE, u64::MAX), None);
        assert_eq!(
            bitmap.allocate_contiguous(4, 8 * PAGE, u64::MAX),
            Some(1016 * PAGE)
        );
        assert_eq!(
            bitmap.allocate_contiguous(2, PAGE, u64::MAX),
            Some(1014 * PAGE)
        );
        assert_eq!(
            bitmap.allocate_contiguous(4, PAGE, u64::MAX),
            Some(1020 * PAGE)
        );
        assert_eq!(
            bitmap.allocate_contiguous(1, PAGE, u64::MAX),
            Some(5 * PAGE)
        );
        assert_eq!(bitmap.free_frames(), 0);
    }

    #[test]
    fn contiguous_respects_limit() {
        let mut storage = [0u64; 1];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 32).unwrap();
        bitmap.add_free_range(range(0, 32 * PAGE));
        bitmap.reserve_range(range(0, 4 * PAGE));
        assert_eq!(bitmap.allocate_contiguous(4, PAGE, 7 * PAGE), None);
        assert_eq!(
            bitmap.allocate_contiguous(4, PAGE, 8 * PAGE),
            Some(4 * PAGE)
        );
        assert_eq!(bitmap.allocate_contiguous(1, PAGE, 8 * PAGE), None);
        assert_eq!(bitmap.allocate_contiguous(1, PAGE, 0), None);
        assert_eq!(bitmap.allocate_contiguous(25, PAGE, u64::MAX), None);
        assert_eq!(
            bitmap.allocate_contiguous(24, PAGE, u64::MAX),
            Some(8 * PAGE)
        );
        assert_eq!(bitmap.free_frames(), 0);
    }

    #[test]
    fn contiguous_rejects_bad_arguments() {
        let mut storage = [0u64; 1];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 32).unwrap();
        bitmap.add_free_range(range(0, 32 * PAGE));
        assert_eq!(bitmap.allocate_contiguous(0, PAGE, u64::MAX), None);
        assert_eq!(bitmap.allocate_contiguous(1, 0, u64::MAX), None);
        assert_eq!(bitmap.allocate_contiguous(1, 0x3000, u64::MAX), None);
        assert_eq!(bitmap.allocate_contiguous(1, 0x800, u64::MAX), None);
        assert_eq!(bitmap.allocate_contiguous(u64::MAX, PAGE, u64::MAX), None);
        assert_eq!(bitmap.allocate_contiguous(1, 1 << 63, u64::MAX), Some(0));
        assert_eq!(bitmap.allocate_contiguous(1, 1 << 63, u64::MAX), None);
        assert_eq!(bitmap.free_frames(), 31);
    }

    #[test]
    fn empty_bitmap_is_harmless() {
        let mut storage: [u64; 0] = [];
        let mut bitmap = FrameBitmap::new(&mut storage, 0, 0).unwrap();
        assert_eq!(bitmap.add_free_range(range(0, u64::MAX)), 0);
        assert_eq!(bitmap.allocate(), None);
        assert_eq!(bitmap.allocate_contiguous(1, PAGE, u64::MAX), None);
        assert_eq!(bitmap.free(0), Err(FrameError::OutOfRange(0)));
    }

    #[test]
    fn display_messages() {
        let messages = [
            FrameError::Unaligned(1).to_string(),
            FrameError::OutOfRange(2).to_string(),
            FrameError::DoubleFree(3).to_string(),
            FrameError::StorageTooSmall {
                needed_words: 4,
                have_words: 5,
            }
            .to_string(),
        ];
        assert!(messages.iter().all(|message| !message.is_empty()));
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Allocate,
        AllocateContiguous {
            count: u64,
            align_shift: u32,
            limit_frames: u64,
        },
        FreeAllocated(usize),
        FreeArbitrary(u64),
        AddFree(u64, u64),
        Reserve(u64, u64),
    }

    fn operation(frames: u64) -> impl Strategy<Value = Operation> {
        let span = frames * PAGE;
        prop_oneof![
            4 => Just(Operation::Allocate),
            2 => (1..8u64, 0..4u32, 0..frames + 4).prop_map(|(count, align_shift, limit_frames)| {
                Operation::AllocateContiguous { count, align_shift, limit_frames }
            }),
            3 => any::<usize>().prop_map(Operation::FreeAllocated),
            1 => (0..span + 2 * PAGE).prop_map(Operation::FreeArbitrary),
            1 => (0..span, 0..span).prop_map(|(a, b)| Operation::AddFree(a.min(b), a.max(b))),
            1 => (0..span, 0..span).prop_map(|(a, b)| Operation::Reserve(a.min(b), a.max(b))),
        ]
    }

    /// Frames `[first, end)` as indices into the model for a byte range, rounded inward or outward.
    fn model_indices(start: u64, end: u64, inward: bool, base: u64) -> std::ops::Range<u64> {
        let (first, last) = if inward {
            (page_align_up(start).unwrap(), page_align_down(end))
        } else {
            (page_align_down(start), page_align_up(end).unwrap())
        };
        if first >= last {
            return 0..0;
        }
        (first - base) / PAGE..(last - base) / PAGE
    }

    fn scenario() -> impl Strategy<Value = (u64, Vec<Operation>)> {
        (1..200u64).prop_flat_map(|frames| {
            (
                Just(frames),
                prop::collection::vec(operation(frames), 0..120),
            )
        })
    }

    proptest! {
        #[test]
        fn allocator_matches_model((frames, operations) in scenario()) {
            let base = 0;
            let mut storage = vec![0u64; FrameBitmap::words_for(frames)];
            let mut bitmap = FrameBitmap::new(&mut storage, base, frames).unwrap();
            let mut model_free = vec![false; frames as usize];
            let mut allocated: Vec<u64> = Vec::new();
            let mut handed_out: HashSet<u64> = HashSet::new();
            bitmap.add_free_range(range(base, base + frames * PAGE / 2));
            for free in model_free.iter_mut().take((frames / 2) as usize) {
                *free = true;
            }
            for operation in operations {
                match operation {
                    Operation::Allocate => {
                        let any_free = model_free.iter().any(|&free| free);
                        match bitmap.allocate() {
                            Some(frame) => {
                                let index = ((frame - base) / PAGE) as usize;
                                prop_assert!(model_free[index], "allocated a used frame");
                                prop_assert!(handed_out.insert(frame), "frame handed out twice");
                                model_free[index] = false;
                                allocated.push(frame);
                            }
                            None => prop_assert!(!any_free, "exhausted while frames were free"),
                        }
                    }
                    Operation::AllocateContiguous { count, align_shift, limit_frames } => {
                        let align = PAGE << align_shift;
                        let limit = base + limit_frames * PAGE;
                        let expected = (0..frames)
                            .filter(|first| (base + first * PAGE).is_multiple_of(align))
                            .filter(|first| base + (first + count) * PAGE <= limit)
                            .filter(|first| first + count <= frames)
                            .find(|&first| (first..first + count).all(|i| model_free[i as usize]));
                        let got = bitmap.allocate_contiguous(count, align, limit);
                        prop_assert_eq!(got, expected.map(|first| base + first * PAGE));
                        if let Some(first) = got {
                            for index in 0..count {
                                let frame = first + index * PAGE;
                                prop_assert!(handed_out.insert(frame), "frame handed out twice");
                                model_free[((frame - base) / PAGE) as usize] = false;
                                allocated.push(frame);
                            }
                        }
                    }
                    Operation::FreeAllocated(choice) => {
                        if !allocated.is_empty() {
                            let frame = allocated.swap_remove(choice % allocated.len());
                            let index = ((frame - base) / PAGE) as usize;
                            prop_assert_eq!(bitmap.free(frame), Ok(()));
                            model_free[index] = true;
                            handed_out.remove(&frame);
                        }
                    }
                    Operation::FreeArbitrary(address) => {
                        let result = bitmap.free(address);
                        if !address.is_multiple_of(PAGE) {
                            prop_assert_eq!(result, Err(FrameError::Unaligned(address)));
                        } else if address >= base + frames * PAGE {
                            prop_assert_eq!(result, Err(FrameError::OutOfRange(address)));
                        } else if model_free[((address - base) / PAGE) as usize] {
                            prop_assert_eq!(result, Err(FrameError::DoubleFree(address)));
                        } else {
                            prop_assert_eq!(result, Ok(()));
                            model_free[((address - base) / PAGE) as usize] = true;
                            allocated.retain(|&frame| frame != address);
                            handed_out.remove(&address);
                        }
                    }
                    Operation::AddFree(start, end) => {
                        let indices = model_indices(start, end, true, base);
                        let expected = indices.clone().filter(|&i| !model_free[i as usize]).count() as u64;
                        prop_assert_eq!(bitmap.add_free_range(range(start, end)), expected);
                        for index in indices {
                            model_free[index as usize] = true;
                            let frame = base + index * PAGE;
                            allocated.retain(|&f| f != frame);
                            handed_out.remove(&frame);
                        }
                    }
                    Operation::Reserve(start, end) => {
                        let indices = if start == end { 0..0 } else { model_indices(start, end, false, base) };
                        let expected = indices.clone().filter(|&i| model_free[i as usize]).count() as u64;
                        prop_assert_eq!(bitmap.reserve_range(range(start, end)), expected);
                        for index in indices {
                            model_free[index as usize] = false;
                        }
                    }
                }
                let model_count = model_free.iter().filter(|&&free| free).count() as u64;
                prop_assert_eq!(bitmap.free_frames(), model_count);
                prop_assert_eq!(bitmap.total_frames(), frames);
            }
            for (index, &free) in model_free.iter().enumerate() {
                prop_assert_eq!(bitmap.is_free(base + index as u64 * PAGE), free);
            }
        }
    }
}
