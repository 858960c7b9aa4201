//! Kernel time and deadlines: nanoseconds since boot from the calibrated
//! TSC, and a deadline queue per CPU for Timer sleeps and `cap_enter`
//! timeouts.
//!
//! Invariants:
//! - Each CPU's queue ([`capos_kcore::timer_queue::TimerQueue`]) is polled
//!   only by its own timer tick, in time independent of the number of
//!   sleepers (a peek at the earliest deadline; O(log n) per expiry).
//! - A thread owns at most [`SLOTS_PER_THREAD`] registrations, recorded in
//!   its [`ThreadTimers`]; a registration is removed from its queue when it
//!   fires, when the wait it bounds ends first, and at the latest when the
//!   thread ends ([`ThreadTimers::cancel_all`] from `thread::exit_current`).
//! - Queue entries name their thread by address. An entry exists only while
//!   its thread is alive (a thread cancels every entry before it can be
//!   freed), and a firing CPU takes a strong reference while still holding
//!   the queue lock, so the address is never used after the thread is gone.
//! - Lock order: a thread's slot table, then a CPU queue.

use crate::platform::{apic, cpu, percpu};
use crate::thread::Thread;
use alloc::alloc::{alloc, Layout};
use alloc::sync::Arc;
use capos_abi::limits::{PENDING_PER_THREAD, TIMERS_PER_CPU};
use capos_abi::Error;
use capos_kcore::acpi::MAX_CPUS;
use capos_kcore::timer_queue::{TimerHandle, TimerQueue};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use spin::Mutex;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);

/// Registrations one thread may hold: one per pending operation plus the
/// timeout of its own `cap_enter`.
pub const SLOTS_PER_THREAD: usize = PENDING_PER_THREAD + 1;

/// What happens when a deadline passes: the registering client's function,
/// called on the firing CPU with the thread and the two words the client
/// chose (a TimerSleep's user_data, a park's user_data and address...).
/// So the timer knows no client: `syscall` (sleep, timed wait) and `park`
/// register their own.
#[derive(Clone, Copy)]
pub struct Expiry {
    /// Called once, unless the registration is cancelled first. No timer
    /// lock is held during the call.
    pub action: fn(&Arc<Thread>, [u64; 2]),
    /// The words passed to `action`.
    pub words: [u64; 2],
}

/// A queue entry's key: the thread's address and its slot.
#[derive(Clone, Copy)]
struct Key {
    thread: usize,
    slot: usize,
}

type Queue = Mutex<TimerQueue<Key, TIMERS_PER_CPU>>;

/// One empty queue, copied into each CPU's heap block (a constant, so the
/// 64 KiB value is copied from the image, never built on a small stack).
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_QUEUE: Queue = Mutex::new(TimerQueue::new());

static QUEUES: [AtomicPtr<Queue>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// Registered deadlines, over all CPUs.
static REGISTERED: AtomicU64 = AtomicU64::new(0);

/// One registration: where it is queued and what it does.
#[derive(Clone, Copy)]
struct Registration {
    cpu: usize,
    handle: TimerHandle,
    expiry: Expiry,
}

/// A thread's registrations.
pub struct ThreadTimers {
    slots: Mutex<[Option<Registration>; SLOTS_PER_THREAD]>,
}

impl ThreadTimers {
    /// No registrations.
    pub const fn new() -> Self {
        Self {
            slots: Mutex::new([None; SLOTS_PER_THREAD]),
        }
    }

    /// Cancel every registration (the thread is ending).
    pub fn cancel_all(&self) {
        let mut slots = self.slots.lock();
        for slot in slots.iter_mut() {
            if let Some(registration) = slot.take() {
                dequeue(registration);
            }
        }
    }
}

/// Record the boot TSC (call once, early).
pub fn init() {
    BOOT_TSC.store(cpu::timestamp(), Ordering::Relaxed);
}

/// Give CPU `index` its deadline queue (call once per CPU, at start-up).
pub fn init_cpu(index: usize) {
    let Some(cell) = QUEUES.get(index) else {
        return;
    };
    let layout = Layout::new::<Queue>();
    // SAFETY: the layout is non-zero-sized; the block is written with a
    // valid empty queue before it is published, and never freed.
    unsafe {
        let block = alloc(layout).cast::<Queue>();
        if block.is_null() {
            crate::mem::fail(format_args!("no heap for CPU {index}'s timer queue"));
        }
        block.write(EMPTY_QUEUE);
        cell.store(block, Ordering::Release);
    }
}

fn queue(index: usize) -> Option<&'static Queue> {
    let pointer = QUEUES.get(index)?.load(Ordering::Acquire);
    // SAFETY: published blocks are valid queues that are never freed.
    unsafe { pointer.as_ref() }
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    let hz = apic::tsc_hz().max(1);
    let cycles = cpu::timestamp().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    ((cycles as u128) * 1_000_000_000 / hz as u128) as u64
}

