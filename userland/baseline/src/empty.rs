//! `capos-empty`: the smallest static Linux program, exiting 0 at once;
//! what the user-bench spawn-to-exit baseline starts (the counterpart of
//! capOS's `empty`).
//!
//! Invariants: no libc, no runtime, no allocation: `_start` makes the
//! `exit_group(0)` system call and nothing else runs.
#![no_std]
#![no_main]

/// Process entry: exit at once with status 0.
#[no_mangle]
pub extern "C" fn _start() -> ! {
    // SAFETY: exit_group (231) takes one integer argument and never
    // returns; no memory is read or written.
    unsafe {
        core::arch::asm!("syscall", in("rax") 231, in("rdi") 0, options(noreturn, nostack));
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
