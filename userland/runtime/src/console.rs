//! Formatted console output: the `print!`/`println!` macros and the small
//! line buffer behind them and the panic handler.
//!
//! Output is collected in a fixed buffer (no heap, so a panic can still
//! print) and written in as few `ConsoleWrite`s as fit, one per line for
//! lines up to [`LINE_BUFFER`] bytes, so lines from different processes do
//! not interleave mid-line.

use core::fmt;

/// Bytes collected before a write to the console (the kernel frames at
/// most 1024 bytes of a line as one console line, `kernel/src/console.rs`).
pub const LINE_BUFFER: usize = 1024;

/// A `fmt::Write` that hands full buffers to `sink`.
pub(crate) struct BufferedWriter<F: FnMut(&[u8])> {
    sink: F,
    buffer: [u8; LINE_BUFFER],
    used: usize,
}

impl<F: FnMut(&[u8])> BufferedWriter<F> {
    pub(crate) fn new(sink: F) -> Self {
        Self {
            sink,
            buffer: [0; LINE_BUFFER],
            used: 0,
        }
    }

    /// Hand what is buffered to the sink.
    pub(crate) fn flush(&mut self) {
        if self.used > 0 {
            (self.sink)(&self.buffer[..self.used]);
            self.used = 0;
        }
    }
}

impl<F: FnMut(&[u8])> fmt::Write for BufferedWriter<F> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut bytes = text.as_bytes();
        while !bytes.is_empty() {
            if self.used == LINE_BUFFER {
                self.flush();
            }
            let take = bytes.len().min(LINE_BUFFER - self.used);
            self.buffer[self.used..self.used + take].copy_from_slice(&bytes[..take]);
            self.used += take;
            bytes = &bytes[take..];
        }
        Ok(())
    }
}

/// Format to the program's console (see [`crate::Context::set_console`]):
/// `print!(context, "x={}", x)`. Output is dropped if there is no console.
#[macro_export]
macro_rules! print {
    ($context:expr, $($arg:tt)*) => {
        $context.print(::core::format_args!($($arg)*))
    };
}

/// [`print!`] plus a newline: `println!(context, "[hello] {}", name)`.
#[macro_export]
macro_rules! println {
    ($context:expr) => {
        $context.print(::core::format_args!("\n"))
    };
    ($context:expr, $($arg:tt)*) => {
        $context.print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn long_output_is_split_at_the_buffer_size_and_nothing_is_lost() {
        let mut writes: Vec<Vec<u8>> = Vec::new();
        let text: String = (0..2500)
            .map(|index| char::from(b'a' + (index % 26) as u8))
            .collect();
        {
            let mut writer = BufferedWriter::new(|bytes: &[u8]| writes.push(bytes.to_vec()));
            write!(writer, "{text}").unwrap();
            writer.flush();
        }
        assert_eq!(
            writes.iter().map(Vec::len).collect::<Vec<_>>(),
            [LINE_BUFFER, LINE_BUFFER, 2500 - 2 * LINE_BUFFER]
        );
        assert_eq!(writes.concat(), text.as_bytes());
    }

    #[test]
    fn short_lines_are_one_write() {
        let mut writes = 0;
        {
            let mut writer = BufferedWriter::new(|_: &[u8]| writes += 1);
            writeln!(writer, "[ring] batch={} ok", 32).unwrap();
            writer.flush();
            writer.flush();
        }
        assert_eq!(writes, 1);
    }
}
