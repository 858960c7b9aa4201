//! Blocking synchronisation between the threads of a process, built only on
//! the kernel's `Park`/`Unpark` (futex style): [`Mutex`] and [`Condvar`].
//!
//! Invariants a reader must know:
//! - A mutex's state word is 0 (unlocked), 1 (locked, nobody parked) or 2
//!   (locked, someone may be parked). Only a thread that saw 2, or set it,
//!   parks, and it parks only while the word still reads 2 (the kernel
//!   re-checks under its bucket lock), so an unlock that finds 2 and
//!   unparks one cannot be missed.
//! - A condition variable is a sequence word: `wait` reads it while holding
//!   the mutex, unlocks, and parks only while it is unchanged; `notify_*`
//!   bump it before unparking. A notify between the unlock and the park
//!   changes the word, so the park returns at once. Wake-ups may be
//!   spurious: callers re-check their condition ([`Condvar::wait_while`]).
//! - Who parks is abstracted by [`Park`], so the state machines are tested
//!   on the host with a fake kernel; on capOS it is a [`ParkSpace`], a
//!   ParkSpace capability bound to the calling thread's ring.
//! - A park the kernel refuses (a wrong capability, a full timer table)
//!   degrades to spinning: mutual exclusion never depends on the kernel.

use crate::operations::Parked;
use crate::ring::Ring;
use capos_abi::{CapabilityHandle, Error, NO_TIMEOUT};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

/// Waiting on and waking threads by the address of a `u32` word.
pub trait Park {
    /// Wait while `word` holds `expected`, at most `timeout_ns`
    /// ([`NO_TIMEOUT`]: forever).
    fn park(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> Result<Parked, Error>;

    /// Wake up to `count` threads parked on `word`; returns how many.
    fn unpark(&self, word: &AtomicU32, count: u64) -> Result<u64, Error>;
}

impl<P: Park + ?Sized> Park for &P {
    fn park(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> Result<Parked, Error> {
        (**self).park(word, expected, timeout_ns)
    }

    fn unpark(&self, word: &AtomicU32, count: u64) -> Result<u64, Error> {
        (**self).unpark(word, count)
    }
}

/// A ParkSpace capability used through the calling thread's ring
/// ([`crate::Context::park_space`]).
#[derive(Clone, Copy)]
pub struct ParkSpace<'ring> {
    ring: &'ring Ring,
    handle: CapabilityHandle,
}

impl<'ring> ParkSpace<'ring> {
    /// Park and unpark through `handle` (a ParkSpace) on `ring`.
    pub fn new(ring: &'ring Ring, handle: CapabilityHandle) -> Self {
        Self { ring, handle }
    }

    /// The ring the requests go through.
    pub fn ring(&self) -> &'ring Ring {
        self.ring
    }

    /// The ParkSpace capability.
    pub fn handle(&self) -> CapabilityHandle {
        self.handle
    }
}

impl Park for ParkSpace<'_> {
    fn park(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> Result<Parked, Error> {
        self.ring
            .park(self.handle, word.as_ptr() as u64, expected, timeout_ns)
    }

    fn unpark(&self, word: &AtomicU32, count: u64) -> Result<u64, Error> {
        self.ring.unpark(self.handle, word.as_ptr() as u64, count)
    }
}

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// Times a contended `lock` re-reads the word before parking.
const SPINS_BEFORE_PARK: u32 = 100;

