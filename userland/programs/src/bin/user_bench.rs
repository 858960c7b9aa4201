//! `user-bench`: guest-cycle costs of the basic kernel paths, measured with
//! the TSC in one boot. Slots: 0 console, 1 process-spawner, 2 endpoint
//! (served by `bench-echo`).
//!
//! Iteration counts, warm-up, percentiles and the line format come from
//! `capos_workloads::bench`, shared with the Linux counterpart
//! (`capos-baseline user-bench`). Measures, each over many iterations: a null ring operation round trip
//! (submit Nop, `cap_enter(1)`, take the completion), an endpoint call round
//! trip to another process (8-byte message and reply), and spawn-to-exit of
//! the empty program (spawn, then wait for its exit status). Prints one line
//! `[user-bench] nop_median=<c> nop_p10=<c> nop_p90=<c> call_median=... spawn_median=... verified=true`
//! (cycles), then stops the echo server.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use capos_runtime::{println, Context, Error};
use capos_workloads::bench::{self, Spread, UserBenchLine};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const ENDPOINT_SLOT: u16 = 2;
/// Time `iterations` runs of `operation` (see [`bench::measure`]).
fn measure(
    iterations: usize,
    operation: impl FnMut() -> Result<(), Error>,
) -> Result<Spread, Error> {
    let mut samples = vec![0u64; iterations];
    bench::measure(&mut samples, operation)?.ok_or(Error::InvalidArgument)
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
    let nop =
        measure(bench::NOP_ITERATIONS, || context.ring().nop()).map_err(|error| ("nop", error))?;
    let mut reply = [0u8; 8];
    let call = measure(bench::CALL_ITERATIONS, || {
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
    let spawn = measure(bench::SPAWN_ITERATIONS, || {
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
    let line = UserBenchLine {
        os: None,
        nop,
        call,
        spawn,
    };
    println!(context, "{line}");
    Ok(())
}
