//! The panic handler: print `[panic] <program> <message> at <location>` on
//! the console (if the program has one) and exit with
//! [`crate::PANIC_EXIT_CODE`].
//!
//! It must not allocate or trust the program's state: it builds its own ring
//! client on the panicking thread's ring (that thread's `Ring` is abandoned
//! for good), drops unrelated completions, and gives up printing after a
//! bounded number of entries into the kernel. A panic while panicking on the
//! same thread exits at once. Panics on two threads at once each print on
//! their own ring; the first to finish ends the process.

use capos_abi::CapabilityHandle;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The first thread's ring base, registered by `start` (0: not yet).
static RING_BASE: AtomicUsize = AtomicUsize::new(0);
/// Console handle (`CapabilityHandle::NONE`: none).
static CONSOLE: AtomicU32 = AtomicU32::new(u32::MAX);
/// The program's name.
static PROGRAM: spin::Once<&'static str> = spin::Once::new();

/// Record what the panic handler needs; called by `start`.
pub(crate) fn register(ring_base: usize, program: &'static str) {
    RING_BASE.store(ring_base, Ordering::Release);
    PROGRAM.call_once(|| program);
}

/// Follow [`crate::Context::set_console`].
pub(crate) fn set_console(console: Option<CapabilityHandle>) {
    let value = console.unwrap_or(CapabilityHandle::NONE).0;
    CONSOLE.store(value, Ordering::Release);
}

#[cfg(not(test))]
mod handler {
    use super::{CONSOLE, PROGRAM, RING_BASE};
    use crate::console::BufferedWriter;
    use crate::ring::Ring;
    use capos_abi::{CapabilityHandle, Opcode, Submission};
    use core::fmt::Write;
    use core::sync::atomic::{AtomicBool, Ordering};

    /// Entries into the kernel one console write may take before giving up.
    const MAX_ENTERS: u32 = 64;

    /// Set when the first thread panics; spawned threads use their block.
    static FIRST_THREAD_PANICKING: AtomicBool = AtomicBool::new(false);

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let panicking = match crate::thread::current_block() {
            Some(block) => &block.panicking,
            None => &FIRST_THREAD_PANICKING,
        };
        if panicking.swap(true, Ordering::AcqRel) {
            crate::exit(crate::PANIC_EXIT_CODE);
        }
        let ring_base = crate::thread::current_ring_base(RING_BASE.load(Ordering::Acquire));
        let console = CONSOLE.load(Ordering::Acquire);
        if ring_base != 0 && console != CapabilityHandle::NONE.0 {
            // SAFETY: the ring base is this thread's (registered by `start`
            // on the first thread, stored by the thread itself otherwise),
            // mapped while the thread lives. The thread's own `Ring` is
            // never used again: this handler ends the process.
            let ring = unsafe { Ring::from_base(ring_base) };
            let program = PROGRAM.get().copied().unwrap_or("?");
            let mut writer = BufferedWriter::new(|bytes: &[u8]| {
                let submission = Submission {
                    opcode: Opcode::ConsoleWrite as u16,
                    flags: 0,
                    capability: console,
                    user_data: ring.fresh_user_data(),
                    arguments: [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0],
                };
                let _ = ring.call_discarding(submission, MAX_ENTERS);
            });
            let _ = write!(writer, "[panic] {program} {}", info.message());
            if let Some(location) = info.location() {
                let _ = write!(writer, " at {}:{}", location.file(), location.line());
            }
            let _ = writer.write_str("\n");
            writer.flush();
        }
        crate::exit(crate::PANIC_EXIT_CODE)
    }
}
