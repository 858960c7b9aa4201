//! The kernel side of a thread's capability ring: taking submissions, posting completions.
//!
//! Invariants:
//! - The kernel owns `sq_head` and `cq_tail`. [`KernelRing`] keeps the authoritative copies and
//!   only ever writes them out; values user space scribbles there are overwritten, never
//!   trusted. User space owns `sq_tail` and `cq_head`; the kernel only reads them.
//! - Back-pressure instead of loss: a submission is taken only while
//!   `cq_tail - cq_head + reserved < CQ_ENTRIES`, where `reserved` counts every taken
//!   submission whose completion is not posted yet (immediate or deferred). So a posted
//!   completion always has a free CQ slot, and a user that never consumes completions merely
//!   stops making progress.
//! - Index arithmetic is wrapping `u32`; the slot of index `i` is `i % entries`, so the kernel
//!   writes only the `SQ_HEAD` and `CQ_TAIL` header fields and whole CQ entries — never
//!   anything outside the CQ area, whatever user space writes to the indices.
//! - Inconsistent user indices (`sq_tail - sq_head > SQ_ENTRIES`, `cq_tail - cq_head >
//!   CQ_ENTRIES`, or a `cq_head` moved back so far that a reserved completion has no free
//!   slot) are reported as [`RingFault::Overrun`] before anything is consumed or written.
//! - A [`RingFault`] consumes and writes nothing: once user space repairs the indices
//!   (e.g. restores `sq_tail` after an overrun) the ring works again. Until then
//!   every `cap_enter` returns the error again; nothing is retried behind its back. One
//!   exception: the completion of a deferred operation that the CQ refuses is dropped and its
//!   reservation released ([`KernelRing::complete_deferred`]), since the operation is over and
//!   a slot kept for it would shrink the thread's pending quota for good.

use core::fmt;

use capos_abi::ring::{
    completion_offset, header, submission_offset, RingHeader, COMPLETION_SIZE, CQ_ENTRIES,
    SQ_ENTRIES, SUBMISSION_SIZE,
};
use capos_abi::{Completion, Opcode, Submission};

/// Byte access to one ring's two shared pages, offsets relative to the ring's start.
///
/// The kernel implementation works on live user-shared memory. It must perform
/// [`RingMemory::load_index`] as a 32-bit acquire load and [`RingMemory::store_index`] as a
/// 32-bit release store (the default methods fall back on [`RingMemory::read`] and
/// [`RingMemory::write`], which is only correct where 4-byte accesses at the header index
/// offsets are single atomic accesses with those orderings, as on the single-threaded host).
/// The ring code relies on this to read a submission only after loading `sq_tail`, and to
/// publish `cq_tail` only after the completion bytes are written.
pub trait RingMemory {
    /// Copy `out.len()` bytes at `offset` into `out`; `false` if any of them is not accessible
    /// (the kernel turns that into a fault).
    fn read(&self, offset: usize, out: &mut [u8]) -> bool;

    /// Copy `bytes` to `offset`; `false` if any of them is not accessible.
    fn write(&mut self, offset: usize, bytes: &[u8]) -> bool;

    /// Load the little-endian `u32` index field at `offset` with acquire ordering.
    fn load_index(&self, offset: usize) -> Option<u32> {
        let mut word = [0u8; 4];
        self.read(offset, &mut word)
            .then(|| u32::from_le_bytes(word))
    }

    /// Store the little-endian `u32` index field at `offset` with release ordering.
    fn store_index(&mut self, offset: usize, value: u32) -> bool {
        self.write(offset, &value.to_le_bytes())
    }
}

/// Why the kernel could not use a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingFault {
    /// Part of the ring memory could not be read or written.
    Inaccessible,
    /// User space left a queue's indices inconsistent: the SQ's `sq_head`/`sq_tail`, or the
    /// CQ's `cq_head`/`cq_tail`, whichever was found wrong.
    Overrun {
        /// The queue's head index.
        head: u32,
        /// The queue's tail index.
        tail: u32,
    },
    /// Kernel misuse, never caused by user space: `complete`, `defer` or `complete_deferred`
    /// without a matching reservation.
    NotReserved,
}

impl fmt::Display for RingFault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inaccessible => formatter.write_str("ring memory is not accessible"),
            Self::Overrun { head, tail } => {
                write!(
                    formatter,
                    "ring indices inconsistent: head {head}, tail {tail}"
                )
            }
            Self::NotReserved => formatter.write_str("completion posted without a reservation"),
        }
    }
}

/// Write a fresh header: all four indices zero, the entry counts filled in. Pair it with
/// [`KernelRing::new`].
pub fn initialise<M: RingMemory>(memory: &mut M) -> Result<(), RingFault> {
    let fresh = RingHeader {
        sq_entries: SQ_ENTRIES,
        cq_entries: CQ_ENTRIES,
        ..RingHeader::default()
    };
    let fields = [
        (header::SQ_HEAD, fresh.sq_head),
        (header::SQ_TAIL, fresh.sq_tail),
        (header::CQ_HEAD, fresh.cq_head),
        (header::CQ_TAIL, fresh.cq_tail),
        (header::SQ_ENTRIES, fresh.sq_entries),
        (header::CQ_ENTRIES, fresh.cq_entries),
    ];
    for (offset, value) in fields {
        if !memory.store_index(offset, value) {
            return Err(RingFault::Inaccessible);
        }
    }
    Ok(())
}

/// Load an index field, mapping inaccessible memory to a fault.
fn load<M: RingMemory>(memory: &M, offset: usize) -> Result<u32, RingFault> {
    memory.load_index(offset).ok_or(RingFault::Inaccessible)
}

/// Store an index field, mapping inaccessible memory to a fault.
fn store<M: RingMemory>(memory: &mut M, offset: usize, value: u32) -> Result<(), RingFault> {
    if memory.store_index(offset, value) {
        Ok(())
    } else {
        Err(RingFault::Inaccessible)
    }
}

