//! ParkSpace: futex-style waits on 32-bit words of a process's memory.
//!
//! Invariants:
//! - Waiters are keyed by (process id, user address) in hashed buckets, each
//!   under its own lock. `park` re-reads the word under the bucket lock
//!   before it queues, and `unpark` takes the same lock, so a waker that
//!   changes the word and then unparks can never miss a waiter.
//! - Completions are posted after the bucket lock is released.
//! - A waiter leaves its bucket when it is unparked, when its timeout fires,
//!   or when its thread ends ([`forget_thread`]); each wait is an operation
//!   in flight of its thread, so buckets are bounded by the per-thread quota.

use crate::thread::Thread;
use crate::timer;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::{Error, NO_TIMEOUT};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

const BUCKETS: usize = 64;

struct Waiter {
    process: u64,
    address: u64,
    thread: Arc<Thread>,
    user_data: u64,
    timeout: Option<timer::TimerToken>,
}

static BUCKETS_TABLE: [Mutex<Vec<Waiter>>; BUCKETS] = [const { Mutex::new(Vec::new()) }; BUCKETS];
static PARKED: AtomicU64 = AtomicU64::new(0);

fn bucket(process: u64, address: u64) -> &'static Mutex<Vec<Waiter>> {
    let mixed = (address >> 2) ^ process.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &BUCKETS_TABLE[(mixed as usize) % BUCKETS]
}

/// Threads parked now, kernel-wide (diagnostics).
pub fn parked() -> u64 {
    PARKED.load(Ordering::Relaxed)
}

/// What `park` did at once.
pub enum Parked {
    /// The word differed: result 1, no wait.
    Differed,
    /// The thread waits; its completion comes from `unpark` or the timeout.
    Waiting,
}

/// Wait on the `u32` at `address` while it equals `expected`.
pub fn park(
    thread: &Arc<Thread>,
    user_data: u64,
    address: u64,
    expected: u32,
    timeout_ns: u64,
) -> Result<Parked, Error> {
    if !address.is_multiple_of(4) {
        return Err(Error::InvalidArgument);
    }
    let process = thread.process.id;
    // The word is read once, under the bucket lock (a bad address is
    // refused from there too): an unpark takes the same lock, so a waker
    // that changed the word before it unparks is seen either way.
    let mut waiters = bucket(process, address).lock();
    let mut bytes = [0u8; 4];
    thread.process.address_space().read(address, &mut bytes)?;
    if u32::from_le_bytes(bytes) != expected {
        return Ok(Parked::Differed);
    }
    waiters.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
    let timeout = if timeout_ns == NO_TIMEOUT {
        None
    } else {
        let deadline = timer::now_ns().saturating_add(timeout_ns);
        Some(timer::add(
            deadline,
            thread,
            timer::Expiry {
                action: |thread, [user_data, address]| timed_out(thread, user_data, address),
                words: [user_data, address],
            },
        )?)
    };
    waiters.push(Waiter {
        process,
        address,
        thread: thread.clone(),
        user_data,
        timeout,
    });
    PARKED.fetch_add(1, Ordering::Relaxed);
    Ok(Parked::Waiting)
}

/// Wake up to `count` threads of `thread`'s process parked on `address`;
/// returns how many.
pub fn unpark(thread: &Thread, address: u64, count: u64) -> Result<u64, Error> {
    if !address.is_multiple_of(4) {
        return Err(Error::InvalidArgument);
    }
    let process = thread.process.id;
    // One waiter per hold of the bucket lock, completed after the lock is
    // released: no heap and no batch on the path of a wake-up. A thread
    // that parks meanwhile may be woken by a later step; its park then
    // completes with 0 like any other, and it re-checks its word, as every
    // parker must. At most as many as the bucket held at the first look
    // are woken, so threads that park again at once cannot keep this loop
    // going.
    let mut total = 0u64;
    let mut limit = count;
    while total < limit {
        let waiter = {
            let mut waiters = bucket(process, address).lock();
            if total == 0 {
                limit = limit.min(waiters.len() as u64);
            }
            match waiters
                .iter()
                .position(|waiter| waiter.process == process && waiter.address == address)
            {
                Some(index) => waiters.remove(index),
                None => break,
            }
        };
        PARKED.fetch_sub(1, Ordering::Relaxed);
        total += 1;
        if let Some(token) = waiter.timeout {
            timer::cancel(&waiter.thread, token);
        }
        crate::ring::post(&waiter.thread, waiter.user_data, crate::ring::Answer::ok(0));
    }
    Ok(total)
}

/// A park's timeout fired: complete it with `TimedOut` unless it was
/// unparked first.
fn timed_out(thread: &Arc<Thread>, user_data: u64, address: u64) {
    let removed = {
        let mut waiters = bucket(thread.process.id, address).lock();
        waiters
            .iter()
            .position(|waiter| Arc::ptr_eq(&waiter.thread, thread) && waiter.user_data == user_data)
            .map(|position| waiters.swap_remove(position))
    };
    if removed.is_some() {
        PARKED.fetch_sub(1, Ordering::Relaxed);
        crate::ring::post(
            thread,
            user_data,
            crate::ring::Answer::error(Error::TimedOut),
        );
    }
}

/// `thread` is ending: drop every park wait it has (their timeouts were
/// cancelled with the thread's timers).
pub fn forget_thread(thread: &Arc<Thread>) {
    for bucket in &BUCKETS_TABLE {
        let mut waiters = bucket.lock();
        let before = waiters.len();
        waiters.retain(|waiter| !Arc::ptr_eq(&waiter.thread, thread));
        PARKED.fetch_sub((before - waiters.len()) as u64, Ordering::Relaxed);
    }
}
