//! What a program's `main` gets: its ring, its capability slots, its console.
//!
//! The manifest's i-th grant is in slot i with generation 0, so
//! [`Context::capability`] needs no kernel round trip.

use crate::console::BufferedWriter;
use crate::ring::Ring;
use capos_abi::CapabilityHandle;
use core::fmt::{self, Write};

/// The running program's view of itself.
pub struct Context {
    ring: Ring,
    slot_count: u16,
    console: Option<CapabilityHandle>,
    program: &'static str,
}

impl Context {
    /// The context `start` hands to `main`. The console defaults to slot 0
    /// when the process has at least one slot.
    pub(crate) fn new(ring: Ring, slot_count: u64, program: &'static str) -> Self {
        let slot_count = slot_count.min(u64::from(u16::MAX)) as u16;
        let mut context = Self {
            ring,
            slot_count,
            console: None,
            program,
        };
        context.set_console((slot_count > 0).then(|| CapabilityHandle::new(0, 0)));
        context
    }

    /// This thread's ring, for the typed operations and raw submissions.
    pub fn ring(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// The handle of start slot `index` (manifest grant `index`). The kernel
    /// checks it: a slot past [`Context::slot_count`] is `InvalidCapability`.
    pub fn capability(&self, index: u16) -> CapabilityHandle {
        CapabilityHandle::new(index, 0)
    }

    /// Number of capability slots the process started with.
    pub fn slot_count(&self) -> u16 {
        self.slot_count
    }

    /// The program's name (its binary's name).
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// The console `print!`/`println!` and the panic handler use.
    pub fn console(&self) -> Option<CapabilityHandle> {
        self.console
    }

    /// Choose the console (`None`: drop output).
    pub fn set_console(&mut self, console: Option<CapabilityHandle>) {
        self.console = console;
        crate::panic::set_console(console);
    }

    /// Write formatted text to the console; what [`crate::print!`] expands
    /// to. Console errors are ignored, like a closed stdout.
    pub fn print(&mut self, arguments: fmt::Arguments<'_>) {
        let Some(console) = self.console else {
            return;
        };
        let ring = &mut self.ring;
        let mut writer = BufferedWriter::new(|bytes: &[u8]| {
            let _ = ring.console_write(console, bytes);
        });
        let _ = writer.write_fmt(arguments);
        writer.flush();
    }
}
