//! `thread-hostile`: bad thread and park requests are refused with their
//! specific error and the process lives on; a thread fault ends only the
//! faulting process. Slots: 0 console, 1 thread-spawner, 2 park-space,
//! 3 timer, 4 process-spawner.
//!
//! Lines: `[thread-hostile] case=<name> error=<error> ok` per refused
//! request (or `... FAILED got=<what>`), then
//! `[thread-hostile] case=thread-quota spawned=63 error=quota-exhausted again=7 ok`
//! (63 siblings beside the first thread, the 64th refused, all released and
//! joined, and a new spawn works again), then
//! `[thread-hostile] case=sibling-fault status=-142 ok` (the child process
//! `thread-fault` has one thread fault while a sibling spins),
//! then `[thread-hostile] case=thread-panic status=101 ok` (the child
//! `thread-panic` panics on a spawned thread while its first thread waits),
//! then `[thread-hostile] done passed=<n> failed=<k>`; exits 0 iff k = 0.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::arguments;
use capos_abi::layout::{RING_BASE, USER_IMAGE_BASE};
use capos_abi::limits::THREADS_PER_PROCESS;
use capos_runtime::cases::{failure, Tally};
use capos_runtime::sync::Park;
use capos_runtime::thread;
use capos_runtime::{println, CapabilityHandle, Context, Error, Opcode, Submission};
use core::sync::atomic::{AtomicU32, Ordering};

capos_runtime::entry!(main);

const CONSOLE_SLOT: u16 = 0;
const SPAWNER_SLOT: u16 = 1;
const PARK_SLOT: u16 = 2;
const TIMER_SLOT: u16 = 3;
const PROCESS_SPAWNER_SLOT: u16 = 4;

/// Kernel half: never a user address.
const KERNEL_ADDRESS: u64 = 0xFFFF_8000_0000_0000;
/// Above the user half and below the kernel half.
const NON_CANONICAL: u64 = 0x0001_0000_0000_0000;
/// Inside user space, always unmapped (docs/abi.md).
const UNMAPPED: u64 = 0x5000_0000;
/// Page-fault exit status: -(128 + 14).
const PAGE_FAULT_STATUS: i64 = -142;

/// A valid entry for spawns that must be refused for another argument. If
/// the kernel wrongly starts a thread here, it ends at once (or faults on
/// its bad stack, killing this process, which the smoke sees).
extern "C" fn refused_entry() -> ! {
    capos_runtime::thread_exit(0)
}

const TAG: &str = "thread-hostile";

fn main(context: &mut Context) -> i32 {
    let mut tally = Tally::default();
    let mut report = |context: &Context, name: &str, outcome| {
        tally.report(context, TAG, &format!("case={name}"), outcome)
    };
    for (name, expected, observed) in refusals(context) {
        report(context, name, expect_error(expected, observed));
    }
    report(context, "thread-quota", thread_quota(context));
    report(context, "fs-selector", fs_selector(context));
    let panic_status = i64::from(capos_runtime::PANIC_EXIT_CODE);
    report(
        context,
        "sibling-fault",
        child_status(context, "thread-fault", PAGE_FAULT_STATUS),
    );
    report(
        context,
        "thread-panic",
        child_status(context, "thread-panic", panic_status),
    );
    println!(
        context,
        "[{TAG}] done passed={} failed={}", tally.passed, tally.failed
    );
    tally.exit_code()
}

/// What a refused request gave: Ok(what it did instead) or its error.
type Observed = Result<String, Error>;

/// `ok` text when `observed` is the error `expected`.
fn expect_error(expected: Error, observed: Observed) -> Result<String, String> {
    match observed {
        Err(error) if error == expected => Ok(format!("error={}", error.name())),
        Err(error) => Err(format!("got={} expected={}", error.name(), expected.name())),
        Ok(what) => Err(format!("got=success({what}) expected={}", expected.name())),
    }
}

