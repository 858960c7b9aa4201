//! thread-scale on Linux: the capOS demo's run with POSIX threads (std
//! threads, scoped so the slots need no unsafe code), timed the same way.
//!
//! Invariants: the shares, the hashing, the start line, the phases and the
//! known roots are the capOS ones (`capos_workloads::thread_scale`);
//! workers make no system call between the start line and their finish
//! record; the line says `verified=true` only if the root is the host's and
//! every worker ended cleanly.

use capos_workloads::cycles;
use capos_workloads::hash::{self, Slot};
use capos_workloads::line::ThreadScaleLine;
use capos_workloads::thread_scale::{self, Phases, Rendezvous, MAX_THREADS};

/// Run once with `threads` worker threads on a system with `cpus` CPUs,
/// over `blocks` blocks (default: the proof's) whose checksum the host may
/// have computed (`expect`); print the line.
pub fn run(
    os: &'static str,
    cpus: u32,
    threads: u32,
    blocks: Option<u32>,
    expect: Option<u64>,
) -> Result<bool, String> {
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(format!("threads={threads} is out of range"));
    }
    let shape = hash::Shape {
        blocks: blocks.unwrap_or(hash::DEFAULT_SHAPE.blocks),
        rounds: hash::DEFAULT_SHAPE.rounds,
    };
    let chunks = shape.chunks().map_err(|error| format!("{error:?}"))? as usize;
    let mut slots = vec![Slot::EMPTY; chunks];
    let mut shares: Vec<Option<(u32, &mut [Slot])>> = (0..threads).map(|_| None).collect();
    thread_scale::split_shares(shape, threads, &mut slots, &mut shares)
        .map_err(|error| format!("shares: {error:?}"))?;
    let rendezvous = Rendezvous::new(threads);
    let begin = cycles();
    let clean = std::thread::scope(|scope| {
        let mut workers = Vec::with_capacity(threads as usize);
        for share in shares.iter_mut() {
            let (first, part) = share.take().expect("split_shares filled every share");
            let rendezvous = &rendezvous;
            let worker = std::thread::Builder::new().spawn_scoped(scope, move || {
                rendezvous.arrive();
                let hashed = thread_scale::hash_chunks(shape, first, part);
                rendezvous.finish();
                hashed.is_ok()
            });
            match worker {
                Ok(worker) => workers.push(worker),
                Err(error) => return Err(format!("spawning a thread: {error}")),
            }
        }
        let ended: Vec<bool> = workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or(false))
            .collect();
        Ok(ended.into_iter().all(|ok| ok))
    })?;
    let joined = cycles();
    let phases = rendezvous
        .window()
        .and_then(|window| Phases::measure(begin, window, joined))
        .ok_or("the phases' cycle reads are out of order")?;
    let root = hash::root(shape, &slots).ok();
    let checksum = root.as_ref().map(hash::short_checksum).unwrap_or(0);
    let verified =
        clean && root.is_some() && thread_scale::expected_checksum(shape, expect) == Some(checksum);
    let line = ThreadScaleLine {
        os: Some(os),
        cpus,
        threads,
        shape,
        checksum,
        phases,
        verified,
    };
    println!("{line}");
    Ok(verified)
}
