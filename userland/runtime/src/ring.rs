//! The capability ring client: queue submissions, enter the kernel, collect
//! completions.
//!
//! Invariants a reader must know:
//! - User space writes only `sq_tail` and `cq_head`; the kernel writes only
//!   `sq_head` and `cq_tail`. Each index is read and written through an
//!   `AtomicU32` reference: a release store publishes the entries before it,
//!   an acquire load makes the other side's entries visible.
//! - Indices are free-running `u32`s; slot = index % entries, and
//!   `tail - head` (wrapping) is the number of queued entries.
//! - Completions [`Ring::call`] takes off the queue while waiting for its own
//!   are kept in a local FIFO, and [`Ring::next_completion`] returns them
//!   first, so no completion is lost.
//! - `user_data` values with [`RUNTIME_USER_DATA`] set are reserved for the
//!   runtime's typed operations.

use alloc::collections::VecDeque;
use capos_abi::ring::{self, header};
use capos_abi::{Completion, Error, Submission, NO_TIMEOUT};
use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering};

/// Bit set in every `user_data` the runtime picks for its own operations.
pub const RUNTIME_USER_DATA: u64 = 1 << 63;

/// The submission queue has no free slot; enter the kernel (and consume
/// completions, which the kernel needs room for) and retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull;

/// The ring header disagrees with the ABI (a kernel bug).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderMismatch {
    /// Submission-queue entries the kernel wrote.
    pub sq_entries: u32,
    /// Completion-queue entries the kernel wrote.
    pub cq_entries: u32,
}

impl core::fmt::Display for HeaderMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ring header has sq_entries={} cq_entries={}, the ABI says {} and {}",
            self.sq_entries,
            self.cq_entries,
            ring::SQ_ENTRIES,
            ring::CQ_ENTRIES
        )
    }
}

/// Decode a raw result: non-negative is success, negative an [`Error`].
///
/// # Panics
/// On a negative value that is no known error code (a kernel bug).
pub fn decode_result(result: i64) -> Result<u64, Error> {
    if result >= 0 {
        return Ok(result as u64);
    }
    match Error::from_result(result) {
        Some(error) => Err(error),
        None => panic!("kernel returned unknown error code {result}"),
    }
}

/// This thread's ring.
///
/// Every method takes `&self`: the local state sits in cells, so a mutex
/// guard or a join handle can hold a shared reference to the ring while the
/// program keeps using it. A `Ring` is neither `Send` nor `Sync`: only the
/// thread the kernel gave the mapping to may use it, because `cap_enter`
/// consumes and waits on the caller's own ring only. No method calls back
/// into program code, so the cells are never borrowed twice.
pub struct Ring {
    /// Address of the two-page ring mapping.
    base: usize,
    /// Completions taken off the queue by `call` but not yet returned.
    buffered: RefCell<VecDeque<Completion>>,
    /// Counter behind [`Ring::fresh_user_data`].
    next_user_data: Cell<u64>,
    /// Keeps the ring on the thread it belongs to.
    _thread_bound: PhantomData<*const ()>,
}

impl Ring {
    /// A client for the ring mapped at `base`.
    ///
    /// # Safety
    /// `base` must be the page-aligned address of a ring mapping laid out as
    /// in [`capos_abi::ring`], valid for as long as the `Ring` is used and
    /// shared only with the kernel. No other `Ring` for the same mapping may
    /// be used while this one is (the panic handler's is the one exception:
    /// it runs after the program's `Ring` is abandoned for good).
    pub unsafe fn from_base(base: usize) -> Self {
        Self {
            base,
            buffered: RefCell::new(VecDeque::new()),
            next_user_data: Cell::new(0),
            _thread_bound: PhantomData,
        }
    }