/// Bytes of a submission [`KernelRing::complete_nops`] reads: opcode, flags, capability and
/// `user_data` (a Nop has no arguments).
pub const NOP_BYTES: usize = 16;

/// What the kernel keeps per ring: its own indices and the completions it still owes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelRing {
    /// Next submission index to take (authoritative; mirrored to `SQ_HEAD`).
    sq_head: u32,
    /// Next completion index to post (authoritative; mirrored to `CQ_TAIL`).
    cq_tail: u32,
    /// Submissions taken by `next_submission` and neither completed nor deferred yet.
    taken: u32,
    /// Deferred submissions whose completion is not posted yet.
    deferred: u32,
}

impl KernelRing {
    /// State for a ring whose header was just written by [`initialise`].
    pub const fn new() -> Self {
        Self {
            sq_head: 0,
            cq_tail: 0,
            taken: 0,
            deferred: 0,
        }
    }

    /// Completion slots reserved: taken submissions whose completion is not posted yet.
    fn reserved(&self) -> u32 {
        self.taken.saturating_add(self.deferred)
    }

    /// The user's `cq_head` and the completions it has not consumed (`cq_tail - cq_head`), or
    /// an overrun if user space moved `cq_head` outside `[cq_tail - CQ_ENTRIES, cq_tail]`.
    fn unconsumed<M: RingMemory>(&self, memory: &M) -> Result<(u32, u32), RingFault> {
        let head = load(memory, header::CQ_HEAD)?;
        let used = self.cq_tail.wrapping_sub(head);
        if used > CQ_ENTRIES {
            return Err(RingFault::Overrun {
                head,
                tail: self.cq_tail,
            });
        }
        Ok((head, used))
    }

    /// How many submissions may be taken now: those queued, as far as the CQ has room for
    /// their completions on top of every one already owed. An SQ overrun is a fault; the CQ's
    /// indices are checked only when something is queued.
    fn takeable<M: RingMemory>(&self, memory: &M) -> Result<u32, RingFault> {
        let head = self.sq_head;
        let tail = load(memory, header::SQ_TAIL)?;
        let queued = tail.wrapping_sub(head);
        if queued > SQ_ENTRIES {
            return Err(RingFault::Overrun { head, tail });
        }
        if queued == 0 {
            return Ok(0);
        }
        let (_, used) = self.unconsumed(memory)?;
        let room = CQ_ENTRIES.saturating_sub(used.saturating_add(self.reserved()));
        Ok(queued.min(room))
    }

    /// Take the next submission to execute, if the SQ holds one and the CQ has room for its
    /// completion on top of every completion already owed. The taken submission reserves a
    /// CQ slot until [`KernelRing::complete`] or, after [`KernelRing::defer`],
    /// [`KernelRing::complete_deferred`] posts it. `Ok(None)` means nothing to do now (SQ
    /// empty, or CQ full: the submission stays queued). Faults consume nothing.
    #[must_use = "a taken submission owes a completion; dropping it leaks a CQ reservation"]
    pub fn next_submission<M: RingMemory>(
        &mut self,
        memory: &mut M,
    ) -> Result<Option<Submission>, RingFault> {
        let head = self.sq_head;
        if self.takeable(memory)? == 0 {
            return Ok(None);
        }
        let mut bytes = [0u8; SUBMISSION_SIZE];
        if !memory.read(submission_offset(head), &mut bytes) {
            return Err(RingFault::Inaccessible);
        }
        let submission = Submission::from_bytes(&bytes);
        let next = head.wrapping_add(1);
        store(memory, header::SQ_HEAD, next)?;
        self.sq_head = next;
        self.taken = self.taken.saturating_add(1);
        Ok(Some(submission))
    }

    /// Complete the `Nop`s with no flags at the head of the SQ in place: the same result as
    /// taking each with [`KernelRing::next_submission`] and answering it with
    /// [`KernelRing::complete`] (a completion carrying its `user_data`, all else zero), with
    /// the indices loaded and published once for the whole run and only the first
    /// [`NOP_BYTES`] of each entry read. A null operation is the least every ring round trip
    /// costs, so it gets this path. Stops at the first other submission, an empty SQ or a CQ
    /// without room (counting every reservation), and returns how many it completed. Faults
    /// are the ones `next_submission` reports, found before anything is consumed; a read or
    /// write that fails after the first Nop ends the run there, and the Nops before it are
    /// published.
    pub fn complete_nops<M: RingMemory>(&mut self, memory: &mut M) -> Result<u32, RingFault> {
        let head = self.sq_head;
        let takeable = self.takeable(memory)?;
        let mut completed = 0;
        while completed < takeable {
            let mut first = [0u8; NOP_BYTES];
            if !memory.read(submission_offset(head.wrapping_add(completed)), &mut first) {
                break;
            }
            let [opcode_low, opcode_high, flags_low, flags_high, _, _, _, _, user_data @ ..] =
                first;
            let is_nop = u16::from_le_bytes([opcode_low, opcode_high]) == Opcode::Nop as u16
                && u16::from_le_bytes([flags_low, flags_high]) == 0;
            if !is_nop {
                break;
            }
            let completion = Completion {
                user_data: u64::from_le_bytes(user_data),
                ..Completion::default()
            };
            let slot = completion_offset(self.cq_tail.wrapping_add(completed));
            if !memory.write(slot, &completion.to_bytes()) {
                break;
            }
            completed += 1;
        }
        if completed == 0 {
            // Whatever stopped the run, the general path meets it again.
            return Ok(0);
        }
        let (sq_head, cq_tail) = (
            head.wrapping_add(completed),
            self.cq_tail.wrapping_add(completed),
        );
        store(memory, header::SQ_HEAD, sq_head)?;
        self.sq_head = sq_head;
        store(memory, header::CQ_TAIL, cq_tail)?;
        self.cq_tail = cq_tail;
        Ok(completed)
    }

