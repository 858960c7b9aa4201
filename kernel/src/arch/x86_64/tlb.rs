//! TLB shootdown: flush the translations other CPUs may cache for an
//! address space before the frames behind them are reused.
//!
//! Protocol: for each target CPU the requester takes a ticket
//! (`tlb_requested += 1`), sends the `TLB_VECTOR` IPI, and waits until the
//! target's `tlb_completed` reaches the ticket. A target flushes its whole
//! non-global TLB (a CR3 reload) and then publishes the newest ticket it
//! saw before flushing, so concurrent requests coalesce into one flush.
//!
//! Invariants: the requester holds no lock while it waits, and serves
//! requests aimed at itself while spinning, so two CPUs shooting at each
//! other with interrupts off cannot deadlock. A target takes the IPI when
//! it next enables interrupts (user mode or idle); kernel paths are short.

use super::{apic, interrupts::TLB_VECTOR, percpu};
use crate::measure::{self, Counter};
use core::sync::atomic::Ordering;
use x86_64::registers::control::Cr3;

/// Flush this CPU's non-global translations.
pub fn flush_local() {
    measure::count(Counter::Cr3Writes);
    let (frame, flags) = Cr3::read();
    // SAFETY: reloading the current root changes no mapping; it only
    // drops cached translations.
    unsafe { Cr3::write(frame, flags) };
}

/// Serve every shootdown request aimed at this CPU (IPI handler and
/// waiting requesters).
pub fn serve_pending() {
    let cpu = percpu::current();
    let wanted = cpu.tlb_requested.load(Ordering::SeqCst);
    if cpu.tlb_completed.load(Ordering::SeqCst) < wanted {
        flush_local();
        cpu.tlb_completed.fetch_max(wanted, Ordering::SeqCst);
    }
}

/// Flush the CPUs in `mask` (bit = CPU index), this one included if set,
/// and return once every one of them has flushed.
pub fn shootdown(mask: u64) {
    measure::count(Counter::Shootdowns);
    let me = percpu::current().index;
    let mut tickets = [0u64; 64];
    for (index, ticket) in tickets.iter_mut().enumerate().take(percpu::count()) {
        if mask & (1 << index) == 0 || index == me {
            continue;
        }
        if let Some(cpu) = percpu::get(index) {
            *ticket = cpu.tlb_requested.fetch_add(1, Ordering::SeqCst) + 1;
            apic::send_fixed(cpu.apic_id, TLB_VECTOR);
            measure::count(Counter::TlbIpiSent);
        }
    }
    if mask & (1 << (me % 64)) != 0 {
        flush_local();
    }
    for (index, ticket) in tickets.iter().enumerate() {
        if *ticket == 0 {
            continue;
        }
        let Some(cpu) = percpu::get(index) else {
            continue;
        };
        while cpu.tlb_completed.load(Ordering::SeqCst) < *ticket {
            serve_pending();
            core::hint::spin_loop();
        }
    }
}
