//! CPU control: SSE enable, time-stamp counter, halting.

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Enable SSE (the precompiled `core` uses it): CR0.EM=0, CR0.MP=1,
/// CR4.OSFXSR|OSXMMEXCPT. `boot.S` and the AP trampoline already set these;
/// this keeps the invariant explicit for each CPU.
pub fn enable_sse() {
    // SAFETY: only FPU/SSE control bits change; no memory is affected.
    unsafe {
        Cr0::update(|flags| {
            flags.remove(Cr0Flags::EMULATE_COPROCESSOR);
            flags.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|flags| {
            flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        });
    }
}

/// The time-stamp counter.
pub fn timestamp() -> u64 {
    // SAFETY: RDTSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Open the interrupt window once: enable interrupts, halt until one
/// arrives, disable again. The only place kernel code takes interrupts.
pub fn idle_once() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}

/// Stop this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
