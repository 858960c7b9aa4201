//! `hostile-spawn-loop`: spawn the `empty` program, wait for it and drop its
//! handle, N times, and show the kernel got every resource back.
//!
//! Slots: 0 console, 1 process-spawner, 2 diagnostics, 3 timer,
//! 4 boot-manifest. N is the option `iterations` (boot option
//! `user.iterations=<n>`; default [`DEFAULT_ITERATIONS`]).
//!
//! Invariants it checks: every spawn succeeds and every child exits 0;
//! after the loop every kernel counter (free frames, heap bytes, threads,
//! processes, timer/endpoint/exit waiters, parked threads) is back at its
//! value after the warm-up, except that the kernel stack cache may hold up
//! to [`STACK_CACHE_SLACK`] more stacks (and their frames): the cache keeps
//! as many stacks as threads were ever alive at once, and a child still
//! being reaped while the next starts can raise that mark by one or two.
//! The warm-up lets caches and kernel vectors reach their steady size first.
//!
//! Lines: `[hostile-spawn] progress=<i>/<n>` every n/10,
//! `[hostile-spawn] iterations=<n> counters-restored ok`, or
//! `[hostile-spawn] FAILED ...` (and exit 1).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use capos_runtime::diagnostics::{describe, Allowance};
use capos_runtime::{options, println, Context};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const DIAGNOSTICS_SLOT: u16 = 2;
const TIMER_SLOT: u16 = 3;
const MANIFEST_SLOT: u16 = 4;
const DEFAULT_ITERATIONS: u64 = 500;
/// Cycles run before the baseline is read.
const WARM_UP: u64 = 8;
/// Extra cached kernel stacks tolerated (see the file comment).
const STACK_CACHE_SLACK: u64 = 2;
/// How long teardown of the last child may take to show in the counters.
const SETTLE_NS: u64 = 2_000_000_000;
const CHILD: &str = "empty";

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(iterations) => {
            println!(
                context,
                "[hostile-spawn] iterations={iterations} counters-restored ok"
            );
            0
        }
        Err(problem) => {
            println!(context, "[hostile-spawn] FAILED {problem}");
            1
        }
    }
}

fn run(context: &mut Context) -> Result<u64, String> {
    let spawner = context.capability(SPAWNER_SLOT);
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let manifest = context.capability(MANIFEST_SLOT);
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .map_err(|error| format!("arguments {}", error.name()))?;
    let iterations = options::find_u64(&arguments, "iterations", DEFAULT_ITERATIONS)
        .map_err(|text| format!("iterations={text} is not a number"))?;
    let ring = context.ring();
    let diagnostics_error = |error: capos_runtime::Error| format!("diagnostics {}", error.name());
    let initial = ring
        .diagnostics_read(diagnostics)
        .map_err(diagnostics_error)?;
    for cycle in 0..WARM_UP {
        spawn_wait_drop(context, spawner, cycle)?;
    }
    // The baseline: the warm-up's last child fully torn down.
    let before = context
        .ring()
        .baseline_counters(diagnostics, timer, SETTLE_NS, |now| {
            now.live_processes == initial.live_processes && now.live_threads == initial.live_threads
        })
        .map_err(diagnostics_error)?;
    let allowance = Allowance {
        cached_stacks: STACK_CACHE_SLACK,
    };
    let step = (iterations / 10).max(1);
    for cycle in 0..iterations {
        spawn_wait_drop(context, spawner, cycle)?;
        if (cycle + 1) % step == 0 {
            println!(
                context,
                "[hostile-spawn] progress={}/{iterations}",
                cycle + 1
            );
        }
    }
    let (after, missing) = context
        .ring()
        .settle_counters(diagnostics, timer, &before, allowance, SETTLE_NS)
        .map_err(diagnostics_error)?;
    for line in describe(&before, &after) {
        println!(context, "[hostile-spawn] counters {line}");
    }
    match missing.first() {
        None => Ok(iterations),
        Some((name, was, now)) => Err(format!(
            "counter {name} before={was} after={now} ({} not restored)",
            missing.len()
        )),
    }
}

/// One cycle: spawn [`CHILD`], wait for exit status 0, drop the handle.
fn spawn_wait_drop(
    context: &mut Context,
    spawner: capos_runtime::CapabilityHandle,
    cycle: u64,
) -> Result<(), String> {
    let ring = context.ring();
    let child = ring
        .spawn(spawner, CHILD, &[])
        .map_err(|error| format!("cycle={cycle} spawn {}", error.name()))?;
    ring.reap(child)
        .map_err(|problem| format!("cycle={cycle} {problem}"))
}
