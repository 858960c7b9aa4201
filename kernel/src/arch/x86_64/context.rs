//! A thread's kernel execution context on x86_64: the stack switch
//! (`switch_kernel_stack` in `entry.S`), the stack a new thread is first
//! switched to, its FPU/SSE save area, and loading an address space (CR3).
//! The scheduler (`sched.rs`) uses these and knows no register layout.
//!
//! Invariants:
//! - A saved context is a kernel stack pointer below which nothing is live
//!   and above which lie six callee-saved registers, RFLAGS and the return
//!   address, in `switch_kernel_stack`'s order; a context is resumed at
//!   most once per save.
//! - A new thread's stack, from its top: the user frame `interrupt_return`
//!   pops, the return address `thread_first_entry`, zeroed callee-saved
//!   registers and the kernel RFLAGS (reserved bit only: interrupts off,
//!   DF/AC/NT clear), so its first switch lands in `thread_first_entry`.
//! - Every address space maps the kernel half identically, so loading one
//!   never unmaps the code and stack in use.

use super::cpu::FPU_AREA_BYTES;
use super::interrupts::InterruptFrame;
use crate::measure::{self, Counter};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

extern "C" {
    fn switch_kernel_stack(save: *mut u64, load: u64);
    fn thread_first_entry();
}

/// RFLAGS kernel code runs with after a switch: only the reserved bit.
const KERNEL_RFLAGS: u64 = 1 << 1;

/// Callee-saved registers `switch_kernel_stack` pushes (RBP, RBX,
/// R12-R15), plus RFLAGS.
const SAVED_WORDS: u64 = 7;

/// A thread's FPU/SSE save area: FXSAVE or XSAVE image (64-byte aligned, as
/// XSAVE requires), plus the x87 image of a switch inside a system call.
#[repr(C, align(64))]
pub struct FpuArea([u8; FPU_AREA_BYTES]);

impl FpuArea {
    /// The state a new thread starts with: x87 control word and MXCSR at
    /// their defaults in the legacy region; the XSAVE header (bytes
    /// 512..576) zero, so every component starts in its initial state.
    pub fn initial() -> Self {
        let mut area = Self([0; FPU_AREA_BYTES]);
        area.0[0..2].copy_from_slice(&0x037Fu16.to_le_bytes()); // x87 control word
        area.0[24..28].copy_from_slice(&0x1F80u32.to_le_bytes()); // MXCSR
        area
    }
}

/// Lay out a new thread's kernel stack below `stack_top` so that switching
/// to the returned context enters user mode with `frame` (after the
/// kill check in `thread_first_entry`).
///
/// # Safety
/// `stack_top` is the 16-byte aligned top of a mapped kernel stack that
/// belongs to the new thread and on which nothing runs.
pub unsafe fn prepare_first_entry(stack_top: u64, frame: InterruptFrame) -> u64 {
    let frame_bottom = stack_top - core::mem::size_of::<InterruptFrame>() as u64;
    let context = frame_bottom - 8 - SAVED_WORDS * 8;
    // SAFETY: as the caller promises, the words written lie in the new
    // thread's own stack, below its top, and nothing else uses them.
    unsafe {
        (frame_bottom as *mut InterruptFrame).write(frame);
        ((frame_bottom - 8) as *mut u64).write(thread_first_entry as *const () as u64);
        core::ptr::write_bytes(context as *mut u64, 0, SAVED_WORDS as usize);
        ((context + (SAVED_WORDS - 1) * 8) as *mut u64).write(KERNEL_RFLAGS);
    }
    context
}

/// Save the running kernel context into `*save` and resume `load`;
/// returns when something switches back to the saved context.
///
/// # Safety
/// `save` is valid for a write and stays valid until the saved context is
/// resumed; `load` is a context saved by this function (or prepared by
/// [`prepare_first_entry`]) that is not running and is resumed only here.
pub unsafe fn switch(save: *mut u64, load: u64) {
    // SAFETY: as the caller promises; the routine saves and restores every
    // callee-saved register and RFLAGS.
    unsafe { switch_kernel_stack(save, load) }
}

/// Load the address space whose top-level table is at physical `root`.
pub fn load_address_space(root: u64) {
    let frame = PhysFrame::containing_address(PhysAddr::new(root));
    measure::count(Counter::Cr3Writes);
    // SAFETY: every address space maps the kernel half identically, so the
    // code and stack in use stay mapped across the switch.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
}
