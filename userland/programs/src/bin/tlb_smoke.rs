//! `tlb-smoke`: TLB shootdown and work stealing, seen from user space.
//! Slots: 0 console, 1 process-spawner, 2 thread-spawner, 3 memory,
//! 4 timer, 5 boot-manifest.
//!
//! As the coordinator (`role=coordinator`):
//! - `steal`: 8 CPU-bound sibling threads on however many CPUs, all finish
//!   with the right sums (idle CPUs steal queued threads);
//! - `shootdown`: spawns itself as `tlb-victim` and expects it to die of a
//!   page fault (status -142): there a reader thread loops over a mapped
//!   page on another CPU while the first thread unmaps it; once
//!   `MemoryUnmap` returns, the reader's next access must fault. A reader
//!   that sees anything but the value written (a reused frame through a
//!   stale TLB entry) makes the victim exit 2; a reader still running well
//!   after the unmap makes it exit 3.
//!
//! Prints `[tlb-smoke] <case> ... ok` or `... FAILED <why>`; exit 0 iff all
//! cases passed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_runtime::thread;
use capos_runtime::{println, CapabilityHandle, Context, Error};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

capos_runtime::entry!(main);

const PROCESS_SPAWNER_SLOT: u16 = 1;
const THREAD_SPAWNER_SLOT: u16 = 2;
const MEMORY_SLOT: u16 = 3;
const TIMER_SLOT: u16 = 4;
const MANIFEST_SLOT: u16 = 5;

/// Where the victim maps its page (inside `layout::MAP_BASE..MAP_END`).
const PAGE: u64 = 0x1000_0000_0000;
/// What the victim writes there.
const MAGIC: u64 = 0x7e57_7e57_c0de_f00d;
/// Exit status of a process killed by a page fault: -(128 + 14).
const PAGE_FAULT_STATUS: i64 = -142;

fn handle(slot: u16) -> CapabilityHandle {
    CapabilityHandle::new(slot, 0)
}

fn main(context: &mut Context) -> i32 {
    let arguments = context
        .ring()
        .manifest_arguments(handle(MANIFEST_SLOT))
        .unwrap_or_default();
    if arguments
        .split_whitespace()
        .any(|word| word == "role=victim")
    {
        return victim(context);
    }
    let mut failed = 0;
    for (name, case) in [
        ("steal", steal as fn(&Context) -> Result<String, String>),
        ("shootdown", shootdown),
    ] {
        match case(context) {
            Ok(detail) => println!(context, "[tlb-smoke] {name} {detail} ok"),
            Err(why) => {
                failed += 1;
                println!(context, "[tlb-smoke] {name} FAILED {why}");
            }
        }
    }
    println!(context, "[tlb-smoke] done failed={failed}");
    i32::from(failed != 0)
}

/// Sum of 0..n, the long way (kept from being folded by `black_box`).
fn slow_sum(n: u64) -> u64 {
    let mut total = 0u64;
    for value in 0..n {
        total = total.wrapping_add(core::hint::black_box(value));
    }
    total
}

fn steal(context: &Context) -> Result<String, String> {
    const THREADS: u64 = 8;
    const WORK: u64 = 3_000_000;
    let mut handles = Vec::new();
    for index in 0..THREADS {
        let handle = thread::spawn(
            context,
            handle(THREAD_SPAWNER_SLOT),
            |_, n| slow_sum(n) as i64,
            WORK + index,
        )
        .map_err(|error| format!("spawn {}", error.name()))?;
        handles.push(handle);
    }
    for (index, handle) in handles.into_iter().enumerate() {
        let value = handle
            .join(context)
            .map_err(|error| format!("join {}", error.name()))?;
        let n = WORK + index as u64;
        if value as u64 != n * (n - 1) / 2 {
            return Err(format!("thread={index} sum={value}"));
        }
    }
    Ok(format!("threads={THREADS} joined"))
}

fn shootdown(context: &Context) -> Result<String, String> {
    let ring = context.shared_ring();
    let child = ring
        .spawn(handle(PROCESS_SPAWNER_SLOT), "tlb-victim", &[])
        .map_err(|error| format!("spawn {}", error.name()))?;
    let status = ring
        .wait(child)
        .map_err(|error| format!("wait {}", error.name()))?;
    let _ = ring.drop_capability(child);
    if status == PAGE_FAULT_STATUS {
        Ok(String::from("reader faulted after unmap"))
    } else {
        Err(format!(
            "victim status={status}, expected {PAGE_FAULT_STATUS}"
        ))
    }
}

/// Reads the reader thread has done (shared with the first thread).
static READS: AtomicU64 = AtomicU64::new(0);
/// Set once the unmap has returned.
static UNMAPPED: AtomicU32 = AtomicU32::new(0);

fn victim(context: &mut Context) -> i32 {
    match run_victim(context) {
        Ok(code) => code,
        Err(why) => {
            println!(context, "[tlb-victim] FAILED {why}");
            4
        }
    }
}

fn run_victim(context: &mut Context) -> Result<i32, String> {
    let ring = context.shared_ring();
    let fail = |operation: &str, error: Error| format!("{operation} {}", error.name());
    ring.memory_map(handle(MEMORY_SLOT), PAGE, 4096, true)
        .map_err(|error| fail("map", error))?;
    // SAFETY: the page was just mapped writable at this address.
    unsafe { (PAGE as *mut u64).write_volatile(MAGIC) };
    let reader = thread::spawn(
        context,
        handle(THREAD_SPAWNER_SLOT),
        |context, _| loop {
            // SAFETY: the page is mapped until the first thread unmaps it;
            // after that this read must fault (which ends the process).
            let value = unsafe { (PAGE as *const u64).read_volatile() };
            if value != MAGIC {
                println!(context, "[tlb-victim] STALE read {value:#x}");
                capos_runtime::exit(2);
            }
            READS.fetch_add(1, Ordering::Relaxed);
            if UNMAPPED.load(Ordering::Acquire) != 0 {
                // One more read after the unmap returned: it must fault.
                continue;
            }
        },
        0,
    )
    .map_err(|error| fail("spawn reader", error))?;
    // Let the reader run (on the other CPU when there is one).
    while READS.load(Ordering::Relaxed) < 1000 {
        ring.timer_sleep(handle(TIMER_SLOT), 1_000_000)
            .map_err(|error| fail("sleep", error))?;
    }
    ring.memory_unmap(handle(MEMORY_SLOT), PAGE, 4096)
        .map_err(|error| fail("unmap", error))?;
    UNMAPPED.store(1, Ordering::Release);
    // Reuse frames: map and fill fresh pages, so a stale translation would
    // read something other than MAGIC.
    for page in 1..64u64 {
        let address = PAGE + page * 4096;
        if ring
            .memory_map(handle(MEMORY_SLOT), address, 4096, true)
            .is_ok()
        {
            // SAFETY: just mapped writable.
            unsafe { (address as *mut u64).write_volatile(!MAGIC) };
        }
    }
    ring.timer_sleep(handle(TIMER_SLOT), 200_000_000)
        .map_err(|error| fail("sleep", error))?;
    drop(reader);
    println!(context, "[tlb-victim] reader still running after the unmap");
    Ok(3)
}
