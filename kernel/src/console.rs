//! Serial console on COM1, shared by every CPU under one lock.
//!
//! Lines are written whole under the lock so output from several CPUs never
//! interleaves mid-line. The lock is a ticket lock: CPUs get it in the order
//! they asked, so a process flooding the console (taking the lock again a
//! few hundred cycles after each line) delays another CPU's line by at most
//! one piece per CPU ahead of it, where a test-and-set lock let the flooder
//! win again and again (a probe line once waited 539 ms behind a flood). Fault and panic paths use [`emergency_print`], which
//! takes the lock if it can and writes anyway if the holder is stuck.

use core::fmt::{self, Write};
use spin::mutex::TicketMutex;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;

struct Serial {
    data: Port<u8>,
    line_status: Port<u8>,
}

impl Serial {
    const fn new(base: u16) -> Self {
        Self {
            data: Port::new(base),
            line_status: Port::new(base + 5),
        }
    }

    fn write_byte(&mut self, byte: u8) {
        // SAFETY: COM1 ports belong to the console alone; reading the line
        // status register and writing the data register have no other effect.
        unsafe {
            while self.line_status.read() & 0x20 == 0 {
                core::hint::spin_loop();
            }
            self.data.write(byte);
        }
    }
}

impl Write for Serial {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut written = 0;
        for byte in text.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
                written += 1;
            }
            self.write_byte(byte);
            written += 1;
        }
        crate::measure::count_many(crate::measure::Counter::SerialBytes, written);
        Ok(())
    }
}

static SERIAL: TicketMutex<Serial> = TicketMutex::new(Serial::new(COM1));

/// Program COM1 for 115200 8N1, FIFO on, interrupts off.
pub fn init() {
    let settings: [(u16, u8); 7] = [
        (1, 0x00), // interrupts off
        (3, 0x80), // divisor latch
        (0, 0x01), // 115200 baud, low byte
        (1, 0x00), // high byte
        (3, 0x03), // 8N1
        (2, 0xC7), // FIFO enabled and cleared
        (4, 0x03), // DTR, RTS
    ];
    for (offset, value) in settings {
        // SAFETY: standard 16550 initialisation of the console's own port.
        unsafe { Port::<u8>::new(COM1 + offset).write(value) };
    }
}

/// Write formatted text under the console lock.
pub fn print(arguments: fmt::Arguments) {
    let _ = SERIAL.lock().write_fmt(arguments);
}

/// Longest piece of one user line written under one lock hold; longer
/// lines continue on a new framed line.
const USER_PIECE_MAX: usize = 1024;

/// A stack buffer for one framed piece of user text.
struct Piece {
    bytes: [u8; USER_PIECE_MAX],
    length: usize,
}

impl Piece {
    fn push(&mut self, text: &[u8]) {
        self.bytes[self.length..self.length + text.len()].copy_from_slice(text);
        self.length += text.len();
    }

    fn text(&self) -> &str {
        // Only whole UTF-8 characters and ASCII escapes are pushed.
        core::str::from_utf8(&self.bytes[..self.length]).unwrap_or("")
    }
}

/// Write `bytes` from user process `name`: every line is framed as
/// `[u:<name>] <text>`, control bytes are shown as `\xNN` and invalid UTF-8
/// as U+FFFD, and a write that does not end in a newline is ended with one.
/// So user space can never produce a line that starts like a kernel line or
/// like another process's line. The lock is held for one piece of at most
/// [`USER_PIECE_MAX`] bytes at a time, never for the whole write.
pub fn user_write(name: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for line in body.split(|byte| *byte == b'\n') {
        let mut piece = Piece {
            bytes: [0; USER_PIECE_MAX],
            length: 0,
        };
        let flush = |piece: &mut Piece| {
            print(format_args!("[u:{name}] {}\n", piece.text()));
            piece.length = 0;
        };
        let mut wrote = false;
        for chunk in line.utf8_chunks() {
            let replacement = (!chunk.invalid().is_empty()).then_some('\u{FFFD}');
            for character in chunk.valid().chars().chain(replacement) {
                let mut encoded = [0u8; 4];
                let escaped;
                let text: &[u8] = if character.is_control() && character != '\t' {
                    let value = u32::from(character).min(0xFF) as u8;
                    escaped = [
                        b'\\',
                        b'x',
                        HEX[usize::from(value >> 4)],
                        HEX[usize::from(value & 15)],
                    ];
                    &escaped
                } else {
                    character.encode_utf8(&mut encoded).as_bytes()
                };
                if piece.length + text.len() > USER_PIECE_MAX {
                    flush(&mut piece);
                    wrote = true;
                }
                piece.push(text);
            }
        }
        if piece.length > 0 || !wrote {
            flush(&mut piece);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Write even if another CPU holds the console lock (fault and panic paths).
pub fn emergency_print(arguments: fmt::Arguments) {
    for _ in 0..1_000_000 {
        if let Some(mut serial) = SERIAL.try_lock() {
            let _ = serial.write_fmt(arguments);
            return;
        }
        core::hint::spin_loop();
    }
    let _ = Serial::new(COM1).write_fmt(arguments);
}

/// Print a line to the serial console.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
