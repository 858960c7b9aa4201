//! A thread's capability ring as the kernel holds it: two physical frames
//! (mapped into the owner's address space at `layout::RING_BASE`) and the
//! kernel-side bookkeeping from `capos_kcore::ring`.
//!
//! The kernel reaches the ring through the physical window, never through
//! the user mapping, so completions can be posted from any CPU and any
//! address space. Header indices are accessed as atomics.

use crate::mem::physical_to_virtual;
use crate::process::ExitStatus;
use crate::thread::Thread;
use alloc::sync::Arc;
use capos_abi::ring::Completion;
use capos_abi::{CapabilityHandle, Error};
use capos_kcore::ring::{KernelRing, RingFault, RingMemory};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use spin::Mutex;

/// Ring memory: two physical frames.
#[derive(Clone, Copy)]
pub struct RingFrames {
    pub frames: [u64; 2],
}

impl RingFrames {
    fn address(&self, offset: usize, length: usize) -> Option<u64> {
        let page = offset / 4096;
        let within = offset % 4096;
        if page >= 2 || within + length > 4096 {
            return None;
        }
        Some(physical_to_virtual(self.frames[page]) + within as u64)
    }
}

impl RingFrames {
    fn index_cell(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset >= capos_abi::ring::CQ_OFFSET {
            return None;
        }
        let address = self.address(offset, 4)?;
        // SAFETY: a 4-byte-aligned header index inside the ring's first
        // frame, which lives as long as the ring; shared with user space,
        // hence accessed only atomically.
        Some(unsafe { &*(address as *const AtomicU32) })
    }
}

impl RingMemory for RingFrames {
    fn read(&self, offset: usize, out: &mut [u8]) -> bool {
        let Some(address) = self.address(offset, out.len()) else {
            return false;
        };
        // SAFETY: in bounds of the ring frames, which the ring owns.
        unsafe {
            core::ptr::copy_nonoverlapping(address as *const u8, out.as_mut_ptr(), out.len())
        };
        true
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) -> bool {
        let Some(address) = self.address(offset, bytes.len()) else {
            return false;
        };
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len()) };
        true
    }

    fn load_index(&self, offset: usize) -> Option<u32> {
        Some(self.index_cell(offset)?.load(Ordering::Acquire))
    }

    fn store_index(&mut self, offset: usize, value: u32) -> bool {
        self.index_cell(offset)
            .map(|cell| cell.store(value, Ordering::Release))
            .is_some()
    }
}

/// The kernel's view of one thread's ring.
pub struct ThreadRing {
    inner: Mutex<(RingFrames, KernelRing)>,
    /// Whether the kernel has said once that this ring rejected a
    /// completion (it says so once per thread, not once per completion).
    rejection_reported: AtomicBool,
}

impl ThreadRing {
    /// Wrap freshly allocated, zeroed frames and write the header.
    pub fn new(frames: [u64; 2]) -> Self {
        let mut memory = RingFrames { frames };
        let _ = capos_kcore::ring::initialise(&mut memory);
        Self {
            inner: Mutex::new((memory, KernelRing::new())),
            rejection_reported: AtomicBool::new(false),
        }
    }

    /// Run `body` with exclusive access to the ring.
    pub fn with<R>(&self, body: impl FnOnce(&mut RingFrames, &mut KernelRing) -> R) -> R {
        let mut guard = self.inner.lock();
        let (memory, ring) = &mut *guard;
        body(memory, ring)
    }

    /// Post the completion of a deferred operation.
    pub fn complete_deferred(&self, completion: Completion) -> Result<(), RingFault> {
        self.with(|memory, ring| ring.complete_deferred(memory, completion))
    }

    /// Completions ready for user space.
    pub fn available(&self) -> Result<u32, RingFault> {
        self.with(|memory, ring| ring.available(memory))
    }
}

/// What an operation answers: its completion but the caller's `user_data`.
/// The one type an answer travels in, from `syscall` through `objects`,
/// `park`, `process` and `sched` to [`post`] (`docs/abi.md` says what each
/// opcode puts in each field).
#[must_use = "an answer is posted, or the operation never completes"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Non-negative on success (operation-specific), else an `Error`.
    pub result: i64,
    /// A second operation-specific value (a handle's id, a reply token, an
    /// exit code...).
    pub value: u64,
    /// A third (a transferred capability, whether an exit was a kill...).
    pub extra: u32,
}

impl Answer {
    /// Success with this result and nothing else.
    pub const fn ok(result: i64) -> Self {
        Self {
            result,
            value: 0,
            extra: 0,
        }
    }

    /// Success with this result and a second value.
    pub const fn ok_with(result: i64, value: u64) -> Self {
        Self {
            result,
            value,
            extra: 0,
        }
    }

    /// The refusal `error`.
    pub const fn error(error: Error) -> Self {
        Self::ok(error.as_result())
    }

    /// The refusal `error` of an operation whose answer names a
    /// capability: the handle field says "none".
    pub const fn error_without_capability(error: Error) -> Self {
        Self::ok_with(error.as_result(), CapabilityHandle::NONE.0 as u64)
    }

    /// A value or a refusal.
    pub fn from_result(result: Result<i64, Error>) -> Self {
        match result {
            Ok(value) => Self::ok(value),
            Err(error) => Self::error(error),
        }
    }

    /// How a process or thread ended: result 0, the exit code, and whether
    /// it was killed.
    pub const fn exit(status: ExitStatus) -> Self {
        Self {
            result: 0,
            value: status.code as u64,
            extra: status.killed as u32,
        }
    }
}

/// Post the completion of one of `thread`'s operations to its ring (from
/// any CPU, through the physical window) and wake the thread.
pub fn post(thread: &Arc<Thread>, user_data: u64, answer: Answer) {
    let completion = Completion {
        user_data,
        result: answer.result,
        value: answer.value,
        extra: answer.extra,
        flags: 0,
    };
    // A rejected completion still gives back its pending slot
    // (`KernelRing::complete_deferred`); the corruption is reported once
    // per thread, so a thread cannot flood the console with it.
    if thread.ring.complete_deferred(completion).is_err()
        && !thread.ring.rejection_reported.swap(true, Ordering::Relaxed)
    {
        crate::kprintln!(
            "[kernel] warning: ring of thread {} rejected a completion (corrupted by user space; further rejections are not reported)",
            thread.id
        );
    }
    thread.wake();
}
