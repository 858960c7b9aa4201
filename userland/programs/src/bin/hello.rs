//! `hello`: the smallest program. Slot 0: console.
//! Prints `[hello] hello from capOS` and exits 0.
#![no_std]
#![no_main]

use capos_runtime::{println, Context};

capos_runtime::entry!(main);

fn main(context: &mut Context) -> i32 {
    println!(context, "[hello] hello from capOS");
    0
}
