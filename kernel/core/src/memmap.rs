//! Physical memory map arithmetic: turns firmware ranges into sorted, page-aligned usable RAM.
//!
//! Invariants:
//! - [`PhysRange`] is half-open, `[start, end)`; a range with `start >= end` holds no bytes.
//! - [`usable_ranges`] output is sorted ascending, pairwise disjoint and non-adjacent, page
//!   aligned at both ends and never empty.
//! - Every output byte lies in the union of the `available` ranges and in no `reserved` range;
//!   a page that is only partly reserved is not usable.
//! - Every whole page that lies in the union of `available` and touches no `reserved` byte is
//!   covered by the output.
//! - Nothing panics or allocates; inverted ranges and too-small output buffers are errors.

use core::fmt;

/// Size of a physical page frame in bytes.
pub const PAGE_SIZE: u64 = 4096;

/// Round `address` down to a page boundary.
pub const fn page_align_down(address: u64) -> u64 {
    address & !(PAGE_SIZE - 1)
}

/// Round `address` up to a page boundary, or `None` if that would pass `u64::MAX`.
pub const fn page_align_up(address: u64) -> Option<u64> {
    match address.checked_add(PAGE_SIZE - 1) {
        Some(bumped) => Some(page_align_down(bumped)),
        None => None,
    }
}

/// A half-open range of physical addresses, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First address inside the range.
    pub start: u64,
    /// First address past the range.
    pub end: u64,
}

impl PhysRange {
    /// Build a range from its first address and the address just past it (not validated).
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Number of bytes in the range (zero for empty or inverted ranges).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether `addr` lies inside the range.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        self.start.max(other.start) < self.end.min(other.end)
    }

    /// The range widened outward to whole pages (the end saturates at `u64::MAX`).
    fn widened_to_pages(&self) -> PhysRange {
        let end = page_align_up(self.end).unwrap_or(u64::MAX);
        PhysRange::new(page_align_down(self.start), end)
    }

    /// The range shrunk inward to whole pages, or `None` if no whole page fits.
    fn shrunk_to_pages(&self) -> Option<PhysRange> {
        let start = page_align_up(self.start)?;
        let end = page_align_down(self.end);
        (start < end).then_some(PhysRange::new(start, end))
    }
}

/// Why a memory map could not be turned into usable ranges.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum MemoryMapError {
    /// The output buffer holds fewer ranges than the result needs.
    TooManyRanges {
        /// Number of ranges the output buffer can hold.
        capacity: usize,
    },
    /// An input range ends before it starts.
    InvertedRange {
        /// The offending range's start.
        start: u64,
        /// The offending range's end.
        end: u64,
    },
}

impl fmt::Display for MemoryMapError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyRanges { capacity } => {
                write!(formatter, "usable memory needs more than {capacity} ranges")
            }
            Self::InvertedRange { start, end } => {
                write!(
                    formatter,
                    "memory range {start:#x}..{end:#x} ends before it starts"
                )
            }
        }
    }
}

/// Usable physical memory: the `available` ranges (firmware memory map, any order, may
/// overlap, may be unaligned) minus every `reserved` range (kernel image, boot modules, boot
/// info, low memory ...), shrunk inward to page boundaries, sorted, merged, empty ones
/// dropped. Writes into `out`, returns count.
///
/// Overlapping or touching `available` ranges are merged before shrinking, so a page split
/// across two firmware entries is still usable. `reserved` ranges are widened outward to whole
/// pages. `out` only needs room for the final result. The cost is quadratic in the number of
/// input ranges, which is fine for firmware maps of a few hundred entries.
pub fn usable_ranges(
    available: &[PhysRange],
    reserved: &[PhysRange],
    out: &mut [PhysRange],
) -> Result<usize, MemoryMapError> {
    reject_inverted(available)?;
    reject_inverted(reserved)?;
    let capacity = out.len();
    let mut count = 0;
    let mut cursor = 0;
    while let Some(range) = next_usable_range(available, reserved, cursor) {
        let slot = out
            .get_mut(count)
            .ok_or(MemoryMapError::TooManyRanges { capacity })?;
        *slot = range;
        count += 1;
        cursor = range.end;
    }
    Ok(count)
}

