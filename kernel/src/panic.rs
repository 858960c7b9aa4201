//! Kernel panic: report where and on which CPU, then end QEMU with the failure code.

use crate::platform;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let cpu = platform::percpu::try_current_index();
    crate::console::emergency_print(format_args!(
        "[panic] cpu={} {}\n",
        cpu.map_or(-1, |index| index as i64),
        info
    ));
    platform::exit::failure()
}
