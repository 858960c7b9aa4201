//! `park-smoke`: Park/Unpark and the runtime's Mutex and Condvar between
//! threads. Slots: 0 console, 1 thread-spawner, 2 park-space, 3 timer,
//! 4 diagnostics.
//!
//! Cases, each printing `[park] <case> ... ok` or `[park] <case> FAILED
//! <why>`:
//! - `mutex`: 4 threads x 5000 unsynchronised-looking increments under a
//!   `Mutex` sum to exactly 20000;
//! - `condvar`: a producer and a consumer thread pass 300 items through a
//!   4-slot queue (`Mutex` + two `Condvar`s), in order;
//! - `ping-pong`: two threads take 200 turns each through one word;
//! - `differ`: a park on a word that differs returns 1 at once;
//! - `timeout`: a 20 ms park on an unchanged word times out after >= 20 ms;
//! - `unpark-count`: with 3 threads parked on a word (the kernel's
//!   `parked_threads` counter says so), unpark(2) wakes 2, unpark(10)
//!   wakes the last 1, and unpark with nobody parked wakes 0;
//! - `re-park-storm`: 24 threads park again as soon as they are woken while
//!   this one unparks "all" 300 times: every unpark returns, each waking
//!   at most the 24 parked at its start (an unpark that kept taking the
//!   threads that re-parked behind it would loop for as long as they keep
//!   up, inside the kernel).
//!
//! Then `[park] done failed=<n>`; exits 0 iff every case passed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_runtime::cases::{failure, Tally};
use capos_runtime::sync::{Condvar, Mutex, Park};
use capos_runtime::thread::{self, JoinHandle};
use capos_runtime::{println, CapabilityHandle, Context, Parked};
use core::sync::atomic::{AtomicU32, Ordering};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const PARK_SLOT: u16 = 2;
const TIMER_SLOT: u16 = 3;
const DIAGNOSTICS_SLOT: u16 = 4;

fn main(context: &mut Context) -> i32 {
    let mut tally = Tally::default();
    tally.run(
        context,
        "park",
        &[
            ("mutex", mutex_counter),
            ("condvar", producer_consumer),
            ("ping-pong", ping_pong),
            ("differ", differ),
            ("timeout", timeout),
            ("unpark-count", unpark_count),
            ("re-park-storm", re_park_storm),
        ],
    );
    println!(context, "[park] done failed={}", tally.failed);
    tally.exit_code()
}

/// Spawn `body` on a new thread; the body gets the park-space handle.
fn spawn(
    context: &Context,
    body: impl FnOnce(&mut Context, CapabilityHandle) -> i64 + Send + 'static,
) -> Result<JoinHandle, String> {
    let park = context.capability(PARK_SLOT);
    thread::spawn(
        context,
        context.capability(SPAWNER_SLOT),
        move |context, _| body(context, park),
        0,
    )
    .map_err(|error| failure("spawn", error))
}

/// Join every handle; their values in order.
fn join_all(context: &Context, handles: Vec<JoinHandle>) -> Result<Vec<i64>, String> {
    handles
        .into_iter()
        .map(|handle| handle.join(context).map_err(|error| failure("join", error)))
        .collect()
}

const THREADS: u64 = 4;
const INCREMENTS: u64 = 5000;

/// Increments as read, compute, write: only the mutex keeps them whole.
fn mutex_counter(context: &Context) -> Result<String, String> {
    let counter = Arc::new(Mutex::new(0u64));
    let mut handles = Vec::new();
    for _ in 0..THREADS {
        let counter = counter.clone();
        handles.push(spawn(context, move |context, park| {
            let parker = context.park_space(park);
            for round in 0..INCREMENTS {
                let mut guard = counter.lock(parker);
                let seen = core::hint::black_box(*guard);
                if round % 64 == 0 {
                    // Hold the lock a while so others contend for it.
                    for _ in 0..200 {
                        core::hint::spin_loop();
                    }
                }
                *guard = seen + 1;
            }
            0
        })?);
    }
    join_all(context, handles)?;
    let total = *counter.lock(context.park_space(context.capability(PARK_SLOT)));
    if total != THREADS * INCREMENTS {
        return Err(format!("total={total} expected={}", THREADS * INCREMENTS));
    }
    Ok(format!(
        "threads={THREADS} increments={INCREMENTS} total={total}"
    ))
}