/// A mutual-exclusion lock whose waiters park in the kernel.
pub struct Mutex<T: ?Sized> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `value` to one thread at a time
// (the state word's acquire/release protocol), so sharing it between
// threads needs only that `T` may move between them.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: as above; the mutex owns its `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, with the mutex gone.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Take the lock, parking through `parker` (a [`ParkSpace`], which is
    /// `Copy`, or a reference to any [`Park`]) while another thread holds it.
    /// The guard keeps `parker` to unlock (and unpark one waiter) when
    /// dropped.
    pub fn lock<P: Park>(&self, parker: P) -> MutexGuard<'_, T, P> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(&parker);
        }
        MutexGuard {
            mutex: self,
            parker,
        }
    }

    /// Take the lock if it is free now.
    pub fn try_lock<P: Park>(&self, parker: P) -> Option<MutexGuard<'_, T, P>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard {
                mutex: self,
                parker,
            })
    }

    /// The value, through an exclusive borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The slow path: mark the lock contended and park until it is free.
    /// Leaves the word at 2 when it returns, since other waiters may still
    /// be parked and the next unlock must wake one.
    fn lock_contended<P: Park>(&self, parker: &P) {
        let mut state = self.spin();
        if state == UNLOCKED {
            match self.state.compare_exchange(
                UNLOCKED,
                LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        loop {
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            if parker.park(&self.state, CONTENDED, NO_TIMEOUT).is_err() {
                core::hint::spin_loop();
            }
            state = self.spin();
        }
    }

    /// Re-read the word a bounded number of times while it is plainly
    /// locked (a short critical section ends faster than a park).
    fn spin(&self) -> u32 {
        let mut spins = SPINS_BEFORE_PARK;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state != LOCKED || spins == 0 {
                return state;
            }
            core::hint::spin_loop();
            spins -= 1;
        }
    }

    /// Release the lock; wake one parked thread if any may be waiting.
    fn unlock<P: Park>(&self, parker: &P) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            // A refused unpark leaves nobody stuck: a waiter only parks
            // through the same capability, so its park was refused too and
            // it spins instead.
            let _ = parker.unpark(&self.state, 1);
        }
    }
}

/// Access to a locked [`Mutex`]'s value; unlocks when dropped.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: ?Sized, P: Park> {
    mutex: &'a Mutex<T>,
    parker: P,
}

impl<T: ?Sized, P: Park> Deref for MutexGuard<'_, T, P> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock,
        // so no other reference to the value is live.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized, P: Park> DerefMut for MutexGuard<'_, T, P> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this the only
        // reference made through the guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized, P: Park> Drop for MutexGuard<'_, T, P> {
    fn drop(&mut self) {
        self.mutex.unlock(&self.parker);
    }
}

/// A condition variable for use with one [`Mutex`] at a time.
pub struct Condvar {
    sequence: AtomicU32,
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Self {
        Self {
            sequence: AtomicU32::new(0),
        }
    }

