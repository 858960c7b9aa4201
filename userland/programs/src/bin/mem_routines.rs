//! `mem-routines`: the `memcpy`, `memmove` and `memset` every bare-metal
//! binary links (userland/abi/asm/bare_metal_runtime.S, shared with the
//! kernel) give the same bytes as a byte-at-a-time reference, for every
//! length up to [`LENGTH_MAX`] and every source and destination offset in
//! an eight-byte word, with overlap in both directions. Slot: 0 console.
//! The references move one byte at a time through `black_box`, so the
//! compiler cannot turn them into calls to the routines under test.
//!
//! Line: `[mem-routines] cases=<n> ok`, or
//! `[mem-routines] FAILED <routine> length=<n> ...` (exit 1).
#![no_std]
#![no_main]

use capos_runtime::{println, Context};
use core::hint::black_box;

capos_runtime::entry!(main);

/// Longest copy or fill checked: several eight-byte steps plus every tail.
const LENGTH_MAX: usize = 40;
/// Bytes of the work buffers: room for any offset pair and length.
const BUFFER: usize = 96;

fn main(context: &mut Context) -> i32 {
    match check_all() {
        Ok(cases) => {
            println!(context, "[mem-routines] cases={cases} ok");
            0
        }
        Err(Failure {
            routine,
            source,
            destination,
            length,
        }) => {
            println!(
                context,
                "[mem-routines] FAILED {routine} length={length} source={source} destination={destination}"
            );
            1
        }
    }
}

/// The first case whose bytes differ from the reference.
struct Failure {
    routine: &'static str,
    source: usize,
    destination: usize,
    length: usize,
}

/// A pattern no shift of which equals another, so a wrong offset shows.
fn pattern() -> [u8; BUFFER] {
    core::array::from_fn(|index| (index as u8).wrapping_mul(37).wrapping_add(11))
}

fn check_all() -> Result<u32, Failure> {
    let mut cases = 0;
    for length in 0..=LENGTH_MAX {
        for source in 0..8 {
            for destination in 0..8 {
                // Apart: the source ends by byte 47, the destination starts at 48.
                check_copy(source, destination + 48, length)?;
                // Overlapping, destination above and below the source.
                check_move(source + 8, source + 8 + destination, length)?;
                check_move(source + 8 + destination, source + 8, length)?;
                cases += 3;
            }
            check_fill(source, length)?;
            cases += 1;
        }
    }
    Ok(cases)
}

/// A copy routine under test, with the signature of `core::ptr::copy`.
type CopyRoutine = unsafe fn(*const u8, *mut u8, usize);

/// `memcpy`: callers pass ranges that do not overlap.
fn check_copy(source: usize, destination: usize, length: usize) -> Result<(), Failure> {
    check_moved(
        "memcpy",
        core::ptr::copy_nonoverlapping,
        source,
        destination,
        length,
    )
}

/// `memmove`: the ranges may overlap either way.
fn check_move(source: usize, destination: usize, length: usize) -> Result<(), Failure> {
    check_moved("memmove", core::ptr::copy, source, destination, length)
}

fn check_moved(
    routine: &'static str,
    copy: CopyRoutine,
    source: usize,
    destination: usize,
    length: usize,
) -> Result<(), Failure> {
    let mut actual = pattern();
    let original = pattern();
    let mut expected = pattern();
    // SAFETY: both ranges lie inside `actual` (at most 55 + 40 bytes); they
    // overlap only in the `memmove` cases, which `copy` allows.
    unsafe {
        let base = actual.as_mut_ptr();
        copy(base.add(source), base.add(destination), black_box(length));
    }
    for (to, from) in expected[destination..destination + length]
        .iter_mut()
        .zip(&original[source..source + length])
    {
        *to = black_box(*from);
    }
    same(&actual, &expected).ok_or(Failure {
        routine,
        source,
        destination,
        length,
    })
}

fn check_fill(start: usize, length: usize) -> Result<(), Failure> {
    let mut actual = pattern();
    let mut expected = pattern();
    let value = black_box(0xA5u8);
    // SAFETY: the range lies inside `actual`.
    unsafe { core::ptr::write_bytes(actual.as_mut_ptr().add(start), value, black_box(length)) };
    for byte in &mut expected[start..start + length] {
        *byte = black_box(value);
    }
    same(&actual, &expected).ok_or(Failure {
        routine: "memset",
        source: start,
        destination: start,
        length,
    })
}

/// `Some(())` when the buffers hold the same bytes (compared one by one,
/// not through `bcmp`, which is not under test here).
fn same(actual: &[u8], expected: &[u8]) -> Option<()> {
    actual
        .iter()
        .zip(expected)
        .all(|(a, b)| a == b)
        .then_some(())
}