/// Every single-request refusal: (case, expected error, what happened).
fn refusals(context: &Context) -> Vec<(&'static str, Error, Observed)> {
    let good_entry = refused_entry as *const () as u64;
    let word = AtomicU32::new(0);
    let word_address = word.as_ptr() as u64;
    let spawn = |entry: u64, stack_top: u64, fs_base: u64| {
        spawn_raw(
            context,
            context.capability(SPAWNER_SLOT),
            entry,
            stack_top,
            fs_base,
        )
    };
    let park = |address: u64| park_raw(context, context.capability(PARK_SLOT), address);
    let ring = context.shared_ring();
    let space = context.capability(PARK_SLOT);
    Vec::from([
        (
            "entry-kernel",
            Error::InvalidArgument,
            spawn(KERNEL_ADDRESS, 0, 0),
        ),
        ("entry-null-page", Error::InvalidArgument, spawn(0x10, 0, 0)),
        (
            "entry-below-image",
            Error::InvalidArgument,
            spawn(USER_IMAGE_BASE - 0x1000, 0, 0),
        ),
        (
            "entry-ring-region",
            Error::InvalidArgument,
            spawn(RING_BASE, 0, 0),
        ),
        (
            "stack-kernel",
            Error::InvalidArgument,
            spawn(good_entry, KERNEL_ADDRESS, 0),
        ),
        (
            "stack-non-canonical",
            Error::InvalidArgument,
            spawn(good_entry, NON_CANONICAL, 0),
        ),
        (
            "stack-null-page",
            Error::InvalidArgument,
            spawn(good_entry, 0x800, 0),
        ),
        (
            "stack-misaligned",
            Error::InvalidArgument,
            spawn(good_entry, UNMAPPED + 8, 0),
        ),
        (
            "fs-base-kernel",
            Error::InvalidArgument,
            spawn(good_entry, 0, KERNEL_ADDRESS),
        ),
        (
            "fs-base-non-canonical",
            Error::InvalidArgument,
            spawn(good_entry, 0, NON_CANONICAL),
        ),
        (
            "spawn-on-console",
            Error::WrongObjectType,
            spawn_raw(context, context.capability(CONSOLE_SLOT), good_entry, 0, 0),
        ),
        (
            "join-on-timer",
            Error::WrongObjectType,
            ring.thread_join(context.capability(TIMER_SLOT))
                .map(|end| format!("{end:?}")),
        ),
        (
            "join-stale-handle",
            Error::InvalidCapability,
            join_twice(context),
        ),
        (
            "park-misaligned",
            Error::InvalidArgument,
            park(word_address + 1),
        ),
        ("park-unmapped", Error::BadAddress, park(UNMAPPED)),
        ("park-null-page", Error::BadAddress, park(0)),
        ("park-kernel", Error::BadAddress, park(KERNEL_ADDRESS)),
        (
            "park-expected-too-large",
            Error::InvalidArgument,
            park_wide_expected(context, word_address),
        ),
        (
            "park-on-console",
            Error::WrongObjectType,
            park_raw(context, context.capability(CONSOLE_SLOT), word_address),
        ),
        (
            "unpark-misaligned",
            Error::InvalidArgument,
            ring.unpark(space, word_address + 2, 1)
                .map(|woken| format!("woken={woken}")),
        ),
    ])
}

/// A raw `ThreadSpawn` that must be refused; a thread it starts anyway is
/// joined so it cannot outlive the case.
fn spawn_raw(
    context: &Context,
    spawner: CapabilityHandle,
    entry: u64,
    stack_top: u64,
    fs_base: u64,
) -> Observed {
    let ring = context.shared_ring();
    // SAFETY: every entry passed here is outside this program's code or is
    // `refused_entry`, which touches nothing and ends its thread; the kernel
    // must refuse the bad argument before a thread runs.
    let arguments = arguments::ThreadSpawn {
        entry,
        stack_top,
        argument: 0,
        thread_pointer: fs_base,
    };
    let spawned = unsafe { ring.thread_spawn(spawner, arguments) }?;
    let end = ring.thread_join(spawned.handle);
    let _ = ring.drop_capability(spawned.handle);
    Ok(format!("thread {} ended {end:?}", spawned.id))
}

/// A park of one round that must be refused before it waits.
fn park_raw(context: &Context, space: CapabilityHandle, address: u64) -> Observed {
    context
        .shared_ring()
        .park(space, address, 0, 1_000_000)
        .map(|parked| format!("{parked:?}"))
}

/// `Park` with an expected value wider than the `u32` word.
fn park_wide_expected(context: &Context, address: u64) -> Observed {
    let ring = context.shared_ring();
    let submission = Submission {
        opcode: Opcode::Park as u16,
        flags: 0,
        capability: context.capability(PARK_SLOT).0,
        user_data: ring.fresh_user_data(),
        arguments: arguments::Park {
            address,
            expected: 1 << 32,
            timeout_ns: 1_000_000,
        }
        .encode(),
    };
    // SAFETY: `Park` only reads the word at `address`, a live local of the
    // caller, while the request is taken.
    let completion = unsafe { ring.call(submission) };
    capos_runtime::ring::decode_result(completion.result).map(|result| format!("result={result}"))
}

/// Join a thread, drop its handle, join through the stale handle.
fn join_twice(context: &Context) -> Observed {
    let handle = thread::spawn(context, context.capability(SPAWNER_SLOT), |_, _| 3, 0)?;
    let stale = handle.handle();
    let value = handle.join(context)?;
    let again = context.shared_ring().thread_join(stale)?;
    Ok(format!("first={value} second={again:?}"))
}