    /// Post the completion of the submission just taken, which completed at once.
    pub fn complete<M: RingMemory>(
        &mut self,
        memory: &mut M,
        completion: Completion,
    ) -> Result<(), RingFault> {
        if self.taken == 0 {
            return Err(RingFault::NotReserved);
        }
        self.post(memory, completion)?;
        self.taken -= 1;
        Ok(())
    }

    /// Mark the submission just taken as pending: it completes later through
    /// [`KernelRing::complete_deferred`], and its CQ slot stays reserved until then.
    pub fn defer(&mut self) -> Result<(), RingFault> {
        if self.taken == 0 {
            return Err(RingFault::NotReserved);
        }
        self.taken -= 1;
        self.deferred = self.deferred.saturating_add(1);
        Ok(())
    }

    /// Post the completion of a deferred operation, releasing its reservation. The
    /// reservation is released even when the ring refuses the completion (user space corrupted
    /// its CQ): the operation is over either way, and a slot kept for a completion that can
    /// never be posted would shrink the thread's pending quota for good.
    pub fn complete_deferred<M: RingMemory>(
        &mut self,
        memory: &mut M,
        completion: Completion,
    ) -> Result<(), RingFault> {
        if self.deferred == 0 {
            return Err(RingFault::NotReserved);
        }
        self.deferred -= 1;
        self.post(memory, completion)
    }

    /// Write `completion` into the next CQ slot and publish it. The slot is free unless user
    /// space moved `cq_head` backwards, which is reported as an overrun instead of overwriting
    /// a completion it has not consumed.
    fn post<M: RingMemory>(
        &mut self,
        memory: &mut M,
        completion: Completion,
    ) -> Result<(), RingFault> {
        let (head, used) = self.unconsumed(memory)?;
        if used >= CQ_ENTRIES {
            return Err(RingFault::Overrun {
                head,
                tail: self.cq_tail,
            });
        }
        let bytes: [u8; COMPLETION_SIZE] = completion.to_bytes();
        if !memory.write(completion_offset(self.cq_tail), &bytes) {
            return Err(RingFault::Inaccessible);
        }
        let next = self.cq_tail.wrapping_add(1);
        store(memory, header::CQ_TAIL, next)?;
        self.cq_tail = next;
        Ok(())
    }

    /// Completions available to user space now (`cq_tail - cq_head`), for `cap_enter`'s wait
    /// condition.
    pub fn available<M: RingMemory>(&self, memory: &M) -> Result<u32, RingFault> {
        self.unconsumed(memory).map(|(_, used)| used)
    }

    /// Completions owed but not posted: submissions taken and not yet completed, including
    /// deferred ones.
    pub fn in_flight(&self) -> u32 {
        self.reserved()
    }

    /// Deferred operations not yet completed (for the per-thread pending quota).
    pub fn deferred(&self) -> u32 {
        self.deferred
    }

