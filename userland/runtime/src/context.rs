//! What a program's `main` (and each thread body) gets: its thread's ring,
//! the process's capability slots, its console.
//!
//! The manifest's i-th grant is in slot i with generation 0, so
//! [`Context::capability`] needs no kernel round trip. Each thread has its
//! own `Context` over its own ring; the capability table is the process's.

use crate::console::BufferedWriter;
use crate::ring::Ring;
use crate::sync::ParkSpace;
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

    /// The context of a thread made by [`crate::thread::spawn`]: its own
    /// ring, the spawner's slot count, console and name. Leaves the panic
    /// handler's (process-wide) console alone.
    #[cfg_attr(test, allow(dead_code))]
    pub(crate) fn for_thread(
        ring: Ring,
        slot_count: u16,
        console: Option<CapabilityHandle>,
        program: &'static str,
    ) -> Self {
        Self {
            ring,
            slot_count,
            console,
            program,
        }
    }

    /// This thread's ring, for the typed operations and raw submissions.
    pub fn ring(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// This thread's ring, shared: every ring operation takes `&self`, so
    /// it may be used while a mutex guard or a [`ParkSpace`] holds it too.
    pub fn shared_ring(&self) -> &Ring {
        &self.ring
    }

    /// The ParkSpace capability `handle` bound to this thread's ring, for
    /// [`crate::sync::Mutex`] and [`crate::sync::Condvar`].
    pub fn park_space(&self, handle: CapabilityHandle) -> ParkSpace<'_> {
        ParkSpace::new(&self.ring, handle)
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

    /// Choose the console (`None`: drop output). The panic handler's console
    /// is the process's: it follows the latest call on any thread.
    pub fn set_console(&mut self, console: Option<CapabilityHandle>) {
        self.console = console;
        crate::panic::set_console(console);
    }

    /// Write formatted text to the console; what [`crate::print!`] expands
    /// to. Console errors are ignored, like a closed stdout.
    pub fn print(&self, arguments: fmt::Arguments<'_>) {
        let Some(console) = self.console else {
            return;
        };
        let ring = &self.ring;
        let mut writer = BufferedWriter::new(|bytes: &[u8]| {
            let _ = ring.console_write(console, bytes);
        });
        let _ = writer.write_fmt(arguments);
        writer.flush();
    }
}