/// Add `range` to the reserved-range table `table[..count]` and return the new count.
///
/// Ranges are kept widened to whole pages (as [`usable_ranges`] treats them anyway), and the
/// new one is merged with every entry it overlaps or touches, so a boot loader that lays its
/// modules end to end costs one entry however many modules it loads. Empty ranges add
/// nothing. A full table is [`MemoryMapError::TooManyRanges`]; an inverted range is
/// [`MemoryMapError::InvertedRange`].
pub fn add_reserved(
    table: &mut [PhysRange],
    count: usize,
    range: PhysRange,
) -> Result<usize, MemoryMapError> {
    reject_inverted(&[range])?;
    let mut count = count.min(table.len());
    if range.is_empty() {
        return Ok(count);
    }
    let mut merged = range.widened_to_pages();
    while let Some(index) = table[..count]
        .iter()
        .position(|entry| entry.start <= merged.end && merged.start <= entry.end)
    {
        merged = PhysRange::new(
            merged.start.min(table[index].start),
            merged.end.max(table[index].end),
        );
        count -= 1;
        table.swap(index, count);
    }
    let capacity = table.len();
    let slot = table
        .get_mut(count)
        .ok_or(MemoryMapError::TooManyRanges { capacity })?;
    *slot = merged;
    Ok(count + 1)
}

/// Fail on the first range whose end lies before its start.
fn reject_inverted(ranges: &[PhysRange]) -> Result<(), MemoryMapError> {
    match ranges.iter().find(|range| range.start > range.end) {
        Some(range) => Err(MemoryMapError::InvertedRange {
            start: range.start,
            end: range.end,
        }),
        None => Ok(()),
    }
}

/// The lowest maximal usable range starting at or after `cursor` (`cursor` must be at or past
/// the end of every range already produced).
fn next_usable_range(
    available: &[PhysRange],
    reserved: &[PhysRange],
    mut cursor: u64,
) -> Option<PhysRange> {
    loop {
        let run = next_available_run(available, cursor)?;
        let Some(pages) = run.shrunk_to_pages() else {
            cursor = run.end;
            continue;
        };
        match first_reservation(reserved, pages) {
            Reservation::None => return Some(pages),
            Reservation::CoversStart { end } => cursor = end,
            Reservation::StartsInside { start } => {
                return Some(PhysRange::new(pages.start, start));
            }
        }
    }
}

/// The part of the union of `available` that begins at the lowest covered address at or after
/// `cursor` and runs until the union has a gap.
fn next_available_run(available: &[PhysRange], cursor: u64) -> Option<PhysRange> {
    let start = available
        .iter()
        .filter(|range| !range.is_empty() && range.end > cursor)
        .map(|range| range.start.max(cursor))
        .min()?;
    let mut end = start;
    while let Some(extended) = available
        .iter()
        .filter(|range| range.start <= end && range.end > end)
        .map(|range| range.end)
        .max()
    {
        end = extended;
    }
    Some(PhysRange::new(start, end))
}

/// How the reserved ranges (widened to pages) first cut into a page-aligned candidate range.
enum Reservation {
    /// No reserved range overlaps the candidate.
    None,
    /// A reserved range covers the candidate's first page; nothing is usable before `end`.
    CoversStart {
        /// Highest end among the reserved ranges covering the first page.
        end: u64,
    },
    /// The candidate is usable up to `start`, where the first reserved range begins.
    StartsInside {
        /// Lowest start among the overlapping reserved ranges.
        start: u64,
    },
}