    /// Unlock `guard`'s mutex, wait for a notification (or a spurious
    /// wake-up), lock again.
    pub fn wait<'a, T: ?Sized, P: Park + Clone>(
        &self,
        guard: MutexGuard<'a, T, P>,
    ) -> MutexGuard<'a, T, P> {
        self.wait_timeout(guard, NO_TIMEOUT).0
    }

    /// [`Condvar::wait`] for at most `timeout_ns`; true in the second place
    /// if the wait timed out.
    pub fn wait_timeout<'a, T: ?Sized, P: Park + Clone>(
        &self,
        guard: MutexGuard<'a, T, P>,
        timeout_ns: u64,
    ) -> (MutexGuard<'a, T, P>, bool) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        let (mutex, parker) = (guard.mutex, guard.parker.clone());
        drop(guard);
        let timed_out = matches!(
            parker.park(&self.sequence, sequence, timeout_ns),
            Ok(Parked::TimedOut)
        );
        (mutex.lock(parker), timed_out)
    }

    /// Wait until `condition` on the protected value is false.
    pub fn wait_while<'a, T: ?Sized, P: Park + Clone>(
        &self,
        mut guard: MutexGuard<'a, T, P>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T, P> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Wake one waiter, if any.
    pub fn notify_one<P: Park>(&self, parker: P) {
        self.sequence.fetch_add(1, Ordering::Relaxed);
        let _ = parker.unpark(&self.sequence, 1);
    }

    /// Wake every waiter.
    pub fn notify_all<P: Park>(&self, parker: P) {
        self.sequence.fetch_add(1, Ordering::Relaxed);
        let _ = parker.unpark(&self.sequence, u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    //! The fake kernel: a table of parked waiters keyed by word address,
    //! checked and changed under one host lock, like the kernel's buckets.
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicU64;
    use std::sync::{Arc, Condvar as HostCondvar, Mutex as HostMutex};
    use std::time::{Duration, Instant};

    /// One parked thread: its word and whether it was woken.
    struct Waiter {
        address: usize,
        woken: bool,
    }

    #[derive(Default)]
    struct FakeKernel {
        waiters: HostMutex<VecDeque<Arc<HostMutex<Waiter>>>>,
        changed: HostCondvar,
        parks: AtomicU64,
        unparks: AtomicU64,
    }

    impl Park for FakeKernel {
        fn park(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> Result<Parked, Error> {
            self.parks.fetch_add(1, Ordering::Relaxed);
            let mut waiters = self.waiters.lock().unwrap();
            if word.load(Ordering::SeqCst) != expected {
                return Ok(Parked::Differed);
            }
            let me = Arc::new(HostMutex::new(Waiter {
                address: word.as_ptr() as usize,
                woken: false,
            }));
            waiters.push_back(me.clone());
            let deadline = (timeout_ns != NO_TIMEOUT)
                .then(|| Instant::now() + Duration::from_nanos(timeout_ns));
            loop {
                if me.lock().unwrap().woken {
                    return Ok(Parked::Unparked);
                }
                match deadline {
                    None => waiters = self.changed.wait(waiters).unwrap(),
                    Some(deadline) => {
                        let now = Instant::now();
                        if now >= deadline {
                            waiters.retain(|waiter| !Arc::ptr_eq(waiter, &me));
                            return Ok(Parked::TimedOut);
                        }
                        waiters = self
                            .changed
                            .wait_timeout(waiters, deadline - now)
                            .unwrap()
                            .0;
                    }
                }
            }
        }

        fn unpark(&self, word: &AtomicU32, count: u64) -> Result<u64, Error> {
            self.unparks.fetch_add(1, Ordering::Relaxed);
            let mut waiters = self.waiters.lock().unwrap();
            let address = word.as_ptr() as usize;
            let mut woken = 0;
            waiters.retain(|waiter| {
                let mut waiter = waiter.lock().unwrap();
                if woken < count && waiter.address == address {
                    waiter.woken = true;
                    woken += 1;
                    false
                } else {
                    true
                }
            });
            self.changed.notify_all();
            Ok(woken)
        }
    }

    /// A kernel that refuses every request, as with a wrong capability.
    struct Refusing;

    impl Park for Refusing {
        fn park(&self, _: &AtomicU32, _: u32, _: u64) -> Result<Parked, Error> {
            Err(Error::WrongObjectType)
        }

        fn unpark(&self, _: &AtomicU32, _: u64) -> Result<u64, Error> {
            Err(Error::WrongObjectType)
        }
    }

    #[test]
    fn uncontended_lock_and_unlock_never_enter_the_kernel() {
        let kernel = FakeKernel::default();
        let mutex = Mutex::new(5);
        {
            let mut guard = mutex.lock(&kernel);
            assert_eq!(mutex.state.load(Ordering::Relaxed), LOCKED);
            *guard += 1;
            assert!(mutex.try_lock(&kernel).is_none());
        }
        assert_eq!(mutex.state.load(Ordering::Relaxed), UNLOCKED);
        assert_eq!(kernel.parks.load(Ordering::Relaxed), 0);
        assert_eq!(kernel.unparks.load(Ordering::Relaxed), 0);
        assert_eq!(mutex.into_inner(), 6);
    }

    #[test]
    fn unlock_of_a_contended_word_wakes_exactly_one() {
        let kernel = FakeKernel::default();
        let mutex = Mutex::new(());
        let guard = mutex.lock(&kernel);
        // What a waiter leaves behind before it parks.
        mutex.state.store(CONTENDED, Ordering::Relaxed);
        drop(guard);
        assert_eq!(mutex.state.load(Ordering::Relaxed), UNLOCKED);
        assert_eq!(kernel.unparks.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_waiter_parks_while_the_lock_is_held_and_gets_it_after_unlock() {
        let kernel = Arc::new(FakeKernel::default());
        let mutex = Arc::new(Mutex::new(0u32));
        let guard = mutex.lock(&*kernel);
        let waiter = {
            let (kernel, mutex) = (kernel.clone(), mutex.clone());
            std::thread::spawn(move || {
                *mutex.lock(&*kernel) += 1;
            })
        };
        while kernel.waiters.lock().unwrap().is_empty() {
            std::thread::yield_now();
        }
        assert_eq!(mutex.state.load(Ordering::Relaxed), CONTENDED);
        drop(guard);
        waiter.join().unwrap();
        assert_eq!(*mutex.lock(&*kernel), 1);
        assert!(kernel.parks.load(Ordering::Relaxed) >= 1);
        assert_eq!(mutex.state.load(Ordering::Relaxed), UNLOCKED);
    }

    /// `threads` host threads add 1 `rounds` times each, with a yield inside
    /// the critical section so the lock is really contended.
    fn count_under_contention<P: Park + Send + Sync + 'static>(
        parker: Arc<P>,
        threads: u64,
        rounds: u64,
    ) -> u64 {
        let counter = Arc::new(Mutex::new(0u64));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (parker, counter) = (parker.clone(), counter.clone());
                std::thread::spawn(move || {
                    for round in 0..rounds {
                        let mut guard = counter.lock(&*parker);
                        let seen = *guard;
                        if round % 8 == 0 {
                            std::thread::yield_now();
                        }
                        *guard = seen + 1;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        Arc::try_unwrap(counter).ok().unwrap().into_inner()
    }

    #[test]
    fn contended_counter_loses_no_increment() {
        let kernel = Arc::new(FakeKernel::default());
        assert_eq!(count_under_contention(kernel.clone(), 8, 2000), 16_000);
        assert!(kernel.waiters.lock().unwrap().is_empty());
    }

    #[test]
    fn a_refused_park_degrades_to_spinning_and_stays_exclusive() {
        assert_eq!(count_under_contention(Arc::new(Refusing), 4, 2000), 8000);
    }

    #[test]
    fn condvar_producer_consumer_passes_every_item_in_order() {
        const ITEMS: u64 = 500;
        const CAPACITY: usize = 4;
        let kernel = Arc::new(FakeKernel::default());
        let queue = Arc::new((Mutex::new(VecDeque::new()), Condvar::new(), Condvar::new()));
        let consumer = {
            let (kernel, queue) = (kernel.clone(), queue.clone());
            std::thread::spawn(move || {
                let (items, not_empty, not_full) = &*queue;
                let mut received = Vec::new();
                while received.len() < ITEMS as usize {
                    let mut guard =
                        not_empty.wait_while(items.lock(&*kernel), |items| items.is_empty());
                    received.push(guard.pop_front().unwrap());
                    drop(guard);
                    not_full.notify_one(&*kernel);
                }
                received
            })
        };
        let (items, not_empty, not_full) = &*queue;
        for item in 1..=ITEMS {
            let mut guard =
                not_full.wait_while(items.lock(&*kernel), |items| items.len() >= CAPACITY);
            guard.push_back(item);
            drop(guard);
            not_empty.notify_one(&*kernel);
        }
        assert_eq!(consumer.join().unwrap(), (1..=ITEMS).collect::<Vec<_>>());
    }

    #[test]
    fn notify_all_wakes_every_waiter() {
        let kernel = Arc::new(FakeKernel::default());
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let (kernel, state) = (kernel.clone(), state.clone());
                std::thread::spawn(move || {
                    let (open, changed) = &*state;
                    drop(changed.wait_while(open.lock(&*kernel), |open| !*open));
                })
            })
            .collect();
        while kernel.waiters.lock().unwrap().len() < 3 {
            std::thread::yield_now();
        }
        *state.0.lock(&*kernel) = true;
        state.1.notify_all(&*kernel);
        for waiter in waiters {
            waiter.join().unwrap();
        }
    }

    #[test]
    fn a_notify_before_the_park_is_not_lost() {
        let kernel = FakeKernel::default();
        let condvar = Condvar::new();
        let sequence = condvar.sequence.load(Ordering::Relaxed);
        condvar.notify_one(&kernel);
        // The waiter read `sequence` under the mutex, then the notify came:
        // its park must not wait.
        assert_eq!(
            kernel.park(&condvar.sequence, sequence, NO_TIMEOUT),
            Ok(Parked::Differed)
        );
    }

    #[test]
    fn wait_timeout_reports_the_timeout() {
        let kernel = FakeKernel::default();
        let mutex = Mutex::new(());
        let condvar = Condvar::new();
        let (guard, timed_out) = condvar.wait_timeout(mutex.lock(&kernel), 1_000_000);
        assert!(timed_out);
        drop(guard);
        assert_eq!(mutex.state.load(Ordering::Relaxed), UNLOCKED);
    }
}