const ITEMS: u64 = 300;
const CAPACITY: usize = 4;

/// A bounded queue: the items, "not empty" and "not full".
type Queue = (Mutex<VecDeque<u64>>, Condvar, Condvar);

/// A producer thread and a consumer thread pass every item, in order.
fn producer_consumer(context: &Context) -> Result<String, String> {
    let queue: Arc<Queue> = Arc::new((Mutex::new(VecDeque::new()), Condvar::new(), Condvar::new()));
    let consumer_queue = queue.clone();
    let consumer = spawn(context, move |context, park| {
        let parker = context.park_space(park);
        let (items, not_empty, not_full) = &*consumer_queue;
        let mut sum = 0u64;
        for expected in 1..=ITEMS {
            let mut guard = not_empty.wait_while(items.lock(parker), |items| items.is_empty());
            let item = guard.pop_front();
            drop(guard);
            not_full.notify_one(parker);
            if item != Some(expected) {
                return -(expected as i64);
            }
            sum += expected;
        }
        sum as i64
    })?;
    let producer = spawn(context, move |context, park| {
        let parker = context.park_space(park);
        let (items, not_empty, not_full) = &*queue;
        for item in 1..=ITEMS {
            let mut guard =
                not_full.wait_while(items.lock(parker), |items| items.len() >= CAPACITY);
            guard.push_back(item);
            drop(guard);
            not_empty.notify_one(parker);
        }
        0
    })?;
    let values = join_all(context, Vec::from([consumer, producer]))?;
    let expected = (ITEMS * (ITEMS + 1) / 2) as i64;
    if values != [expected, 0] {
        return Err(format!("consumer={} producer={}", values[0], values[1]));
    }
    Ok(format!("items={ITEMS} capacity={CAPACITY} sum={expected}"))
}

const ROUNDS: u32 = 200;

/// Thread `side` (0 or 1) moves the word on whenever its parity is `side`,
/// parking while it is the other thread's turn.
fn take_turns(context: &Context, park: CapabilityHandle, turn: &AtomicU32, side: u32) -> i64 {
    let parker = context.park_space(park);
    for _ in 0..ROUNDS {
        loop {
            let now = turn.load(Ordering::Acquire);
            if now % 2 == side {
                break;
            }
            if parker.park(turn, now, u64::MAX).is_err() {
                return -1;
            }
        }
        turn.fetch_add(1, Ordering::AcqRel);
        if parker.unpark(turn, 1).is_err() {
            return -1;
        }
    }
    0
}

/// Two threads alternate through one word, parking on each other.
fn ping_pong(context: &Context) -> Result<String, String> {
    let turn = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for side in 0..2 {
        let turn = turn.clone();
        handles.push(spawn(context, move |context, park| {
            take_turns(context, park, &turn, side)
        })?);
    }
    let values = join_all(context, handles)?;
    let turns = turn.load(Ordering::Acquire);
    if values != [0, 0] || turns != 2 * ROUNDS {
        return Err(format!("values={values:?} turns={turns}"));
    }
    Ok(format!("rounds={ROUNDS} turns={turns}"))
}

/// A park whose expected value is not in the word returns 1, no wait.
fn differ(context: &Context) -> Result<String, String> {
    let word = AtomicU32::new(5);
    let parker = context.park_space(context.capability(PARK_SLOT));
    match parker.park(&word, 4, u64::MAX) {
        Ok(Parked::Differed) => Ok(String::from("result=1")),
        other => Err(format!("park gave {other:?}")),
    }
}

const TIMEOUT_NS: u64 = 20_000_000;

