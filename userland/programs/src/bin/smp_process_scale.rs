//! `smp-process-scale`: the coordinator of the multi-process SMP proof.
//!
//! Slots: 0 console, 1 process-spawner, 2 boot-manifest, 3 endpoint
//! `results` (shared with the workers). Manifest arguments: optional
//! `workers=<n>` (1..=64); by default one worker per online CPU.
//!
//! It reads the online CPU count (`BootInfo`), takes the cycle counter,
//! spawns the workers (`smp-process-worker`), hands each its share of
//! [`capos_workloads::DEFAULT_INTERVAL`] when it asks, and collects every
//! worker's report; the counter is read again when the last report
//! arrives. Workers make no system call while they count. Then it waits for
//! every worker's exit status and prints exactly one line (see
//! `capos_workloads::line`):
//! `[smp-process-scale] cpus=<n> workers=<n> range=<lo>..<hi> primes=<count> checksum=<hex> elapsed=<cycles> verified=<bool>`.
//! `verified=true` only if every share reported once, the totals equal the
//! known answer and every worker exited 0; the exit code is 0 only then.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use capos_runtime::{println, CapabilityHandle, Context, Error};
use capos_workloads::wire::{self, Assignment, Collector, Report, RECORD_BYTES};
use capos_workloads::{cycles, DEFAULT_INTERVAL};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const MANIFEST_SLOT: u16 = 2;
const ENDPOINT_SLOT: u16 = 3;
/// The manifest entry every worker is spawned from.
const WORKER: &str = "smp-process-worker";

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err((what, error)) => {
            println!(
                context,
                "[smp-process-scale] error: {what} {}",
                error.name()
            );
            1
        }
    }
}

/// `workers=<n>` from the manifest arguments, if present (the last one
/// wins); any other word is an error.
fn requested_workers(arguments: &str) -> Result<Option<u32>, Error> {
    let mut workers = None;
    for word in arguments.split_ascii_whitespace() {
        let value = word
            .strip_prefix("workers=")
            .ok_or(Error::InvalidArgument)?;
        let count: u32 = value.parse().map_err(|_| Error::InvalidArgument)?;
        if !(1..=wire::MAX_SHARES).contains(&count) {
            return Err(Error::InvalidArgument);
        }
        workers = Some(count);
    }
    Ok(workers)
}

fn run(context: &mut Context) -> Result<bool, (&'static str, Error)> {
    let spawner = context.capability(SPAWNER_SLOT);
    let manifest = context.capability(MANIFEST_SLOT);
    let endpoint = context.capability(ENDPOINT_SLOT);
    let info = context
        .ring()
        .boot_info(manifest)
        .map_err(|error| ("boot-info", error))?;
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .map_err(|error| ("manifest-read", error))?;
    let workers = requested_workers(&arguments)
        .map_err(|error| ("arguments", error))?
        .unwrap_or(info.cpus);
    let mut collector = Collector::new(workers).ok_or(("workers", Error::InvalidArgument))?;

    let start = cycles();
    let mut processes: Vec<CapabilityHandle> = Vec::with_capacity(workers as usize);
    for _ in 0..workers {
        let process = context
            .ring()
            .spawn(spawner, WORKER, &[])
            .map_err(|error| ("spawn", error))?;
        processes.push(process);
    }
    let mut assigned = 0u32;
    let mut reports = 0u32;
    let mut buffer = [0u8; RECORD_BYTES];
    while reports < workers {
        let received = context
            .ring()
            .endpoint_receive(endpoint, &mut buffer)
            .map_err(|error| ("receive", error))?;
        let message = &buffer[..received.length.min(RECORD_BYTES)];
        let reply = if wire::is_ready(message) && assigned < workers {
            let assignment = Assignment {
                index: assigned,
                shares: workers,
                interval: DEFAULT_INTERVAL,
            };
            assigned += 1;
            assignment.encode()
        } else if let Some(report) = Report::decode(message) {
            collector.add(&report);
            reports += 1;
            wire::READY_RECORD
        } else {
            return Err(("unexpected-message", Error::InvalidArgument));
        };
        context
            .ring()
            .endpoint_reply(endpoint, received.token, &reply, None)
            .map_err(|error| ("reply", error))?;
    }
    let elapsed = cycles().wrapping_sub(start);

    let mut exits_clean = true;
    for process in processes {
        let status = context
            .ring()
            .wait(process)
            .map_err(|error| ("wait", error))?;
        exits_clean &= status == 0;
        let _ = context.ring().drop_capability(process);
    }
    let line = collector.process_scale_line(None, info.cpus, elapsed, exits_clean);
    println!(context, "{line}");
    Ok(line.verified)
}
