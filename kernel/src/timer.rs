//! Kernel time: nanoseconds since boot from the calibrated TSC, and the
//! list of threads waiting for a deadline (Timer sleeps, `cap_enter`
//! timeouts), checked on timer ticks and in idle.

use crate::platform::{apic, cpu};
use crate::sched::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);

/// What happens when a deadline passes.
pub enum Expiry {
    /// Complete a TimerSleep with this user_data.
    Sleep { user_data: u64 },
    /// Wake a thread waiting in `cap_enter` with a timeout.
    Wake,
}

struct Waiter {
    deadline_ns: u64,
    thread: Arc<Thread>,
    expiry: Expiry,
}

static WAITERS: Mutex<Vec<Waiter>> = Mutex::new(Vec::new());

/// Record the boot TSC (call once, early).
pub fn init() {
    BOOT_TSC.store(cpu::timestamp(), Ordering::Relaxed);
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    let hz = apic::tsc_hz().max(1);
    let cycles = cpu::timestamp().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    ((cycles as u128) * 1_000_000_000 / hz as u128) as u64
}

/// Act on `thread` with `expiry` at `deadline_ns`.
pub fn add(deadline_ns: u64, thread: Arc<Thread>, expiry: Expiry) {
    WAITERS.lock().push(Waiter {
        deadline_ns,
        thread,
        expiry,
    });
}

/// Fire every expired waiter. Cheap when nothing is due; skips if another
/// CPU is already polling.
pub fn poll() {
    let now = now_ns();
    let due: Vec<Waiter> = {
        let Some(mut waiters) = WAITERS.try_lock() else {
            return;
        };
        if waiters.iter().all(|waiter| waiter.deadline_ns > now) {
            return;
        }
        let (due, keep): (Vec<Waiter>, Vec<Waiter>) = waiters
            .drain(..)
            .partition(|waiter| waiter.deadline_ns <= now);
        *waiters = keep;
        due
    };
    for waiter in due {
        match waiter.expiry {
            Expiry::Sleep { user_data } => {
                crate::syscall::complete_deferred(&waiter.thread, user_data, 0, 0, 0);
            }
            Expiry::Wake => waiter.thread.wake(),
        }
    }
}
