//! `thread-scale`: the demo of the in-process threading proof.
//!
//! Slots: 0 console, 1 thread-spawner, 2 boot-manifest, 3 diagnostics.
//! Arguments (manifest or `user.<key>=` boot options): `threads=<n>`
//! (1..=64, default: one per online CPU), `blocks=<n>` (a multiple of
//! 1024, default 262,144; `capos_workloads::thread_scale` knows the root of
//! the default and of the smoke's 8,192) and `expect=<n>` (decimal: the
//! checksum the host computed for another size, which `capos run` passes
//! with `CAPOS_THREAD_SCALE_TOTAL_BLOCKS`).
//!
//! One process: the first thread reads the cycle counter, spawns the
//! workers, each with its own contiguous share of the blocks and its own
//! cache-line-padded slots, then blocks joining them in order. A worker
//! asks the kernel for its CPU and system call count (`ThreadInfo`), meets
//! the others at the start line (spinning), hashes its share, records the
//! time, asks `ThreadInfo` again and ends with a value that packs the two
//! CPUs and the number of system calls it made in between (the window
//! must have none; the guest measurement's phase marks 1 and 2, made by
//! the last arrival before the window opens and by the last finisher after
//! it closed, are not counted). The parent then checks every slot and the root.
//!
//! Lines: per worker `[thread-scale:placement] worker=<i> cpu_start=<c>
//! cpu_end=<c> window_syscalls=<n>`; per CPU a worker finished on
//! `[thread-scale:placement] cpu=<c> workers_ended=<k>` (a tag of their own,
//! so the result line stays the only `[thread-scale] ` line); then the
//! result line (see `capos_workloads::line`). `verified=true` only if the
//! root is the one the host computed for this shape and every worker ended
//! cleanly; the exit code is 0 only then. Errors print `[thread-scale] error: ...`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use capos_runtime::thread::{self, JoinHandle};
use capos_runtime::{options, println, CapabilityHandle, Context, Error};
use capos_workloads::cycles;
use capos_workloads::hash::{self, Shape, Slot};
use capos_workloads::line::ThreadScaleLine;
use capos_workloads::thread_scale::{self, Phases, Rendezvous, MAX_THREADS};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const MANIFEST_SLOT: u16 = 2;
const DIAGNOSTICS_SLOT: u16 = 3;

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err((what, error)) => {
            println!(context, "[thread-scale] error: {what} {}", error.name());
            1
        }
    }
}

/// What a worker saw, packed into its exit value (non-negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WorkerRecord {
    cpu_start: u32,
    cpu_end: u32,
    window_syscalls: u32,
}

impl WorkerRecord {
    fn pack(self) -> i64 {
        let cpu = |c: u32| i64::from(c.min(0xFFFF));
        cpu(self.cpu_start)
            | cpu(self.cpu_end) << 16
            | i64::from(self.window_syscalls.min(0x7FFF_FFFF)) << 32
    }

    fn unpack(value: i64) -> Option<Self> {
        (value >= 0).then_some(Self {
            cpu_start: (value & 0xFFFF) as u32,
            cpu_end: ((value >> 16) & 0xFFFF) as u32,
            window_syscalls: (value >> 32) as u32,
        })
    }
}

/// A worker's failure, as its (negative) exit value.
const WORKER_FAILED: i64 = -1;

/// The host's checksum for the run's size (`expect=`), when given.
fn expected_from_host(arguments: &str) -> Result<Option<u64>, Error> {
    match options::find_u64(arguments, "expect", 0) {
        Ok(0) => Ok(None),
        Ok(checksum) => Ok(Some(checksum)),
        Err(_) => Err(Error::InvalidArgument),
    }
}

