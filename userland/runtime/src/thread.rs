//! Threads: [`spawn`] runs a closure on a sibling thread with its own ring
//! and [`Context`]; [`JoinHandle::join`] returns its value.
//!
//! Invariants a reader must know:
//! - A thread made by [`spawn`] starts at the assembly trampoline
//!   (`thread.S`) with its FS base pointing at its [`ThreadBlock`], whose
//!   first word is the block's own address, so `mov fs:0` reads the thread
//!   pointer ([`current_thread_pointer`]).
//! - The block is allocated by the spawner and owned by the new thread from
//!   the moment the kernel accepts the spawn; the thread frees it itself
//!   right before `thread_exit`, after which nothing reads `fs:0`. If the
//!   spawn is refused the spawner frees it; if `cap_enter` fails so that the
//!   spawner cannot tell, it is leaked rather than risk a thread using it.
//! - A thread's `Ring` (and so its `Context`) is made on that thread from
//!   the ring base the kernel passed in `rdi`, and never leaves it (`Ring`
//!   is neither `Send` nor `Sync`). Capabilities are shared by all threads,
//!   so handles work the same on every thread.
//! - The first thread has FS base 0: the kernel starts it so and user code
//!   cannot change it. It is recognised by its stack, which lies in the
//!   process stack below `layout::STACK_TOP`; no spawned thread's stack may
//!   lie there.

use crate::context::Context;
use crate::operations::{spawned_thread, SpawnedThread, ThreadEnd};
use alloc::boxed::Box;
use capos_abi::arguments;
use capos_abi::layout::{STACK_PAGES, STACK_TOP};
use capos_abi::{CapabilityHandle, Error};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A thread body: gets the thread's own context and the spawn argument,
/// returns the thread's exit value.
type Body = Box<dyn FnOnce(&mut Context, u64) -> i64 + Send>;

/// What a new thread needs to build its context and run its body (read
/// only by the thread entry, which host tests leave out).
#[cfg_attr(test, allow(dead_code))]
struct Start {
    body: Body,
    argument: u64,
    slot_count: u16,
    console: Option<CapabilityHandle>,
    program: &'static str,
}

/// The per-thread block the FS base points at.
#[repr(C)]
pub(crate) struct ThreadBlock {
    /// Offset 0: the block's own address (the thread pointer convention).
    self_pointer: usize,
    /// The thread's ring base, stored by the thread before it runs anything
    /// that could panic (the panic handler prints through it).
    ring_base: AtomicUsize,
    /// Set by the panic handler on this thread; a second panic exits.
    pub(crate) panicking: AtomicBool,
    /// Taken once by the new thread.
    start: UnsafeCell<Option<Start>>,
}

/// A spawned thread: join it for its value, or detach it. Either gives the
/// ThreadHandle's capability slot back; dropping the `JoinHandle` without
/// either keeps the slot taken until the process ends.
#[must_use = "a thread handle holds a capability slot: join or detach it"]
#[derive(Debug)]
pub struct JoinHandle {
    thread: SpawnedThread,
}

impl JoinHandle {
    /// The kernel's id of the thread.
    pub fn id(&self) -> u64 {
        self.thread.id
    }

    /// The ThreadHandle capability.
    pub fn handle(&self) -> CapabilityHandle {
        self.thread.handle
    }

    /// Wait until the thread has ended and return its exit value (what its
    /// body returned). A thread the kernel killed is `PeerGone`; in
    /// practice the joiner dies with it, since only the end of the whole
    /// process kills a thread. The handle is dropped either way.
    pub fn join(self, context: &Context) -> Result<i64, Error> {
        let end = self.join_end(context)?;
        if end.killed {
            return Err(Error::PeerGone);
        }
        Ok(end.value)
    }

    /// [`JoinHandle::join`], with the killed flag instead of an error.
    pub fn join_end(self, context: &Context) -> Result<ThreadEnd, Error> {
        let ring = context.shared_ring();
        let end = ring.thread_join(self.thread.handle);
        ring.drop_capability(self.thread.handle)?;
        end
    }

