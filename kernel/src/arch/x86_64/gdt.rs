//! Per-CPU GDT, TSS and IDT.
//!
//! Selector layout (fixed, `syscall`/`sysret` rely on it later):
//! 0x08 kernel code, 0x10 kernel data, 0x18 unused 32-bit user code,
//! 0x20 user data, 0x28 user code, 0x30 TSS. The double-fault vector runs on
//! its own IST stack so a kernel stack overflow still gets reported.

use alloc::boxed::Box;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lidt, load_tss};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

/// User code selector with RPL 3 (GDT slot 0x28), as `sysret` derives it
/// from STAR and as `entry.S` pushes it.
pub const USER_CODE_SELECTOR: u64 = 0x2B;
/// User data/stack selector with RPL 3 (GDT slot 0x20).
pub const USER_DATA_SELECTOR: u64 = 0x23;

/// IST slot (1-based as the CPU counts) used for double faults.
pub const DOUBLE_FAULT_IST: u8 = 1;
/// IST slot for NMI, machine check and debug exceptions: they can arrive at
/// any instruction, including the first ones of `syscall_entry` while RSP
/// still holds the user stack, so they must never use the current stack.
pub const EMERGENCY_IST: u8 = 2;

/// The IST slot for `vector`, or 0 for the current stack.
fn ist_for(vector: usize) -> u8 {
    match vector {
        8 => DOUBLE_FAULT_IST,
        1 | 2 | 18 => EMERGENCY_IST,
        _ => 0,
    }
}

/// One IDT gate descriptor.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

/// A 256-entry interrupt descriptor table.
#[repr(C, align(16))]
pub struct Idt([Gate; 256]);

/// Everything a CPU loads into GDTR, TR and IDTR.
pub struct CpuTables {
    gdt: GlobalDescriptorTable<8>,
    tss_block: *mut TaskStateSegment,
    idt: Idt,
    kernel_code: SegmentSelector,
    kernel_data: SegmentSelector,
    tss: SegmentSelector,
}

extern "C" {
    static INTERRUPT_STUB_TABLE: [u64; 256];
}

/// Build a CPU's tables; `double_fault_stack_top` backs IST 1 and
/// `emergency_stack_top` IST 2.
pub fn build(double_fault_stack_top: u64, emergency_stack_top: u64) -> CpuTables {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] =
        VirtAddr::new(double_fault_stack_top);
    tss.interrupt_stack_table[usize::from(EMERGENCY_IST - 1)] = VirtAddr::new(emergency_stack_top);
    let tss_block: *mut TaskStateSegment = Box::leak(Box::new(tss));
    // SAFETY: just leaked; lives forever. The GDT descriptor only records its
    // address; RSP0 is later updated through `tss_block` by the owning CPU.
    let tss: &'static TaskStateSegment = unsafe { &*tss_block };

    let mut gdt = GlobalDescriptorTable::<8>::empty();
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    gdt.append(Descriptor::UserSegment(0x00CF_FA00_0000_FFFF));
    gdt.append(Descriptor::user_data_segment());
    gdt.append(Descriptor::user_code_segment());
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));

    let code_selector = kernel_code.0;
    let mut gates = [Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_middle: 0,
        offset_high: 0,
        reserved: 0,
    }; 256];
    for (vector, gate) in gates.iter_mut().enumerate() {
        // SAFETY: the stub table is a read-only array emitted by build.rs.
        let handler = unsafe { INTERRUPT_STUB_TABLE[vector] };
        *gate = Gate {
            offset_low: handler as u16,
            selector: code_selector,
            ist: ist_for(vector),
            attributes: 0x8E,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        };
    }
    CpuTables {
        gdt,
        tss_block,
        idt: Idt(gates),
        kernel_code,
        kernel_data,
        tss: tss_selector,
    }
}

impl CpuTables {
    /// The TSS, for updating RSP0 on thread switches.
    pub fn tss_pointer(&self) -> *mut TaskStateSegment {
        self.tss_block
    }
}

/// Load `tables` on the running CPU.
pub fn load(tables: &'static CpuTables) {
    tables.gdt.load();
    // SAFETY: the selectors index the GDT just loaded; the IDT and TSS live
    // forever inside a leaked per-CPU block.
    unsafe {
        CS::set_reg(tables.kernel_code);
        SS::set_reg(tables.kernel_data);
        DS::set_reg(tables.kernel_data);
        ES::set_reg(tables.kernel_data);
        load_tss(tables.tss);
        lidt(&DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: VirtAddr::new(&tables.idt as *const Idt as u64),
        });
    }
}
