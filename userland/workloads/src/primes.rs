//! Segmented prime counting over one interval, split into contiguous,
//! cost-balanced shares (the smp-process-scale workload).
//!
//! Invariants a reader must know:
//! - Intervals are half-open, `[low, high)`, with `high <= LIMIT` (2^32):
//!   every base prime is then below 2^16, so the fixed [`SieveScratch`]
//!   always suffices. Larger intervals are refused, never truncated.
//! - Counting never allocates: the caller provides the scratch (about
//!   30 KiB) wherever it likes (stack, static), and the timed loop touches
//!   nothing else.
//! - A share's result is a [`Tally`]: prime count and wrapping sum of the
//!   primes. Adding the tallies of all shares of an interval gives the
//!   interval's tally for any number of shares; a missing or duplicated
//!   share changes the count or the sum (the coordinator checks both).
//! - Shares are contiguous runs of whole sieve segments counted from the
//!   interval's low end. Every segment crosses off the same base primes, so
//!   the sieve's work per number does not depend on where the number lies
//!   and equal spans are equal work: the split is cost-balanced.
//!   [`Tally::work`] counts that work so tests can show the balance.
//!   (Trial division, whose cost grows with the number, would need unequal
//!   spans; a sieve does not.)

/// Exclusive upper bound of any interval this module counts.
pub const LIMIT: u64 = 1 << 32;

/// Words of the segment bitmap; one bit per odd number.
const SEGMENT_WORDS: usize = 512;

/// Numbers covered by one sieve segment (odd numbers only are stored).
pub const SEGMENT_SPAN: u64 = (SEGMENT_WORDS * 64 * 2) as u64;

/// Odd primes below 2^16: the most base primes an interval below
/// [`LIMIT`] needs.
const BASE_PRIME_CAPACITY: usize = 6541;

/// A half-open interval of numbers, `[low, high)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// First number of the interval.
    pub low: u64,
    /// One past the last number.
    pub high: u64,
}

/// What counting a range found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Primes in the range.
    pub count: u64,
    /// Wrapping sum of those primes (the checksum).
    pub sum: u64,
    /// Sieve work: numbers scanned, base primes applied per segment, and
    /// composites crossed off. Not part of the result; it shows balance.
    pub work: u64,
}

impl Tally {
    /// The tally of two disjoint ranges together.
    #[must_use]
    pub fn combine(self, other: Tally) -> Tally {
        Tally {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
            work: self.work + other.work,
        }
    }

    /// Whether count and sum equal `known`'s (work is not compared).
    pub fn matches(&self, known: &Tally) -> bool {
        self.count == known.count && self.sum == known.sum
    }
}

/// Why an interval or share request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrimesError {
    /// `low > high`.
    Reversed,
    /// `high > LIMIT`.
    TooHigh,
    /// Zero shares, or a share index at or past the share count.
    BadShare,
}

impl PrimesError {
    /// A short stable name, for result lines and messages.
    pub fn name(self) -> &'static str {
        match self {
            PrimesError::Reversed => "interval-reversed",
            PrimesError::TooHigh => "interval-above-2^32",
            PrimesError::BadShare => "bad-share",
        }
    }
}

impl Interval {
    /// Check that the interval can be counted.
    pub fn validate(self) -> Result<Interval, PrimesError> {
        if self.low > self.high {
            Err(PrimesError::Reversed)
        } else if self.high > LIMIT {
            Err(PrimesError::TooHigh)
        } else {
            Ok(self)
        }
    }

