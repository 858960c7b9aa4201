//! SMP bring-up: BSP set-up, INIT-SIPI-SIPI for each AP, the online report,
//! a ping IPI round to every AP and per-CPU timer tick counts.
//!
//! Invariants: APs start one at a time (they share the trampoline parameter
//! block); an AP marks itself online only after its GDT/TSS/IDT, GS base and
//! LAPIC timer are set up; the BSP prints `[smp] online=<n>` exactly once.

use super::gdt::{self, CpuTables};
use super::interrupts::PING_VECTOR;
use super::percpu::{self, PerCpu};
use super::{apic, cpu, exit};
use crate::acpi::CpuTopology;
use crate::kprintln;
use crate::mem::{paging, physical_to_virtual, stacks};
use capos_kcore::acpi::MAX_CPUS;
use core::sync::atomic::Ordering;

/// Pages in each kernel stack (64 KiB) and each double-fault stack (16 KiB).
const STACK_PAGES: u64 = 16;
const DOUBLE_FAULT_STACK_PAGES: u64 = 4;
/// How long an AP may take to come online (TCG on a loaded host is slow).
const AP_START_TIMEOUT_US: u64 = 5_000_000;
/// Ticks every CPU must count before the timer is considered working.
const MIN_TICKS: u64 = 5;

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_trampoline_parameters: u8;
}

/// Set up the BSP, start every AP in `topology`, and print the online report.
/// What each AP runs once it is online (set by [`start`]).
static AP_MAIN: spin::Once<fn() -> !> = spin::Once::new();

/// Bring every CPU of `topology` online; each AP then runs `ap_main`.
pub fn start(topology: &CpuTopology, ap_main: fn() -> !) {
    AP_MAIN.call_once(|| ap_main);
    apic::init_bootstrap(topology.local_apic_address);
    let bsp_apic = apic::id();
    let bsp = percpu::create(0, bsp_apic, cpu_tables());
    gdt::load(&bsp.tables);
    percpu::install(bsp);
    cpu::init_syscall();
    announce_online(bsp);
    kprintln!(
        "[apic] timer_hz={} tsc_hz={} tick_hz={}",
        apic::timer_hz(),
        apic::tsc_hz(),
        apic::TICK_HZ
    );

    install_trampoline();
    let application_processors = topology.apic_ids.iter().filter(|&&id| id != bsp_apic);
    for (offset, &apic_id) in application_processors.enumerate() {
        let index = offset + 1;
        if index >= MAX_CPUS {
            kprintln!("[smp] warning: more than {MAX_CPUS} CPUs; ignoring apic={apic_id}");
            break;
        }
        start_application_processor(index, apic_id);
    }
    kprintln!("[smp] online={}", online_count());
}

fn cpu_tables() -> CpuTables {
    match stacks::allocate(DOUBLE_FAULT_STACK_PAGES)
        .and_then(|double_fault| Ok((double_fault, stacks::allocate(DOUBLE_FAULT_STACK_PAGES)?)))
    {
        Ok((double_fault, emergency)) => gdt::build(double_fault, emergency),
        Err(error) => {
            kprintln!("[smp] error: no double-fault or emergency stack: {error:?}");
            exit::failure()
        }
    }
}

fn announce_online(cpu: &PerCpu) {
    kprintln!("[smp] cpu={} apic={} online", cpu.index, cpu.apic_id);
    cpu.online.store(true, Ordering::Release);
}

/// CPUs that finished start-up (the BSP included).
pub fn online_count() -> usize {
    (0..percpu::count())
        .filter_map(percpu::get)
        .filter(|cpu| cpu.online.load(Ordering::Acquire))
        .count()
}

/// Copy the start-up code to its fixed page below 1 MiB.
fn install_trampoline() {
    // SAFETY: linker symbols delimit the trampoline image in rodata; the
    // destination page is reserved (first MiB) and in the physical window.
    unsafe {
        let start = &raw const ap_trampoline_start;
        let length = (&raw const ap_trampoline_end as usize) - (start as usize);
        core::ptr::copy_nonoverlapping(
            start,
            physical_to_virtual(paging::AP_TRAMPOLINE_PAGE) as *mut u8,
            length,
        );
    }
}

/// Fill the trampoline parameter block: CR3, stack, entry, argument.
fn set_trampoline_parameters(stack_top: u64, cpu: &'static PerCpu) {
    // SAFETY: the parameter block lies inside the copied trampoline page.
    unsafe {
        let offset =
            (&raw const ap_trampoline_parameters as u64) - (&raw const ap_trampoline_start as u64);
        let block = physical_to_virtual(paging::AP_TRAMPOLINE_PAGE + offset) as *mut u64;
        block.write_volatile(paging::kernel_table());
        block.add(1).write_volatile(stack_top);
        block.add(2).write_volatile(ap_entry as *const () as u64);
        block.add(3).write_volatile(cpu as *const PerCpu as u64);
    }
}

fn start_application_processor(index: usize, apic_id: u32) {
    let stack_top = match stacks::allocate(STACK_PAGES) {
        Ok(top) => top,
        Err(error) => {
            kprintln!("[smp] error: no stack for cpu={index}: {error:?}");
            exit::failure()
        }
    };
    let cpu = percpu::create(index, apic_id, cpu_tables());
    set_trampoline_parameters(stack_top, cpu);
    let page = (paging::AP_TRAMPOLINE_PAGE / 4096) as u8;
    apic::send_init(apic_id);
    apic::delay_microseconds(10_000);
    apic::send_startup(apic_id, page);
    apic::delay_microseconds(200);
    if !cpu.online.load(Ordering::Acquire) {
        apic::send_startup(apic_id, page);
    }
    let started = cpu::timestamp();
    while !cpu.online.load(Ordering::Acquire) {
        if apic::microseconds_since(started) > AP_START_TIMEOUT_US {
            kprintln!("[smp] error: cpu={index} apic={apic_id} did not come online");
            exit::failure();
        }
        core::hint::spin_loop();
    }
}