    /// State matching a ring whose kernel-owned indices are `sq_head` and `cq_tail`, to
    /// exercise index wrap-around without running four billion operations.
    #[cfg(test)]
    fn starting_at(sq_head: u32, cq_tail: u32) -> Self {
        Self {
            sq_head,
            cq_tail,
            ..Self::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::ring::{CQ_OFFSET, SQ_OFFSET};
    use capos_abi::Opcode;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// Two pages, as mapped for a real ring.
    const RING_BYTES: usize = 8192;
    /// End of the completion queue area.
    const CQ_END: usize = CQ_OFFSET + CQ_ENTRIES as usize * COMPLETION_SIZE;

    /// A `Vec`-backed ring that records every kernel write. The user side of the tests pokes
    /// `bytes` directly, so `writes` holds the kernel's writes only.
    #[derive(Clone)]
    struct TestMemory {
        bytes: Vec<u8>,
        /// Offsets at or past this are inaccessible.
        accessible_below: usize,
        /// Every write the kernel attempted, as (offset, length).
        writes: Vec<(usize, usize)>,
    }

    impl RingMemory for TestMemory {
        fn read(&self, offset: usize, out: &mut [u8]) -> bool {
            let Some(end) = offset.checked_add(out.len()) else {
                return false;
            };
            if end > self.accessible_below {
                return false;
            }
            match self.bytes.get(offset..end) {
                Some(source) => {
                    out.copy_from_slice(source);
                    true
                }
                None => false,
            }
        }

        fn write(&mut self, offset: usize, bytes: &[u8]) -> bool {
            self.writes.push((offset, bytes.len()));
            let Some(end) = offset.checked_add(bytes.len()) else {
                return false;
            };
            if end > self.accessible_below {
                return false;
            }
            match self.bytes.get_mut(offset..end) {
                Some(target) => {
                    target.copy_from_slice(bytes);
                    true
                }
                None => false,
            }
        }
    }

    impl TestMemory {
        /// A freshly initialised ring (the initialising writes are forgotten).
        fn new() -> Self {
            let mut memory = Self {
                bytes: vec![0xA5; RING_BYTES],
                accessible_below: RING_BYTES,
                writes: Vec::new(),
            };
            initialise(&mut memory).unwrap();
            memory.writes.clear();
            memory
        }

        /// A ring and kernel state whose four indices all start at `start`.
        fn starting_at(start: u32) -> (Self, KernelRing) {
            let mut memory = Self::new();
            for offset in [
                header::SQ_HEAD,
                header::SQ_TAIL,
                header::CQ_HEAD,
                header::CQ_TAIL,
            ] {
                memory.set_index(offset, start);
            }
            (memory, KernelRing::starting_at(start, start))
        }

        fn index(&self, offset: usize) -> u32 {
            u32::from_le_bytes(self.bytes[offset..offset + 4].try_into().unwrap())
        }

        fn set_index(&mut self, offset: usize, value: u32) {
            self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        }

        /// User side: queue `submission` if the SQ has room.
        fn submit(&mut self, submission: Submission) -> bool {
            let head = self.index(header::SQ_HEAD);
            let tail = self.index(header::SQ_TAIL);
            if tail.wrapping_sub(head) >= SQ_ENTRIES {
                return false;
            }
            let offset = submission_offset(tail);
            self.bytes[offset..offset + SUBMISSION_SIZE].copy_from_slice(&submission.to_bytes());
            self.set_index(header::SQ_TAIL, tail.wrapping_add(1));
            true
        }

        /// User side: queue a `Nop` carrying `user_data`.
        fn submit_nop(&mut self, user_data: u64) -> bool {
            self.submit(Submission {
                opcode: Opcode::Nop as u16,
                user_data,
                ..Submission::default()
            })
        }

        /// User side: take the oldest completion, if any.
        fn consume(&mut self) -> Option<Completion> {
            let head = self.index(header::CQ_HEAD);
            let tail = self.index(header::CQ_TAIL);
            if head == tail {
                return None;
            }
            let offset = completion_offset(head);
            let bytes: [u8; COMPLETION_SIZE] = self.bytes[offset..offset + COMPLETION_SIZE]
                .try_into()
                .unwrap();
            self.set_index(header::CQ_HEAD, head.wrapping_add(1));
            Some(Completion::from_bytes(&bytes))
        }

        /// User side: every completion available, oldest first.
        fn consume_all(&mut self) -> Vec<u64> {
            std::iter::from_fn(|| self.consume())
                .map(|completion| completion.user_data)
                .collect()
        }

        /// Whether every kernel write hit `SQ_HEAD`, `CQ_TAIL` or exactly one CQ entry.
        fn kernel_writes_allowed(&self) -> bool {
            self.writes.iter().all(|&(offset, length)| {
                let index_field = offset == header::SQ_HEAD || offset == header::CQ_TAIL;
                (index_field && length == 4)
                    || ((CQ_OFFSET..CQ_END).contains(&offset)
                        && (offset - CQ_OFFSET).is_multiple_of(COMPLETION_SIZE)
                        && length == COMPLETION_SIZE)
            })
        }
    }

    /// The completion a `Nop` gets.
    fn answer(submission: &Submission) -> Completion {
        Completion {
            user_data: submission.user_data,
            ..Completion::default()
        }
    }

    /// Kernel side of `cap_enter`: take and complete everything the CQ has room for.
    fn enter(ring: &mut KernelRing, memory: &mut TestMemory) -> usize {
        let mut executed = 0;
        while let Some(submission) = ring.next_submission(memory).unwrap() {
            ring.complete(memory, answer(&submission)).unwrap();
            executed += 1;
        }
        executed
    }

    #[test]
    fn initialise_writes_a_fresh_header() {
        let mut memory = TestMemory {
            bytes: vec![0xFF; RING_BYTES],
            accessible_below: RING_BYTES,
            writes: Vec::new(),
        };
        initialise(&mut memory).unwrap();
        assert_eq!(memory.index(header::SQ_HEAD), 0);
        assert_eq!(memory.index(header::SQ_TAIL), 0);
        assert_eq!(memory.index(header::CQ_HEAD), 0);
        assert_eq!(memory.index(header::CQ_TAIL), 0);
        assert_eq!(memory.index(header::SQ_ENTRIES), SQ_ENTRIES);
        assert_eq!(memory.index(header::CQ_ENTRIES), CQ_ENTRIES);
        assert!(memory.writes.iter().all(|&(offset, _)| offset < CQ_OFFSET));
    }

    #[test]
    fn nop_round_trip() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        assert_eq!(ring.next_submission(&mut memory), Ok(None));
        assert!(memory.submit_nop(42));
        let submission = ring.next_submission(&mut memory).unwrap().unwrap();
        assert_eq!(submission.opcode, Opcode::Nop as u16);
        assert_eq!(submission.user_data, 42);
        assert_eq!(ring.in_flight(), 1);
        ring.complete(&mut memory, answer(&submission)).unwrap();
        assert_eq!(ring.in_flight(), 0);
        assert_eq!(ring.available(&memory), Ok(1));
        assert_eq!(memory.index(header::SQ_HEAD), 1);
        assert_eq!(memory.index(header::CQ_TAIL), 1);
        assert_eq!(
            memory.consume(),
            Some(Completion {
                user_data: 42,
                result: 0,
                value: 0,
                extra: 0,
                flags: 0
            })
        );
        assert_eq!(ring.available(&memory), Ok(0));
        assert!(memory.kernel_writes_allowed());
    }

    #[test]
    fn batched_submissions_complete_in_one_enter() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        for user_data in 0..u64::from(SQ_ENTRIES) {
            assert!(memory.submit_nop(user_data));
        }
        assert!(!memory.submit_nop(999), "the user side sees a full SQ");
        assert_eq!(enter(&mut ring, &mut memory), SQ_ENTRIES as usize);
        assert_eq!(ring.available(&memory), Ok(CQ_ENTRIES));
        assert_eq!(
            memory.consume_all(),
            (0..u64::from(SQ_ENTRIES)).collect::<Vec<_>>()
        );
        assert!(memory.kernel_writes_allowed());
    }