/// The run's shape and thread count from the arguments.
fn parameters(arguments: &str, cpus: u32) -> Result<(Shape, u32), Error> {
    let bad = |_| Error::InvalidArgument;
    let threads = options::find_u64(arguments, "threads", u64::from(cpus)).map_err(bad)?;
    let blocks = options::find_u64(arguments, "blocks", u64::from(hash::DEFAULT_SHAPE.blocks))
        .map_err(bad)?;
    let threads = u32::try_from(threads)
        .ok()
        .filter(|threads| (1..=MAX_THREADS).contains(threads))
        .ok_or(Error::InvalidArgument)?;
    let shape = Shape {
        blocks: u32::try_from(blocks).map_err(|_| Error::InvalidArgument)?,
        rounds: hash::DEFAULT_SHAPE.rounds,
    };
    shape.chunks().map_err(|_| Error::InvalidArgument)?;
    Ok((shape, threads))
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
    let (shape, threads) =
        parameters(&arguments, info.cpus).map_err(|error| ("arguments", error))?;
    let from_host = expected_from_host(&arguments).map_err(|error| ("arguments", error))?;
    let chunks = shape
        .chunks()
        .map_err(|_| ("shape", Error::InvalidArgument))? as usize;
    if (threads as usize) > chunks {
        return Err(("threads-over-chunks", Error::InvalidArgument));
    }

    // The slots live until the process ends; the workers get disjoint
    // mutable parts, and the parent reads the whole array only after every
    // worker has been joined.
    let slots_address = vec![Slot::EMPTY; chunks].leak().as_mut_ptr();
    // SAFETY: `slots_address` holds `chunks` leaked slots; this is the only
    // reference to them until every worker has been joined.
    let slots: &'static mut [Slot] =
        unsafe { core::slice::from_raw_parts_mut(slots_address, chunks) };
    let mut shares: Vec<Option<(u32, &'static mut [Slot])>> = (0..threads).map(|_| None).collect();
    thread_scale::split_shares(shape, threads, slots, &mut shares)
        .map_err(|_| ("shares", Error::InvalidArgument))?;
    let rendezvous = Arc::new(Rendezvous::new(threads));

    // Guest measurement phase marks (a kernel without the `measure`
    // feature refuses them; the result is not needed either way).
    let _ = context.ring().measure_mark(diagnostics, 0);
    let begin = cycles();
    let mut workers: Vec<JoinHandle> = Vec::with_capacity(threads as usize);
    for share in shares.iter_mut() {
        let (first, part) = share.take().ok_or(("shares", Error::InvalidArgument))?;
        let rendezvous = rendezvous.clone();
        let worker = thread::spawn(
            context,
            spawner,
            move |context, _| work(context, diagnostics, &rendezvous, shape, first, part),
            0,
        )
        .map_err(|error| ("spawn", error))?;
        workers.push(worker);
    }
    let mut records = Vec::with_capacity(workers.len());
    for worker in workers {
        let value = worker.join(context).map_err(|error| ("join", error))?;
        records.push(WorkerRecord::unpack(value));
    }
    let joined = cycles();
    let _ = context.ring().measure_mark(diagnostics, 3);

    // SAFETY: every worker that held a part of the slots has been joined,
    // so nothing else refers to them; the array was leaked, so it lives.
    let slots = unsafe { core::slice::from_raw_parts(slots_address, chunks) };
    let phases = rendezvous
        .window()
        .and_then(|window| Phases::measure(begin, window, joined))
        .ok_or(("phases", Error::InvalidArgument))?;
    report_placement(context, &records);
    let root = hash::root(shape, slots).ok();
    let checksum = root.as_ref().map(hash::short_checksum).unwrap_or(0);
    let clean = records.iter().all(Option::is_some);
    let verified = clean
        && root.is_some()
        && thread_scale::expected_checksum(shape, from_host) == Some(checksum);
    let line = ThreadScaleLine {
        os: None,
        cpus: info.cpus,
        threads,
        shape,
        checksum,
        phases,
        verified,
    };
    println!(context, "{line}");
    Ok(verified)
}

/// One worker: `ThreadInfo`, start line, the share, finish, `ThreadInfo`.
/// It always arrives and finishes, even after an error, so the others are
/// never left waiting.
fn work(
    context: &mut Context,
    diagnostics: CapabilityHandle,
    rendezvous: &Rendezvous,
    shape: Shape,
    first: u32,
    part: &mut [Slot],
) -> i64 {
    let before = context.ring().thread_info(diagnostics);
    // The last arrival marks the start of work before the window opens, the
    // last finisher its end after the window closed: their own calls, taken
    // off the count below, never inside the window.
    let (_, opened) = rendezvous.arrive_with(|| {
        let _ = context.shared_ring().measure_mark(diagnostics, 1);
    });
    let hashed = thread_scale::hash_chunks(shape, first, part);
    let closed = rendezvous.finish_with(|| {
        let _ = context.shared_ring().measure_mark(diagnostics, 2);
    });
    let marks = u64::from(opened) + u64::from(closed);
    let after = context.ring().thread_info(diagnostics);
    match (before, hashed, after) {
        (Ok(before), Ok(()), Ok(after)) => WorkerRecord {
            cpu_start: before.cpu,
            cpu_end: after.cpu,
            window_syscalls: after
                .syscalls
                .saturating_sub(before.syscalls)
                .saturating_sub(1 + marks)
                .try_into()
                .unwrap_or(u32::MAX),
        }
        .pack(),
        _ => WORKER_FAILED,
    }
}

/// The per-worker lines, then one line per CPU some worker ended on.
fn report_placement(context: &mut Context, records: &[Option<WorkerRecord>]) {
    let mut ended_on: Vec<(u32, u32)> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let Some(record) = record else {
            println!(context, "[thread-scale:placement] worker={index} failed");
            continue;
        };
        println!(
            context,
            "[thread-scale:placement] worker={index} cpu_start={} cpu_end={} window_syscalls={}",
            record.cpu_start,
            record.cpu_end,
            record.window_syscalls
        );
        match ended_on.iter_mut().find(|(cpu, _)| *cpu == record.cpu_end) {
            Some((_, count)) => *count += 1,
            None => ended_on.push((record.cpu_end, 1)),
        }
    }
    ended_on.sort_unstable();
    for (cpu, count) in ended_on {
        println!(
            context,
            "[thread-scale:placement] cpu={cpu} workers_ended={count}"
        );
    }
}
