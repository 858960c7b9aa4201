//! `thread-fault`: one thread faults while a sibling spins; the kernel must
//! end the whole process (status -142, page fault) and stop the spinner.
//! Started by `thread-hostile`. Slots: 0 console, 1 thread-spawner,
//! 2 park-space.
//!
//! Prints `[thread-fault] spinner running; faulting`; if the process is
//! still alive 5 s later it prints `[thread-fault] error: survived` and
//! exits 1.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use capos_runtime::sync::Park;
use capos_runtime::thread;
use capos_runtime::{println, Context};
use core::sync::atomic::{AtomicU32, Ordering};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const PARK_SLOT: u16 = 2;

/// In the first page, which is never mapped.
const FAULT_ADDRESS: usize = 0x10;

fn main(context: &mut Context) -> i32 {
    let spawner = context.capability(SPAWNER_SLOT);
    let parker = context.park_space(context.capability(PARK_SLOT));
    let running = Arc::new(AtomicU32::new(0));
    let flag = running.clone();
    let spinner = thread::spawn(
        context,
        spawner,
        move |context, _| {
            flag.store(1, Ordering::Release);
            let _ = context
                .park_space(context.capability(PARK_SLOT))
                .unpark(&flag, 1);
            loop {
                core::hint::spin_loop();
            }
        },
        0,
    );
    if let Err(error) = &spinner {
        println!(context, "[thread-fault] error: spawn {}", error.name());
        return 1;
    }
    while running.load(Ordering::Acquire) == 0 {
        let _ = parker.park(&running, 0, 10_000_000);
    }
    println!(context, "[thread-fault] spinner running; faulting");
    let faulter = thread::spawn(
        context,
        spawner,
        |_, _| {
            let target = core::ptr::without_provenance_mut::<u8>(FAULT_ADDRESS);
            // SAFETY: deliberately invalid — the kernel must end this
            // process on the page fault. No Rust object lives at 0x10 (the
            // image starts at 0x400000), so even a landed write changes none.
            unsafe { core::ptr::write_volatile(target, 1) };
            0
        },
        0,
    );
    if let Err(error) = &faulter {
        println!(context, "[thread-fault] error: spawn {}", error.name());
        return 1;
    }
    let never = AtomicU32::new(0);
    let _ = parker.park(&never, 0, 5_000_000_000);
    println!(context, "[thread-fault] error: survived");
    1
}
