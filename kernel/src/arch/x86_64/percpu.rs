//! Per-CPU data reached through the GS base: `gs:[0]` holds a pointer to the
//! running CPU's own [`PerCpu`].
//!
//! Invariants: a `PerCpu` is created once per CPU, leaked (lives forever) and
//! installed only on its own CPU; fields other CPUs read are atomics.

use super::gdt::CpuTables;
use alloc::boxed::Box;
use capos_kcore::acpi::MAX_CPUS;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use x86_64::registers::model_specific::GsBase;
use x86_64::VirtAddr;

/// One CPU's private state.
#[repr(C)]
pub struct PerCpu {
    /// Must stay the first field: `gs:[0]`.
    self_pointer: *const PerCpu,
    /// `gs:[8]`: kernel stack top of the running thread (syscall entry).
    kernel_stack_top: AtomicU64,
    /// `gs:[16]`: user RSP scratch during syscall entry.
    user_stack_scratch: AtomicU64,
    /// `gs:[24]`: FPU/SSE save area of the running thread.
    fpu_area: AtomicU64,
    /// Saved kernel RSP of this CPU's scheduler loop while a thread runs.
    pub scheduler_context: core::cell::UnsafeCell<u64>,
    /// The TSS, whose RSP0 follows the running thread.
    tss: *mut x86_64::structures::tss::TaskStateSegment,
    /// Dense CPU number: 0 is the BSP, APs follow in MADT order.
    pub index: usize,
    /// Local APIC id.
    pub apic_id: u32,
    /// LAPIC timer interrupts taken on this CPU.
    pub ticks: AtomicU64,
    /// Ping IPIs received on this CPU.
    pub pings: AtomicU64,
    /// Set by the CPU itself once it is fully initialised.
    pub online: AtomicBool,
    /// TLB shootdown tickets issued to this CPU (see `tlb`).
    pub tlb_requested: AtomicU64,
    /// The newest ticket this CPU has flushed for.
    pub tlb_completed: AtomicU64,
    /// GDT, TSS and IDT of this CPU.
    pub tables: CpuTables,
}

// SAFETY: `self_pointer` only ever points at the leaked value itself; all
// fields that other CPUs touch are atomics; `scheduler_context` and the TSS
// are touched only by the owning CPU with interrupts off.
unsafe impl Sync for PerCpu {}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Create and register the per-CPU block for CPU `index`. Never freed.
pub fn create(index: usize, apic_id: u32, tables: CpuTables) -> &'static PerCpu {
    let tss = tables.tss_pointer();
    let cpu: &'static mut PerCpu = Box::leak(Box::new(PerCpu {
        self_pointer: core::ptr::null(),
        kernel_stack_top: AtomicU64::new(0),
        user_stack_scratch: AtomicU64::new(0),
        fpu_area: AtomicU64::new(0),
        scheduler_context: core::cell::UnsafeCell::new(0),
        tss,
        index,
        apic_id,
        ticks: AtomicU64::new(0),
        pings: AtomicU64::new(0),
        online: AtomicBool::new(false),
        tlb_requested: AtomicU64::new(0),
        tlb_completed: AtomicU64::new(0),
        tables,
    }));
    cpu.self_pointer = cpu as *const PerCpu;
    CPUS[index].store(cpu, Ordering::Release);
    COUNT.fetch_max(index + 1, Ordering::AcqRel);
    cpu
}

impl PerCpu {
    /// Make `stack_top` the kernel stack for entries from user mode
    /// (TSS RSP0 and the syscall path) and `fpu_area` the FPU save area.
    pub fn set_thread_context(&self, stack_top: u64, fpu_area: u64) {
        self.kernel_stack_top.store(stack_top, Ordering::Relaxed);
        self.fpu_area.store(fpu_area, Ordering::Relaxed);
        // SAFETY: the TSS belongs to this CPU and is only written by it,
        // with interrupts off; the CPU reads RSP0 only on a privilege change.
        unsafe { (*self.tss).privilege_stack_table[0] = VirtAddr::new(stack_top) };
    }
}

/// Point this CPU's GS base at `cpu`.
pub fn install(cpu: &'static PerCpu) {
    GsBase::write(VirtAddr::new(cpu as *const PerCpu as u64));
}

/// The running CPU's block. Only valid after [`install`] on this CPU.
pub fn current() -> &'static PerCpu {
    let pointer: *const PerCpu;
    // SAFETY: after `install`, gs:[0] holds the address of a leaked PerCpu.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) pointer, options(nostack, readonly, preserves_flags));
        &*pointer
    }
}

/// The running CPU's index, or None before per-CPU data is installed.
pub fn try_current_index() -> Option<usize> {
    if GsBase::read().as_u64() == 0 {
        None
    } else {
        Some(current().index)
    }
}

/// CPU `index`'s block, if created.
pub fn get(index: usize) -> Option<&'static PerCpu> {
    let pointer = CPUS.get(index)?.load(Ordering::Acquire);
    // SAFETY: non-null entries point at leaked, never-freed PerCpu blocks.
    unsafe { pointer.as_ref() }
}

/// Number of CPUs with a per-CPU block.
pub fn count() -> usize {
    COUNT.load(Ordering::Acquire)
}
