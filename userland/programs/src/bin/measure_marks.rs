//! `measure-marks`: the four guest-measurement marks around a small
//! threaded run, so the `measure` kernel feature can be exercised without
//! the thread-scale benchmark (`docs/scheduler.md`, *Guest measurement*).
//!
//! Slots: 0 console, 1 thread-spawner, 2 boot-manifest, 3 diagnostics.
//! Arguments: `threads=<n>` (1..=8, default 2), `spin_ms=<n>` (each
//! worker's busy time, 1..=10,000, default 300).
//!
//! Mark 0, spawn the workers, mark 1 once each has checked in, let them
//! spin for `spin_ms`, mark 2 once each has checked out, join them, mark 3.
//! A kernel with the feature then prints its `[measure]` lines; any other
//! kernel answers every mark `InvalidOpcode`. A fifth mark must be refused
//! either way. The result line: `[measure-marks] marks=<measured|unsupported>
//! threads=<n> repeat=<refused error>`; exit 0 when the marks behaved as
//! one of the two kernels must.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_runtime::diagnostics::{MARK_END, MARK_SHUTDOWN, MARK_SPAWN, MARK_WORK};
use capos_runtime::thread::{self, JoinHandle};
use capos_runtime::{options, println, Context, Error};
use capos_workloads::cycles;
use core::sync::atomic::{AtomicU32, Ordering};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const MANIFEST_SLOT: u16 = 2;
const DIAGNOSTICS_SLOT: u16 = 3;

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err((what, error)) => {
            println!(context, "[measure-marks] error: {what} {}", error.name());
            1
        }
    }
}

/// Workers that have checked in and out.
struct Meeting {
    arrived: AtomicU32,
    finished: AtomicU32,
}

impl Meeting {
    /// Spin until `count` has reached `expected`.
    fn wait(count: &AtomicU32, expected: u32) {
        while count.load(Ordering::Acquire) < expected {
            core::hint::spin_loop();
        }
    }
}

fn run(context: &mut Context) -> Result<bool, (&'static str, Error)> {
    let spawner = context.capability(SPAWNER_SLOT);
    let manifest = context.capability(MANIFEST_SLOT);
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let info = context
        .ring()
        .boot_info(manifest)
        .map_err(|error| ("boot-info", error))?;
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .map_err(|error| ("arguments", error))?;
    let bad = |_| ("arguments", Error::InvalidArgument);
    let threads = options::find_u64(&arguments, "threads", 2).map_err(bad)?;
    let spin_ms = options::find_u64(&arguments, "spin_ms", 300).map_err(bad)?;
    if !(1..=8).contains(&threads) || !(1..=10_000).contains(&spin_ms) {
        return Err(("arguments", Error::InvalidArgument));
    }
    let spin_cycles = info.tsc_hz / 1000 * spin_ms;

    let first = context.measure_mark(diagnostics, MARK_SPAWN);
    let meeting = Arc::new(Meeting {
        arrived: AtomicU32::new(0),
        finished: AtomicU32::new(0),
    });
    let mut workers: Vec<JoinHandle> = Vec::with_capacity(threads as usize);
    for _ in 0..threads {
        let meeting = meeting.clone();
        let worker = thread::spawn(
            context,
            spawner,
            move |_, _| {
                meeting.arrived.fetch_add(1, Ordering::AcqRel);
                let value = spin(spin_cycles);
                meeting.finished.fetch_add(1, Ordering::AcqRel);
                (value & 0xFFFF) as i64
            },
            0,
        )
        .map_err(|error| ("spawn", error))?;
        workers.push(worker);
    }
    Meeting::wait(&meeting.arrived, threads as u32);
    let ready = context.measure_mark(diagnostics, MARK_WORK);
    Meeting::wait(&meeting.finished, threads as u32);
    let done = context.measure_mark(diagnostics, MARK_SHUTDOWN);
    for worker in workers {
        worker.join(context).map_err(|error| ("join", error))?;
    }
    let end = context.measure_mark(diagnostics, MARK_END);
    let repeat = context.measure_mark(diagnostics, MARK_SPAWN);

    let marks = [first, ready, done, end];
    let (verdict, consistent) = if marks.iter().all(Result::is_ok) {
        ("measured", repeat == Err(Error::InvalidArgument))
    } else if marks.iter().all(|mark| *mark == Err(Error::InvalidOpcode)) {
        ("unsupported", repeat == Err(Error::InvalidOpcode))
    } else {
        ("inconsistent", false)
    };
    let repeat = match repeat {
        Ok(()) => "accepted",
        Err(error) => error.name(),
    };
    println!(
        context,
        "[measure-marks] marks={verdict} threads={threads} repeat={repeat}"
    );
    Ok(consistent)
}

/// Busy work for `duration` TSC cycles, in a function of its own so the
/// PC samples land on a known symbol. Returns a value the caller uses, so
/// the loop is not optimised away.
#[inline(never)]
fn spin(duration: u64) -> u64 {
    let start = cycles();
    let mut value = 0x9E37_79B9_7F4A_7C15u64;
    while cycles().wrapping_sub(start) < duration {
        for _ in 0..1000 {
            value = value.rotate_left(7) ^ value.wrapping_mul(0x2545_F491_4F6C_DD1D);
        }
    }
    value
}