    /// Let the thread run on without anyone joining it: drop the handle.
    pub fn detach(self, context: &Context) -> Result<(), Error> {
        context.shared_ring().drop_capability(self.thread.handle)
    }
}

/// Start `body(context, argument)` on a new thread of this process, with a
/// kernel-mapped stack of `layout::THREAD_STACK_PAGES` pages and its own
/// ring and [`Context`] (same capability slots and console as `context`).
/// The thread ends with `thread_exit(body's value)`; a panic in it ends the
/// whole process, as on the first thread.
///
/// `spawner` is a ThreadSpawner capability. Errors are the kernel's
/// (`QuotaExhausted` past `limits::THREADS_PER_PROCESS` threads or when no
/// capability slot is left for the handle, `OutOfMemory`, ...).
pub fn spawn<F>(
    context: &Context,
    spawner: CapabilityHandle,
    body: F,
    argument: u64,
) -> Result<JoinHandle, Error>
where
    F: FnOnce(&mut Context, u64) -> i64 + Send + 'static,
{
    let start = Start {
        body: Box::new(body),
        argument,
        slot_count: context.slot_count(),
        console: context.console(),
        program: context.program(),
    };
    let block = Box::into_raw(Box::new(ThreadBlock {
        self_pointer: 0,
        ring_base: AtomicUsize::new(0),
        panicking: AtomicBool::new(false),
        start: UnsafeCell::new(Some(start)),
    }));
    // SAFETY: `block` was just allocated and is not shared yet.
    unsafe { (*block).self_pointer = block as usize };
    let address = block as u64;
    let arguments = arguments::ThreadSpawn {
        entry: trampoline_address(),
        stack_top: 0,
        argument: address,
        thread_pointer: address,
    };
    // SAFETY: the trampoline and `capos_runtime_thread_main` are made to run
    // on a fresh kernel-mapped stack (stack top 0) with exactly these
    // registers, and end with `thread_exit`; the block it is handed is
    // owned by the new thread from here on.
    let completion = unsafe {
        context
            .shared_ring()
            .thread_spawn_completion(spawner, arguments)
    }?;
    match spawned_thread(&completion) {
        Ok(thread) => Ok(JoinHandle { thread }),
        Err(error) => {
            // SAFETY: the kernel refused the spawn, so no thread has the
            // block; it came from `Box::into_raw` above and is freed once.
            drop(unsafe { Box::from_raw(block) });
            Err(error)
        }
    }
}

/// The address of the assembly entry of every spawned thread.
#[cfg(not(test))]
fn trampoline_address() -> u64 {
    extern "C" {
        fn capos_thread_start() -> !;
    }
    capos_thread_start as *const () as u64
}

/// Host tests never start threads; the kernel would refuse this entry.
#[cfg(test)]
fn trampoline_address() -> u64 {
    0
}

/// The body of every spawned thread, called by the trampoline with the
/// kernel's `rdi` (ring base), `rsi` (the block `spawn` passed) and `rdx`.
///
/// # Safety
/// Only the trampoline may call this, once per thread, with the registers
/// the kernel started a thread made by [`spawn`] with.
#[cfg(not(test))]
#[no_mangle]
unsafe extern "C" fn capos_runtime_thread_main(
    ring_base: u64,
    block: *mut ThreadBlock,
    _thread_id: u64,
) -> ! {
    let value = {
        // SAFETY: `spawn` allocated the block and handed it to this thread
        // alone; it stays allocated until freed below.
        let shared = unsafe { &*block };
        shared
            .ring_base
            .store(ring_base as usize, Ordering::Release);
        // SAFETY: `start` is taken exactly once, here, on the block's own
        // thread; the spawner wrote it before the kernel started us.
        let start = unsafe { (*shared.start.get()).take() };
        let Some(start) = start else {
            panic!("thread started twice from one block");
        };
        // SAFETY: `ring_base` is the ring the kernel mapped for this thread
        // (its `rdi`); this is the only `Ring` made for it.
        let ring = unsafe { crate::ring::Ring::from_base(ring_base as usize) };
        let mut context = Context::for_thread(ring, start.slot_count, start.console, start.program);
        if let Err(problem) = context.shared_ring().check_header() {
            panic!("{problem}");
        }
        (start.body)(&mut context, start.argument)
    };
    // SAFETY: the block came from `Box::into_raw` in `spawn` and belongs to
    // this thread; the reference above is gone and nothing reads `fs:0`
    // between here and `thread_exit`.
    drop(unsafe { Box::from_raw(block) });
    crate::syscall::thread_exit(value)
}

