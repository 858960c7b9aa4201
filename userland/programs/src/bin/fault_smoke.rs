//! `fault-smoke`: a user page fault must end the process, not the kernel.
//! Slot 0: console. Prints `[fault-smoke] about to fault`, writes to address
//! 0x10; if it is still running afterwards it prints
//! `[fault-smoke] error: survived` and exits 1.
#![no_std]
#![no_main]

use capos_runtime::{println, Context};

capos_runtime::entry!(main);

/// In the first page, which is never mapped.
const FAULT_ADDRESS: usize = 0x10;

fn main(context: &mut Context) -> i32 {
    println!(context, "[fault-smoke] about to fault");
    let target = core::ptr::without_provenance_mut::<u8>(FAULT_ADDRESS);
    // SAFETY: deliberately invalid — the kernel must kill this process on
    // the page fault. No Rust object lives at 0x10 (the image starts at
    // 0x400000), so even if the write landed, no object would change.
    unsafe { core::ptr::write_volatile(target, 1) };
    println!(context, "[fault-smoke] error: survived");
    1
}
