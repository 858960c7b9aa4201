//! The measurement interface of a kernel built without the `measure`
//! feature: nothing is counted or sampled, and `MeasureMark` is refused.
//! Every body is empty and inlined, so the calls compile to nothing.

use super::Counter;
use capos_abi::Error;
use spin::{Mutex, MutexGuard};

/// Prepare per-CPU sample buffers for `cpus` CPUs: nothing to prepare.
#[inline(always)]
pub fn init(_cpus: usize) {}

/// Count one event on this CPU: not counted.
#[inline(always)]
pub fn count(_counter: Counter) {}

/// Count `amount` events on this CPU: not counted.
#[inline(always)]
pub fn count_many(_counter: Counter, _amount: u64) {}

/// A timer tick interrupted user mode (`from_user`) or the kernel: not counted.
#[inline(always)]
pub fn tick(_from_user: bool) {}

/// A tick found process `process` at user PC `pc`: not sampled.
#[inline(always)]
pub fn sample_user_pc(_process: u64, _pc: u64) {}

/// A run-queue lock, held: the plain spin-lock guard.
pub type RunQueueGuard<'a, T> = MutexGuard<'a, T>;

/// Take run-queue lock `lock`: the plain spin lock.
#[inline(always)]
pub fn lock_run_queue<T>(lock: &Mutex<T>) -> RunQueueGuard<'_, T> {
    lock.lock()
}

/// `MeasureMark` from process `process`: this kernel does not offer it.
pub fn mark(_process: u64, _mark: u64) -> Result<(), Error> {
    Err(Error::InvalidOpcode)
}