/// A park nobody ends times out, and not early.
fn timeout(context: &Context) -> Result<String, String> {
    let timer = context.capability(TIMER_SLOT);
    let ring = context.shared_ring();
    let word = AtomicU32::new(0);
    let before = ring
        .timer_now(timer)
        .map_err(|error| failure("now", error))?;
    let outcome = context
        .park_space(context.capability(PARK_SLOT))
        .park(&word, 0, TIMEOUT_NS);
    let after = ring
        .timer_now(timer)
        .map_err(|error| failure("now", error))?;
    let waited = after.saturating_sub(before);
    match outcome {
        Ok(Parked::TimedOut) if waited >= TIMEOUT_NS => {
            Ok(format!("timeout_ms=20 result=timed-out waited_ns={waited}"))
        }
        other => Err(format!("park gave {other:?} after {waited} ns")),
    }
}

/// Threads parked kernel-wide now.
fn parked_threads(context: &Context) -> Result<u64, String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let counters = context
        .shared_ring()
        .diagnostics_read(diagnostics)
        .map_err(|error| failure("diagnostics", error))?;
    Ok(counters.parked_threads)
}

/// Wait (5 s at most) until `parked` threads are parked kernel-wide.
fn wait_until_parked(context: &Context, parked: u64) -> Result<(), String> {
    let reading = context
        .shared_ring()
        .poll_counters(
            context.capability(DIAGNOSTICS_SLOT),
            context.capability(TIMER_SLOT),
            5_000_000_000,
            |counters| counters.parked_threads == parked,
        )
        .map_err(|error| failure("diagnostics", error))?;
    if reading.parked_threads != parked {
        return Err(format!(
            "parked_threads={} expected={parked}",
            reading.parked_threads
        ));
    }
    Ok(())
}

/// Unpark wakes at most the count asked for, and reports how many.
fn unpark_count(context: &Context) -> Result<String, String> {
    let baseline = parked_threads(context)?;
    let word = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for _ in 0..3 {
        let word = word.clone();
        handles.push(spawn(context, move |context, park| {
            match context.park_space(park).park(&word, 0, u64::MAX) {
                Ok(Parked::Unparked) => 0,
                Ok(_) => 1,
                Err(error) => error.as_result(),
            }
        })?);
    }
    wait_until_parked(context, baseline + 3)?;
    let parker = context.park_space(context.capability(PARK_SLOT));
    let mut woken = Vec::new();
    for count in [2, 10, 10] {
        woken.push(
            parker
                .unpark(&word, count)
                .map_err(|error| failure("unpark", error))?,
        );
    }
    let values = join_all(context, handles)?;
    if woken != [2, 1, 0] || values != [0, 0, 0] {
        return Err(format!("woken={woken:?} park results={values:?}"));
    }
    Ok(String::from("parked=3 woken=2,1,0"))
}

const STORM_THREADS: u64 = 24;
const STORM_UNPARKS: u32 = 300;

/// Threads that park again at once cannot keep an unpark of "all" going:
/// each wakes at most the threads parked when it began.
fn re_park_storm(context: &Context) -> Result<String, String> {
    let baseline = parked_threads(context)?;
    let word = Arc::new(AtomicU32::new(0));
    let mut handles = Vec::new();
    for _ in 0..STORM_THREADS {
        let word = word.clone();
        handles.push(spawn(context, move |context, park| {
            let parker = context.park_space(park);
            let mut parks = 0i64;
            while word.load(Ordering::Acquire) == 0 {
                match parker.park(&word, 0, u64::MAX) {
                    Ok(_) => parks += 1,
                    Err(error) => return error.as_result(),
                }
            }
            parks
        })?);
    }
    wait_until_parked(context, baseline + STORM_THREADS)?;
    let parker = context.park_space(context.capability(PARK_SLOT));
    let mut most = 0;
    for _ in 0..STORM_UNPARKS {
        let woken = parker
            .unpark(&word, u64::MAX)
            .map_err(|error| failure("unpark", error))?;
        most = most.max(woken);
    }
    word.store(1, Ordering::Release);
    parker
        .unpark(&word, u64::MAX)
        .map_err(|error| failure("unpark", error))?;
    let values = join_all(context, handles)?;
    if most > STORM_THREADS || values.iter().any(|parks| *parks < 0) {
        return Err(format!(
            "most woken by one unpark={most} (at most {STORM_THREADS}) park results={values:?}"
        ));
    }
    Ok(format!(
        "threads={STORM_THREADS} unparks={STORM_UNPARKS} most-woken={most}"
    ))
}
