//! The thread-scale proof's run: sibling threads hash contiguous shares of
//! [`crate::hash`] blocks between two rendezvous points, and the run is cut
//! into the seed's phases.
//!
//! Phases, all in TSC cycles of one run:
//! - `spawn_ready`: from before the first thread is created until every
//!   worker has arrived at the start line;
//! - `work`: from the last arrival to the last worker's end of hashing, the
//!   window in which workers make no system call;
//! - `shutdown`: from there until the parent has joined every worker;
//! - `total`: the sum of the three (start to last join).
//!
//! Invariants a reader must know:
//! - A [`Rendezvous`] is shared by the parent and the workers; each of its
//!   words sits on its own cache line, and workers touch it only at the
//!   start line and after their share, never inside the window.
//! - Workers spin at the start line rather than block, so the window opens
//!   the moment the last one arrives; the spin is part of `spawn_ready`.
//! - Roots are known per shape ([`known_checksum`]); host tests recompute
//!   them, so a guest's `verified=true` means "the host's answer".

use crate::cycles;
use crate::hash::{self, HashError, Shape, Slot, CHUNK_BLOCKS};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Most worker threads a run may ask for.
pub const MAX_THREADS: u32 = 64;

/// `blocks` of the smoke run (`blocks=8192`): 8 chunks, seconds under TCG.
pub const SMOKE_BLOCKS: u32 = 8 * CHUNK_BLOCKS;

/// The checksums (first 8 bytes of the root) of the shapes the proof and
/// the smoke run, at [`hash::DEFAULT_SHAPE`]'s rounds.
const KNOWN: [(u32, u64); 2] = [
    (262_144, 0xcf31_7c28_6a67_fa0e),
    (SMOKE_BLOCKS, 0xeba9_a7a7_0316_2eb1),
];

/// The checksum the host computed for `shape`, if it is one of the known
/// shapes (other shapes run, but cannot say `verified=true`).
pub fn known_checksum(shape: Shape) -> Option<u64> {
    if shape.rounds != hash::DEFAULT_SHAPE.rounds {
        return None;
    }
    KNOWN
        .iter()
        .find(|(blocks, _)| *blocks == shape.blocks)
        .map(|(_, checksum)| *checksum)
}

/// The checksum a run of `shape` must reach to say `verified=true`: the
/// stored root of a known shape, else the one the host computed and passed
/// in (`expect=`, `--expect`; `hash::expected_root`), else none.
pub fn expected_checksum(shape: Shape, from_host: Option<u64>) -> Option<u64> {
    known_checksum(shape).or(from_host)
}

/// An atomic alone on its cache line.
#[repr(align(64))]
#[derive(Default)]
struct Line<T>(T);

/// The start line and finish record of one run's workers.
#[derive(Default)]
pub struct Rendezvous {
    workers: u32,
    arrived: Line<AtomicU32>,
    /// TSC when the last worker arrived; 0 until then.
    start: Line<AtomicU64>,
    finished: Line<AtomicU32>,
    /// Latest TSC at which a worker finished its share.
    end: Line<AtomicU64>,
}

impl Rendezvous {
    /// A rendezvous for `workers` workers.
    pub fn new(workers: u32) -> Self {
        Self {
            workers,
            ..Self::default()
        }
    }

    /// Arrive at the start line and spin until every worker has; returns
    /// the TSC at which the window opened (the last arrival's).
    pub fn arrive(&self) -> u64 {
        self.arrive_with(|| {}).0
    }

    /// [`Rendezvous::arrive`]; the last worker to arrive runs `opening`
    /// first, before it reads the TSC that opens the window (so what
    /// `opening` does is not part of the window). Returns the window start
    /// and whether this worker ran `opening`.
    pub fn arrive_with(&self, opening: impl FnOnce()) -> (u64, bool) {
        if self.arrived.0.fetch_add(1, Ordering::AcqRel) + 1 == self.workers {
            opening();
            let now = cycles().max(1);
            self.start.0.store(now, Ordering::Release);
            return (now, true);
        }
        loop {
            let start = self.start.0.load(Ordering::Acquire);
            if start != 0 {
                return (start, false);
            }
            core::hint::spin_loop();
        }
    }

