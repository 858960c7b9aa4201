//! CPU control: SSE enable, time-stamp counter, halting.

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Read by `entry.S`: nonzero when user FPU state is saved with XSAVE.
#[no_mangle]
static use_xsave: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

/// Bytes of the per-thread FPU area the entry code may write.
pub const FPU_AREA_BYTES: usize = 1024;

/// XCR0 components the kernel enables when present: x87, SSE, AVX.
const XSAVE_COMPONENTS: u64 = 0b111;

/// Enable SSE (the precompiled `core` uses it): CR0.EM=0, CR0.MP=1,
/// CR4.OSFXSR|OSXMMEXCPT; and, when the CPU has XSAVE, CR4.OSXSAVE with
/// x87, SSE and AVX (those it has) in XCR0, so user code may use AVX and
/// the entry code saves that state per thread. `boot.S` and the AP
/// trampoline already set the SSE bits; this keeps the invariant explicit
/// for each CPU. Every CPU of a machine reports the same features.
pub fn enable_sse() {
    enable_legacy_sse();
    let features = core::arch::x86_64::__cpuid(1);
    let has_xsave = features.ecx & (1 << 26) != 0;
    if !has_xsave {
        return;
    }
    // Leaf 0xD exists when XSAVE is reported.
    let supported = core::arch::x86_64::__cpuid_count(0xD, 0);
    let components =
        (u64::from(supported.eax) | (u64::from(supported.edx) << 32)) & XSAVE_COMPONENTS;
    // SAFETY: OSXSAVE only allows XGETBV/XSETBV/XSAVE; XCR0 gets x87
    // (always required) plus supported SSE/AVX bits, a valid combination.
    unsafe {
        Cr4::update(|flags| flags.insert(Cr4Flags::OSXSAVE));
        core::arch::asm!(
            "xsetbv",
            in("ecx") 0u32,
            in("eax") components as u32,
            in("edx") (components >> 32) as u32,
            options(nostack)
        );
    }
    // With XCR0 set, EBX is the area size the enabled components need.
    let needed = core::arch::x86_64::__cpuid_count(0xD, 0).ebx as usize;
    if needed <= FPU_AREA_BYTES {
        use_xsave.store(1, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Where the x87 image of a thread switched out in a system call lies in
/// its FPU area when the CPU has no XSAVE (`entry.S`, `X87_IMAGE_OFFSET`):
/// past the 512-byte FXSAVE image, 108 bytes.
const X87_IMAGE_END: usize = 512 + 108;
const _: () = assert!(X87_IMAGE_END <= FPU_AREA_BYTES);

extern "C" {
    fn fpu_save_in_system_call(area: *mut u8);
    fn fpu_restore_in_system_call(area: *const u8);
}

/// Before the running thread switches away inside a system call: save the
/// FPU state the system call preserves (x87/MMX, upper AVX; MXCSR is in
/// the area since the entry). The SSE registers are not saved: the return
/// to user mode zeroes them.
///
/// # Safety
/// `area` is the running thread's FPU area ([`FPU_AREA_BYTES`], 64-byte
/// aligned), and the thread is inside a system call (or an interrupt from
/// user mode, whose entry saved the whole state already).
pub unsafe fn save_fpu_in_system_call(area: *mut u8) {
    // SAFETY: as the caller promises; the routine writes only `area` and
    // clobbers only registers the C calling convention lets it clobber
    // (the x87 unit is reset by FNSAVE, which no kernel code uses).
    unsafe { fpu_save_in_system_call(area) }
}

/// After a thread switched out by [`save_fpu_in_system_call`] is back on a
/// CPU inside the kernel: load that state.
///
/// # Safety
/// `area` is that thread's FPU area, saved by [`save_fpu_in_system_call`]
/// on a CPU of this model.
pub unsafe fn restore_fpu_in_system_call(area: *const u8) {
    // SAFETY: as the caller promises; reads only `area`.
    unsafe { fpu_restore_in_system_call(area) }
}

/// Whether user FPU state is saved with XSAVE (diagnostics).
pub fn uses_xsave() -> bool {
    use_xsave.load(core::sync::atomic::Ordering::Relaxed) != 0
}

fn enable_legacy_sse() {
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

extern "C" {
    fn syscall_entry();
}

/// RFLAGS bits `syscall` clears on entry: every flag user code can set
/// that could change how kernel code runs: CF, PF, AF, ZF, SF, TF, IF, DF,
/// OF, IOPL, NT, RF, AC, ID. With NT left set, the kernel's next `iretq`
/// would attempt a task return and fault in ring 0.
pub const SYSCALL_FLAG_MASK: u64 = 0x0025_7FD5;

/// Program this CPU's `syscall` MSRs: entry point, selectors (kernel 0x08,
/// user base 0x18 so user CS = 0x2B and SS = 0x23) and the RFLAGS mask
/// ([`SYSCALL_FLAG_MASK`]). EFER.SCE is set by the boot code.
pub fn init_syscall() {
    use x86_64::registers::model_specific::Msr;
    const STAR: u32 = 0xC000_0081;
    const LSTAR: u32 = 0xC000_0082;
    const SFMASK: u32 = 0xC000_0084;
    // SAFETY: standard syscall configuration; the entry stub exists and the
    // GDT layout matches the selectors.
    unsafe {
        // SYSRET adds 16 (CS) and 8 (SS) to the user base selector.
        let user_base = super::gdt::USER_DATA_SELECTOR - 8 - 3;
        Msr::new(STAR).write((user_base << 48) | (0x08u64 << 32));
        Msr::new(LSTAR).write(syscall_entry as *const () as u64);
        Msr::new(SFMASK).write(SYSCALL_FLAG_MASK);
    }
}

/// Load the user FS base (thread pointer). `base` must be canonical; the
/// kernel checks user-supplied values when the thread is created.
///
/// Written only when the CPU holds another value: most switches are between
/// threads with the same base (every main thread's is 0), and under TCG a
/// WRMSR ends the translated block and goes back to QEMU's main loop, where
/// RDMSR does not. The comparison is with the register itself, not with a
/// remembered value, because user code can change the base without the
/// kernel (loading a selector into FS).
pub fn set_fs_base(base: u64) {
    use x86_64::registers::model_specific::Msr;
    const FS_BASE: u32 = 0xC000_0100;
    let mut register = Msr::new(FS_BASE);
    // SAFETY: reading FS_BASE has no side effects; writing it is safe as FS
    // is not used by the kernel and a canonical base cannot fault.
    unsafe {
        if register.read() != base {
            register.write(base);
        }
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
