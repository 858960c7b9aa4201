//! The address-range rule for pointers user space hands to the kernel.
//!
//! Invariants:
//! - An accepted range `[address, address + length)` lies inside
//!   `[USER_START, layout::USER_END]` and its end does not overflow `u64`.
//! - Page 0 is never a user address, so a null (or near-null) pointer is refused even with
//!   length 0.
//! - This is only the range rule: whether the pages are mapped, and with which rights, is
//!   decided by the kernel's page tables when it copies.

use capos_abi::{layout::USER_END, Error};

/// Lowest address a user pointer may name: everything below it (the null page) is refused.
pub const USER_START: u64 = 0x1000;

/// Check that the `length` bytes at `address` lie entirely in user space.
///
/// Refused with [`Error::BadAddress`] when `address` is in the null page, when
/// `address + length` overflows, or when the range ends past [`USER_END`]. A zero-length range
/// is accepted at any address from [`USER_START`] up to and including [`USER_END`].
pub fn check_user_range(address: u64, length: u64) -> Result<(), Error> {
    if address < USER_START {
        return Err(Error::BadAddress);
    }
    let end = address.checked_add(length).ok_or(Error::BadAddress)?;
    if end > USER_END {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// A user page's translation the kernel remembers, packed into one `u64`
/// so an address space can keep it in an atomic that copies holding its
/// table lock for reading share (an empty word, 0, remembers nothing).
///
/// Layout: bit 63 valid, bit 62 writable, bits 27..=61 the virtual page
/// number, bits 0..=26 the frame number. A translation whose page or frame
/// does not fit is not remembered ([`RecentTranslation::pack`] gives None).
///
/// Why: under QEMU TCG every CR3 write empties the emulated TLB, and a
/// software walk of a user page reads four table pages through the
/// physical window, each then walked again by QEMU. A call copies the same
/// message buffers every round trip.
///
/// Invariant (the kernel's side): a word is stored only while the table
/// lock is held, for a translation just made under it, and every change to
/// the tables clears it before the lock is released, so a remembered
/// translation is never older than the tables it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentTranslation {
    /// Page-aligned user address.
    pub page: u64,
    /// Page-aligned physical address mapped there.
    pub frame: u64,
    /// Whether the translation was checked for writing (user-writable).
    pub writable: bool,
}

const VALID_BIT: u64 = 1 << 63;
const WRITABLE_BIT: u64 = 1 << 62;
const PAGE_NUMBER_SHIFT: u32 = 27;
const PAGE_NUMBER_BITS: u32 = 35;
const FRAME_NUMBER_BITS: u32 = 27;

impl RecentTranslation {
    /// The packed word, or None when page or frame falls outside the
    /// layout (or is not page-aligned).
    pub fn pack(self) -> Option<u64> {
        if self.page & 0xFFF != 0 || self.frame & 0xFFF != 0 {
            return None;
        }
        let page_number = self.page >> 12;
        let frame_number = self.frame >> 12;
        if page_number >> PAGE_NUMBER_BITS != 0 || frame_number >> FRAME_NUMBER_BITS != 0 {
            return None;
        }
        let writable = if self.writable { WRITABLE_BIT } else { 0 };
        Some(VALID_BIT | writable | page_number << PAGE_NUMBER_SHIFT | frame_number)
    }

    /// The translation a word holds (None for the empty word).
    pub fn unpack(word: u64) -> Option<Self> {
        if word & VALID_BIT == 0 {
            return None;
        }
        let page_number = (word >> PAGE_NUMBER_SHIFT) & ((1 << PAGE_NUMBER_BITS) - 1);
        let frame_number = word & ((1 << FRAME_NUMBER_BITS) - 1);
        Some(Self {
            page: page_number << 12,
            frame: frame_number << 12,
            writable: word & WRITABLE_BIT != 0,
        })
    }

    /// The physical address of user `address` if `word` remembers its page
    /// with the rights the access needs (`write`: a writable translation).
    pub fn lookup(word: u64, address: u64, write: bool) -> Option<u64> {
        let recent = Self::unpack(word)?;
        if recent.page != address & !0xFFF || (write && !recent.writable) {
            return None;
        }
        Some(recent.frame | (address & 0xFFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_empty_word_remembers_nothing() {
        assert_eq!(RecentTranslation::unpack(0), None);
        assert_eq!(RecentTranslation::lookup(0, 0, false), None);
        assert_eq!(RecentTranslation::lookup(0, USER_START, false), None);
    }

    #[test]
    fn lookup_needs_the_same_page_and_the_rights() {
        let read = RecentTranslation {
            page: 0x40_0000,
            frame: 0x1234_5000,
            writable: false,
        };
        let word = read.pack().unwrap();
        assert_eq!(
            RecentTranslation::lookup(word, 0x40_0abc, false),
            Some(0x1234_5abc)
        );
        assert_eq!(RecentTranslation::lookup(word, 0x40_0abc, true), None);
        assert_eq!(RecentTranslation::lookup(word, 0x40_1000, false), None);
        assert_eq!(RecentTranslation::lookup(word, 0x3f_ffff, false), None);
        let write = RecentTranslation {
            writable: true,
            ..read
        };
        let word = write.pack().unwrap();
        assert_eq!(
            RecentTranslation::lookup(word, 0x40_0fff, true),
            Some(0x1234_5fff)
        );
        assert_eq!(
            RecentTranslation::lookup(word, 0x40_0000, false),
            Some(0x1234_5000)
        );
    }

    #[test]
    fn what_does_not_fit_is_not_remembered() {
        let fits = RecentTranslation {
            page: USER_END - 0x1000,
            frame: (1 << 39) - 0x1000,
            writable: true,
        };
        assert!(fits.pack().is_some());
        for too_big in [
            RecentTranslation {
                frame: 1 << 39,
                ..fits
            },
            RecentTranslation {
                page: 1 << 47,
                ..fits
            },
            RecentTranslation {
                page: 0x40_0001,
                ..fits
            },
            RecentTranslation {
                frame: 0x800,
                ..fits
            },
        ] {
            assert_eq!(too_big.pack(), None, "{too_big:?}");
        }
    }

    proptest! {
        #[test]
        fn pack_then_unpack_is_identity(
            page_number in 0u64..(1 << 35),
            frame_number in 0u64..(1 << 27),
            writable: bool,
        ) {
            let translation = RecentTranslation {
                page: page_number << 12,
                frame: frame_number << 12,
                writable,
            };
            let word = translation.pack().unwrap();
            prop_assert_ne!(word, 0);
            prop_assert_eq!(RecentTranslation::unpack(word), Some(translation));
        }

        #[test]
        fn lookup_agrees_with_the_translation_it_packed(
            page_number in 1u64..(1 << 35),
            frame_number in 0u64..(1 << 27),
            writable: bool,
            address in 0u64..(1 << 47),
            write: bool,
        ) {
            let translation = RecentTranslation {
                page: page_number << 12,
                frame: frame_number << 12,
                writable,
            };
            let expected = (address & !0xFFF == translation.page && (writable || !write))
                .then_some(translation.frame | (address & 0xFFF));
            prop_assert_eq!(
                RecentTranslation::lookup(translation.pack().unwrap(), address, write),
                expected
            );
        }
    }

    #[test]
    fn ordinary_ranges_pass() {
        assert_eq!(check_user_range(0x40_0000, 4096), Ok(()));
        assert_eq!(check_user_range(USER_START, 1), Ok(()));
        assert_eq!(check_user_range(USER_END - 1, 1), Ok(()));
        assert_eq!(check_user_range(USER_START, USER_END - USER_START), Ok(()));
    }

    #[test]
    fn null_page_is_refused() {
        assert_eq!(check_user_range(0, 0), Err(Error::BadAddress));
        assert_eq!(check_user_range(0, 16), Err(Error::BadAddress));
        assert_eq!(check_user_range(USER_START - 1, 1), Err(Error::BadAddress));
    }

    #[test]
    fn kernel_and_overflowing_ranges_are_refused() {
        assert_eq!(check_user_range(USER_END - 1, 2), Err(Error::BadAddress));
        assert_eq!(check_user_range(USER_END, 1), Err(Error::BadAddress));
        assert_eq!(
            check_user_range(0xFFFF_8000_0000_0000, 8),
            Err(Error::BadAddress)
        );
        assert_eq!(check_user_range(0x1000, u64::MAX), Err(Error::BadAddress));
        assert_eq!(check_user_range(u64::MAX, 1), Err(Error::BadAddress));
    }

    #[test]
    fn zero_length_is_fine_at_any_user_address() {
        assert_eq!(check_user_range(USER_START, 0), Ok(()));
        assert_eq!(check_user_range(0x1234_5678, 0), Ok(()));
        assert_eq!(check_user_range(USER_END, 0), Ok(()));
        assert_eq!(check_user_range(USER_END + 1, 0), Err(Error::BadAddress));
        assert_eq!(check_user_range(u64::MAX, 0), Err(Error::BadAddress));
    }

    proptest! {
        #[test]
        fn accepted_ranges_are_exactly_the_user_ranges(
            address in any::<u64>(),
            length in any::<u64>(),
        ) {
            let expected = u128::from(address) >= u128::from(USER_START)
                && u128::from(address) + u128::from(length) <= u128::from(USER_END);
            prop_assert_eq!(check_user_range(address, length).is_ok(), expected);
        }

        #[test]
        fn near_the_boundaries(
            address in prop_oneof![0u64..0x2000, USER_END - 0x2000..USER_END + 0x2000],
            length in prop_oneof![0u64..0x3000, Just(u64::MAX)],
        ) {
            let expected = u128::from(address) >= u128::from(USER_START)
                && u128::from(address) + u128::from(length) <= u128::from(USER_END);
            prop_assert_eq!(check_user_range(address, length).is_ok(), expected);
            if let Err(error) = check_user_range(address, length) {
                prop_assert_eq!(error, Error::BadAddress);
            }
        }
    }
}
