//! `user-bench`: guest-cycle costs of the basic kernel paths, measured with
//! the TSC in one boot. Slots: 0 console, 1 process-spawner, 2 endpoint
//! (served by `bench-echo`).
//!
//! Measures, each over many iterations: a null ring operation round trip
//! (submit Nop, `cap_enter(1)`, take the completion), an endpoint call round
//! trip to another process (8-byte message and reply), and spawn-to-exit of
//! the empty program (spawn, then wait for its exit status). Prints one line
//! `[user-bench] nop_median=<c> nop_p10=<c> nop_p90=<c> call_median=... spawn_median=... verified=true`
//! (cycles), then stops the echo server.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use capos_runtime::{println, Context, Error};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const ENDPOINT_SLOT: u16 = 2;
const NOP_ITERATIONS: usize = 2000;
const CALL_ITERATIONS: usize = 500;
const SPAWN_ITERATIONS: usize = 30;
/// Warm-up iterations dropped before each measurement.
const WARM_UP: usize = 10;

fn timestamp() -> u64 {
    // SAFETY: RDTSC is allowed in user mode (CR4.TSD is clear) and has no
    // side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// (median, 10th percentile, 90th percentile) of `samples`.
fn spread(mut samples: Vec<u64>) -> (u64, u64, u64) {
    samples.sort_unstable();
    let at = |fraction: usize| samples[(samples.len() - 1) * fraction / 100];
    (at(50), at(10), at(90))
}

/// Time `iterations` runs of `operation` after a warm-up.
fn measure(
    iterations: usize,
    mut operation: impl FnMut() -> Result<(), Error>,
) -> Result<(u64, u64, u64), Error> {
    for _ in 0..WARM_UP {
        operation()?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = timestamp();
        operation()?;
        samples.push(timestamp().wrapping_sub(start));
    }
    Ok(spread(samples))
}

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(()) => 0,
        Err((what, error)) => {
            println!(context, "[user-bench] error: {what} {}", error.name());
            1
        }
    }
}

fn run(context: &mut Context) -> Result<(), (&'static str, Error)> {
    let spawner = context.capability(SPAWNER_SLOT);
    let endpoint = context.capability(ENDPOINT_SLOT);
    let nop = measure(NOP_ITERATIONS, || context.ring().nop()).map_err(|error| ("nop", error))?;
    let mut reply = [0u8; 8];
    let call = measure(CALL_ITERATIONS, || {
        let (length, _) = context
            .ring()
            .endpoint_call(endpoint, b"ping1234", None, &mut reply)?;
        if length == 8 && &reply == b"4321gnip" {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    })
    .map_err(|error| ("call", error))?;
    let spawn = measure(SPAWN_ITERATIONS, || {
        let child = context.ring().spawn(spawner, "empty", &[])?;
        let status = context.ring().wait(child)?;
        context.ring().drop_capability(child)?;
        if status == 0 {
            Ok(())
        } else {
            Err(Error::InvalidArgument)
        }
    })
    .map_err(|error| ("spawn", error))?;
    // An empty message tells the echo server to stop.
    context
        .ring()
        .endpoint_call(endpoint, b"", None, &mut reply)
        .map_err(|error| ("stop", error))?;
    println!(
        context,
        "[user-bench] nop_median={} nop_p10={} nop_p90={} call_median={} call_p10={} call_p90={} spawn_median={} spawn_p10={} spawn_p90={} verified=true",
        nop.0, nop.1, nop.2, call.0, call.1, call.2, spawn.0, spawn.1, spawn.2
    );
    Ok(())
}
