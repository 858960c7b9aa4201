//! `hostile-timed-wait`: waits with a timeout and sleeps that never end
//! must not leave kernel registrations behind.
//!
//! As `hostile-timed-wait` (slots: 0 console, 1 process-spawner,
//! 2 endpoint, 3 diagnostics, 4 timer, 5 boot-manifest) it runs a short
//! warm-up round of what follows, reads the kernel counters, spawns `timed-wait-echo` (the `bench-echo` server on the
//! endpoint), makes N endpoint calls (option `iterations`, default
//! [`DEFAULT_ITERATIONS`]) each waited for with `cap_enter(1, 60 s)` — a
//! registered deadline that the reply beats — stops the server, then spawns
//! `timed-wait-sleeper` [`SLEEPERS`] times. Each sleeper (this binary with
//! the argument `sleeper`; slots 0 console, 1 timer, 2 boot-manifest)
//! submits [`PENDING_PER_THREAD`] `TimerSleep(u64::MAX)`, makes sure they
//! are in flight (a short timed `cap_enter` times out), and exits,
//! abandoning them. Finally every counter must be back at its start value
//! (the kernel stack cache may keep up to [`STACK_CACHE_SLACK`] more stacks,
//! see `capos_runtime::diagnostics::Allowance`).
//!
//! Lines: `[hostile-timed-wait] progress=<i>/<n>` every n/10,
//! `[hostile-timed-wait] calls=<n> abandoned-sleeps=<m> counters-restored ok`,
//! or `[hostile-timed-wait] FAILED ...` (exit 1).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use capos_abi::limits::PENDING_PER_THREAD;
use capos_runtime::diagnostics::{describe, Allowance};
use capos_runtime::{options, println, CapabilityHandle, Context, Error, Opcode, Submission};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const ENDPOINT_SLOT: u16 = 2;
const DIAGNOSTICS_SLOT: u16 = 3;
const TIMER_SLOT: u16 = 4;
const MANIFEST_SLOT: u16 = 5;
const DEFAULT_ITERATIONS: u64 = 5_000;
/// The timeout of every waiting `cap_enter`: far longer than a reply takes.
const WAIT_TIMEOUT_NS: u64 = 60_000_000_000;
/// Sleeper children, each abandoning `PENDING_PER_THREAD` endless sleeps.
const SLEEPERS: u64 = 8;
const STACK_CACHE_SLACK: u64 = 2;
/// Calls of the warm-up round.
const WARM_UP_CALLS: u64 = 16;
const SETTLE_NS: u64 = 2_000_000_000;
const SERVER: &str = "timed-wait-echo";
const SLEEPER: &str = "timed-wait-sleeper";
const MESSAGE: &[u8; 8] = b"ping1234";

fn main(context: &mut Context) -> i32 {
    let result = if context.slot_count() == 3 {
        run_sleeper(context)
    } else {
        run(context)
    };
    match result {
        Ok(()) => 0,
        Err(problem) => {
            println!(context, "[hostile-timed-wait] FAILED {problem}");
            1
        }
    }
}

/// The sleeper: put endless sleeps in flight, check they are, and exit.
fn run_sleeper(context: &mut Context) -> Result<(), String> {
    let timer = context.capability(1);
    let ring = context.ring();
    for index in 0..PENDING_PER_THREAD as u64 {
        let sleep = Submission {
            opcode: Opcode::TimerSleep as u16,
            flags: 0,
            capability: timer.0,
            user_data: index,
            arguments: [u64::MAX, 0, 0, 0, 0, 0],
        };
        // SAFETY: a TimerSleep names no memory.
        unsafe { ring.submit(sleep) }.map_err(|_| String::from("sleeper ring full"))?;
    }
    match ring.enter(1, 1_000_000) {
        Err(Error::TimedOut) => Ok(()),
        other => Err(format!("sleeper: endless sleeps completed: {other:?}")),
    }
}

