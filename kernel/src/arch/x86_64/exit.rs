//! Ending a QEMU run through `isa-debug-exit` (port 0xf4): QEMU exits with
//! status `(value << 1) | 1`, which the host runner turns into pass/fail.

use x86_64::instructions::port::Port;

const DEBUG_EXIT_PORT: u16 = 0xF4;
/// Written on success: QEMU exit status 33.
const SUCCESS: u32 = 0x10;
/// Written on failure: QEMU exit status 35.
const FAILURE: u32 = 0x11;

fn exit(value: u32) -> ! {
    // SAFETY: the isa-debug-exit device ends the VM; without it (real
    // hardware) the write is ignored and the CPU halts below.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(value) };
    super::cpu::halt_forever()
}

/// End the run as passed.
pub fn success() -> ! {
    exit(SUCCESS)
}

/// End the run as failed.
pub fn failure() -> ! {
    exit(FAILURE)
}