/// A registration of `thread`, to cancel when the wait it bounds ends.
#[must_use]
pub struct TimerToken {
    slot: usize,
    handle: TimerHandle,
}

/// Act on `thread` with `expiry` at `deadline_ns`. Refused with
/// `QuotaExhausted` when the thread holds [`SLOTS_PER_THREAD`]
/// registrations or every CPU's queue is full.
pub fn add(deadline_ns: u64, thread: &Arc<Thread>, expiry: Expiry) -> Result<TimerToken, Error> {
    let mut slots = thread.timers.slots.lock();
    let slot = slots
        .iter()
        .position(Option::is_none)
        .ok_or(Error::QuotaExhausted)?;
    let key = Key {
        thread: Arc::as_ptr(thread) as usize,
        slot,
    };
    let here = percpu::current().index;
    let count = percpu::count();
    for cpu in (0..count).map(|offset| (here + offset) % count) {
        let Some(queue) = queue(cpu) else { continue };
        if let Ok(handle) = queue.lock().insert(deadline_ns, key) {
            slots[slot] = Some(Registration {
                cpu,
                handle,
                expiry,
            });
            REGISTERED.fetch_add(1, Ordering::Relaxed);
            return Ok(TimerToken { slot, handle });
        }
    }
    Err(Error::QuotaExhausted)
}

/// Withdraw a registration whose wait ended (no effect if it fired).
pub fn cancel(thread: &Thread, token: TimerToken) {
    let mut slots = thread.timers.slots.lock();
    if let Some(registration) = slots[token.slot] {
        if registration.handle == token.handle {
            slots[token.slot] = None;
            dequeue(registration);
        }
    }
}

fn dequeue(registration: Registration) {
    if let Some(queue) = queue(registration.cpu) {
        if queue.lock().cancel(registration.handle).is_some() {
            REGISTERED.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Registered deadlines over all CPUs (diagnostics).
pub fn registered() -> u64 {
    REGISTERED.load(Ordering::Relaxed)
}

/// Fire this CPU's expired deadlines. Cheap when nothing is due.
pub fn poll() {
    let Some(queue) = queue(percpu::current().index) else {
        return;
    };
    let now = now_ns();
    loop {
        let (handle, thread, slot) = {
            let mut queue = queue.lock();
            if queue.next_deadline().is_none_or(|deadline| deadline > now) {
                return;
            }
            let Some((handle, key)) = queue.pop_due(now) else {
                return;
            };
            REGISTERED.fetch_sub(1, Ordering::Relaxed);
            let pointer = key.thread as *const Thread;
            // SAFETY: the entry existed under the queue lock, so its thread
            // had not yet cancelled it and is therefore still alive (see the
            // module invariants); taking a strong count keeps it so.
            let thread = unsafe {
                Arc::increment_strong_count(pointer);
                Arc::from_raw(pointer)
            };
            (handle, thread, key.slot)
        };
        let expiry = {
            let mut slots = thread.timers.slots.lock();
            match slots[slot] {
                Some(registration) if registration.handle == handle => {
                    slots[slot] = None;
                    Some(registration.expiry)
                }
                _ => None,
            }
        };
        if let Some(expiry) = expiry {
            (expiry.action)(&thread, expiry.words);
        }
    }
}