    /// The ring's base address.
    pub fn base(&self) -> usize {
        self.base
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset < ring::CQ_OFFSET && offset.is_multiple_of(4));
        // SAFETY: `offset` is a header field offset (4-aligned, inside page
        // 0); the mapping is valid while `self` lives (`from_base`); both the
        // kernel and this client access header words only atomically.
        unsafe { &*((self.base + offset) as *const AtomicU32) }
    }

    /// Check the entry counts the kernel wrote into the header.
    pub fn check_header(&self) -> Result<(), HeaderMismatch> {
        let sq_entries = self.index(header::SQ_ENTRIES).load(Ordering::Acquire);
        let cq_entries = self.index(header::CQ_ENTRIES).load(Ordering::Acquire);
        if sq_entries == ring::SQ_ENTRIES && cq_entries == ring::CQ_ENTRIES {
            Ok(())
        } else {
            Err(HeaderMismatch {
                sq_entries,
                cq_entries,
            })
        }
    }

    /// A `user_data` no earlier call of this function returned (within 2^63
    /// calls), with [`RUNTIME_USER_DATA`] set.
    pub fn fresh_user_data(&self) -> u64 {
        let next = self.next_user_data.get().wrapping_add(1);
        self.next_user_data.set(next);
        RUNTIME_USER_DATA | next
    }

    /// Queue `submission` for the kernel, which sees it at the next
    /// [`Ring::enter`].
    ///
    /// # Safety
    /// Every user memory range the submission names (by opcode, see
    /// docs/abi.md) must stay valid until its completion has been taken off
    /// the ring: readable for ranges the kernel reads, and for ranges it
    /// writes, writable and not otherwise accessed. Ranges outside this
    /// program's memory are fine: the kernel rejects them.
    #[inline]
    pub unsafe fn submit(&self, submission: Submission) -> Result<(), RingFull> {
        let head = self.index(header::SQ_HEAD).load(Ordering::Acquire);
        let tail = self.index(header::SQ_TAIL).load(Ordering::Relaxed);
        if tail.wrapping_sub(head) >= ring::SQ_ENTRIES {
            return Err(RingFull);
        }
        let slot = (self.base + ring::submission_offset(tail)) as *mut Submission;
        // SAFETY: the slot lies inside the SQ page and is 64-byte aligned.
        // `tail - head < SQ_ENTRIES`, so the kernel has finished with it (it
        // reads only slots in [head, tail)), and it is not published until
        // the release store below, which orders this plain write before it
        // (so the compiler may build the entry in place).
        unsafe { slot.write(submission) };
        self.index(header::SQ_TAIL)
            .store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// `cap_enter`: let the kernel consume the submission queue, then wait
    /// until at least `min_complete` completions are on the queue or
    /// `timeout_ns` passes. Returns the number on the queue (completions
    /// already moved to the local buffer are not counted).
    pub fn enter(&self, min_complete: u32, timeout_ns: u64) -> Result<u32, Error> {
        let count = decode_result(crate::syscall::cap_enter(min_complete, timeout_ns))?;
        Ok(count as u32)
    }

    /// Take one completion off the shared queue, bypassing the buffer.
    #[inline]
    fn pop_queue(&self) -> Option<Completion> {
        let tail = self.index(header::CQ_TAIL).load(Ordering::Acquire);
        let head = self.index(header::CQ_HEAD).load(Ordering::Relaxed);
        if head == tail {
            return None;
        }
        let slot = (self.base + ring::completion_offset(head)) as *const Completion;
        // SAFETY: the slot lies inside the CQ (page 0) and is 32-byte
        // aligned; `head != tail`, so the kernel wrote it before its release
        // store of `cq_tail`, which the acquire load above observed, and it
        // will not rewrite it until `cq_head` moves past it below (a plain
        // read: the acquire load orders it, and the compiler may then read
        // only the fields used).
        let completion = unsafe { slot.read() };
        self.index(header::CQ_HEAD)
            .store(head.wrapping_add(1), Ordering::Release);
        Some(completion)
    }

    /// The oldest completion not yet returned: buffered ones first, then the
    /// shared queue. Does not enter the kernel.
    pub fn next_completion(&self) -> Option<Completion> {
        self.buffered
            .borrow_mut()
            .pop_front()
            .or_else(|| self.pop_queue())
    }

    /// Completions ready to be returned by [`Ring::next_completion`].
    pub fn ready_completions(&self) -> usize {
        let tail = self.index(header::CQ_TAIL).load(Ordering::Acquire);
        let head = self.index(header::CQ_HEAD).load(Ordering::Relaxed);
        self.buffered.borrow().len() + tail.wrapping_sub(head) as usize
    }

    /// Submit and wait for this submission's completion (matched by
    /// `user_data`, which must not be in flight already). Other completions
    /// seen meanwhile are kept for [`Ring::next_completion`].
    ///
    /// If `cap_enter` itself fails (e.g. `RingOverrun` after the indices
    /// were corrupted), returns a completion carrying that error.
    ///
    /// # Safety
    /// As for [`Ring::submit`] (the memory need only stay valid until this
    /// returns, unless it returns an error from `cap_enter` while the
    /// submission is still queued).
    #[inline]
    pub unsafe fn call(&self, submission: Submission) -> Completion {
        let user_data = submission.user_data;
        // SAFETY: forwarded from this function's contract.
        unsafe { self.try_call(submission) }.unwrap_or_else(|error| Completion {
            user_data,
            result: error.as_result(),
            ..Completion::default()
        })
    }

    /// [`Ring::call`], telling a failed `cap_enter` apart from a completion:
    /// `Err` means the kernel may or may not have consumed the submission,
    /// so whatever it names must be treated as still lent to the kernel.
    /// The common case (room in the queue, and the first completion is this
    /// one) is inlined into each wrapper; the rest is out of line.
    ///
    /// # Safety
    /// As for [`Ring::call`].
    #[inline(always)]
    pub(crate) unsafe fn try_call(&self, submission: Submission) -> Result<Completion, Error> {
        let user_data = submission.user_data;
        // SAFETY: forwarded from this function's contract.
        let queued = unsafe { self.submit(submission) };
        if queued.is_err() {
            // SAFETY: forwarded from this function's contract.
            unsafe { self.submit_when_room(submission) }?;
        }
        // Only this thread's `cap_enter` takes its submissions, so the
        // completion cannot be there yet: enter first.
        self.enter(1, NO_TIMEOUT)?;
        match self.pop_queue() {
            Some(completion) if completion.user_data == user_data => Ok(completion),
            other => self.await_completion(user_data, other),
        }
    }

    /// [`Ring::try_call`] when the submission queue is full: make room
    /// (the kernel may be holding back for CQ room) until it fits.
    ///
    /// # Safety
    /// As for [`Ring::submit`].
    #[cold]
    #[inline(never)]
    unsafe fn submit_when_room(&self, submission: Submission) -> Result<(), Error> {
        loop {
            self.buffer_queue();
            self.enter(0, NO_TIMEOUT)?;
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.submit(submission) }.is_ok() {
                return Ok(());
            }
        }
    }

    /// [`Ring::try_call`] after a look at the queue found `seen` (another
    /// completion, or none): buffer the others until `user_data`'s comes.
    #[cold]
    #[inline(never)]
    fn await_completion(
        &self,
        user_data: u64,
        seen: Option<Completion>,
    ) -> Result<Completion, Error> {
        if let Some(completion) = seen {
            self.buffered.borrow_mut().push_back(completion);
        }
        loop {
            while let Some(completion) = self.pop_queue() {
                if completion.user_data == user_data {
                    return Ok(completion);
                }
                self.buffered.borrow_mut().push_back(completion);
            }
            self.enter(1, NO_TIMEOUT)?;
        }
    }

    /// Move everything on the shared queue to the local buffer.
    fn buffer_queue(&self) {
        while let Some(completion) = self.pop_queue() {
            self.buffered.borrow_mut().push_back(completion);
        }
    }

    /// Like [`Ring::call`] but without buffering (no allocation): other
    /// completions are dropped, and it gives up after `max_enters` entries
    /// into the kernel. For the panic handler only.
    #[cfg_attr(test, allow(dead_code))]
    pub(crate) fn call_discarding(
        &self,
        submission: Submission,
        max_enters: u32,
    ) -> Option<Completion> {
        let mut enters = 0;
        loop {
            // SAFETY: the panic handler submits only console writes of
            // buffers that outlive this call.
            match unsafe { self.submit(submission) } {
                Ok(()) => break,
                Err(RingFull) => {
                    while self.pop_queue().is_some() {}
                    enters += 1;
                    if enters > max_enters || self.enter(0, NO_TIMEOUT).is_err() {
                        return None;
                    }
                }
            }
        }
        loop {
            while let Some(completion) = self.pop_queue() {
                if completion.user_data == submission.user_data {
                    return Some(completion);
                }
            }
            enters += 1;
            if enters > max_enters || self.enter(1, NO_TIMEOUT).is_err() {
                return None;
            }
        }
    }

    /// The submission queue's (head, tail), as the shared header holds them.
    pub fn submission_indices(&self) -> (u32, u32) {
        (
            self.index(header::SQ_HEAD).load(Ordering::Acquire),
            self.index(header::SQ_TAIL).load(Ordering::Relaxed),
        )
    }

    /// Overwrite `sq_tail` (tests of the kernel's overrun checks).
    ///
    /// # Safety
    /// Every slot between the kernel's head and `tail` that the kernel may
    /// consume must hold a submission satisfying [`Ring::submit`]'s contract;
    /// a `tail` more than `SQ_ENTRIES` ahead of the head must be rejected
    /// with `RingOverrun` by the kernel before it consumes anything.
    pub unsafe fn set_submission_tail(&self, tail: u32) {
        self.index(header::SQ_TAIL).store(tail, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake;
    use capos_abi::Opcode;
    use std::collections::BTreeSet;

    fn nop(user_data: u64) -> Submission {
        Submission {
            opcode: Opcode::Nop as u16,
            user_data,
            ..Submission::default()
        }
    }

    fn ring(memory: &fake::RingMemory) -> Ring {
        // SAFETY: the memory is a fresh ring image that outlives the Ring.
        unsafe { Ring::from_base(memory.0.as_ptr() as usize) }
    }

    fn submit(ring: &Ring, submission: Submission) -> Result<(), RingFull> {
        // SAFETY: test submissions name no memory.
        unsafe { ring.submit(submission) }
    }

    fn drain(ring: &Ring) -> Vec<u64> {
        std::iter::from_fn(|| ring.next_completion())
            .map(|completion| {
                assert_eq!(completion.result, 0);
                completion.user_data
            })
            .collect()
    }

    #[test]
    fn header_is_checked() {
        let memory = fake::ring_memory();
        assert_eq!(ring(&memory).check_header(), Ok(()));
        let mut bad = fake::ring_memory();
        bad.0[header::CQ_ENTRIES] = 0;
        assert!(ring(&bad).check_header().is_err());
    }

    #[test]
    fn batch_of_32_completes_in_one_enter() {
        let memory = fake::ring_memory();
        let ring = ring(&memory);
        for user_data in 0..32 {
            submit(&ring, nop(user_data)).unwrap();
        }
        assert_eq!(ring.enter(32, NO_TIMEOUT), Ok(32));
        assert_eq!(drain(&ring), (0..32).collect::<Vec<_>>());
    }

    #[test]
    fn full_completion_queue_holds_back_submissions_without_loss() {
        let memory = fake::ring_memory();
        let ring = ring(&memory);
        for user_data in 0..64 {
            submit(&ring, nop(user_data)).unwrap();
        }
        assert_eq!(submit(&ring, nop(99)), Err(RingFull));
        assert_eq!(ring.enter(64, NO_TIMEOUT), Ok(64));
        for user_data in 64..80 {
            submit(&ring, nop(user_data)).unwrap();
        }
        // The CQ is full: the kernel must leave the 16 queued.
        assert_eq!(ring.enter(0, NO_TIMEOUT), Ok(64));
        assert_eq!(
            ring.submission_indices().1 - ring.submission_indices().0,
            16
        );
        let mut seen = drain(&ring);
        assert_eq!(ring.enter(16, NO_TIMEOUT), Ok(16));
        seen.extend(drain(&ring));
        assert_eq!(seen.len(), 80);
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>().len(), 80);
    }

    #[test]
    fn call_keeps_other_completions_in_order() {
        let memory = fake::ring_memory();
        let ring = ring(&memory);
        for user_data in 1..=3 {
            submit(&ring, nop(user_data)).unwrap();
        }
        // SAFETY: a Nop names no memory.
        let completion = unsafe { ring.call(nop(9)) };
        assert_eq!((completion.user_data, completion.result), (9, 0));
        assert_eq!(ring.ready_completions(), 3);
        assert_eq!(drain(&ring), [1, 2, 3]);
    }

    #[test]
    fn call_makes_room_when_both_queues_are_full() {
        let memory = fake::ring_memory();
        let ring = ring(&memory);
        for user_data in 0..64 {
            submit(&ring, nop(user_data)).unwrap();
        }
        ring.enter(0, NO_TIMEOUT).unwrap();
        for user_data in 64..128 {
            submit(&ring, nop(user_data)).unwrap();
        }
        // SAFETY: a Nop names no memory.
        let completion = unsafe { ring.call(nop(1000)) };
        assert_eq!(completion.user_data, 1000);
        let seen = drain(&ring);
        assert_eq!(seen, (0..128).collect::<Vec<_>>());
    }

    #[test]
    fn overrun_is_reported_and_recoverable() {
        let memory = fake::ring_memory();
        let ring = ring(&memory);
        let (head, tail) = ring.submission_indices();
        // SAFETY: the fake kernel rejects the overrun before reading slots.
        unsafe { ring.set_submission_tail(head.wrapping_add(1000)) };
        assert_eq!(ring.enter(0, NO_TIMEOUT), Err(Error::RingOverrun));
        // SAFETY: restores the consistent value.
        unsafe { ring.set_submission_tail(tail) };
        // SAFETY: a Nop names no memory.
        assert_eq!(unsafe { ring.call(nop(5)) }.result, 0);
    }

    #[test]
    fn fresh_user_data_is_marked_and_unique() {
        let memory = fake::ring_memory();
        let ring = ring(&memory);
        let first = ring.fresh_user_data();
        let second = ring.fresh_user_data();
        assert_ne!(first, second);
        assert!(first & RUNTIME_USER_DATA != 0);
    }

    #[test]
    fn unknown_error_codes_panic_known_ones_decode() {
        assert_eq!(decode_result(7), Ok(7));
        assert_eq!(decode_result(-4), Err(Error::BadAddress));
        assert!(std::panic::catch_unwind(|| decode_result(-999)).is_err());
    }
}
