//! A workload size chosen per run (`CAPOS_THREAD_SCALE_TOTAL_BLOCKS`): the
//! host computes the checksum of the chosen size with the same workload
//! crate the guest and the baseline run, so larger workloads (Amdahl
//! checks) are verified exactly as the default one.
//!
//! Invariants a reader must know:
//! - The size comes from the environment at run time and is recorded in
//!   inputs.json; `capos verify` reads it back and recomputes the checksum
//!   itself (never trusting the one the run passed to the guest).
//! - A size that is not a positive multiple of 1,024 blocks, or above
//!   [`MAX_BLOCKS`], is refused before anything is built or booted, and an
//!   edited record makes recomputation fail with the same message.

use std::collections::BTreeMap;

use capos_workloads::hash::{self, Shape, CHUNK_BLOCKS};

use crate::proof::contract::Contract;

/// Largest size a run may choose: 16,777,216 blocks (1 GiB of input).
pub const MAX_BLOCKS: u32 = 16 * 1024 * 1024;

/// Why a recorded or requested size cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {reason}")]
pub struct SizeError {
    /// The variable.
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// A size's block count, checked.
pub fn parse_blocks(variable: &str, value: &str) -> Result<u32, SizeError> {
    let error = |reason: String| SizeError {
        variable: variable.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let blocks: u32 = value
        .trim()
        .parse()
        .map_err(|_| error("not a whole number of blocks".into()))?;
    if blocks == 0 || !blocks.is_multiple_of(CHUNK_BLOCKS) || blocks > MAX_BLOCKS {
        return Err(error(format!(
            "the block count must be a positive multiple of {CHUNK_BLOCKS}, at most {MAX_BLOCKS}"
        )));
    }
    Ok(blocks)
}

/// The checksum (first 8 bytes of the root) of `blocks` blocks at the
/// proof's rounds, hashed on every CPU this process may use.
#[must_use]
pub fn checksum(blocks: u32) -> u64 {
    let shape = Shape {
        blocks,
        rounds: hash::DEFAULT_SHAPE.rounds,
    };
    let chunks = blocks / CHUNK_BLOCKS;
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, chunks as usize);
    let mut digests = vec![[0u8; 32]; chunks as usize];
    let per_thread = (chunks as usize).div_ceil(threads);
    std::thread::scope(|scope| {
        for (part, slots) in digests.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (offset, slot) in slots.iter_mut().enumerate() {
                    let chunk = (part * per_thread + offset) as u32;
                    *slot = hash::chunk_digest(chunk, shape.rounds);
                }
            });
        }
    });
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(shape.blocks.to_le_bytes());
    hasher.update(shape.rounds.to_le_bytes());
    for digest in &digests {
        hasher.update(digest);
    }
    let root: [u8; 32] = hasher.finalize().into();
    hash::short_checksum(&root)
}

/// `contract` as a run with `environment` judges it: when the contract has
/// a `workload_size` and the environment sets its variable, the size and
/// the host's checksum replace the written expectations, and the cases
/// pass them on; otherwise None (the contract as written).
pub fn sized(
    contract: &Contract,
    environment: &BTreeMap<String, String>,
) -> Result<Option<Contract>, SizeError> {
    let Some(size) = &contract.spec.workload_size else {
        return Ok(None);
    };
    let Some(value) = environment.get(&size.env) else {
        return Ok(None);
    };
    let blocks = parse_blocks(&size.env, value)?;
    Ok(Some(contract.with_workload_size(blocks, checksum(blocks))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert_eq!(parse_blocks("V", "1048576"), Ok(1_048_576));
        for bad in ["0", "1000", "x", "-1024", "33554432"] {
            assert!(parse_blocks("V", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_host_checksum_is_the_workload_root() {
        let smoke = Shape {
            blocks: capos_workloads::thread_scale::SMOKE_BLOCKS,
            rounds: hash::DEFAULT_SHAPE.rounds,
        };
        assert_eq!(
            Some(checksum(smoke.blocks)),
            capos_workloads::thread_scale::known_checksum(smoke)
        );
    }
}
