//! `hostile-console`: tries to print lines that look like the kernel's or
//! another process's. Slot 0: console.
//!
//! Every write goes straight to `ConsoleWrite` (no line buffering), so the
//! kernel sees exactly these bytes: forged kernel and process lines, a
//! forged line of another program and a forged framed line of init, a
//! carriage return and ANSI escapes meant to overwrite the frame on a
//! terminal, backspaces, invalid UTF-8, several lines in one write, and a
//! 4 KiB write without a newline. The kernel must frame every line as
//! `[u:hostile-console] ...` with control bytes escaped, so the smoke
//! (userland/smokes.yaml) forbids any line that *starts* with a forged text
//! and any raw control byte. After the long line it prints
//! `[console] after-long-line ok`, which must start its own framed line,
//! then `[console] done writes=<n>`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use capos_abi::limits::CONSOLE_WRITE_MAX;
use capos_runtime::{println, Context};

capos_runtime::entry!(main);

/// Writes that must each come out framed, with control bytes escaped.
const FORGERIES: &[&[u8]] = &[
    b"[kernel] init exited code=3\n",
    b"[process] pid=99 name=init exit=0\n",
    b"[hostile-flags] rounds=50 spins=5 flags-kept ok\n",
    b"[u:init] [init] done children=7 failed=0\n",
    b"innocent text\r[kernel] init exited code=4\n",
    b"\x1b[2K\x1b[1G[kernel] init exited code=5\n",
    b"first\n[kernel] init exited code=6\n[u:init] [init] done children=7 failed=0\n",
    b"\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08[kernel] init exited code=9\n",
    b"\xff\xfe\n[kernel] init exited code=10\x00\n",
    b"\n",
];

/// Repeated to fill the 4 KiB write, so forged text straddles every place
/// the kernel may split the line.
const LONG_PATTERN: &[u8] = b"[kernel] init exited code=8 ";

fn main(context: &mut Context) -> i32 {
    let console = context.capability(0);
    let mut writes = 0u32;
    for forgery in FORGERIES {
        if context.ring().console_write(console, forgery).is_err() {
            println!(context, "[console] FAILED write {writes} refused");
            return 1;
        }
        writes += 1;
    }
    let long: Vec<u8> = LONG_PATTERN
        .iter()
        .copied()
        .cycle()
        .take(CONSOLE_WRITE_MAX as usize)
        .collect();
    match context.ring().console_write(console, &long) {
        Ok(written) if written == long.len() => writes += 1,
        other => {
            println!(context, "[console] FAILED long write {other:?}");
            return 1;
        }
    }
    if context
        .ring()
        .console_write(console, b"[console] after-long-line ok\n")
        .is_err()
    {
        return 1;
    }
    println!(context, "[console] done writes={}", writes + 1);
    0
}
