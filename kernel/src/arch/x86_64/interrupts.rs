//! Interrupt dispatch: exceptions, LAPIC timer ticks, ping IPIs.
//!
//! `entry.S` saves the registers into an [`InterruptFrame`] and calls
//! [`interrupt_dispatch`]. Handlers run with interrupts disabled.

use super::{apic, faults, percpu};
use crate::kprintln;
use core::sync::atomic::Ordering;

/// LAPIC timer vector.
pub const TIMER_VECTOR: u8 = 32;
/// Cross-CPU ping vector (IPI liveness check).
pub const PING_VECTOR: u8 = 33;
/// Wakes an idle CPU because a thread became runnable.
pub const RESCHEDULE_VECTOR: u8 = 34;
/// Asks a CPU to flush its TLB (see `tlb`).
pub const TLB_VECTOR: u8 = 35;
/// LAPIC spurious-interrupt vector (no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// Registers as `entry.S` leaves them on the stack.
#[repr(C)]
#[derive(Debug)]
pub struct InterruptFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl InterruptFrame {
    /// The frame that enters user mode at `entry` with interrupts on, the
    /// stack at `stack_top` and `arguments` in rdi/rsi/rdx; all else zero.
    pub fn user_entry(entry: u64, stack_top: u64, arguments: [u64; 3]) -> Self {
        const INTERRUPTS_ENABLED: u64 = 1 << 9;
        const RESERVED_ONE: u64 = 1 << 1;
        Self {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: arguments[0],
            rsi: arguments[1],
            rdx: arguments[2],
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector: 0,
            error_code: 0,
            rip: entry,
            cs: super::gdt::USER_CODE_SELECTOR,
            rflags: INTERRUPTS_ENABLED | RESERVED_ONE,
            rsp: stack_top,
            ss: super::gdt::USER_DATA_SELECTOR,
        }
    }
}

impl InterruptFrame {
    /// Make the RFLAGS this frame returns to user mode with safe whatever
    /// user code did: interrupts on, IOPL 0 (else user code could use I/O
    /// ports), NT, VM and RF clear. User code cannot set IOPL itself, but
    /// neither `iretq` nor `sysretq` at ring 0 would stop it here.
    pub fn sanitize_user_flags(&mut self) {
        const INTERRUPTS_ENABLED: u64 = 1 << 9;
        const RESERVED_ONE: u64 = 1 << 1;
        const CLEARED: u64 = (3 << 12) | (1 << 14) | (1 << 16) | (1 << 17);
        self.rflags = (self.rflags & !CLEARED) | INTERRUPTS_ENABLED | RESERVED_ONE;
    }
}

/// What an interrupt means for the kernel once the architecture layer has
/// done its part (EOI, counters, TLB flush, fatal kernel faults).
#[must_use]
pub enum InterruptEvent {
    /// A LAPIC timer tick (from user mode when `from_user`).
    Tick { from_user: bool },
    /// A reschedule IPI.
    Reschedule { from_user: bool },
    /// A CPU exception in user mode, by name.
    UserFault { name: &'static str },
    /// Nothing more to do.
    Handled,
}

/// The architecture's half of every interrupt, called by the kernel's
/// `interrupt_dispatch` (the entry stub's target). Kernel-mode exceptions
/// never return: they are reported and end the run.
pub fn classify(frame: &mut InterruptFrame) -> InterruptEvent {
    let from_user = frame.cs & 3 == 3;
    if from_user {
        frame.sanitize_user_flags();
    }
    match frame.vector {
        0..=31 if from_user => InterruptEvent::UserFault {
            name: faults::name(frame.vector),
        },
        0..=31 => faults::report_exception(frame),
        vector if vector == u64::from(TIMER_VECTOR) => {
            percpu::current().ticks.fetch_add(1, Ordering::Relaxed);
            apic::end_of_interrupt();
            InterruptEvent::Tick { from_user }
        }
        vector if vector == u64::from(RESCHEDULE_VECTOR) => {
            apic::end_of_interrupt();
            InterruptEvent::Reschedule { from_user }
        }
        vector if vector == u64::from(TLB_VECTOR) => {
            crate::measure::count(crate::measure::Counter::TlbIpiReceived);
            super::tlb::serve_pending();
            apic::end_of_interrupt();
            InterruptEvent::Handled
        }
        vector if vector == u64::from(PING_VECTOR) => {
            percpu::current().pings.fetch_add(1, Ordering::AcqRel);
            apic::end_of_interrupt();
            InterruptEvent::Handled
        }
        vector if vector == u64::from(SPURIOUS_VECTOR) => InterruptEvent::Handled,
        vector => {
            kprintln!(
                "[irq] cpu={} unexpected vector={vector}",
                percpu::current().index
            );
            apic::end_of_interrupt();
            InterruptEvent::Handled
        }
    }
}
