//! capOS user-space runtime: process entry, heap, capability ring client,
//! console printing, threads, mutex and condition variable, `exit` and the
//! panic handler.
//!
//! A program is a `#![no_std] #![no_main]` binary that names its main
//! function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! capos_runtime::entry!(main);
//! fn main(context: &mut capos_runtime::Context) -> i32 {
//!     capos_runtime::println!(context, "[hello] hello from capOS");
//!     0
//! }
//! ```
//!
//! Invariants a reader must know:
//! - One ring and one [`Context`] per thread: `main` gets the first
//!   thread's, a body run by [`thread::spawn`] its own thread's. A `Ring`
//!   never leaves its thread; the heap is shared under a spin lock.
//! - All `unsafe` lives here, each block with a `// SAFETY:` comment; the
//!   ring's index words are touched only through `AtomicU32` references.
//! - Under `cfg(test)` the crate builds against `std` for host unit tests:
//!   entry, heap, panic handler and the libc symbols are left out and the
//!   `cap_enter` syscall is replaced by an in-process fake kernel.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;

pub mod cases;
mod console;
mod context;
pub mod diagnostics;
mod heap;
mod operations;
pub mod options;
mod panic;
pub mod random;
pub mod ring;
pub mod sync;
pub mod syscall;
pub mod thread;

pub use capos_abi as abi;
pub use capos_abi::{CapabilityHandle, Completion, Error, Opcode, Submission};
pub use context::Context;
pub use operations::{BootInfo, Parked, ReapError, Received, SpawnedThread, ThreadEnd, ThreadInfo};
pub use ring::{Ring, RingFull};
pub use syscall::{exit, thread_exit};

#[cfg(not(test))]
core::arch::global_asm!(include_str!("entry.S"), options(att_syntax));
#[cfg(not(test))]
core::arch::global_asm!(include_str!("thread.S"), options(att_syntax));
#[cfg(not(test))]
// The libc and unwinder symbols `core` needs, shared with the kernel.
core::arch::global_asm!(
    include_str!("../../abi/asm/bare_metal_runtime.S"),
    options(att_syntax)
);

/// Exit code of a process whose program panicked.
pub const PANIC_EXIT_CODE: i32 = 101;

/// Name the program's main function, `fn main(&mut Context) -> i32`.
///
/// Generates `runtime_start`, which `_start` calls with the kernel's start
/// arguments; the process exits with the value `main` returns.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called once by `_start` with the kernel's start arguments.
        ///
        /// # Safety
        /// Only `_start` may call this, with `ring` and `slots` exactly as the
        /// kernel passed them in `rdi` and `rsi`.
        #[no_mangle]
        pub unsafe extern "C" fn runtime_start(ring: u64, slots: u64) -> ! {
            let main: fn(&mut $crate::Context) -> i32 = $main;
            // SAFETY: forwarded from this function's contract: the arguments
            // are the kernel's, and `_start` calls this exactly once.
            unsafe { $crate::start(ring, slots, env!("CARGO_BIN_NAME"), main) }
        }
    };
}

/// Set up the runtime and run `main`; the body of `runtime_start`.
///
/// # Safety
/// Call exactly once per process, with `ring` the base of this thread's ring
/// mapping (the `rdi` the kernel passed to `_start`) and `slots` the number
/// of capability slots (`rsi`).
#[doc(hidden)]
pub unsafe fn start(
    ring: u64,
    slots: u64,
    program: &'static str,
    main: fn(&mut Context) -> i32,
) -> ! {
    heap::init();
    panic::register(ring as usize, program);
    // SAFETY: the caller passes the kernel's ring base, mapped for the
    // process lifetime; `start` runs once, so this is the only `Ring`.
    let ring = unsafe { Ring::from_base(ring as usize) };
    let mut context = Context::new(ring, slots, program);
    if let Err(problem) = context.ring().check_header() {
        panic!("{problem}");
    }
    let code = main(&mut context);
    exit(code)
}