    /// Share `index` of `shares`: a contiguous run of whole segments
    /// counted from `low` (the last share may end inside a segment). The
    /// shares of an interval are disjoint, in order, and cover it exactly;
    /// their segment counts differ by at most one.
    pub fn share(self, shares: u32, index: u32) -> Result<Interval, PrimesError> {
        let interval = self.validate()?;
        if shares == 0 || index >= shares {
            return Err(PrimesError::BadShare);
        }
        let segments = (interval.high - interval.low).div_ceil(SEGMENT_SPAN);
        let boundary = |k: u64| {
            let segment = segments * k / u64::from(shares);
            interval
                .low
                .saturating_add(segment * SEGMENT_SPAN)
                .min(interval.high)
        };
        Ok(Interval {
            low: boundary(u64::from(index)),
            high: boundary(u64::from(index) + 1),
        })
    }
}

/// Fixed working memory of the sieve: base primes and one segment bitmap.
pub struct SieveScratch {
    base: [u32; BASE_PRIME_CAPACITY],
    bits: [u64; SEGMENT_WORDS],
}

impl SieveScratch {
    /// Zeroed scratch (usable as a `static` initialiser).
    pub const fn new() -> Self {
        SieveScratch {
            base: [0; BASE_PRIME_CAPACITY],
            bits: [0; SEGMENT_WORDS],
        }
    }
}

impl Default for SieveScratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest `r` with `r * r <= n` (Newton's method on integers).
fn integer_sqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut root = 1u64 << (64 - n.leading_zeros()).div_ceil(2);
    loop {
        let next = (root + n / root) / 2;
        if next >= root {
            return root;
        }
        root = next;
    }
}

/// Odd primes up to `bound` (< 2^16) into `scratch.base`; returns how many.
fn base_primes(bound: u64, scratch: &mut SieveScratch) -> usize {
    // Bit i of the bitmap stands for the odd number 2i + 1; set = composite.
    let odd_numbers = (bound as usize).saturating_sub(1) / 2; // 3, 5, ... <= bound
    scratch.bits.fill(0);
    let mut found = 0;
    for index in 1..=odd_numbers {
        if scratch.bits[index / 64] & (1 << (index % 64)) != 0 {
            continue;
        }
        let prime = 2 * index + 1;
        scratch.base[found] = prime as u32;
        found += 1;
        let mut multiple = prime * prime / 2;
        while multiple <= odd_numbers {
            scratch.bits[multiple / 64] |= 1 << (multiple % 64);
            multiple += prime;
        }
    }
    found
}

/// Count the primes in `interval` (and sum them) with a segmented sieve of
/// Eratosthenes, using only `scratch`.
pub fn count(interval: Interval, scratch: &mut SieveScratch) -> Result<Tally, PrimesError> {
    let Interval { low, high } = interval.validate()?;
    let mut tally = Tally::default();
    if low >= high {
        return Ok(tally);
    }
    if low <= 2 && 2 < high {
        tally.count = 1;
        tally.sum = 2;
    }
    let base_count = base_primes(integer_sqrt(high - 1), scratch);
    // Segments hold odd numbers only, starting at an odd number >= 3.
    let mut start = low.max(3) | 1;
    while start < high {
        let end = start.saturating_add(SEGMENT_SPAN).min(high);
        let odd_numbers = ((end - start).div_ceil(2)) as usize;
        let words = odd_numbers.div_ceil(64);
        scratch.bits[..words].fill(0);
        tally.work += odd_numbers as u64;
        for &prime in &scratch.base[..base_count] {
            let prime = u64::from(prime);
            if prime * prime >= end {
                break;
            }
            tally.work += 1;
            let mut multiple = (prime * prime).max(start.div_ceil(prime) * prime);
            if multiple % 2 == 0 {
                multiple += prime;
            }
            let step = prime as usize;
            let mut index = ((multiple - start) / 2) as usize;
            if index < odd_numbers {
                tally.work += ((odd_numbers - 1 - index) / step + 1) as u64;
            }
            while index < odd_numbers {
                scratch.bits[index / 64] |= 1 << (index % 64);
                index += step;
            }
        }
        for (word_index, &word) in scratch.bits[..words].iter().enumerate() {
            let valid_bits = (odd_numbers - word_index * 64).min(64);
            let valid = if valid_bits == 64 {
                u64::MAX
            } else {
                (1u64 << valid_bits) - 1
            };
            let mut primes = !word & valid;
            tally.count += u64::from(primes.count_ones());
            let first = start + 128 * word_index as u64;
            while primes != 0 {
                let bit = u64::from(primes.trailing_zeros());
                tally.sum = tally.sum.wrapping_add(first + 2 * bit);
                primes &= primes - 1;
            }
        }
        start = end + (end % 2 == 0) as u64;
    }
    Ok(tally)
}