/// First Rust code on an AP, called by the trampoline on its own stack.
extern "C" fn ap_entry(cpu: &'static PerCpu) -> ! {
    cpu::enable_sse();
    gdt::load(&cpu.tables);
    percpu::install(cpu);
    cpu::init_syscall();
    apic::init_application_processor();
    announce_online(cpu);
    let main = AP_MAIN
        .get()
        .copied()
        .unwrap_or(cpu::halt_forever as fn() -> !);
    main()
}

/// CPUs in their idle loop, polling or halted (bit = CPU index).
static IDLE_CPUS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Idle CPUs past their poll, about to halt or halted: only these need an
/// IPI to notice new work.
static HALTING_CPUS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Wait for work on this CPU, advertising it as idle meanwhile: poll
/// `work_waiting()` for up to `poll_cycles` TSC cycles, then halt until an
/// interrupt unless work arrived.
///
/// Polling first means a thread woken here shortly after the CPU went idle
/// starts without an IPI and without the wake-up latency of a halted CPU
/// (under TCG, a halted vCPU is a sleeping host thread). Interrupts stay
/// off while polling, so a poll delays a due tick by at most `poll_cycles`.
///
/// The order closes the lost-wake-up window: the halting bit is set and
/// fenced before the last re-check, and a waker queues work and fences
/// before it reads the halting bits ([`halting_mask`]). Either this
/// re-check sees the work, or the waker sees the bit and sends an IPI,
/// which ends the `sti; hlt` (the interrupt shadow of `sti` means it cannot
/// slip in between). A waker that finds the CPU still polling sends nothing:
/// the poll sees the work.
pub fn idle(poll_cycles: u64, work_waiting: impl Fn() -> bool) {
    let bit = 1u64 << (percpu::current().index % 64);
    IDLE_CPUS.fetch_or(bit, Ordering::SeqCst);
    let started = cpu::timestamp();
    let mut waiting = work_waiting();
    while !waiting && cpu::timestamp().wrapping_sub(started) < poll_cycles {
        core::hint::spin_loop();
        waiting = work_waiting();
    }
    if !waiting {
        HALTING_CPUS.fetch_or(bit, Ordering::SeqCst);
        core::sync::atomic::fence(Ordering::SeqCst);
        if !work_waiting() {
            cpu::idle_once();
        }
        HALTING_CPUS.fetch_and(!bit, Ordering::SeqCst);
    }
    IDLE_CPUS.fetch_and(!bit, Ordering::SeqCst);
}

/// CPUs in their idle loop, polling or halted (bit = CPU index).
pub fn idle_mask() -> u64 {
    IDLE_CPUS.load(Ordering::SeqCst)
}

/// CPUs past their poll, about to halt or halted: only these need an IPI
/// to notice new work. Call after the work is queued: the fence pairs with
/// the one in [`idle`].
pub fn halting_mask() -> u64 {
    core::sync::atomic::fence(Ordering::SeqCst);
    HALTING_CPUS.load(Ordering::SeqCst)
}

/// Send a reschedule IPI to CPU `index`.
pub fn send_reschedule(index: usize) {
    if let Some(cpu) = percpu::get(index) {
        apic::send_fixed(cpu.apic_id, super::interrupts::RESCHEDULE_VECTOR);
        crate::measure::count(crate::measure::Counter::RescheduleIpiSent);
    }
}

/// Ping every AP, wait for timer ticks everywhere, print the result line, exit.
pub fn report_and_exit() -> ! {
    let cpus = percpu::count();
    let mut acknowledged = 0;
    for cpu in (1..cpus).filter_map(percpu::get) {
        let before = cpu.pings.load(Ordering::Acquire);
        apic::send_fixed(cpu.apic_id, PING_VECTOR);
        let started = cpu::timestamp();
        while cpu.pings.load(Ordering::Acquire) == before
            && apic::microseconds_since(started) < AP_START_TIMEOUT_US
        {
            core::hint::spin_loop();
        }
        if cpu.pings.load(Ordering::Acquire) > before {
            acknowledged += 1;
            kprintln!("[ipi] cpu={} ping=ack", cpu.index);
        } else {
            kprintln!("[ipi] cpu={} ping=timeout", cpu.index);
        }
    }

    let started = cpu::timestamp();
    let min_ticks = || {
        (0..cpus)
            .filter_map(percpu::get)
            .map(|cpu| cpu.ticks.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    while min_ticks() < MIN_TICKS && apic::microseconds_since(started) < AP_START_TIMEOUT_US {
        cpu::idle_once();
    }
    for cpu in (0..cpus).filter_map(percpu::get) {
        kprintln!(
            "[timer] cpu={} ticks={}",
            cpu.index,
            cpu.ticks.load(Ordering::Relaxed)
        );
    }
    let online = online_count();
    let lowest = min_ticks();
    let verified = online == cpus && acknowledged == cpus - 1 && lowest >= MIN_TICKS;
    kprintln!(
        "[smp-boot] cpus={cpus} online={online} ipi_acks={acknowledged} min_ticks={lowest} lapic_hz={} verified={verified}",
        apic::timer_hz()
    );
    if verified {
        exit::success()
    } else {
        exit::failure()
    }
}
