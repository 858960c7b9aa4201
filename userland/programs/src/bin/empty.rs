//! `empty`: does nothing and exits 0 (the spawn-to-exit benchmark's child).
#![no_std]
#![no_main]

use capos_runtime::Context;

capos_runtime::entry!(main);

fn main(_context: &mut Context) -> i32 {
    0
}