/// Count `interval` split into `shares` shares, one after another: what
/// the coordinators' workers compute together, for host checks.
pub fn count_in_shares(
    interval: Interval,
    shares: u32,
    scratch: &mut SieveScratch,
) -> Result<Tally, PrimesError> {
    let mut total = Tally::default();
    for index in 0..shares {
        total = total.combine(count(interval.share(shares, index)?, scratch)?);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Plain (unsegmented) sieve of `[low, high)` over a bit vector, with
    /// base primes from a plain sieve below sqrt(high): an independent
    /// implementation for cross-checks (host only).
    fn reference(interval: Interval) -> Tally {
        let (low, high) = (interval.low, interval.high);
        let mut root = 0u64;
        while (root + 1) * (root + 1) < high {
            root += 1;
        }
        let mut small = std::vec![true; root as usize + 1];
        let mut composite = std::vec![0u64; ((high - low) as usize).div_ceil(64) + 1];
        let mut mark = |number: u64| {
            let index = (number - low) as usize;
            composite[index / 64] |= 1 << (index % 64);
        };
        for number in low..high.min(2) {
            mark(number);
        }
        for p in 2..=root {
            if !small[p as usize] {
                continue;
            }
            let mut multiple = p * p;
            while multiple <= root {
                small[multiple as usize] = false;
                multiple += p;
            }
            let mut multiple = (p * p).max(low.div_ceil(p) * p);
            while multiple < high {
                mark(multiple);
                multiple += p;
            }
        }
        let mut tally = Tally::default();
        for number in low..high {
            let index = (number - low) as usize;
            if composite[index / 64] & (1 << (index % 64)) == 0 {
                tally.count += 1;
                tally.sum = tally.sum.wrapping_add(number);
            }
        }
        tally
    }

    fn counted(low: u64, high: u64) -> Tally {
        count(Interval { low, high }, &mut SieveScratch::new()).unwrap()
    }

    #[test]
    fn known_prime_counts_and_sums_below_powers_of_ten() {
        // pi(10^k) and the sums of the primes below 10^k (OEIS A006880, A046731).
        let known: [(u64, u64, u64); 8] = [
            (10, 4, 17),
            (100, 25, 1_060),
            (1_000, 168, 76_127),
            (10_000, 1_229, 5_736_396),
            (100_000, 9_592, 454_396_537),
            (1_000_000, 78_498, 37_550_402_023),
            (10_000_000, 664_579, 3_203_324_994_356),
            (100_000_000, 5_761_455, 279_209_790_387_276),
        ];
        for (high, primes, sum) in known {
            let tally = counted(0, high);
            assert_eq!((tally.count, tally.sum), (primes, sum), "below {high}");
        }
    }

    #[test]
    fn integer_square_roots() {
        for n in (0..10_000u64).chain([u64::from(u32::MAX), LIMIT - 1, LIMIT]) {
            let root = integer_sqrt(n);
            assert!(root * root <= n && (root + 1) * (root + 1) > n, "{n}");
        }
    }

    #[test]
    fn small_edges() {
        assert_eq!(counted(0, 0).count, 0);
        assert_eq!(counted(0, 2).count, 0);
        assert_eq!(counted(2, 3).count, 1);
        assert_eq!(counted(3, 4).count, 1);
        assert_eq!(counted(4, 5).count, 0);
        assert_eq!(counted(9, 10).count, 0);
        assert_eq!(counted(1, 2).count, 0);
        assert_eq!(counted(7, 7).count, 0);
    }

    #[test]
    fn the_top_of_the_range_works() {
        // 4294967291 is the largest prime below 2^32.
        let tally = counted(LIMIT - 10, LIMIT);
        assert_eq!((tally.count, tally.sum), (1, 4_294_967_291));
    }

    #[test]
    fn refuses_what_it_cannot_count() {
        let mut scratch = SieveScratch::new();
        let above = Interval {
            low: 0,
            high: LIMIT + 1,
        };
        assert_eq!(count(above, &mut scratch), Err(PrimesError::TooHigh));
        let reversed = Interval { low: 5, high: 4 };
        assert_eq!(count(reversed, &mut scratch), Err(PrimesError::Reversed));
        let interval = Interval { low: 0, high: 100 };
        assert_eq!(interval.share(0, 0), Err(PrimesError::BadShare));
        assert_eq!(interval.share(2, 2), Err(PrimesError::BadShare));
    }

    #[test]
    fn shares_cover_the_interval_in_order() {
        let interval = Interval {
            low: 1_000,
            high: 1_000 + 10 * SEGMENT_SPAN + 77,
        };
        for shares in [1, 2, 3, 4, 8, 16] {
            let parts: Vec<Interval> = (0..shares)
                .map(|index| interval.share(shares, index).unwrap())
                .collect();
            assert_eq!(parts[0].low, interval.low);
            assert_eq!(parts[parts.len() - 1].high, interval.high);
            for pair in parts.windows(2) {
                assert_eq!(pair[0].high, pair[1].low);
            }
            let segments: Vec<u64> = parts
                .iter()
                .map(|part| (part.high - part.low).div_ceil(SEGMENT_SPAN))
                .collect();
            let (min, max) = (segments.iter().min(), segments.iter().max());
            assert!(max.unwrap() - min.unwrap() <= 1, "{segments:?}");
        }
    }

    #[test]
    fn shares_of_the_default_interval_are_balanced_and_add_up() {
        let interval = crate::DEFAULT_INTERVAL;
        let mut scratch = SieveScratch::new();
        let whole = count(interval, &mut scratch).unwrap();
        assert!(whole.matches(&crate::DEFAULT_TALLY), "{whole:?}");
        for shares in [2u32, 4, 8] {
            let tallies: Vec<Tally> = (0..shares)
                .map(|index| count(interval.share(shares, index).unwrap(), &mut scratch).unwrap())
                .collect();
            let total = tallies
                .iter()
                .fold(Tally::default(), |sum, tally| sum.combine(*tally));
            assert!(total.matches(&whole), "{shares} shares: {total:?}");
            let most = tallies.iter().map(|t| t.work).max().unwrap() as f64;
            let least = tallies.iter().map(|t| t.work).min().unwrap() as f64;
            assert!(
                most / least < 1.01,
                "{shares} shares: work {least}..{most} is not balanced"
            );
        }
    }

    #[test]
    fn the_default_constant_matches_an_independent_sieve() {
        assert_eq!(
            reference(crate::DEFAULT_INTERVAL),
            Tally {
                work: 0,
                ..crate::DEFAULT_TALLY
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn matches_the_reference(low in 0u64..300_000, length in 0u64..300_000) {
            let interval = Interval { low, high: low + length };
            let mut tally = count(interval, &mut SieveScratch::new()).unwrap();
            tally.work = 0;
            prop_assert_eq!(tally, reference(interval));
        }

        #[test]
        fn any_split_adds_up(low in 0u64..1_000_000, length in 0u64..600_000, shares in 1u32..9) {
            let interval = Interval { low, high: low + length };
            let mut scratch = SieveScratch::new();
            let whole = count(interval, &mut scratch).unwrap();
            let split = count_in_shares(interval, shares, &mut scratch).unwrap();
            prop_assert!(split.matches(&whole));
        }
    }
}
