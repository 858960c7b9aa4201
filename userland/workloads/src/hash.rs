//! Block hashing into private slots with one root checksum (the workload of
//! the thread-scale proof).
//!
//! Shape: `blocks` fixed 64-byte blocks, generated from their index (no
//! input buffer), grouped into `CHUNK_BLOCKS`-block chunks. A chunk's digest
//! chains, in block order, each block's digest, which is SHA-256 of the
//! block re-hashed `rounds` times in all. Workers take contiguous shares of
//! the chunks and write each chunk's digest into that chunk's own
//! cache-line-padded [`Slot`], so no two workers write one cache line.
//!
//! Invariants a reader must know:
//! - No allocation: blocks are generated on the fly and the slots are the
//!   caller's (one per chunk).
//! - The root is independent of how many workers ran, and [`root`] refuses
//!   slots that are missing, written twice, or hold another chunk's digest;
//!   a chunk hashed out of order or a block skipped changes the root.
//! - One SHA-256 backend everywhere: `sha2` with `force-soft`, named by
//!   [`SHA256_BACKEND`], so capOS and Linux run the same code.

use sha2::{Digest, Sha256};

/// The SHA-256 implementation every system runs (recorded with results).
pub const SHA256_BACKEND: &str = "sha2 0.10 force-soft (portable Rust, no SHA-NI)";

/// Bytes per block.
pub const BLOCK_BYTES: usize = 64;

/// Blocks per chunk (the unit a slot holds).
pub const CHUNK_BLOCKS: u32 = 1024;

/// Bytes per slot: one cache line.
pub const SLOT_BYTES: usize = 64;

/// Size of a block-hash run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Blocks in all; a multiple of [`CHUNK_BLOCKS`].
    pub blocks: u32,
    /// SHA-256 applications per block (at least 1).
    pub rounds: u32,
}

/// The thread-scale proof's shape: 262,144 blocks (16 MiB), 64 rounds.
pub const DEFAULT_SHAPE: Shape = Shape {
    blocks: 262_144,
    rounds: 64,
};

/// Why a shape, a share or the slots were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashError {
    /// `blocks` is zero or not a multiple of [`CHUNK_BLOCKS`], or `rounds` is 0.
    BadShape,
    /// Zero workers, or a worker index at or past the worker count.
    BadShare,
    /// The slot array does not have exactly one slot per chunk.
    SlotCount,
    /// Slot `index` was never written.
    Missing(u32),
    /// Slot `index` was written more than once.
    Duplicated(u32),
    /// Slot `index` holds the digest of another chunk.
    Misplaced(u32),
}

impl Shape {
    /// Number of chunks, after checking the shape.
    pub fn chunks(self) -> Result<u32, HashError> {
        if self.blocks == 0 || !self.blocks.is_multiple_of(CHUNK_BLOCKS) || self.rounds == 0 {
            return Err(HashError::BadShape);
        }
        Ok(self.blocks / CHUNK_BLOCKS)
    }

    /// The chunks worker `index` of `workers` hashes: a contiguous range;
    /// the ranges are disjoint, in order, cover every chunk, and differ in
    /// length by at most one.
    pub fn share(self, workers: u32, index: u32) -> Result<core::ops::Range<u32>, HashError> {
        let chunks = self.chunks()?;
        if workers == 0 || index >= workers {
            return Err(HashError::BadShare);
        }
        let boundary = |k: u32| (u64::from(chunks) * u64::from(k) / u64::from(workers)) as u32;
        Ok(boundary(index)..boundary(index + 1))
    }
}

/// One chunk's result, padded to a cache line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Slot {
    /// Digest of the chunk.
    pub digest: [u8; 32],
    /// The chunk this digest belongs to.
    pub chunk: u32,
    /// How many times the slot was written (exactly 1 when complete).
    pub writes: u32,
    padding: [u8; 24],
}

const _: () = assert!(core::mem::size_of::<Slot>() == SLOT_BYTES);

impl Slot {
    /// An unwritten slot.
    pub const EMPTY: Slot = Slot {
        digest: [0; 32],
        chunk: 0,
        writes: 0,
        padding: [0; 24],
    };
}

/// The 64 bytes of block `index`: a SplitMix64 stream seeded by the index.
pub fn block(index: u32) -> [u8; BLOCK_BYTES] {
    let mut state = u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0DE_CAFE;
    let mut bytes = [0u8; BLOCK_BYTES];
    for word in bytes.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^= mixed >> 31;
        word.copy_from_slice(&mixed.to_le_bytes());
    }
    bytes
}

/// Digest of block `index` after `rounds` SHA-256 applications; every
/// round after the first hashes the previous digest with the index.
pub fn block_digest(index: u32, rounds: u32) -> [u8; 32] {
    let mut digest: [u8; 32] = Sha256::digest(block(index)).into();
    for _ in 1..rounds {
        let mut hasher = Sha256::new();
        hasher.update(digest);
        hasher.update(index.to_le_bytes());
        digest = hasher.finalize().into();
    }
    digest
}

/// Digest of chunk `chunk`: its index, then every block digest in order.
pub fn chunk_digest(chunk: u32, rounds: u32) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(chunk.to_le_bytes());
    let first = chunk * CHUNK_BLOCKS;
    for index in first..first + CHUNK_BLOCKS {
        hasher.update(block_digest(index, rounds));
    }
    hasher.finalize().into()
}

