//! `smp-process-worker`: one worker of the smp-process-scale proof.
//!
//! Slots: 0 console, 1 endpoint `results`. Asks the coordinator for its
//! share (one endpoint call), counts the primes in it with no system call
//! and no output (the timed section), reports count and sum (one endpoint
//! call) and exits 0. Any failure exits non-zero, which the coordinator
//! sees in the exit status.
#![no_std]
#![no_main]

use capos_runtime::{println, Context, Error};
use capos_workloads::primes::{self, SieveScratch};
use capos_workloads::wire::{Assignment, Report, READY_RECORD, RECORD_BYTES};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(()) => 0,
        Err((what, error)) => {
            println!(
                context,
                "[smp-process-worker] error: {what} {}",
                error.name()
            );
            1
        }
    }
}

fn run(context: &mut Context) -> Result<(), (&'static str, Error)> {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let mut reply = [0u8; RECORD_BYTES];
    let (length, _) = context
        .ring()
        .endpoint_call(endpoint, &READY_RECORD, None, &mut reply)
        .map_err(|error| ("ready", error))?;
    let assignment =
        Assignment::decode(&reply[..length]).ok_or(("assignment", Error::InvalidArgument))?;
    let share = assignment
        .share()
        .map_err(|_| ("share", Error::InvalidArgument))?;
    // The timed section: pure computation on this stack.
    let mut scratch = SieveScratch::new();
    let tally =
        primes::count(share, &mut scratch).map_err(|_| ("count", Error::InvalidArgument))?;
    let report = Report {
        index: assignment.index,
        count: tally.count,
        sum: tally.sum,
    };
    context
        .ring()
        .endpoint_call(endpoint, &report.encode(), None, &mut reply)
        .map_err(|error| ("report", error))?;
    Ok(())
}