    /// Record that this worker has finished its share (now).
    pub fn finish(&self) {
        self.finish_with(|| {});
    }

    /// [`Rendezvous::finish`]; the last worker to finish runs `closed`
    /// after its finish is recorded (outside the window). Returns whether
    /// this worker ran `closed`.
    pub fn finish_with(&self, closed: impl FnOnce()) -> bool {
        let now = cycles();
        self.end.0.fetch_max(now, Ordering::AcqRel);
        if self.finished.0.fetch_add(1, Ordering::AcqRel) + 1 == self.workers {
            closed();
            return true;
        }
        false
    }

    /// (window start, window end) once every worker has finished.
    pub fn window(&self) -> Option<(u64, u64)> {
        if self.finished.0.load(Ordering::Acquire) != self.workers {
            return None;
        }
        let start = self.start.0.load(Ordering::Acquire);
        let end = self.end.0.load(Ordering::Acquire);
        (start != 0 && end >= start).then_some((start, end))
    }
}

/// Hash the chunks `first..first + slots.len()` into `slots` (a worker's
/// own part of the run's slot array).
pub fn hash_chunks(shape: Shape, first: u32, slots: &mut [Slot]) -> Result<(), HashError> {
    let chunks = shape.chunks()?;
    let count = u32::try_from(slots.len()).map_err(|_| HashError::SlotCount)?;
    if first.checked_add(count).is_none_or(|end| end > chunks) {
        return Err(HashError::SlotCount);
    }
    for (offset, slot) in slots.iter_mut().enumerate() {
        let chunk = first + offset as u32;
        slot.digest = hash::chunk_digest(chunk, shape.rounds);
        slot.chunk = chunk;
        slot.writes += 1;
    }
    Ok(())
}

/// Split `slots` (one per chunk of `shape`) into the `workers` contiguous
/// shares of [`Shape::share`], in order, each with its first chunk. `out`
/// receives the shares (its length must be `workers`).
pub fn split_shares<'a>(
    shape: Shape,
    workers: u32,
    mut slots: &'a mut [Slot],
    out: &mut [Option<(u32, &'a mut [Slot])>],
) -> Result<(), HashError> {
    if slots.len() != shape.chunks()? as usize || out.len() != workers as usize {
        return Err(HashError::SlotCount);
    }
    for (index, place) in out.iter_mut().enumerate() {
        let share = shape.share(workers, index as u32)?;
        let (mine, rest) = slots.split_at_mut(share.len());
        *place = Some((share.start, mine));
        slots = rest;
    }
    Ok(())
}

/// The phases of one run, from the parent's and the rendezvous' TSC reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    /// First spawn to last arrival.
    pub spawn_ready: u64,
    /// The syscall-free window.
    pub work: u64,
    /// Window end to last join.
    pub shutdown: u64,
    /// The three together.
    pub total: u64,
}