/// Hash worker `index`'s share into its slots (`slots` holds one slot per
/// chunk of the whole run; only the share's slots are written).
pub fn hash_share(
    shape: Shape,
    workers: u32,
    index: u32,
    slots: &mut [Slot],
) -> Result<(), HashError> {
    if slots.len() != shape.chunks()? as usize {
        return Err(HashError::SlotCount);
    }
    for chunk in shape.share(workers, index)? {
        let slot = &mut slots[chunk as usize];
        slot.digest = chunk_digest(chunk, shape.rounds);
        slot.chunk = chunk;
        slot.writes += 1;
    }
    Ok(())
}

/// The root checksum over all slots, after checking each was written
/// exactly once with its own chunk.
pub fn root(shape: Shape, slots: &[Slot]) -> Result<[u8; 32], HashError> {
    if slots.len() != shape.chunks()? as usize {
        return Err(HashError::SlotCount);
    }
    let mut hasher = Sha256::new();
    hasher.update(shape.blocks.to_le_bytes());
    hasher.update(shape.rounds.to_le_bytes());
    for (position, slot) in slots.iter().enumerate() {
        let position = position as u32;
        match slot.writes {
            0 => return Err(HashError::Missing(position)),
            1 => {}
            _ => return Err(HashError::Duplicated(position)),
        }
        if slot.chunk != position {
            return Err(HashError::Misplaced(position));
        }
        hasher.update(slot.digest);
    }
    Ok(hasher.finalize().into())
}

/// The root a correct run of `shape` produces, computed in one pass (what
/// the host computes for a size it has no stored root for): the same bytes
/// as [`root`] over slots that each hold their own chunk's digest.
pub fn expected_root(shape: Shape) -> Result<[u8; 32], HashError> {
    let chunks = shape.chunks()?;
    let mut hasher = Sha256::new();
    hasher.update(shape.blocks.to_le_bytes());
    hasher.update(shape.rounds.to_le_bytes());
    for chunk in 0..chunks {
        hasher.update(chunk_digest(chunk, shape.rounds));
    }
    Ok(hasher.finalize().into())
}

/// The first 8 bytes of a root, as the `checksum=<hex>` of a result line.
pub fn short_checksum(root: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&root[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const SMALL: Shape = Shape {
        blocks: 8 * CHUNK_BLOCKS,
        rounds: 2,
    };

    fn run(shape: Shape, workers: u32) -> Vec<Slot> {
        let mut slots = std::vec![Slot::EMPTY; shape.chunks().unwrap() as usize];
        for index in 0..workers {
            hash_share(shape, workers, index, &mut slots).unwrap();
        }
        slots
    }

    #[test]
    fn the_backend_computes_sha256() {
        // FIPS 180-2 test vector "abc".
        let digest: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(
            digest[..8],
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]
        );
    }

    #[test]
    fn the_root_does_not_depend_on_the_worker_count() {
        let expected = root(SMALL, &run(SMALL, 1)).unwrap();
        for workers in [2, 3, 4, 7, 8, 9] {
            assert_eq!(root(SMALL, &run(SMALL, workers)).unwrap(), expected);
        }
    }

    #[test]
    fn missing_duplicated_and_misplaced_chunks_are_refused() {
        let mut slots = std::vec![Slot::EMPTY; 8];
        hash_share(SMALL, 4, 0, &mut slots).unwrap();
        hash_share(SMALL, 4, 1, &mut slots).unwrap();
        hash_share(SMALL, 4, 3, &mut slots).unwrap();
        assert_eq!(root(SMALL, &slots), Err(HashError::Missing(4)));
        hash_share(SMALL, 4, 2, &mut slots).unwrap();
        assert!(root(SMALL, &slots).is_ok());
        hash_share(SMALL, 4, 2, &mut slots).unwrap();
        assert_eq!(root(SMALL, &slots), Err(HashError::Duplicated(4)));

        let mut swapped = run(SMALL, 2);
        swapped.swap(1, 2);
        assert_eq!(root(SMALL, &swapped), Err(HashError::Misplaced(1)));
        // Swapping the digests but keeping the labels changes the root.
        let good = run(SMALL, 2);
        let mut relabelled = good.clone();
        let digest = relabelled[1].digest;
        relabelled[1].digest = relabelled[2].digest;
        relabelled[2].digest = digest;
        assert_ne!(root(SMALL, &relabelled), root(SMALL, &good));
    }

    #[test]
    fn blocks_and_rounds_change_the_digest() {
        assert_ne!(block(0), block(1));
        assert_ne!(block_digest(5, 1), block_digest(5, 2));
        assert_ne!(chunk_digest(0, 1), chunk_digest(1, 1));
    }

    #[test]
    fn shapes_and_shares_are_checked() {
        let bad = Shape {
            blocks: 1000,
            rounds: 1,
        };
        assert_eq!(bad.chunks(), Err(HashError::BadShape));
        assert_eq!(DEFAULT_SHAPE.chunks(), Ok(256));
        assert_eq!(DEFAULT_SHAPE.share(0, 0), Err(HashError::BadShare));
        let shares: Vec<_> = (0..3).map(|i| DEFAULT_SHAPE.share(3, i).unwrap()).collect();
        assert_eq!(shares[0].start, 0);
        assert_eq!(shares[2].end, 256);
        assert_eq!(shares[0].end, shares[1].start);
        let mut too_few = std::vec![Slot::EMPTY; 3];
        assert_eq!(
            hash_share(SMALL, 1, 0, &mut too_few),
            Err(HashError::SlotCount)
        );
    }
}
