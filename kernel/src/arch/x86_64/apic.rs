//! xAPIC local APIC: enable, PIT-calibrated periodic timer, IPIs, EOI,
//! and TSC-based delays calibrated at the same time.
//!
//! Invariants: every CPU's LAPIC is reached at the same MMIO virtual address
//! (each CPU sees its own registers there); calibration runs once on the BSP
//! before any AP starts, and APs reuse its figures.

use crate::mem::paging;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

const APIC_BASE_MSR: u32 = 0x1B;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;

const REGISTER_ID: u64 = 0x20;
const REGISTER_TASK_PRIORITY: u64 = 0x80;
const REGISTER_EOI: u64 = 0xB0;
const REGISTER_SPURIOUS: u64 = 0xF0;
const REGISTER_COMMAND_LOW: u64 = 0x300;
const REGISTER_COMMAND_HIGH: u64 = 0x310;
const REGISTER_TIMER: u64 = 0x320;
const REGISTER_TIMER_INITIAL: u64 = 0x380;
const REGISTER_TIMER_CURRENT: u64 = 0x390;
const REGISTER_TIMER_DIVIDE: u64 = 0x3E0;

const DELIVERY_PENDING: u32 = 1 << 12;
const TIMER_PERIODIC: u32 = 1 << 17;
const TIMER_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0x3;

/// Timer interrupts per second on every CPU.
pub const TICK_HZ: u64 = 100;
/// PIT input clock.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window.
const CALIBRATION_MS: u64 = 20;

static REGISTERS: AtomicU64 = AtomicU64::new(0);
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

fn read(register: u64) -> u32 {
    // SAFETY: REGISTERS maps the LAPIC page uncached; `register` is a valid
    // 16-byte-aligned register offset.
    unsafe {
        core::ptr::read_volatile((REGISTERS.load(Ordering::Relaxed) + register) as *const u32)
    }
}

fn write(register: u64, value: u32) {
    // SAFETY: as for `read`; writes go to this CPU's own LAPIC.
    unsafe {
        core::ptr::write_volatile(
            (REGISTERS.load(Ordering::Relaxed) + register) as *mut u32,
            value,
        )
    }
}

/// Map the LAPIC (BSP, once), enable it and calibrate timer and TSC.
pub fn init_bootstrap(physical_address: u64) {
    disable_legacy_pic();
    REGISTERS.store(paging::map_mmio(physical_address, 4096), Ordering::Relaxed);
    enable();
    calibrate();
    start_timer();
}

/// Enable this AP's LAPIC and start its timer with the BSP's calibration.
pub fn init_application_processor() {
    enable();
    start_timer();
}

/// Vector base the 8259 PICs are moved to before masking, so a spurious
/// legacy interrupt can never alias an exception vector.
const LEGACY_PIC_BASE: u8 = 0xE0;

/// Remap both 8259 PICs away from the exception vectors and mask every line;
/// the BIOS leaves IRQ0 (the PIT) unmasked on vector 8 (double fault).
fn disable_legacy_pic() {
    let sequence: [(u16, u8); 10] = [
        (0x20, 0x11),                // master: initialise, expect ICW4
        (0xA0, 0x11),                // slave: initialise, expect ICW4
        (0x21, LEGACY_PIC_BASE),     // master vector base
        (0xA1, LEGACY_PIC_BASE + 8), // slave vector base
        (0x21, 0x04),                // slave on IRQ2
        (0xA1, 0x02),                // slave identity
        (0x21, 0x01),                // 8086 mode
        (0xA1, 0x01),
        (0x21, 0xFF), // mask all
        (0xA1, 0xFF),
    ];
    for (port, value) in sequence {
        // SAFETY: standard 8259 initialisation; nothing else drives the PICs.
        unsafe { Port::<u8>::new(port).write(value) };
    }
}

