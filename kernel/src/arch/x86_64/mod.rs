//! x86_64 glue: boot and AP assembly, descriptor tables, interrupts, LAPIC,
//! SMP start-up, per-CPU data, and QEMU devices (fw_cfg, isa-debug-exit).

pub mod apic;
pub mod context;
pub mod cpu;
pub mod exit;
pub mod faults;
pub mod fwcfg;
pub mod gdt;
pub mod interrupts;
pub mod percpu;
pub mod smp;
pub mod tlb;

core::arch::global_asm!(include_str!("boot.S"), options(att_syntax));
core::arch::global_asm!(include_str!("ap_trampoline.S"), options(att_syntax));
core::arch::global_asm!(include_str!("entry.S"), options(att_syntax));
// The libc and unwinder symbols `core` needs, shared with user programs.
core::arch::global_asm!(
    include_str!("../../../../userland/abi/asm/bare_metal_runtime.S"),
    options(att_syntax)
);
core::arch::global_asm!(
    include_str!(concat!(env!("OUT_DIR"), "/vectors.S")),
    options(att_syntax)
);