    #[test]
    fn full_cq_holds_submissions_back_without_loss() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        let mut next = 0u64;
        while next < 100 && memory.submit_nop(next) {
            next += 1;
        }
        assert_eq!(next, 64);
        assert_eq!(enter(&mut ring, &mut memory), 64);
        while next < 100 && memory.submit_nop(next) {
            next += 1;
        }
        assert_eq!(next, 100);
        // The CQ is full: nothing more is taken, the rest stays queued.
        assert_eq!(enter(&mut ring, &mut memory), 0);
        assert_eq!(ring.available(&memory), Ok(64));
        assert_eq!(
            memory
                .index(header::SQ_TAIL)
                .wrapping_sub(memory.index(header::SQ_HEAD)),
            36
        );
        let mut seen = memory.consume_all();
        assert_eq!(enter(&mut ring, &mut memory), 36);
        seen.extend(memory.consume_all());
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert_eq!(enter(&mut ring, &mut memory), 0);
        assert!(memory.kernel_writes_allowed());
    }

    #[test]
    fn deferred_operations_reserve_their_slots() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        for user_data in 0..64 {
            assert!(memory.submit_nop(user_data));
        }
        let mut deferred = Vec::new();
        for _ in 0..10 {
            deferred.push(ring.next_submission(&mut memory).unwrap().unwrap());
            ring.defer().unwrap();
        }
        assert_eq!((ring.in_flight(), ring.deferred()), (10, 10));
        assert_eq!(enter(&mut ring, &mut memory), 54);
        for user_data in 64..74 {
            assert!(memory.submit_nop(user_data));
        }
        // 54 posted + 10 reserved fill the CQ.
        assert_eq!(enter(&mut ring, &mut memory), 0);
        for submission in deferred.iter().rev() {
            ring.complete_deferred(&mut memory, answer(submission))
                .unwrap();
        }
        assert_eq!((ring.in_flight(), ring.deferred()), (0, 0));
        assert_eq!(ring.available(&memory), Ok(64));
        assert_eq!(enter(&mut ring, &mut memory), 0);
        let mut seen = memory.consume_all();
        assert_eq!(enter(&mut ring, &mut memory), 10);
        seen.extend(memory.consume_all());
        let mut expected: Vec<u64> = (10..64).collect();
        expected.extend((0..10).rev());
        expected.extend(64..74);
        assert_eq!(seen, expected);
        assert!(memory.kernel_writes_allowed());
    }

    #[test]
    fn a_rejected_deferred_completion_gives_its_slot_back() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        assert!(memory.submit_nop(7));
        let submission = ring.next_submission(&mut memory).unwrap().unwrap();
        ring.defer().unwrap();
        assert_eq!(ring.deferred(), 1);
        // User space moves its CQ head back: the completion cannot be posted...
        memory.set_index(header::CQ_HEAD, 0u32.wrapping_sub(CQ_ENTRIES + 1));
        assert!(matches!(
            ring.complete_deferred(&mut memory, answer(&submission)),
            Err(RingFault::Overrun { .. })
        ));
        // ...yet the operation is over: its pending slot and CQ reservation are released.
        assert_eq!((ring.deferred(), ring.in_flight()), (0, 0));
        memory.set_index(header::CQ_HEAD, 0);
        assert_eq!(ring.available(&memory), Ok(0));
        assert!(memory.kernel_writes_allowed());
    }

    #[test]
    fn completing_without_a_reservation_is_refused() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        let completion = Completion::default();
        assert_eq!(
            ring.complete(&mut memory, completion),
            Err(RingFault::NotReserved)
        );
        assert_eq!(ring.defer(), Err(RingFault::NotReserved));
        assert_eq!(
            ring.complete_deferred(&mut memory, completion),
            Err(RingFault::NotReserved)
        );
        assert!(memory.submit_nop(1));
        let submission = ring.next_submission(&mut memory).unwrap().unwrap();
        ring.complete(&mut memory, answer(&submission)).unwrap();
        assert_eq!(
            ring.complete(&mut memory, completion),
            Err(RingFault::NotReserved)
        );
        assert_eq!(memory.consume_all(), vec![1]);
        assert!(memory.writes.len() == 3, "nothing written by refused calls");
    }

    #[test]
    fn sq_overrun_is_detected_and_consumes_nothing() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        memory.set_index(header::SQ_TAIL, SQ_ENTRIES + 1);
        assert_eq!(
            ring.next_submission(&mut memory),
            Err(RingFault::Overrun {
                head: 0,
                tail: SQ_ENTRIES + 1
            })
        );
        // A tail behind the head is far ahead in wrapping arithmetic.
        memory.set_index(header::SQ_TAIL, u32::MAX);
        assert_eq!(
            ring.next_submission(&mut memory),
            Err(RingFault::Overrun {
                head: 0,
                tail: u32::MAX
            })
        );
        assert!(memory.writes.is_empty());
        assert_eq!(ring.in_flight(), 0);
        // Exactly SQ_ENTRIES queued is a full queue, not an overrun.
        memory.set_index(header::SQ_TAIL, SQ_ENTRIES);
        assert_eq!(enter(&mut ring, &mut memory), SQ_ENTRIES as usize);
    }

    #[test]
    fn user_written_kernel_indices_are_ignored() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        assert!(memory.submit_nop(1));
        assert!(memory.submit_nop(2));
        memory.set_index(header::SQ_HEAD, 2);
        memory.set_index(header::CQ_TAIL, 1000);
        assert_eq!(enter(&mut ring, &mut memory), 2);
        assert_eq!(memory.index(header::SQ_HEAD), 2);
        assert_eq!(memory.index(header::CQ_TAIL), 2);
        assert_eq!(memory.consume_all(), vec![1, 2]);
    }

    #[test]
    fn user_corrupted_cq_head_is_an_overrun() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        for user_data in 0..3 {
            assert!(memory.submit_nop(user_data));
        }
        assert_eq!(enter(&mut ring, &mut memory), 3);
        // Head moved past the tail.
        memory.set_index(header::CQ_HEAD, 4);
        assert_eq!(
            ring.available(&memory),
            Err(RingFault::Overrun { head: 4, tail: 3 })
        );
        assert!(memory.submit_nop(3));
        let writes = memory.writes.len();
        assert_eq!(
            ring.next_submission(&mut memory),
            Err(RingFault::Overrun { head: 4, tail: 3 })
        );
        assert_eq!(memory.writes.len(), writes, "nothing consumed");
        // Head moved back further than the CQ holds.
        memory.set_index(header::CQ_HEAD, 3u32.wrapping_sub(CQ_ENTRIES + 1));
        assert!(matches!(
            ring.available(&memory),
            Err(RingFault::Overrun { tail: 3, .. })
        ));
        // Head moved back while a completion is reserved: the CQ looks full, and the kernel
        // reports it rather than overwrite an unconsumed entry.
        memory.set_index(header::CQ_HEAD, 3);
        let submission = ring.next_submission(&mut memory).unwrap().unwrap();
        memory.set_index(header::CQ_HEAD, 3u32.wrapping_sub(CQ_ENTRIES));
        let writes = memory.writes.len();
        assert_eq!(
            ring.complete(&mut memory, answer(&submission)),
            Err(RingFault::Overrun {
                head: 3u32.wrapping_sub(CQ_ENTRIES),
                tail: 3
            })
        );
        assert_eq!(memory.writes.len(), writes, "no entry overwritten");
        assert!(memory.kernel_writes_allowed());
    }

    #[test]
    fn inaccessible_memory_faults_without_consuming() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        assert!(memory.submit_nop(7));
        memory.accessible_below = 0;
        assert_eq!(
            ring.next_submission(&mut memory),
            Err(RingFault::Inaccessible)
        );
        assert_eq!(ring.available(&memory), Err(RingFault::Inaccessible));
        assert_eq!(initialise(&mut memory), Err(RingFault::Inaccessible));
        // Header readable, submission page not.
        memory.accessible_below = SQ_OFFSET;
        assert_eq!(
            ring.next_submission(&mut memory),
            Err(RingFault::Inaccessible)
        );
        assert_eq!(memory.index(header::SQ_HEAD), 0);
        assert_eq!(ring.in_flight(), 0);
        // Submission readable, completion area not.
        memory.accessible_below = RING_BYTES;
        let submission = ring.next_submission(&mut memory).unwrap().unwrap();
        memory.accessible_below = CQ_OFFSET;
        assert_eq!(
            ring.complete(&mut memory, answer(&submission)),
            Err(RingFault::Inaccessible)
        );
        assert_eq!(memory.index(header::CQ_TAIL), 0);
        assert_eq!(ring.in_flight(), 1, "the reservation is kept");
        memory.accessible_below = RING_BYTES;
        ring.complete(&mut memory, answer(&submission)).unwrap();
        assert_eq!(memory.consume_all(), vec![7]);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let (mut memory, mut ring) = TestMemory::starting_at(u32::MAX - 40);
        let mut seen = Vec::new();
        for round in 0..3u64 {
            for user_data in round * 50..round * 50 + 50 {
                assert!(memory.submit_nop(user_data));
            }
            assert_eq!(enter(&mut ring, &mut memory), 50);
            assert_eq!(ring.available(&memory), Ok(50));
            seen.extend(memory.consume_all());
        }
        assert_eq!(seen, (0..150).collect::<Vec<_>>());
        assert_eq!(
            memory.index(header::SQ_HEAD),
            (u32::MAX - 40).wrapping_add(150)
        );
        assert!(memory.kernel_writes_allowed());
    }

    /// One step of an honest user and kernel, interleaved.
    #[derive(Clone, Debug)]
    enum Step {
        /// The user queues up to this many submissions.
        Produce(u8),
        /// The user consumes up to this many completions.
        Consume(u8),
        /// The kernel takes one submission and completes it at once or defers it.
        Take { defer: bool },
        /// The kernel completes the deferred operation at this index (modulo).
        CompleteDeferred(usize),
        /// The kernel takes and completes everything it may.
        Enter,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (1u8..20).prop_map(Step::Produce),
            3 => (1u8..20).prop_map(Step::Consume),
            3 => any::<bool>().prop_map(|defer| Step::Take { defer }),
            2 => any::<usize>().prop_map(Step::CompleteDeferred),
            1 => Just(Step::Enter),
        ]
    }

    /// Kernel side of one taken submission in the model test.
    fn take(
        ring: &mut KernelRing,
        memory: &mut TestMemory,
        defer: bool,
        pending: &mut Vec<Submission>,
        taken: &mut Vec<u64>,
        posted: &mut Vec<u64>,
    ) -> Result<bool, RingFault> {
        let Some(submission) = ring.next_submission(memory)? else {
            return Ok(false);
        };
        taken.push(submission.user_data);
        if defer {
            ring.defer()?;
            pending.push(submission);
        } else {
            ring.complete(memory, answer(&submission))?;
            posted.push(submission.user_data);
        }
        Ok(true)
    }

    /// A ring fault as a proptest failure.
    fn fail(fault: RingFault) -> TestCaseError {
        TestCaseError::fail(fault.to_string())
    }

    proptest! {
        #[test]
        fn interleavings_never_lose_or_duplicate(
            start in prop_oneof![Just(0u32), u32::MAX - 200..=u32::MAX],
            steps in proptest::collection::vec(step(), 0..300),
        ) {
            let (mut memory, mut ring) = TestMemory::starting_at(start);
            let mut produced = 0u64;
            let mut taken = Vec::new();
            let mut posted = Vec::new();
            let mut consumed = Vec::new();
            let mut pending: Vec<Submission> = Vec::new();
            for step in steps {
                match step {
                    Step::Produce(count) => {
                        for _ in 0..count {
                            if !memory.submit_nop(produced) {
                                break;
                            }
                            produced += 1;
                        }
                    }
                    Step::Consume(count) => {
                        for _ in 0..count {
                            match memory.consume() {
                                Some(completion) => consumed.push(completion.user_data),
                                None => break,
                            }
                        }
                    }
                    Step::Take { defer } => {
                        take(&mut ring, &mut memory, defer, &mut pending, &mut taken, &mut posted)
                            .map_err(fail)?;
                    }
                    Step::CompleteDeferred(index) if !pending.is_empty() => {
                        let submission = pending.remove(index % pending.len());
                        ring.complete_deferred(&mut memory, answer(&submission)).map_err(fail)?;
                        posted.push(submission.user_data);
                    }
                    Step::CompleteDeferred(_) => {}
                    Step::Enter => {
                        while take(
                            &mut ring, &mut memory, false, &mut pending, &mut taken, &mut posted,
                        )
                        .map_err(fail)?
                        {}
                    }
                }
                prop_assert_eq!(ring.in_flight() as usize, pending.len());
                prop_assert_eq!(ring.deferred() as usize, pending.len());
                let available = ring.available(&memory).map_err(fail)?;
                prop_assert!(available + ring.in_flight() <= CQ_ENTRIES);
                prop_assert!(memory.kernel_writes_allowed());
            }
            // Drain: finish everything owed and let both sides run until nothing is left.
            for submission in pending.drain(..) {
                ring.complete_deferred(&mut memory, answer(&submission)).map_err(fail)?;
                posted.push(submission.user_data);
            }
            // At most SQ_ENTRIES submissions are left, and consuming first always leaves room.
            for _ in 0..=SQ_ENTRIES {
                consumed.extend(memory.consume_all());
                let progressed = take(
                    &mut ring, &mut memory, false, &mut pending, &mut taken, &mut posted,
                )
                .map_err(fail)?;
                if !progressed {
                    break;
                }
            }
            consumed.extend(memory.consume_all());
            prop_assert_eq!(memory.index(header::SQ_TAIL), memory.index(header::SQ_HEAD));
            // Taken in submission order, each once; seen by the user in posting order, each once.
            prop_assert_eq!(&taken, &(0..produced).collect::<Vec<_>>());
            prop_assert_eq!(&consumed, &posted);
            let unique: HashSet<u64> = consumed.iter().copied().collect();
            prop_assert_eq!(unique.len(), consumed.len());
            prop_assert_eq!(consumed.len() as u64, produced);
            prop_assert!(memory.kernel_writes_allowed());
        }
    }

    proptest! {
        #[test]
        fn user_indices_are_checked_exactly(
            start in any::<u32>(),
            cq_head in any::<u32>(),
            sq_tail in any::<u32>(),
        ) {
            let (mut memory, mut ring) = TestMemory::starting_at(start);
            memory.set_index(header::CQ_HEAD, cq_head);
            let used = start.wrapping_sub(cq_head);
            let cq_overrun = RingFault::Overrun { head: cq_head, tail: start };
            let expected = if used <= CQ_ENTRIES { Ok(used) } else { Err(cq_overrun) };
            prop_assert_eq!(ring.available(&memory), expected);

            memory.set_index(header::SQ_TAIL, sq_tail);
            let queued = sq_tail.wrapping_sub(start);
            let taken = ring.next_submission(&mut memory);
            if queued > SQ_ENTRIES {
                prop_assert_eq!(taken, Err(RingFault::Overrun { head: start, tail: sq_tail }));
            } else if queued == 0 {
                prop_assert_eq!(taken, Ok(None));
            } else if used > CQ_ENTRIES {
                prop_assert_eq!(taken, Err(cq_overrun));
            } else if used == CQ_ENTRIES {
                prop_assert_eq!(taken, Ok(None));
            } else {
                prop_assert!(matches!(taken, Ok(Some(_))));
                prop_assert_eq!(memory.index(header::SQ_HEAD), start.wrapping_add(1));
            }
            prop_assert!(memory.kernel_writes_allowed());
        }
    }

    /// A submission for the `complete_nops` test: a Nop, a Nop with flags, or another
    /// operation, with arbitrary bytes where a Nop has none.
    fn mixed_submission() -> impl Strategy<Value = Submission> {
        (
            0u8..4,
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            any::<[u64; 6]>(),
        )
            .prop_map(
                |(kind, flags, capability, user_data, arguments)| Submission {
                    opcode: if kind < 3 {
                        Opcode::Nop as u16
                    } else {
                        Opcode::ConsoleWrite as u16
                    },
                    flags: if kind == 2 { flags | 1 } else { 0 },
                    capability,
                    user_data,
                    arguments,
                },
            )
    }

    proptest! {
        #[test]
        fn complete_nops_is_next_submission_then_complete(
            start in prop_oneof![Just(0u32), u32::MAX - 100..=u32::MAX],
            completed_before in 0u32..CQ_ENTRIES,
            deferred_before in 0u32..8,
            submissions in proptest::collection::vec(mixed_submission(), 0..SQ_ENTRIES as usize),
            cq_head_shift in prop_oneof![Just(0u32), any::<u32>()],
        ) {
            // Fill part of the CQ (not consumed) and defer some operations, then queue.
            let (mut memory, mut ring) = TestMemory::starting_at(start);
            let mut filler = 0;
            while filler < completed_before + deferred_before && memory.submit_nop(filler.into()) {
                if ring.next_submission(&mut memory).map_err(fail)?.is_none() {
                    // The CQ is full (with the reservations): that is a case too.
                    break;
                }
                if filler < completed_before {
                    ring.complete(&mut memory, Completion::default()).map_err(fail)?;
                } else {
                    ring.defer().map_err(fail)?;
                }
                filler += 1;
            }
            for submission in &submissions {
                memory.submit(*submission);
            }
            // Sometimes a corrupted CQ head.
            let cq_head = memory.index(header::CQ_HEAD).wrapping_add(cq_head_shift);
            memory.set_index(header::CQ_HEAD, cq_head);
            memory.writes.clear();
            let (mut step_memory, mut step_ring) = (memory.clone(), ring.clone());

            // Fast path, then one general take.
            let fast = ring.complete_nops(&mut memory);
            let fast_next = ring.next_submission(&mut memory);
            // Reference: take one at a time, answering Nops until something else comes.
            let mut step_count = 0u32;
            let step_next = loop {
                match step_ring.next_submission(&mut step_memory) {
                    Ok(Some(submission))
                        if submission.opcode == Opcode::Nop as u16 && submission.flags == 0 =>
                    {
                        step_ring
                            .complete(&mut step_memory, answer(&submission))
                            .map_err(fail)?;
                        step_count += 1;
                    }
                    other => break other,
                }
            };
            match fast {
                Ok(count) => prop_assert_eq!(count, step_count),
                Err(fault) => {
                    prop_assert_eq!(step_count, 0);
                    prop_assert_eq!(Err(fault), step_next);
                }
            }
            prop_assert_eq!(fast_next, step_next);
            prop_assert_eq!(&ring, &step_ring);
            prop_assert!(memory.bytes == step_memory.bytes, "ring memory differs");
            prop_assert!(memory.kernel_writes_allowed(), "writes: {:?}", memory.writes);
        }
    }

    #[test]
    fn complete_nops_takes_a_batch_and_stops_at_other_work() {
        let mut memory = TestMemory::new();
        let mut ring = KernelRing::new();
        for user_data in 0..5 {
            assert!(memory.submit_nop(user_data));
        }
        let console = Submission {
            opcode: Opcode::ConsoleWrite as u16,
            user_data: 99,
            ..Submission::default()
        };
        assert!(memory.submit(console));
        assert!(memory.submit_nop(5));
        assert_eq!(ring.complete_nops(&mut memory), Ok(5));
        assert_eq!(memory.index(header::SQ_HEAD), 5);
        assert_eq!(memory.index(header::CQ_TAIL), 5);
        assert_eq!(memory.consume_all(), vec![0, 1, 2, 3, 4]);
        // The ConsoleWrite stops it; the general path takes it.
        assert_eq!(ring.complete_nops(&mut memory), Ok(0));
        assert_eq!(ring.next_submission(&mut memory), Ok(Some(console)));
        ring.defer().unwrap();
        assert_eq!(ring.complete_nops(&mut memory), Ok(1));
        assert_eq!(memory.consume_all(), vec![5]);
        assert_eq!(ring.in_flight(), 1);
        assert!(memory.kernel_writes_allowed());
    }

    /// One step of a hostile user against the kernel.
    #[derive(Clone, Debug)]
    enum HostileStep {
        /// Write an arbitrary value into a header index field.
        SetIndex(usize, u32),
        /// Write an arbitrary byte anywhere in the ring.
        Scribble(usize, u8),
        /// Queue a submission normally.
        Produce,
        /// Change how much of the ring is accessible.
        Accessible(usize),
        Take {
            defer: bool,
        },
        CompleteDeferred,
        Available,
    }

    fn hostile_step() -> impl Strategy<Value = HostileStep> {
        let index_field = prop_oneof![
            Just(header::SQ_HEAD),
            Just(header::SQ_TAIL),
            Just(header::CQ_HEAD),
            Just(header::CQ_TAIL),
        ];
        let near = prop_oneof![0u32..200, u32::MAX - 200..=u32::MAX, any::<u32>()];
        let limit = prop_oneof![
            Just(0),
            Just(CQ_OFFSET),
            Just(SQ_OFFSET),
            Just(RING_BYTES),
            0..=RING_BYTES,
        ];
        prop_oneof![
            2 => (index_field, near)
                .prop_map(|(offset, value)| HostileStep::SetIndex(offset, value)),
            1 => (0..RING_BYTES, any::<u8>())
                .prop_map(|(offset, value)| HostileStep::Scribble(offset, value)),
            2 => Just(HostileStep::Produce),
            1 => limit.prop_map(HostileStep::Accessible),
            3 => any::<bool>().prop_map(|defer| HostileStep::Take { defer }),
            2 => Just(HostileStep::CompleteDeferred),
            1 => Just(HostileStep::Available),
        ]
    }

    proptest! {
        #[test]
        fn hostile_user_never_makes_the_kernel_write_outside_its_fields(
            steps in proptest::collection::vec(hostile_step(), 0..300),
        ) {
            let mut memory = TestMemory::new();
            let mut ring = KernelRing::new();
            let mut pending = 0u32;
            for step in steps {
                match step {
                    HostileStep::SetIndex(offset, value) => memory.set_index(offset, value),
                    HostileStep::Scribble(offset, value) => memory.bytes[offset] = value,
                    HostileStep::Produce => {
                        let _ = memory.submit_nop(0);
                    }
                    HostileStep::Accessible(limit) => memory.accessible_below = limit,
                    HostileStep::Take { defer } => {
                        if let Ok(Some(submission)) = ring.next_submission(&mut memory) {
                            if defer {
                                prop_assert_eq!(ring.defer(), Ok(()));
                                pending += 1;
                            } else {
                                let _ = ring.complete(&mut memory, answer(&submission));
                            }
                        }
                    }
                    HostileStep::CompleteDeferred => {
                        // Posted or refused by a corrupted CQ, the operation is over and its
                        // slot released; only a completion nobody reserved changes nothing.
                        if ring.complete_deferred(&mut memory, Completion::default())
                            != Err(RingFault::NotReserved)
                        {
                            pending -= 1;
                        }
                    }
                    HostileStep::Available => {
                        if let Ok(available) = ring.available(&memory) {
                            prop_assert!(available <= CQ_ENTRIES);
                        }
                    }
                }
                prop_assert!(ring.in_flight() <= CQ_ENTRIES);
                prop_assert!(ring.deferred() == pending);
                prop_assert!(memory.kernel_writes_allowed(), "writes: {:?}", memory.writes);
                prop_assert_eq!(memory.bytes.len(), RING_BYTES);
            }
        }
    }
}