/// True if `address` lies in the first thread's stack.
fn in_first_thread_stack(address: u64) -> bool {
    (STACK_TOP - STACK_PAGES * 4096..STACK_TOP).contains(&address)
}

/// True on the process's first thread (the one `main` runs on).
pub fn on_first_thread() -> bool {
    let marker = 0u8;
    let address = core::hint::black_box(&marker) as *const u8 as u64;
    in_first_thread_stack(address)
}

/// The calling thread's thread pointer (its FS base, read as `fs:0`): the
/// address of its per-thread block on threads made by [`spawn`], `None` on
/// the first thread, whose FS base is 0. A thread started with
/// [`crate::Ring::thread_spawn`] and FS base 0 must not call this (the read
/// faults).
pub fn current_thread_pointer() -> Option<usize> {
    if on_first_thread() {
        return None;
    }
    read_thread_pointer()
}

#[cfg(not(test))]
fn read_thread_pointer() -> Option<usize> {
    let pointer: usize;
    // SAFETY: off the first thread, the runtime's threads have an FS base
    // pointing at their block, whose first word is readable; the load
    // changes no flags and touches no stack.
    unsafe {
        core::arch::asm!(
            "mov {}, qword ptr fs:[0]",
            out(reg) pointer,
            options(nostack, readonly, preserves_flags),
        );
    }
    Some(pointer)
}

/// Host tests run on the host's threads, which are no capOS threads.
#[cfg(test)]
fn read_thread_pointer() -> Option<usize> {
    None
}

/// The calling spawned thread's block, `None` on the first thread.
pub(crate) fn current_block() -> Option<&'static ThreadBlock> {
    let pointer = current_thread_pointer()? as *const ThreadBlock;
    // SAFETY: a thread made by `spawn` has its block at its thread pointer,
    // allocated until the thread frees it right before `thread_exit`; the
    // reference is used only while the thread runs (the panic handler).
    Some(unsafe { &*pointer })
}

/// The calling thread's ring base: `first` on the first thread (what
/// `start` registered), else the one in its block (0 if not yet stored).
pub(crate) fn current_ring_base(first: usize) -> usize {
    match current_block() {
        Some(block) => block.ring_base.load(Ordering::Acquire),
        None => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_thread_stack_is_the_process_stack_only() {
        let bottom = STACK_TOP - STACK_PAGES * 4096;
        assert!(in_first_thread_stack(STACK_TOP - 8));
        assert!(in_first_thread_stack(bottom));
        assert!(!in_first_thread_stack(bottom - 1));
        assert!(!in_first_thread_stack(STACK_TOP));
        // Every kernel-mapped thread stack lies below, past a guard page.
        for slot in 1..capos_abi::limits::THREADS_PER_PROCESS as u64 {
            let top = capos_abi::layout::thread_stack_top(slot);
            assert!(!in_first_thread_stack(top - 8), "slot {slot}");
            assert!(top < bottom, "slot {slot}");
        }
    }

    #[test]
    fn the_host_is_not_a_capos_thread() {
        assert!(!on_first_thread());
        assert_eq!(current_thread_pointer(), None);
        assert_eq!(current_ring_base(0x1234), 0x1234);
    }

    #[test]
    fn thread_pointer_is_the_first_word_of_the_block() {
        assert_eq!(core::mem::offset_of!(ThreadBlock, self_pointer), 0);
    }
}
