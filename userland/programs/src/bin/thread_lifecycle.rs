//! `thread-lifecycle`: threads are spawned, joined, detached and ended.
//! Slots: 0 console, 1 thread-spawner, 2 park-space, 3 timer.
//!
//! Cases, each printing `[thread-lifecycle] <case> ... ok` or
//! `[thread-lifecycle] <case> FAILED <why>`:
//! - `join`: 4 threads, all alive at once, compute distinct sums and are
//!   joined; each has its own thread pointer (`fs:0`) and its own ring at
//!   its slot's address;
//! - `exit-values`: returned and `thread_exit`ed values, negative and
//!   extreme ones, come back unchanged from join;
//! - `detach`: a detached thread still runs and ends;
//! - `join-sibling`: a spawned thread joins another spawned thread;
//! - `exit-while-blocked`: one thread ends while its sibling is parked,
//!   then the sibling is woken and joined.
//!
//! Then `[thread-lifecycle] exiting with siblings running` (one spinning,
//! one parked, one sleeping) and the process exits 0 if every case passed
//! (1 otherwise): the kernel kills the siblings and prints
//! `[process] ... name=thread-lifecycle exit=0`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::layout::{RING_BASE, THREAD_RING_STRIDE};
use capos_runtime::cases::{failure, Tally};
use capos_runtime::sync::{Condvar, Mutex, Park, ParkSpace};
use capos_runtime::thread::{self, JoinHandle};
use capos_runtime::{println, CapabilityHandle, Context, Error, Parked};
use core::sync::atomic::{AtomicU32, Ordering};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const PARK_SLOT: u16 = 2;
const TIMER_SLOT: u16 = 3;

/// How long a case waits for another thread before it gives up.
const WAIT_NS: u64 = 5_000_000_000;

const TAG: &str = "thread-lifecycle";

fn main(context: &mut Context) -> i32 {
    let mut tally = Tally::default();
    tally.run(
        context,
        TAG,
        &[
            ("join", join_four),
            ("exit-values", exit_values),
            ("detach", detach),
            ("join-sibling", join_sibling),
            ("exit-while-blocked", exit_while_blocked),
        ],
    );
    if let Err(problem) = leave_siblings_running(context) {
        tally.report(context, TAG, "siblings", Err(problem));
    }
    println!(
        context,
        "[{TAG}] exiting with siblings running failed={}", tally.failed
    );
    tally.exit_code()
}

fn spawner(context: &Context) -> CapabilityHandle {
    context.capability(SPAWNER_SLOT)
}

fn park_space(context: &Context) -> ParkSpace<'_> {
    context.park_space(context.capability(PARK_SLOT))
}

/// 1 + 2 + ... + n, the long way (so the thread does some work).
fn triangle(n: u64) -> u64 {
    (1..=n).fold(0u64, |sum, k| core::hint::black_box(sum + k))
}

/// What each thread of `join_four` saw of itself.
#[derive(Clone, Copy)]
struct Seen {
    thread_pointer: usize,
    ring_base: usize,
}

/// Spawn 4 threads that return distinct sums; join all, check the values
/// and that thread pointers and rings are per thread. The threads wait for
/// each other (a condition variable) before they end, so all 4 are alive
/// at once and none can reuse another's slot or block.
fn join_four(context: &Context) -> Result<String, String> {
    let seen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    let mut handles = Vec::new();
    for index in 0..4u64 {
        let seen = seen.clone();
        let handle = thread::spawn(
            context,
            spawner(context),
            move |context, n| {
                let Some(thread_pointer) = thread::current_thread_pointer() else {
                    return -1;
                };
                let entry = Seen {
                    thread_pointer,
                    ring_base: context.shared_ring().base(),
                };
                let (entries, all_there) = &*seen;
                let parker = park_space(context);
                let mut entries = entries.lock(parker);
                entries.push(entry);
                all_there.notify_all(parker);
                drop(all_there.wait_while(entries, |entries| entries.len() < 4));
                triangle(n) as i64
            },
            1000 * (index + 1),
        )
        .map_err(|error| failure("spawn", error))?;
        handles.push(handle);
    }
    let mut values = Vec::new();
    for (index, handle) in handles.into_iter().enumerate() {
        let value = handle
            .join(context)
            .map_err(|error| failure("join", error))?;
        let expected = triangle(1000 * (index as u64 + 1)) as i64;
        if value != expected {
            return Err(format!("thread={index} value={value} expected={expected}"));
        }
        values.push(value);
    }
    let seen = seen.0.lock(park_space(context));
    check_distinct_threads(&seen)?;
    Ok(format!("threads=4 values={values:?}"))
}

