//! The measurement itself (feature `measure`): per-CPU event counters, a
//! bounded per-CPU buffer of user PCs sampled at the timer tick, a
//! run-queue lock that counts contention and cycles, and the phase marks
//! that snapshot the counters and, at the last mark, print the
//! `[measure]` lines.
//!
//! Invariants:
//! - [`ACTIVE`] is written only by [`mark`] (under [`MARKS`]); every hook
//!   reads it first and does nothing while it is clear.
//! - CPU *c*'s counters and sample buffer are written only by CPU *c*, with
//!   interrupts off, so a plain load and store is an increment; other CPUs
//!   only read them (at a mark), so a snapshot taken while CPUs run is
//!   exact per counter and at most a few events off between counters.
//! - A sample slot is written before the buffer's length is published
//!   (release), and a reader reads only below the length it acquired.
//! - Lock order: [`MARKS`], then [`SCRATCH`], then the console.

use super::Counter;
use crate::kprintln;
use crate::platform::{cpu, percpu};
use alloc::boxed::Box;
use alloc::vec::Vec;
use capos_abi::Error;
use capos_kcore::measure::{
    most_frequent, Counters, MarkError, MarkOutcome, Marks, PcLine, PhaseLine, SamplesLine,
    SAMPLES_PER_CPU, TOP_PCS,
};
use capos_kcore::sched::MAX_CPUS;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use spin::{Mutex, MutexGuard, Once};

/// Set from mark 0 to mark 3: the window in which anything is counted.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The process whose user PCs are sampled: the one that took mark 0.
static SAMPLED_PROCESS: AtomicU64 = AtomicU64::new(u64::MAX);

/// The marks taken so far and their snapshots.
static MARKS: Mutex<Marks> = Mutex::new(Marks::new());

/// One CPU's counters, alone on their cache lines.
#[repr(align(64))]
struct CpuCounters([AtomicU64; Counter::COUNT]);

static COUNTERS: [CpuCounters; MAX_CPUS] =
    [const { CpuCounters([const { AtomicU64::new(0) }; Counter::COUNT]) }; MAX_CPUS];

/// One CPU's user-PC samples.
#[repr(align(64))]
struct SampleBuffer {
    /// [`SAMPLES_PER_CPU`] slots; the first `kept` are samples.
    pcs: Box<[AtomicU64]>,
    kept: AtomicUsize,
    /// Ticks that found the buffer full.
    dropped: AtomicU64,
}

/// Per-CPU sample buffers, one per online CPU (set by [`init`]).
static SAMPLES: Once<Box<[SampleBuffer]>> = Once::new();

/// Room to sort every sample at the last mark (set by [`init`]), so the
/// report allocates nothing.
static SCRATCH: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Allocate the sample buffers and the sorting room for `cpus` CPUs (once,
/// at boot, after the heap and before user space).
pub fn init(cpus: usize) {
    SAMPLES.call_once(|| {
        (0..cpus)
            .map(|_| SampleBuffer {
                pcs: (0..SAMPLES_PER_CPU).map(|_| AtomicU64::new(0)).collect(),
                kept: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
            })
            .collect()
    });
    let mut scratch = SCRATCH.lock();
    if scratch.try_reserve_exact(cpus * SAMPLES_PER_CPU).is_err() {
        crate::mem::fail(format_args!("no heap for the measurement's samples"));
    }
}

/// This CPU's index (only called while [`ACTIVE`], when every CPU has its
/// per-CPU block).
fn here() -> usize {
    percpu::current().index
}

/// Count one event on this CPU.
#[inline]
pub fn count(counter: Counter) {
    count_many(counter, 1);
}

/// Count `amount` events on this CPU.
#[inline]
pub fn count_many(counter: Counter, amount: u64) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let cell = &COUNTERS[here()].0[counter.index()];
    // Only this CPU writes its counters, with interrupts off: no lock prefix needed.
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(amount),
        Ordering::Relaxed,
    );
}

/// A timer tick interrupted user mode (`from_user`) or the kernel.
#[inline]
pub fn tick(from_user: bool) {
    count(if from_user {
        Counter::TicksUser
    } else {
        Counter::TicksKernel
    });
}

