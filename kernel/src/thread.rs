//! Threads of user processes: what a thread is (its process, ring, timers,
//! user memory, how it ended and who waits for that) and how it ends. What
//! the scheduler keeps of it (run state, saved context, FPU area, kernel
//! stack) is `sched::Scheduled`; starting, waking and killing a thread are
//! scheduler operations (`sched::start`, `sched::wake`, `sched::kill`).
//!
//! Invariants:
//! - A thread ends only through [`exit_current`], on its own kernel stack:
//!   it withdraws every registration it made (`registrations`: timers,
//!   parks, exit waits, joins, endpoint entries),
//!   records its [`ExitStatus`] and completes its joiners, ends its process
//!   if it was the last thread, and switches away for good
//!   (`sched::switch_away_for_good`), holding no reference on that stack.
//! - A killed thread runs until its next return towards user mode (system
//!   call return, interrupt return, first entry), where [`exit_if_killed`]
//!   ends it; so teardown always runs from a known place.
//! - At most [`THREADS_MAX`] threads exist at once ([`thread_capacity_left`]);
//!   every run queue has room for all of them.

use crate::platform::interrupts::InterruptFrame;
use crate::process::{ExitStatus, Process};
use crate::sched::Scheduled;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::Error;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;

/// Threads alive at once, kernel-wide.
pub const THREADS_MAX: usize = capos_abi::limits::THREADS_MAX;

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);
/// Threads created and not yet dropped.
static LIVE_THREADS: AtomicU64 = AtomicU64::new(0);

/// A thread of a user process.
pub struct Thread {
    pub id: u64,
    pub process: Arc<Process>,
    /// What the scheduler keeps of the thread.
    pub scheduled: Scheduled,
    /// Asked to stop: the thread unwinds to its user boundary and exits.
    /// An atomic, not part of the run state, so the check on every return
    /// to user mode takes no lock; it is set under the run lock
    /// (`sched::kill`) and read after `blocked` is set (`sched::block_until`),
    /// so a kill and a block never miss each other.
    killed: AtomicBool,
    /// System calls the thread has made (`ThreadInfo` reports it, so a
    /// benchmark can show its timed section made none). Written only by
    /// the thread itself.
    syscalls: AtomicU64,
    /// The thread's capability ring.
    pub ring: crate::ring::ThreadRing,
    /// The thread's registered deadlines (see `timer`).
    pub timers: crate::timer::ThreadTimers,
    /// FS base (the user thread pointer), loaded whenever the thread runs.
    pub fs_base: u64,
    /// The user memory the thread owns (ring, kernel-mapped stack) and its
    /// slot in the process; unmapped after the thread is gone.
    memory: Option<crate::process::ThreadMemory>,
    /// How the thread ended, and who waits to hear it.
    end: Mutex<ThreadEnd>,
    /// What the thread has registered with other objects (exit waits,
    /// joins, endpoints), all withdrawn when it ends (`registrations`).
    pub registrations: crate::registrations::Registrations,
}

/// A thread's end and its joiners.
#[derive(Default)]
struct ThreadEnd {
    /// How it ended, once it has.
    result: Option<ExitStatus>,
    joiners: Vec<(Arc<Thread>, u64)>,
}

/// Initial user register state for a new thread.
pub struct UserStart {
    pub entry: u64,
    pub stack_top: u64,
    /// rdi, rsi, rdx.
    pub arguments: [u64; 3],
    /// FS base (user thread pointer); a canonical user address or 0.
    pub fs_base: u64,
}

/// A fresh thread id (ids are never reused).
pub fn next_thread_id() -> u64 {
    NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed)
}

/// Whether a thread may be created (kernel-wide thread limit).
pub fn thread_capacity_left() -> bool {
    (LIVE_THREADS.load(Ordering::Relaxed) as usize) < THREADS_MAX
}

/// Threads created and not yet torn down.
pub fn live_threads() -> u64 {
    LIVE_THREADS.load(Ordering::Relaxed)
}

impl Thread {
    /// A new thread `id` (from [`next_thread_id`]) that will enter user
    /// mode at `start`, owning `memory`. None when out of memory (then
    /// `memory` is retired at once).
    pub fn new(
        id: u64,
        process: Arc<Process>,
        ring: crate::ring::ThreadRing,
        memory: crate::process::ThreadMemory,
        start: &UserStart,
    ) -> Option<Arc<Self>> {
        let frame = InterruptFrame::user_entry(start.entry, start.stack_top, start.arguments);
        let Some(scheduled) = Scheduled::new(frame) else {
            crate::process::retire_thread_memory(process, memory);
            return None;
        };
        let thread = Arc::new(Self {
            id,
            process,
            scheduled,
            killed: AtomicBool::new(false),
            syscalls: AtomicU64::new(0),
            ring,
            timers: crate::timer::ThreadTimers::new(),
            fs_base: start.fs_base,
            memory: Some(memory),
            end: Mutex::new(ThreadEnd::default()),
            registrations: crate::registrations::Registrations::new(),
        });
        LIVE_THREADS.fetch_add(1, Ordering::Relaxed);
        Some(thread)
    }