/// Classify the page-widened reserved ranges that overlap `candidate`.
fn first_reservation(reserved: &[PhysRange], candidate: PhysRange) -> Reservation {
    let overlapping = reserved
        .iter()
        .filter(|range| !range.is_empty())
        .map(PhysRange::widened_to_pages)
        .filter(|range| range.overlaps(&candidate));
    let mut covering_end = None;
    let mut first_start = None;
    for range in overlapping {
        if range.start <= candidate.start {
            covering_end = covering_end.max(Some(range.end));
        } else {
            first_start =
                Some(first_start.map_or(range.start, |start: u64| start.min(range.start)));
        }
    }
    match (covering_end, first_start) {
        (Some(end), _) => Reservation::CoversStart { end },
        (None, Some(start)) => Reservation::StartsInside { start },
        (None, None) => Reservation::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PAGE: u64 = PAGE_SIZE;

    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    fn usable(available: &[PhysRange], reserved: &[PhysRange]) -> Vec<PhysRange> {
        let mut out = [range(0, 0); 64];
        let count = usable_ranges(available, reserved, &mut out).expect("usable ranges");
        out[..count].to_vec()
    }

    #[test]
    fn phys_range_basics() {
        let r = range(0x1000, 0x3000);
        assert_eq!(r.len(), 0x2000);
        assert!(!r.is_empty());
        assert!(r.contains(0x1000));
        assert!(r.contains(0x2fff));
        assert!(!r.contains(0x3000));
        assert!(r.overlaps(&range(0x2fff, 0x4000)));
        assert!(!r.overlaps(&range(0x3000, 0x4000)));
        assert!(!r.overlaps(&range(0x2000, 0x2000)));
        assert!(range(5, 5).is_empty());
        assert_eq!(range(9, 5).len(), 0);
        assert!(range(9, 5).is_empty());
    }

    #[test]
    fn page_alignment_helpers() {
        assert_eq!(page_align_down(0x1fff), 0x1000);
        assert_eq!(page_align_up(0x1001), Some(0x2000));
        assert_eq!(page_align_up(0x1000), Some(0x1000));
        assert_eq!(page_align_up(u64::MAX), None);
    }

    #[test]
    fn unaligned_ranges_shrink_inward() {
        let result = usable(&[range(0x1234, 0x5678)], &[]);
        assert_eq!(result, vec![range(0x2000, 0x5000)]);
    }

    #[test]
    fn ranges_are_sorted_and_merged() {
        let available = [
            range(0x10_000, 0x20_000),
            range(0x0, 0x8000),
            range(0x8000, 0x9000),
            range(0x18_000, 0x30_000),
        ];
        let result = usable(&available, &[]);
        assert_eq!(result, vec![range(0x0, 0x9000), range(0x10_000, 0x30_000)]);
    }

    #[test]
    fn page_split_across_entries_is_usable() {
        let available = [range(0x1000, 0x1800), range(0x1800, 0x2000)];
        assert_eq!(usable(&available, &[]), vec![range(0x1000, 0x2000)]);
    }

    #[test]
    fn reserved_ranges_are_cut_out_and_widened() {
        let available = [range(0, 0x10_000)];
        let reserved = [range(0x3800, 0x4001), range(0, 0x1000)];
        let result = usable(&available, &reserved);
        assert_eq!(result, vec![range(0x1000, 0x3000), range(0x5000, 0x10_000)]);
    }

    #[test]
    fn overlapping_reserved_ranges() {
        let available = [range(0, 0x10_000)];
        let reserved = [
            range(0x2000, 0x6000),
            range(0x3000, 0x4000),
            range(0x5000, 0x8000),
        ];
        let result = usable(&available, &reserved);
        assert_eq!(result, vec![range(0, 0x2000), range(0x8000, 0x10_000)]);
    }

    #[test]
    fn empty_reserved_range_reserves_nothing() {
        let result = usable(&[range(0, 0x2000)], &[range(0x1800, 0x1800)]);
        assert_eq!(result, vec![range(0, 0x2000)]);
    }

    #[test]
    fn fully_reserved_map_is_empty() {
        let result = usable(&[range(0x1000, 0x5000)], &[range(0, 0x8000)]);
        assert!(result.is_empty());
    }

    #[test]
    fn empty_inputs_give_nothing() {
        assert!(usable(&[], &[]).is_empty());
        assert!(usable(&[range(0x100, 0x200), range(7, 7)], &[]).is_empty());
    }

    #[test]
    fn inverted_ranges_are_rejected() {
        let mut out = [range(0, 0); 4];
        assert_eq!(
            usable_ranges(&[range(0x2000, 0x1000)], &[], &mut out),
            Err(MemoryMapError::InvertedRange {
                start: 0x2000,
                end: 0x1000
            })
        );
        assert_eq!(
            usable_ranges(&[range(0, 0x1000)], &[range(9, 3)], &mut out),
            Err(MemoryMapError::InvertedRange { start: 9, end: 3 })
        );
    }

    #[test]
    fn output_capacity_is_enforced() {
        let available = [
            range(0, 0x1000),
            range(0x2000, 0x3000),
            range(0x4000, 0x5000),
        ];
        let mut out = [range(0, 0); 2];
        assert_eq!(
            usable_ranges(&available, &[], &mut out),
            Err(MemoryMapError::TooManyRanges { capacity: 2 })
        );
        let mut exact = [range(0, 0); 3];
        assert_eq!(usable_ranges(&available, &[], &mut exact), Ok(3));
    }

    #[test]
    fn capacity_only_counts_final_ranges() {
        // Many sub-page fragments and a reservation that is later swallowed by another one.
        let available = [
            range(0x100, 0x200),
            range(0x300, 0x400),
            range(0x500, 0x600),
            range(0x1000, 0x10_000),
        ];
        let reserved = [range(0x3000, 0x4000), range(0x2000, 0x10_000)];
        let mut out = [range(0, 0); 1];
        assert_eq!(usable_ranges(&available, &reserved, &mut out), Ok(1));
        assert_eq!(out[0], range(0x1000, 0x2000));
    }

    #[test]
    fn top_of_address_space_does_not_overflow() {
        let top = range(u64::MAX - 3 * PAGE, u64::MAX);
        let result = usable(&[top], &[]);
        assert_eq!(
            result,
            vec![range(
                page_align_up(u64::MAX - 3 * PAGE).unwrap(),
                page_align_down(u64::MAX)
            )]
        );
        assert!(usable(&[top], &[range(u64::MAX - 1, u64::MAX)]).len() == 1);
        assert!(usable(&[top], &[range(0, u64::MAX)]).is_empty());
        assert!(usable(&[range(u64::MAX - 10, u64::MAX)], &[]).is_empty());
    }

    #[test]
    fn display_messages() {
        let text = format!("{}", MemoryMapError::TooManyRanges { capacity: 3 });
        assert!(text.contains('3'));
        let text = format!("{}", MemoryMapError::InvertedRange { start: 16, end: 1 });
        assert!(text.contains("0x10"));
    }

    /// Granularity of generated addresses: sixteen units per page keeps brute force cheap.
    const UNIT: u64 = 256;
    const UNITS: u64 = 64 * (PAGE / UNIT);

    fn arbitrary_range() -> impl Strategy<Value = PhysRange> {
        (0..UNITS, 0..UNITS / 4)
            .prop_map(|(start, length)| range(start * UNIT, (start + length).min(UNITS) * UNIT))
    }

    fn in_any(ranges: &[PhysRange], address: u64) -> bool {
        ranges.iter().any(|r| r.contains(address))
    }

    /// A page is usable when each of its units is available and none is reserved.
    fn page_is_usable(available: &[PhysRange], reserved: &[PhysRange], page: u64) -> bool {
        (page..page + PAGE)
            .step_by(UNIT as usize)
            .all(|address| in_any(available, address) && !in_any(reserved, address))
    }

    #[test]
    fn reserved_ranges_laid_end_to_end_take_one_entry() {
        let mut table = [PhysRange::new(0, 0); 4];
        let mut count = 0;
        for module in 0..200u64 {
            let start = 0x20_0000 + module * 0x1800;
            count = add_reserved(&mut table, count, PhysRange::new(start, start + 0x1234)).unwrap();
        }
        assert_eq!(count, 1);
        assert_eq!(table[0], PhysRange::new(0x20_0000, 0x32_C000));
        count = add_reserved(&mut table, count, PhysRange::new(0, 0x10_0000)).unwrap();
        count = add_reserved(&mut table, count, PhysRange::new(0x5000, 0x5000)).unwrap();
        assert_eq!(count, 2, "an empty range adds nothing");
        // A range bridging the two merges all three.
        count = add_reserved(&mut table, count, PhysRange::new(0xF_F000, 0x20_0001)).unwrap();
        assert_eq!(count, 1);
        assert_eq!(table[0].start, 0);
    }

    #[test]
    fn a_full_reserved_table_is_an_error() {
        let mut table = [PhysRange::new(0, 0); 2];
        let mut count = add_reserved(&mut table, 0, PhysRange::new(0, 0x1000)).unwrap();
        count = add_reserved(&mut table, count, PhysRange::new(0x10_000, 0x11_000)).unwrap();
        assert_eq!(
            add_reserved(&mut table, count, PhysRange::new(0x20_000, 0x21_000)),
            Err(MemoryMapError::TooManyRanges { capacity: 2 })
        );
        assert_eq!(
            add_reserved(&mut table, count, PhysRange::new(9, 8)),
            Err(MemoryMapError::InvertedRange { start: 9, end: 8 })
        );
    }

    proptest! {
        #[test]
        fn add_reserved_covers_the_same_pages_as_the_raw_list(
            ranges in proptest::collection::vec((0u64..0x40_000, 0u64..0x8_000), 0..40),
        ) {
            let raw: Vec<PhysRange> = ranges.iter().map(|&(start, length)| PhysRange::new(start, start + length)).collect();
            let mut table = [PhysRange::new(0, 0); 64];
            let mut count = 0;
            for range in &raw {
                count = add_reserved(&mut table, count, *range).unwrap();
            }
            let available = [PhysRange::new(0, 0x100_000)];
            let mut from_raw = [PhysRange::new(0, 0); 128];
            let mut from_table = [PhysRange::new(0, 0); 128];
            let raw_count = usable_ranges(&available, &raw, &mut from_raw).unwrap();
            let table_count = usable_ranges(&available, &table[..count], &mut from_table).unwrap();
            prop_assert_eq!(&from_raw[..raw_count], &from_table[..table_count]);
            for (index, entry) in table[..count].iter().enumerate() {
                for other in &table[index + 1..count] {
                    prop_assert!(entry.end < other.start || other.end < entry.start, "merged entries neither touch nor overlap");
                }
            }
        }

        #[test]
        fn usable_ranges_properties(
            available in prop::collection::vec(arbitrary_range(), 0..12),
            reserved in prop::collection::vec(arbitrary_range(), 0..6),
        ) {
            let mut out = [range(0, 0); 64];
            let count = usable_ranges(&available, &reserved, &mut out).unwrap();
            let result = &out[..count];
            for window in result.windows(2) {
                prop_assert!(window[0].end < window[1].start, "sorted, disjoint, merged");
            }
            for r in result {
                prop_assert!(!r.is_empty());
                prop_assert_eq!(r.start % PAGE, 0);
                prop_assert_eq!(r.end % PAGE, 0);
                for address in (r.start..r.end).step_by(UNIT as usize) {
                    prop_assert!(in_any(&available, address), "inside available");
                    prop_assert!(!in_any(&reserved, address), "outside reserved");
                }
            }
            for page in (0..UNITS * UNIT).step_by(PAGE as usize) {
                let covered = in_any(result, page);
                prop_assert_eq!(covered, page_is_usable(&available, &reserved, page));
            }
        }

        #[test]
        fn usable_ranges_never_panics(
            available in prop::collection::vec((any::<u64>(), any::<u64>()), 0..8),
            reserved in prop::collection::vec((any::<u64>(), any::<u64>()), 0..4),
            capacity in 0usize..8,
        ) {
            // Mostly ordered pairs, so the interesting path runs; inverted ones are rare errors.
            let order = |(start, end): (u64, u64)| {
                if start.is_multiple_of(8) {
                    range(start, end)
                } else {
                    range(start.min(end), start.max(end))
                }
            };
            let available: Vec<_> = available.into_iter().map(order).collect();
            let reserved: Vec<_> = reserved.into_iter().map(order).collect();
            let mut out = vec![range(0, 0); capacity];
            if let Ok(count) = usable_ranges(&available, &reserved, &mut out) {
                prop_assert!(count <= capacity);
                for window in out[..count].windows(2) {
                    prop_assert!(window[0].end < window[1].start);
                }
            }
        }
    }
}