impl Phases {
    /// Phases from `begin` (before the first spawn), the window and `joined`
    /// (after the last join); None if the reads are out of order.
    pub fn measure(begin: u64, window: (u64, u64), joined: u64) -> Option<Self> {
        let (start, end) = window;
        if !(begin <= start && start <= end && end <= joined) {
            return None;
        }
        Some(Self {
            spawn_ready: start - begin,
            work: end - start,
            shutdown: joined - end,
            total: joined - begin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn root_with_threads(shape: Shape, workers: u32) -> u64 {
        let mut slots = std::vec![Slot::EMPTY; shape.chunks().unwrap() as usize];
        let mut shares: Vec<Option<(u32, &mut [Slot])>> = (0..workers).map(|_| None).collect();
        split_shares(shape, workers, &mut slots, &mut shares).unwrap();
        let rendezvous = Rendezvous::new(workers);
        std::thread::scope(|scope| {
            for share in shares {
                let (first, part) = share.unwrap();
                let rendezvous = &rendezvous;
                scope.spawn(move || {
                    rendezvous.arrive();
                    hash_chunks(shape, first, part).unwrap();
                    rendezvous.finish();
                });
            }
        });
        assert!(rendezvous.window().is_some());
        hash::short_checksum(&hash::root(shape, &slots).unwrap())
    }

    #[test]
    fn the_known_checksums_are_the_hosts() {
        for (blocks, checksum) in KNOWN {
            let shape = Shape {
                blocks,
                rounds: hash::DEFAULT_SHAPE.rounds,
            };
            assert_eq!(
                root_with_threads(shape, 4),
                checksum,
                "blocks={blocks}: update KNOWN"
            );
        }
    }

    #[test]
    fn the_one_pass_root_is_the_threads_root() {
        for blocks in [CHUNK_BLOCKS, 3 * CHUNK_BLOCKS, SMOKE_BLOCKS] {
            let shape = Shape { blocks, rounds: 2 };
            let expected = hash::short_checksum(&hash::expected_root(shape).unwrap());
            assert_eq!(root_with_threads(shape, 3), expected, "blocks={blocks}");
        }
        let smoke = Shape {
            blocks: SMOKE_BLOCKS,
            rounds: hash::DEFAULT_SHAPE.rounds,
        };
        assert_eq!(
            known_checksum(smoke),
            Some(hash::short_checksum(&hash::expected_root(smoke).unwrap()))
        );
        assert_eq!(expected_checksum(smoke, Some(1)), known_checksum(smoke));
        let other = Shape {
            blocks: 2 * CHUNK_BLOCKS,
            rounds: hash::DEFAULT_SHAPE.rounds,
        };
        assert_eq!(expected_checksum(other, Some(7)), Some(7));
        assert_eq!(expected_checksum(other, None), None);
    }

    #[test]
    fn threads_give_the_single_thread_root() {
        let shape = Shape {
            blocks: 5 * CHUNK_BLOCKS,
            rounds: 2,
        };
        let one = root_with_threads(shape, 1);
        for workers in [2, 3, 5, 7] {
            assert_eq!(root_with_threads(shape, workers), one);
        }
    }

    #[test]
    fn bad_splits_and_ranges_are_refused() {
        let shape = Shape {
            blocks: 4 * CHUNK_BLOCKS,
            rounds: 1,
        };
        let mut slots = std::vec![Slot::EMPTY; 4];
        let mut wrong: Vec<Option<(u32, &mut [Slot])>> = (0..3).map(|_| None).collect();
        assert_eq!(
            split_shares(shape, 2, &mut slots, &mut wrong),
            Err(HashError::SlotCount)
        );
        assert_eq!(
            hash_chunks(shape, 3, &mut slots[..2]),
            Err(HashError::SlotCount)
        );
        assert_eq!(
            hash_chunks(shape, u32::MAX, &mut slots[..2]),
            Err(HashError::SlotCount)
        );
    }

    #[test]
    fn the_last_arrival_opens_and_the_last_finish_closes_once() {
        let workers = 4;
        let rendezvous = Rendezvous::new(workers);
        let opened = AtomicU32::new(0);
        let closed = AtomicU32::new(0);
        let ran: Vec<(bool, bool)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let (start, opener) = rendezvous.arrive_with(|| {
                            opened.fetch_add(1, Ordering::SeqCst);
                        });
                        assert!(start != 0);
                        let closer = rendezvous.finish_with(|| {
                            // Every finish is recorded before the closer runs.
                            assert!(rendezvous.window().is_some());
                            closed.fetch_add(1, Ordering::SeqCst);
                        });
                        (opener, closer)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        assert_eq!(ran.iter().filter(|(opener, _)| *opener).count(), 1);
        assert_eq!(ran.iter().filter(|(_, closer)| *closer).count(), 1);
    }

    #[test]
    fn phases_need_ordered_reads() {
        let phases = Phases::measure(10, (15, 40), 42).unwrap();
        assert_eq!(
            phases,
            Phases {
                spawn_ready: 5,
                work: 25,
                shutdown: 2,
                total: 32
            }
        );
        assert_eq!(Phases::measure(10, (9, 40), 42), None);
        assert_eq!(Phases::measure(10, (15, 40), 39), None);
        let unfinished = Rendezvous::new(2);
        unfinished.finish();
        assert_eq!(unfinished.window(), None);
    }
}