fn enable() {
    let mut base = Msr::new(APIC_BASE_MSR);
    // SAFETY: setting the global enable bit keeps the base address; the MMIO
    // page is mapped.
    unsafe {
        let value = base.read();
        base.write(value | APIC_GLOBAL_ENABLE);
    }
    write(REGISTER_TASK_PRIORITY, 0);
    write(
        REGISTER_SPURIOUS,
        0x100 | u32::from(super::interrupts::SPURIOUS_VECTOR),
    );
}

/// Measure LAPIC timer (divide 16) and TSC rates against PIT channel 2.
fn calibrate() {
    let mut gate = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    let count = (PIT_HZ * CALIBRATION_MS / 1000) as u16;
    write(REGISTER_TIMER, TIMER_MASKED);
    write(REGISTER_TIMER_DIVIDE, DIVIDE_BY_16);
    // SAFETY: PIT channel 2 and the speaker gate belong to this calibration;
    // nothing else in the kernel uses them.
    let (timer_counts, tsc_counts) = unsafe {
        let value = gate.read();
        gate.write((value & !0x02) | 0x01);
        command.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let value = gate.read() & !0x01;
        gate.write(value);
        write(REGISTER_TIMER_INITIAL, u32::MAX);
        let tsc_start = super::cpu::timestamp();
        gate.write(value | 0x01);
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let timer = u32::MAX - read(REGISTER_TIMER_CURRENT);
        (u64::from(timer), super::cpu::timestamp() - tsc_start)
    };
    write(REGISTER_TIMER_INITIAL, 0);
    TIMER_HZ.store(timer_counts * 1000 / CALIBRATION_MS, Ordering::Relaxed);
    TSC_HZ.store(tsc_counts * 1000 / CALIBRATION_MS, Ordering::Relaxed);
}

fn start_timer() {
    let initial = (TIMER_HZ.load(Ordering::Relaxed) / TICK_HZ).clamp(1, u64::from(u32::MAX)) as u32;
    write(REGISTER_TIMER_DIVIDE, DIVIDE_BY_16);
    write(
        REGISTER_TIMER,
        TIMER_PERIODIC | u32::from(super::interrupts::TIMER_VECTOR),
    );
    write(REGISTER_TIMER_INITIAL, initial);
}

/// LAPIC timer input rate (after the divide-by-16), in Hz.
pub fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

/// TSC rate in Hz.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// This CPU's LAPIC id.
pub fn id() -> u32 {
    read(REGISTER_ID) >> 24
}

/// Acknowledge the interrupt being handled.
pub fn end_of_interrupt() {
    write(REGISTER_EOI, 0);
}

fn send(apic_id: u32, command: u32) {
    write(REGISTER_COMMAND_HIGH, apic_id << 24);
    write(REGISTER_COMMAND_LOW, command);
    while read(REGISTER_COMMAND_LOW) & DELIVERY_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// INIT IPI (assert, level) to `apic_id`.
pub fn send_init(apic_id: u32) {
    send(apic_id, 0x0000_4500);
}

/// STARTUP IPI to `apic_id`: the AP starts in real mode at `page * 4096`.
pub fn send_startup(apic_id: u32, page: u8) {
    send(apic_id, 0x0000_4600 | u32::from(page));
}

/// Fixed-delivery IPI with `vector` to `apic_id`.
pub fn send_fixed(apic_id: u32, vector: u8) {
    send(apic_id, 0x0000_4000 | u32::from(vector));
}

/// Busy-wait `microseconds` on the TSC (after calibration).
pub fn delay_microseconds(microseconds: u64) {
    let start = super::cpu::timestamp();
    let cycles = tsc_hz() / 1_000_000 * microseconds;
    while super::cpu::timestamp().wrapping_sub(start) < cycles {
        core::hint::spin_loop();
    }
}

/// Microseconds since `start` (a TSC value).
pub fn microseconds_since(start: u64) -> u64 {
    let hz = tsc_hz().max(1);
    super::cpu::timestamp().wrapping_sub(start) * 1_000_000 / hz
}