fn run(context: &mut Context) -> Result<(), String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let manifest = context.capability(MANIFEST_SLOT);
    let diagnostics_error = |error: Error| format!("diagnostics {}", error.name());
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .map_err(|error| format!("arguments {}", error.name()))?;
    let iterations = options::find_u64(&arguments, "iterations", DEFAULT_ITERATIONS)
        .map_err(|text| format!("iterations={text} is not a number"))?;
    let initial = context
        .ring()
        .diagnostics_read(diagnostics)
        .map_err(diagnostics_error)?;
    // A short warm-up round lets kernel caches and vectors reach their
    // steady size; the baseline is read once its children are torn down.
    exercise(context, WARM_UP_CALLS, 1, false)?;
    let before = context
        .ring()
        .baseline_counters(diagnostics, timer, SETTLE_NS, |now| {
            now.live_processes == initial.live_processes && now.live_threads == initial.live_threads
        })
        .map_err(diagnostics_error)?;
    exercise(context, iterations, SLEEPERS, true)?;
    let allowance = Allowance {
        cached_stacks: STACK_CACHE_SLACK,
    };
    let (after, missing) = context
        .ring()
        .settle_counters(diagnostics, timer, &before, allowance, SETTLE_NS)
        .map_err(diagnostics_error)?;
    for line in describe(&before, &after) {
        println!(context, "[hostile-timed-wait] counters {line}");
    }
    if let Some((name, was, now)) = missing.first() {
        return Err(format!("counter {name} before={was} after={now}"));
    }
    println!(
        context,
        "[hostile-timed-wait] calls={iterations} abandoned-sleeps={} counters-restored ok",
        SLEEPERS * PENDING_PER_THREAD as u64
    );
    Ok(())
}

/// Spawn the server, make `calls` timed calls, stop the server, then run
/// `sleepers` sleeper children; progress lines if `report`.
fn exercise(context: &mut Context, calls: u64, sleepers: u64, report: bool) -> Result<(), String> {
    let spawner = context.capability(SPAWNER_SLOT);
    let endpoint = context.capability(ENDPOINT_SLOT);
    let server = context
        .ring()
        .spawn(spawner, SERVER, &[])
        .map_err(|error| format!("spawn {SERVER} {}", error.name()))?;
    let step = (calls / 10).max(1);
    for call in 0..calls {
        timed_call(context, endpoint, call)?;
        if report && (call + 1) % step == 0 {
            println!(
                context,
                "[hostile-timed-wait] progress={}/{calls}",
                call + 1
            );
        }
    }
    // An empty message stops the server.
    context
        .ring()
        .endpoint_call(endpoint, b"", None, &mut [0u8; 8])
        .map_err(|error| format!("stop call {}", error.name()))?;
    context
        .ring()
        .reap(server)
        .map_err(|problem| format!("{SERVER} {problem}"))?;
    for _ in 0..sleepers {
        let sleeper = context
            .ring()
            .spawn(spawner, SLEEPER, &[])
            .map_err(|error| format!("spawn {SLEEPER} {}", error.name()))?;
        context
            .ring()
            .reap(sleeper)
            .map_err(|problem| format!("{SLEEPER} {problem}"))?;
    }
    Ok(())
}

/// One call to the echo server, waited for by `cap_enter(1, WAIT_TIMEOUT_NS)`.
fn timed_call(context: &mut Context, endpoint: CapabilityHandle, call: u64) -> Result<(), String> {
    let mut reply = [0u8; 8];
    let ring = context.ring();
    let submission = Submission {
        opcode: Opcode::EndpointCall as u16,
        flags: 0,
        capability: endpoint.0,
        user_data: call,
        arguments: [
            MESSAGE.as_ptr() as u64,
            MESSAGE.len() as u64,
            u64::from(CapabilityHandle::NONE.0),
            reply.as_mut_ptr() as u64,
            reply.len() as u64,
            0,
        ],
    };
    // SAFETY: MESSAGE is static; `reply` stays untouched until the call's
    // completion has been taken off the ring below (or the process exits).
    unsafe { ring.submit(submission) }.map_err(|_| format!("call={call} ring full"))?;
    let completion = loop {
        ring.enter(1, WAIT_TIMEOUT_NS)
            .map_err(|error| format!("call={call} enter {}", error.name()))?;
        if let Some(completion) = ring.next_completion() {
            break completion;
        }
    };
    if completion.user_data != call || completion.result != reply.len() as i64 {
        return Err(format!("call={call} completion={completion:?}"));
    }
    if &reply != b"4321gnip" {
        return Err(format!("call={call} reply={reply:?}"));
    }
    Ok(())
}