    /// Make the thread runnable for the first time.
    pub fn start(self: &Arc<Self>) {
        crate::sched::start(self);
    }

    /// Wake the thread if it is blocked.
    pub fn wake(self: &Arc<Self>) {
        crate::sched::wake(self);
    }

    /// Ask the thread to stop (see `sched::kill`).
    pub fn kill(self: &Arc<Self>) {
        crate::sched::kill(self);
    }

    /// Set the kill flag (`sched::kill`, under the run lock).
    pub(crate) fn note_killed(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }

    /// Whether the thread has been asked to stop.
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Count one system call of this thread (called on its own syscall
    /// path). The thread is the only writer, so a plain load and store
    /// suffice: no locked read-modify-write on every system call.
    pub fn count_syscall(&self) {
        let count = self.syscalls.load(Ordering::Relaxed);
        self.syscalls.store(count + 1, Ordering::Relaxed);
    }

    /// System calls this thread has made, the current one included.
    pub fn syscalls(&self) -> u64 {
        self.syscalls.load(Ordering::Relaxed)
    }

    /// The thread's end now, or None after registering `(joiner,
    /// user_data)` to be completed when it ends (noted in the joiner's
    /// registrations, so the joiner's end withdraws it). Registrations of
    /// joiners that have since been killed are dropped first.
    pub fn join(
        self: &Arc<Self>,
        joiner: &Arc<Thread>,
        user_data: u64,
    ) -> Result<Option<ExitStatus>, Error> {
        joiner
            .registrations
            .note(crate::registrations::Registration::Join(Arc::downgrade(
                self,
            )))?;
        let mut end = self.end.lock();
        if let Some(result) = end.result {
            return Ok(Some(result));
        }
        end.joiners.retain(|(waiter, _)| !waiter.killed());
        end.joiners.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        end.joiners.push((joiner.clone(), user_data));
        Ok(None)
    }

    /// Withdraw every join `joiner` registered on this thread (it is ending).
    pub fn forget_joiner(&self, joiner: &Thread) {
        self.end
            .lock()
            .joiners
            .retain(|(waiter, _)| !core::ptr::eq(Arc::as_ptr(waiter), joiner));
    }

    /// Whether the thread has ended (its joiners are answered).
    pub fn ended(&self) -> bool {
        self.end.lock().result.is_some()
    }

    /// Record the thread's end and complete its joiners.
    fn finish(&self, status: ExitStatus) {
        let joiners = {
            let mut end = self.end.lock();
            end.result = Some(status);
            core::mem::take(&mut end.joiners)
        };
        for (joiner, user_data) in joiners {
            crate::ring::post(&joiner, user_data, crate::ring::Answer::exit(status));
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            crate::process::retire_thread_memory(self.process.clone(), memory);
        }
        LIVE_THREADS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// End the running thread for good with exit `value`: withdraw every
/// registration it made (timers, parks, exit waits, joins, endpoint
/// entries: `registrations::withdraw_all`), complete its joiners, end the
/// process if it was the last thread, and switch away without coming back
/// (`sched::switch_away_for_good`).
pub fn exit_current(thread: Arc<Thread>, value: i64) -> ! {
    crate::registrations::withdraw_all(&thread);
    thread.finish(ExitStatus {
        code: value,
        killed: thread.killed(),
    });
    if thread.process.thread_finished() {
        thread.process.exit(ExitStatus::exited(value));
    }
    crate::sched::switch_away_for_good(thread)
}

/// Called on a new thread's stack before its first entry to user mode.
#[no_mangle]
extern "C" fn thread_start_check() {
    if let Some(thread) = crate::sched::current() {
        exit_if_killed(&thread);
    }
}

/// If the running thread has been killed, end it now (called on every
/// return towards user mode); its exit value is the process's exit code.
pub fn exit_if_killed(thread: &Arc<Thread>) {
    if thread.killed() {
        let code = thread.process.exit_code().unwrap_or(-1);
        exit_current(thread.clone(), code);
    }
}