/// Every thread had a nonzero thread pointer and a ring of its own at a
/// thread slot's address (never the first thread's), all distinct.
fn check_distinct_threads(seen: &[Seen]) -> Result<(), String> {
    if seen.len() != 4 {
        return Err(format!("threads seen={}", seen.len()));
    }
    for (index, entry) in seen.iter().enumerate() {
        let offset = (entry.ring_base as u64).wrapping_sub(RING_BASE);
        if entry.thread_pointer == 0
            || offset == 0
            || !offset.is_multiple_of(THREAD_RING_STRIDE)
            || offset / THREAD_RING_STRIDE >= 64
        {
            return Err(format!(
                "thread_pointer={:#x} ring={:#x}",
                entry.thread_pointer, entry.ring_base
            ));
        }
        for other in &seen[index + 1..] {
            if other.thread_pointer == entry.thread_pointer || other.ring_base == entry.ring_base {
                return Err(format!(
                    "shared thread pointer or ring {:#x}",
                    entry.ring_base
                ));
            }
        }
    }
    Ok(())
}

/// End the calling thread from inside a nested call, not by returning.
fn exit_from_nested_call(value: i64) -> i64 {
    capos_runtime::thread_exit(value)
}

/// Values returned, and passed to `thread_exit`, come back unchanged.
fn exit_values(context: &Context) -> Result<String, String> {
    let values = [0, -7, i64::MIN, i64::MAX];
    let mut handles: Vec<(i64, JoinHandle)> = Vec::new();
    for value in values {
        let handle = thread::spawn(
            context,
            spawner(context),
            |_, value| value as i64,
            value as u64,
        )
        .map_err(|error| failure("spawn", error))?;
        handles.push((value, handle));
    }
    let handle = thread::spawn(
        context,
        spawner(context),
        |_, value| exit_from_nested_call(value as i64),
        42,
    )
    .map_err(|error| failure("spawn", error))?;
    handles.push((42, handle));
    let mut joined = Vec::new();
    for (expected, handle) in handles {
        let end = handle
            .join_end(context)
            .map_err(|error| failure("join", error))?;
        if end.value != expected || end.killed {
            return Err(format!(
                "value={} killed={} expected={expected}",
                end.value, end.killed
            ));
        }
        joined.push(end.value);
    }
    Ok(format!("values={joined:?}"))
}

/// Wait until `word` no longer reads `value`, parking with a deadline.
fn wait_while_equal(context: &Context, word: &AtomicU32, value: u32) -> Result<(), String> {
    let timer = context.capability(TIMER_SLOT);
    let ring = context.shared_ring();
    let start = ring
        .timer_now(timer)
        .map_err(|error| failure("now", error))?;
    while word.load(Ordering::Acquire) == value {
        let now = ring
            .timer_now(timer)
            .map_err(|error| failure("now", error))?;
        if now.saturating_sub(start) > WAIT_NS {
            return Err(String::from("waited too long"));
        }
        park_space(context)
            .park(word, value, 10_000_000)
            .map_err(|error| failure("park", error))?;
    }
    Ok(())
}

/// Set `word` to `value` and wake everyone parked on it.
fn publish(parker: &ParkSpace<'_>, word: &AtomicU32, value: u32) -> u64 {
    word.store(value, Ordering::Release);
    parker.unpark(word, u64::MAX).unwrap_or(0)
}

