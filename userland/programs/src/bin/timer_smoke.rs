//! `timer-smoke`: the timer measures a 20 ms sleep. Slots: 0 console, 1 timer.
//! Prints `[timer] slept_ns=<n> ok` when at least 20 ms passed, else
//! `[timer] slept_ns=<n> FAILED` (or `[timer] error: ...`) and exits 1.
#![no_std]
#![no_main]

use capos_runtime::{println, Context, Error};

capos_runtime::entry!(main);

const TIMER_SLOT: u16 = 1;
const SLEEP_NS: u64 = 20_000_000;

fn main(context: &mut Context) -> i32 {
    match measure_sleep(context) {
        Ok(slept) if slept >= SLEEP_NS => {
            println!(context, "[timer] slept_ns={slept} ok");
            0
        }
        Ok(slept) => {
            println!(context, "[timer] slept_ns={slept} FAILED");
            1
        }
        Err((operation, error)) => {
            println!(context, "[timer] error: {operation} {}", error.name());
            1
        }
    }
}

/// Nanoseconds between `now` before and after a [`SLEEP_NS`] sleep.
fn measure_sleep(context: &mut Context) -> Result<u64, (&'static str, Error)> {
    let timer = context.capability(TIMER_SLOT);
    let ring = context.ring();
    let before = ring.timer_now(timer).map_err(|error| ("now", error))?;
    ring.timer_sleep(timer, SLEEP_NS)
        .map_err(|error| ("sleep", error))?;
    let after = ring.timer_now(timer).map_err(|error| ("now", error))?;
    Ok(after.saturating_sub(before))
}
