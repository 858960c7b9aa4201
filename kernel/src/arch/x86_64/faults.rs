//! CPU exceptions: report what faulted (vector, error code, RIP, CR2, CPU)
//! and end the run with the failure code; plus the deliberate faults the
//! in-QEMU tests trigger to prove that reporting, page permissions and
//! stack guard pages work.

use super::interrupts::InterruptFrame;
use super::{exit, percpu};
use x86_64::registers::control::Cr2;

const NAMES: [&str; 32] = [
    "divide-error",
    "debug",
    "nmi",
    "breakpoint",
    "overflow",
    "bound-range",
    "invalid-opcode",
    "device-not-available",
    "double-fault",
    "coprocessor-overrun",
    "invalid-tss",
    "segment-not-present",
    "stack-segment",
    "general-protection",
    "page-fault",
    "reserved-15",
    "x87-floating-point",
    "alignment-check",
    "machine-check",
    "simd-floating-point",
    "virtualization",
    "control-protection",
    "reserved-22",
    "reserved-23",
    "reserved-24",
    "reserved-25",
    "reserved-26",
    "reserved-27",
    "hypervisor-injection",
    "vmm-communication",
    "security",
    "reserved-31",
];

/// The name of exception `vector` (0..32).
pub fn name(vector: u64) -> &'static str {
    NAMES[(vector & 31) as usize]
}

/// Print the fault line of a kernel-mode exception and fail the run. A
/// kernel fault is never recoverable.
pub fn report_exception(frame: &InterruptFrame) -> ! {
    let cr2 = Cr2::read_raw();
    let cpu = percpu::try_current_index().map_or(-1, |index| index as i64);
    crate::console::emergency_print(format_args!(
        "[fault] cpu={cpu} vector={} name={} error={:#x} rip={:#x} cr2={:#x} rsp={:#x} cs={:#x}\n",
        frame.vector,
        NAMES[(frame.vector & 31) as usize],
        frame.error_code,
        frame.rip,
        cr2,
        frame.rsp,
        frame.cs,
    ));
    exit::failure()
}

/// Read an address no page table maps.
pub fn touch_unmapped() -> ! {
    crate::kprintln!("[test] reading unmapped address 0x10");
    // SAFETY: deliberately faults; the page-fault handler ends the run.
    unsafe {
        core::arch::asm!("mov {tmp}, qword ptr [0x10]", tmp = out(reg) _, options(nostack));
    }
    crate::kprintln!("[test] error: the read of 0x10 did not fault");
    exit::failure()
}

static READ_ONLY_WORD: u64 = 0x5AFE;

/// Write to kernel read-only data.
pub fn write_rodata() -> ! {
    let address = &READ_ONLY_WORD as *const u64 as u64;
    crate::kprintln!("[test] writing read-only kernel data at {address:#x}");
    // SAFETY: deliberately faults (rodata is mapped without WRITABLE).
    unsafe {
        core::arch::asm!("mov qword ptr [{address}], 1", address = in(reg) address, options(nostack));
    }
    crate::kprintln!("[test] error: the write to read-only data did not fault");
    exit::failure()
}

/// Recurse until the guard page below the stack is hit.
pub fn overflow_stack() -> ! {
    crate::kprintln!("[test] overflowing the kernel stack");
    let depth = recurse(u64::MAX);
    crate::kprintln!("[test] error: recursion returned {depth} without a fault");
    exit::failure()
}

#[inline(never)]
fn recurse(remaining: u64) -> u64 {
    let mut buffer = [0u8; 512];
    buffer[0] = remaining as u8;
    core::hint::black_box(&mut buffer);
    if remaining == 0 {
        return u64::from(buffer[0]);
    }
    recurse(remaining - 1) + u64::from(core::hint::black_box(buffer[1]))
}

/// Spin forever with interrupts off, so only the host timeout ends the run.
pub fn hang() -> ! {
    crate::kprintln!("[test] hanging on purpose");
    loop {
        core::hint::spin_loop();
    }
}
