//! `exit-smoke`: exit codes travel from a child to the process that waits.
//!
//! As the parent (slots: 0 console, 1 process-spawner) it spawns the
//! manifest process `exit-child` (this same binary), waits, and prints
//! `[exit] child exit=42 ok` (or `... FAILED`, exit 1). As the child (one
//! slot: console) it prints `[exit] child exiting 42` and returns 42.
#![no_std]
#![no_main]

use capos_runtime::{println, Context};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const CHILD_NAME: &str = "exit-child";
const CHILD_EXIT_CODE: i32 = 42;

fn main(context: &mut Context) -> i32 {
    if context.slot_count() <= 1 {
        println!(context, "[exit] child exiting {CHILD_EXIT_CODE}");
        return CHILD_EXIT_CODE;
    }
    let spawner = context.capability(SPAWNER_SLOT);
    let status = context
        .ring()
        .spawn(spawner, CHILD_NAME, &[])
        .map_err(|error| ("spawn", error))
        .and_then(|child| context.ring().wait(child).map_err(|error| ("wait", error)));
    match status {
        Ok(status) if status == i64::from(CHILD_EXIT_CODE) => {
            println!(context, "[exit] child exit={status} ok");
            0
        }
        Ok(status) => {
            println!(context, "[exit] child exit={status} FAILED");
            1
        }
        Err((operation, error)) => {
            println!(context, "[exit] error: {operation} {}", error.name());
            1
        }
    }
}