/// A tick from user mode found process `process` at `pc`: keep the sample
/// if it is the measured process and this CPU's buffer has room.
pub fn sample_user_pc(process: u64, pc: u64) {
    if !ACTIVE.load(Ordering::Relaxed) || SAMPLED_PROCESS.load(Ordering::Relaxed) != process {
        return;
    }
    let Some(buffer) = SAMPLES.get().and_then(|buffers| buffers.get(here())) else {
        return;
    };
    let kept = buffer.kept.load(Ordering::Relaxed);
    match buffer.pcs.get(kept) {
        Some(slot) => {
            slot.store(pc, Ordering::Relaxed);
            buffer.kept.store(kept + 1, Ordering::Release);
        }
        None => {
            let dropped = buffer.dropped.load(Ordering::Relaxed);
            buffer.dropped.store(dropped + 1, Ordering::Relaxed);
        }
    }
}

/// A held run-queue lock that counts its hold cycles when released.
pub struct RunQueueGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    /// TSC when the lock was taken, or None when not measuring.
    taken_at: Option<u64>,
}

impl<T> Deref for RunQueueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for RunQueueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for RunQueueGuard<'_, T> {
    /// Runs before the inner guard unlocks, so the hold time ends here.
    fn drop(&mut self) {
        if let Some(taken_at) = self.taken_at {
            count_many(
                Counter::RunQueueHoldCycles,
                cpu::timestamp().wrapping_sub(taken_at),
            );
        }
    }
}

/// Take run-queue lock `lock`, counting the acquisition, whether it was
/// contended (the first `try_lock` failed) and the cycles spent waiting.
pub fn lock_run_queue<T>(lock: &Mutex<T>) -> RunQueueGuard<'_, T> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return RunQueueGuard {
            guard: lock.lock(),
            taken_at: None,
        };
    }
    count(Counter::RunQueueLocks);
    let guard = match lock.try_lock() {
        Some(guard) => guard,
        None => {
            count(Counter::RunQueueContended);
            let waiting_since = cpu::timestamp();
            let guard = lock.lock();
            count_many(
                Counter::RunQueueWaitCycles,
                cpu::timestamp().wrapping_sub(waiting_since),
            );
            guard
        }
    };
    RunQueueGuard {
        guard,
        taken_at: Some(cpu::timestamp()),
    }
}

/// Every CPU's counters added up.
fn snapshot() -> Counters {
    let mut sum = Counters::ZERO;
    for counters in COUNTERS.iter().take(percpu::count()) {
        let mut one = Counters::ZERO;
        for (value, cell) in one.0.iter_mut().zip(&counters.0) {
            *value = cell.load(Ordering::Relaxed);
        }
        sum.add(&one);
    }
    sum
}

/// `MeasureMark` `mark` from process `process` (see `capos_abi::Opcode`):
/// marks in order, each once; mark 0 starts counting and samples that
/// process, the last mark stops and prints the phases and samples.
pub fn mark(process: u64, mark: u64) -> Result<(), Error> {
    let mut marks = MARKS.lock();
    let outcome = marks.mark(mark, snapshot()).map_err(|error| match error {
        MarkError::OutOfRange | MarkError::OutOfOrder { .. } => Error::InvalidArgument,
    })?;
    match outcome {
        MarkOutcome::Started => {
            SAMPLED_PROCESS.store(process, Ordering::Relaxed);
            ACTIVE.store(true, Ordering::SeqCst);
        }
        MarkOutcome::Recorded => {}
        MarkOutcome::Finished => {
            ACTIVE.store(false, Ordering::SeqCst);
            if let Some(phases) = marks.phases() {
                for (phase, counters) in phases {
                    kprintln!("{}", PhaseLine { phase, counters });
                }
            }
            print_samples();
        }
    }
    Ok(())
}

/// The [`TOP_PCS`] most sampled PCs, then the sample totals.
fn print_samples() {
    let mut scratch = SCRATCH.lock();
    scratch.clear();
    let mut dropped = 0u64;
    for buffer in SAMPLES.get().into_iter().flat_map(|buffers| buffers.iter()) {
        let kept = buffer.kept.load(Ordering::Acquire);
        // The room was reserved for every slot of every buffer: no allocation.
        scratch.extend(
            buffer.pcs[..kept]
                .iter()
                .map(|pc| pc.load(Ordering::Relaxed)),
        );
        dropped += buffer.dropped.load(Ordering::Relaxed);
    }
    scratch.sort_unstable();
    let mut top = [(0u64, 0u64); TOP_PCS];
    let filled = most_frequent(&scratch, &mut top);
    for &(pc, samples) in &top[..filled] {
        kprintln!("{}", PcLine { pc, samples });
    }
    kprintln!(
        "{}",
        SamplesLine {
            total: scratch.len() as u64,
            dropped,
        }
    );
}
