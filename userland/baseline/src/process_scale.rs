//! smp-process-scale on Linux: fork one worker per share, each counts its
//! share and writes one report record to a pipe; the parent times from
//! before the first fork to the last record, then reaps every worker.
//!
//! Invariants: the shares, the counting code, the records and the known
//! answer are the capOS ones (`capos_workloads`); workers make no system
//! call while they count; the line says `verified=true` only if every
//! share reported once, the totals match and every worker exited 0.

use crate::system::{self, Ended, Forked};
use capos_workloads::primes::{self, SieveScratch};
use capos_workloads::wire::{Assignment, Collector, Report, RECORD_BYTES};
use capos_workloads::{cycles, DEFAULT_INTERVAL};
use std::io::{Read, Write};

/// A forked worker: count share `index` of `workers` and report it.
fn worker(index: u32, workers: u32, mut report_to: &std::fs::File) -> i32 {
    let assignment = Assignment {
        index,
        shares: workers,
        interval: DEFAULT_INTERVAL,
    };
    let Ok(share) = assignment.share() else {
        return 2;
    };
    let mut scratch = SieveScratch::new();
    let Ok(tally) = primes::count(share, &mut scratch) else {
        return 3;
    };
    let report = Report {
        index,
        count: tally.count,
        sum: tally.sum,
    };
    // One write below PIPE_BUF: atomic, never interleaved with another worker's.
    match report_to.write_all(&report.encode()) {
        Ok(()) => 0,
        Err(_) => 4,
    }
}

/// Run once with `workers` workers on a system with `cpus` CPUs; print the line.
pub fn run(os: &'static str, cpus: u32, workers: u32) -> Result<bool, String> {
    let mut collector =
        Collector::new(workers).ok_or_else(|| format!("workers={workers} is out of range"))?;
    let (mut reports, report_to) = system::pipe().map_err(|error| format!("pipe: {error}"))?;
    let mut children = Vec::with_capacity(workers as usize);
    let start = cycles();
    for index in 0..workers {
        match system::fork().map_err(|error| format!("fork: {error}"))? {
            Forked::Child => {
                drop(reports);
                system::exit_now(worker(index, workers, &report_to));
            }
            Forked::Parent(pid) => children.push(pid),
        }
    }
    drop(report_to);
    let mut record = [0u8; RECORD_BYTES];
    for _ in 0..workers {
        reports
            .read_exact(&mut record)
            .map_err(|error| format!("a worker did not report ({error})"))?;
        let report = Report::decode(&record).ok_or("malformed worker report")?;
        collector.add(&report);
    }
    let elapsed = cycles().wrapping_sub(start);
    let mut exits_clean = true;
    for pid in children {
        let ended = system::wait(pid).map_err(|error| format!("waitpid: {error}"))?;
        exits_clean &= ended == Ended::Exited(0);
    }
    let line = collector.process_scale_line(Some(os), cpus, elapsed, exits_clean);
    println!("{line}");
    Ok(line.verified)
}