/// A thread loads a selector into FS, which in 64-bit mode sets the FS base
/// to the descriptor's (0) behind the kernel's back, then blocks: when it
/// runs again it must have its own base (the kernel loads it at every
/// switch unless the register already holds it; a kernel that compared
/// with the value it wrote last would leave 0, and the read of `fs:0`
/// would fault).
fn fs_selector(context: &Context) -> Result<String, String> {
    let body = |context: &mut Context, _| {
        let before = thread::current_thread_pointer();
        // SAFETY: 0x23 is the user data selector (flat, base 0); nothing
        // on this thread reads FS again before the block below.
        unsafe {
            core::arch::asm!(
                "mov {selector:e}, 0x23",
                "mov fs, {selector:e}",
                selector = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
        let word = AtomicU32::new(0);
        let parker = context.park_space(context.capability(PARK_SLOT));
        // Times out after 1 ms: a switch away and back.
        let _ = parker.park(&word, 0, 1_000_000);
        match (before, thread::current_thread_pointer()) {
            (Some(before), Some(after)) if before == after => 1,
            _ => 0,
        }
    };
    let handle = thread::spawn(context, context.capability(SPAWNER_SLOT), body, 0)
        .map_err(|error| failure("spawn", error))?;
    match handle.join(context) {
        Ok(1) => Ok("restored".into()),
        Ok(value) => Err(format!("thread pointer changed (value {value})")),
        Err(error) => Err(failure("join", error)),
    }
}

/// Threads a process may add beside its first one.
const SIBLINGS_MAX: usize = THREADS_PER_PROCESS - 1;

/// Park on `word` until it differs from `value`, 5 s at most.
fn wait_while_equal(context: &Context, word: &AtomicU32, value: u32) -> Result<(), String> {
    let parker = context.park_space(context.capability(PARK_SLOT));
    for _ in 0..500 {
        let now = word.load(Ordering::Acquire);
        if now != value {
            return Ok(());
        }
        parker
            .park(word, now, 10_000_000)
            .map_err(|error| failure("park", error))?;
    }
    Err(format!("word stayed {value}"))
}

/// Fill every thread slot with parked siblings (handles detached, so the
/// capability table is not the limit), expect the next spawn to be
/// `QuotaExhausted`, release them all, and spawn again. Slots of ended
/// threads are freed asynchronously, so a refusal before the count is full
/// is retried after a short sleep.
fn thread_quota(context: &Context) -> Result<String, String> {
    let spawner = context.capability(SPAWNER_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let gate = Arc::new(AtomicU32::new(0));
    let finished = Arc::new(AtomicU32::new(0));
    let mut spawned = 0;
    let mut retries = 0;
    let refusal = loop {
        let (gate, finished) = (gate.clone(), finished.clone());
        let body = move |context: &mut Context, _| {
            let parker = context.park_space(context.capability(PARK_SLOT));
            while gate.load(Ordering::Acquire) == 0 {
                if parker.park(&gate, 0, u64::MAX).is_err() {
                    break;
                }
            }
            finished.fetch_add(1, Ordering::AcqRel);
            let _ = parker.unpark(&finished, 1);
            0
        };
        match thread::spawn(context, spawner, body, 0) {
            Ok(handle) => {
                spawned += 1;
                handle
                    .detach(context)
                    .map_err(|error| failure("detach", error))?;
                if spawned > SIBLINGS_MAX {
                    break Err(format!("spawned={spawned}: the limit was not enforced"));
                }
            }
            Err(Error::QuotaExhausted) if spawned < SIBLINGS_MAX && retries < 200 => {
                retries += 1;
                context
                    .shared_ring()
                    .timer_sleep(timer, 5_000_000)
                    .map_err(|error| failure("sleep", error))?;
            }
            Err(error) => break Ok(error),
        }
    };
    gate.store(1, Ordering::Release);
    let parker = context.park_space(context.capability(PARK_SLOT));
    let _ = parker.unpark(&gate, u64::MAX);
    while finished.load(Ordering::Acquire) < spawned as u32 {
        wait_while_equal(context, &finished, finished.load(Ordering::Acquire))?;
    }
    let refusal = refusal?;
    if spawned != SIBLINGS_MAX || refusal != Error::QuotaExhausted {
        return Err(format!("spawned={spawned} error={}", refusal.name()));
    }
    let again = spawn_after_reap(context)?;
    Ok(format!(
        "spawned={spawned} error={} again={again}",
        refusal.name()
    ))
}

/// Spawn and join one thread once a slot is free again.
fn spawn_after_reap(context: &Context) -> Result<i64, String> {
    let timer = context.capability(TIMER_SLOT);
    for _ in 0..200 {
        match thread::spawn(context, context.capability(SPAWNER_SLOT), |_, _| 7, 0) {
            Ok(handle) => return handle.join(context).map_err(|error| failure("join", error)),
            Err(Error::QuotaExhausted) => context
                .shared_ring()
                .timer_sleep(timer, 5_000_000)
                .map_err(|error| failure("sleep", error))?,
            Err(error) => return Err(failure("respawn", error)),
        }
    }
    Err(String::from("no thread slot came back"))
}

/// Start the child process `name` and check it ended with `expected`.
fn child_status(context: &Context, name: &str, expected: i64) -> Result<String, String> {
    let ring = context.shared_ring();
    let spawner = context.capability(PROCESS_SPAWNER_SLOT);
    let child = ring
        .spawn(spawner, name, &[])
        .map_err(|error| failure("spawn", error))?;
    let status = ring.wait(child);
    let _ = ring.drop_capability(child);
    let status = status.map_err(|error| failure("wait", error))?;
    if status != expected {
        return Err(format!("status={status} expected={expected}"));
    }
    Ok(format!("status={status}"))
}
