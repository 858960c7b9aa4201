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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