/// A detached thread runs to its end unobserved; its handle is gone.
fn detach(context: &Context) -> Result<String, String> {
    let done = Arc::new(AtomicU32::new(0));
    let flag = done.clone();
    let handle = thread::spawn(
        context,
        spawner(context),
        move |context, _| {
            publish(&park_space(context), &flag, 1);
            0
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    let stale = handle.handle();
    handle
        .detach(context)
        .map_err(|error| failure("detach", error))?;
    wait_while_equal(context, &done, 0)?;
    match context.shared_ring().thread_join(stale) {
        Err(Error::InvalidCapability) => Ok(String::from("ran=1 stale-join=invalid-capability")),
        other => Err(format!("join after detach gave {other:?}")),
    }
}

/// A spawned thread joins its sibling through the shared capability table.
fn join_sibling(context: &Context) -> Result<String, String> {
    let sleeper = thread::spawn(
        context,
        spawner(context),
        |context, _| {
            let timer = context.capability(TIMER_SLOT);
            match context.shared_ring().timer_sleep(timer, 10_000_000) {
                Ok(()) => 5,
                Err(_) => -1,
            }
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    let target = sleeper.handle();
    let joiner = thread::spawn(
        context,
        spawner(context),
        move |context, _| match context.shared_ring().thread_join(target) {
            Ok(end) if !end.killed => end.value + 1,
            _ => -1,
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    let value = joiner
        .join(context)
        .map_err(|error| failure("join joiner", error))?;
    let direct = sleeper
        .join(context)
        .map_err(|error| failure("join sleeper", error))?;
    if (value, direct) != (6, 5) {
        return Err(format!("joiner={value} sleeper={direct} expected 6 and 5"));
    }
    Ok(format!("joiner={value} sleeper={direct}"))
}

/// One thread ends and is joined while its sibling is parked; then the
/// sibling is released and joined.
fn exit_while_blocked(context: &Context) -> Result<String, String> {
    let gate = Arc::new(AtomicU32::new(0));
    let parked = Arc::new(AtomicU32::new(0));
    let (gate_for_thread, parked_for_thread) = (gate.clone(), parked.clone());
    let blocked = thread::spawn(
        context,
        spawner(context),
        move |context, _| {
            let parker = park_space(context);
            publish(&parker, &parked_for_thread, 1);
            while gate_for_thread.load(Ordering::Acquire) == 0 {
                if parker.park(&gate_for_thread, 0, u64::MAX).is_err() {
                    return -1;
                }
            }
            1
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    wait_while_equal(context, &parked, 0)?;
    let quick = thread::spawn(context, spawner(context), |_, _| 2, 0)
        .map_err(|error| failure("spawn", error))?;
    let quick_value = quick
        .join(context)
        .map_err(|error| failure("join quick", error))?;
    if gate.load(Ordering::Acquire) != 0 || quick_value != 2 {
        return Err(format!("quick={quick_value}"));
    }
    publish(&park_space(context), &gate, 1);
    let blocked_value = blocked
        .join(context)
        .map_err(|error| failure("join blocked", error))?;
    if blocked_value != 1 {
        return Err(format!("blocked={blocked_value}"));
    }
    Ok(format!("quick={quick_value} blocked={blocked_value}"))
}

/// Start one spinning, one parked and one sleeping thread, wait until the
/// spinner runs, and return: `main`'s return ends the process with them.
fn leave_siblings_running(context: &Context) -> Result<(), String> {
    let spinning = Arc::new(AtomicU32::new(0));
    let flag = spinning.clone();
    let spinner = thread::spawn(
        context,
        spawner(context),
        move |context, _| {
            publish(&park_space(context), &flag, 1);
            loop {
                core::hint::spin_loop();
            }
        },
        0,
    )
    .map_err(|error| failure("spawn spinner", error))?;
    let never = Arc::new(AtomicU32::new(0));
    let parked = thread::spawn(
        context,
        spawner(context),
        move |context, _| match park_space(context).park(&never, 0, u64::MAX) {
            Ok(Parked::Unparked) => 1,
            _ => -1,
        },
        0,
    )
    .map_err(|error| failure("spawn parked", error))?;
    let sleeper = thread::spawn(
        context,
        spawner(context),
        |context, _| {
            let timer = context.capability(TIMER_SLOT);
            let _ = context.shared_ring().timer_sleep(timer, 60_000_000_000);
            1
        },
        0,
    )
    .map_err(|error| failure("spawn sleeper", error))?;
    wait_while_equal(context, &spinning, 0)?;
    for handle in [spinner, parked, sleeper] {
        handle
            .detach(context)
            .map_err(|error| failure("detach", error))?;
    }
    Ok(())
}
