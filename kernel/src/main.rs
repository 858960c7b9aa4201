//! capOS kernel entry: boot sequence from multiboot2 hand-off to all CPUs online.
//!
//! Invariants a reader must know:
//! - Kernel code runs with interrupts disabled. Interrupts are taken only in
//!   the idle `sti; hlt` window and from user mode, because the precompiled
//!   `core` uses the red zone (see docs/architecture.md).
//! - Physical memory is reached through the physical window at
//!   [`mem::PHYSICAL_WINDOW`]; nothing relies on the boot identity mapping
//!   after the kernel page tables are installed.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod acpi;
mod arch;
mod boot;
mod console;
mod diagnostics;
mod interrupt;
mod measure;
mod mem;
mod objects;
mod panic;
mod park;
mod process;
mod registrations;
mod ring;
mod sched;
mod syscall;
mod thread;
mod timer;
mod userspace;

pub use arch::x86_64 as platform;

/// What the boot options (`mode=`) ask the kernel to do after SMP bring-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BootMode {
    /// Report online CPUs, IPI pings and timer ticks, then exit with success.
    SmpBoot,
    /// Read an unmapped address: the fault report and a failure exit are expected.
    Fault,
    /// Write to read-only kernel data: proves page permissions.
    WriteRodata,
    /// Recurse until the stack guard page is hit: proves guard pages.
    StackOverflow,
    /// Spin forever with interrupts off: proves the host timeout.
    Hang,
    /// Start user space from the manifest named by `manifest=`.
    User,
}

impl BootMode {
    fn parse(value: Option<&str>) -> Result<Self, &str> {
        match value {
            None | Some("") | Some("smp-boot") => Ok(Self::SmpBoot),
            Some("fault") => Ok(Self::Fault),
            Some("write-rodata") => Ok(Self::WriteRodata),
            Some("stack-overflow") => Ok(Self::StackOverflow),
            Some("hang") => Ok(Self::Hang),
            Some("user") => Ok(Self::User),
            Some(other) => Err(other),
        }
    }
}

/// Higher-half entry from `boot.S`, on the BSP stack, interrupts off.
#[no_mangle]
extern "C" fn kernel_entry(multiboot_magic: u32, multiboot_info: u32) -> ! {
    platform::cpu::enable_sse();
    console::init();
    kprintln!("[boot] capOS kernel {}", env!("CARGO_PKG_VERSION"));
    kprintln!(
        "[boot] fpu={}",
        if platform::cpu::uses_xsave() {
            "xsave"
        } else {
            "fxsave"
        }
    );
    let boot_info = boot::load(multiboot_magic, multiboot_info);
    mem::init(&boot_info);
    userspace::load_archive(&boot_info);
    let cmdline = platform::fwcfg::boot_options();
    let mode = match BootMode::parse(capos_kcore::cmdline::option(cmdline.as_str(), "mode")) {
        Ok(mode) => mode,
        Err(unknown) => {
            kprintln!("[boot] error: unknown mode={unknown} (expected smp-boot, user, fault, write-rodata, stack-overflow, hang)");
            platform::exit::failure()
        }
    };
    kprintln!("[boot] options=\"{}\" mode={:?}", cmdline.as_str(), mode);
    let cpus = acpi::discover_cpus(&boot_info);
    platform::smp::start(&cpus, sched::scheduler_loop);
    timer::init();
    for index in 0..platform::percpu::count() {
        timer::init_cpu(index);
    }
    sched::init_queues(platform::percpu::count());
    measure::init(platform::percpu::count());
    process::init_retired(thread::THREADS_MAX);
    match mode {
        BootMode::SmpBoot => platform::smp::report_and_exit(),
        BootMode::Fault => platform::faults::touch_unmapped(),
        BootMode::WriteRodata => platform::faults::write_rodata(),
        BootMode::StackOverflow => platform::faults::overflow_stack(),
        BootMode::Hang => platform::faults::hang(),
        BootMode::User => {
            let manifest = capos_kcore::cmdline::option(cmdline.as_str(), "manifest")
                .unwrap_or("system-hello");
            let delay = capos_kcore::cmdline::option(cmdline.as_str(), "bsp_delay_ms")
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0);
            userspace::set_user_options(cmdline.as_str());
            userspace::start(manifest, delay);
            sched::scheduler_loop()
        }
    }
}
