//! `user-bench`: guest-cycle costs of the basic kernel paths, measured with
//! the TSC in one boot. Slots: 0 console, 1 process-spawner, 2 endpoint
//! (served by `bench-echo`), 3 thread-spawner, 4 park-space.
//!
//! Iteration counts, warm-up, percentiles and the line format come from
//! `capos_workloads::bench`, shared with the Linux counterpart
//! (`capos-baseline user-bench`). Measures, each over many iterations: a
//! null ring operation round trip (submit Nop, `cap_enter(1)`, take the
//! completion), an endpoint call round trip to another process (8-byte
//! message and reply), spawn-to-exit of the empty program (spawn, then wait
//! for its exit status), spawn-to-join of a thread that returns at once, a
//! park/unpark round trip with a second thread (a word handed back and
//! forth, each side parking until it is its turn), and a batch of 32 Nops
//! taken with one `cap_enter` (reported per Nop). Prints one line
//! `[user-bench] nop_median=<c> nop_p10=<c> nop_p90=<c> call_median=... spawn_median=... thread_median=... park_median=... batch_median=... verified=true`
//! (cycles), then stops the echo server.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec;
use capos_runtime::sync::Park;
use capos_runtime::thread;
use capos_runtime::{println, CapabilityHandle, Context, Error, Opcode, Ring, Submission};
use capos_workloads::bench::{self, Spread, UserBenchLine};
use core::sync::atomic::{AtomicU32, Ordering};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const ENDPOINT_SLOT: u16 = 2;
const THREAD_SPAWNER_SLOT: u16 = 3;
const PARK_SLOT: u16 = 4;
/// `user_data` of the first Nop of a batch (far above the runtime's own).
const BATCH_USER_DATA: u64 = 0xBA7C_0000_0000_0000;
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
    let thread_spawner = context.capability(THREAD_SPAWNER_SLOT);
    let thread = measure(bench::THREAD_ITERATIONS, || {
        let handle = thread::spawn(context, thread_spawner, |_, value| value as i64, 7)?;
        match handle.join(context)? {
            7 => Ok(()),
            _ => Err(Error::InvalidArgument),
        }
    })
    .map_err(|error| ("thread", error))?;
    let park = park_round_trips(context).map_err(|error| ("park", error))?;
    let batch = measure(bench::BATCH_ITERATIONS, || nop_batch(context.ring()))
        .map_err(|error| ("batch", error))?
        .per_operation(bench::BATCH_NOPS as u64);
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
        thread,
        park,
        batch,
    };
    println!(context, "{line}");
    Ok(())
}

/// Submit [`bench::BATCH_NOPS`] Nops, take them with one `cap_enter`, and
/// check each completion.
fn nop_batch(ring: &Ring) -> Result<(), Error> {
    for index in 0..bench::BATCH_NOPS as u64 {
        let nop = Submission {
            opcode: Opcode::Nop as u16,
            flags: 0,
            capability: CapabilityHandle::NONE.0,
            user_data: BATCH_USER_DATA + index,
            arguments: [0; 6],
        };
        // SAFETY: a Nop names no memory.
        unsafe { ring.submit(nop) }.map_err(|_| Error::RingOverrun)?;
    }
    ring.enter(bench::BATCH_NOPS as u32, capos_abi::NO_TIMEOUT)?;
    for index in 0..bench::BATCH_NOPS as u64 {
        match ring.next_completion() {
            Some(completion)
                if completion.user_data == BATCH_USER_DATA + index && completion.result == 0 => {}
            _ => return Err(Error::InvalidArgument),
        }
    }
    Ok(())
}

/// Whose turn it is: even for this thread, odd for the partner.
fn wait_for_turn(
    parker: &capos_runtime::sync::ParkSpace<'_>,
    turn: &AtomicU32,
    side: u32,
) -> Result<u32, Error> {
    loop {
        let now = turn.load(Ordering::Acquire);
        if now % 2 == side {
            return Ok(now);
        }
        parker.park(turn, now, capos_abi::NO_TIMEOUT)?;
    }
}

/// Round trips of a word between this thread and a partner thread, each
/// parking until its turn and unparking the other after its move.
fn park_round_trips(context: &Context) -> Result<Spread, Error> {
    let park = context.capability(PARK_SLOT);
    let turn = Arc::new(AtomicU32::new(0));
    let rounds = (bench::WARM_UP + bench::PARK_ITERATIONS) as u32;
    let partner_turn = turn.clone();
    let partner = thread::spawn(
        context,
        context.capability(THREAD_SPAWNER_SLOT),
        move |context, _| {
            let parker = context.park_space(context.capability(PARK_SLOT));
            for _ in 0..rounds {
                if wait_for_turn(&parker, &partner_turn, 1).is_err() {
                    return -1;
                }
                partner_turn.fetch_add(1, Ordering::AcqRel);
                if parker.unpark(&partner_turn, 1).is_err() {
                    return -1;
                }
            }
            0
        },
        0,
    )?;
    let parker = context.park_space(park);
    let spread = measure(bench::PARK_ITERATIONS, || {
        wait_for_turn(&parker, &turn, 0)?;
        turn.fetch_add(1, Ordering::AcqRel);
        parker.unpark(&turn, 1)?;
        wait_for_turn(&parker, &turn, 0).map(drop)
    });
    // On an error the process ends, and the partner with it.
    let spread = spread?;
    let ended = partner.join(context)?;
    if ended != 0 || turn.load(Ordering::Acquire) != 2 * rounds {
        return Err(Error::InvalidArgument);
    }
    Ok(spread)
}
