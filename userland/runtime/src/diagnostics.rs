//! Reading the kernel's resource counters through a `diagnostics`
//! capability, comparing two readings, and marking the phases of a guest
//! measurement.
//!
//! The kernel copies [`KernelCounters`] as little-endian `u64`s in field
//! order (docs/abi.md, `DiagnosticsRead`); [`decode`] is the one place user
//! space turns those bytes back into the struct.
//!
//! Phase marks ([`Context::measure_mark`]) matter only to a kernel built
//! with the `measure` feature; any other kernel answers `InvalidOpcode`, so
//! a benchmark calls them unconditionally and ignores the result.

use crate::context::Context;
use crate::ring::{decode_result, Ring};
use capos_abi::arguments as args;
use capos_abi::{CapabilityHandle, Error, KernelCounters, Opcode, Submission};

/// Mark 0: before the first worker thread is spawned (spawn_ready begins).
pub const MARK_SPAWN: u64 = 0;
/// Mark 1: every worker is ready (the timed work begins).
pub const MARK_WORK: u64 = 1;
/// Mark 2: every worker is done (shutdown begins).
pub const MARK_SHUTDOWN: u64 = 2;
/// Mark 3: after the last join (the measurement ends and is printed).
pub const MARK_END: u64 = 3;

/// Bytes of one [`KernelCounters`] as the kernel writes them.
pub const COUNTERS_SIZE: usize = core::mem::size_of::<KernelCounters>();

/// Every counter with its name, in ABI field order.
pub fn fields(counters: &KernelCounters) -> [(&'static str, u64); 9] {
    [
        ("free_frames", counters.free_frames),
        ("heap_used_bytes", counters.heap_used_bytes),
        ("live_threads", counters.live_threads),
        ("live_processes", counters.live_processes),
        ("timer_waiters", counters.timer_waiters),
        ("endpoint_waiters", counters.endpoint_waiters),
        ("exit_waiters", counters.exit_waiters),
        ("cached_stacks", counters.cached_stacks),
        ("parked_threads", counters.parked_threads),
    ]
}

/// Decode the bytes `DiagnosticsRead` wrote.
pub fn decode(bytes: &[u8; COUNTERS_SIZE]) -> KernelCounters {
    let mut values = [0u64; COUNTERS_SIZE / 8];
    for (value, chunk) in values.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *value = u64::from_le_bytes(word);
    }
    let [free_frames, heap_used_bytes, live_threads, live_processes, timer_waiters, endpoint_waiters, exit_waiters, cached_stacks, parked_threads] =
        values;
    KernelCounters {
        free_frames,
        heap_used_bytes,
        live_threads,
        live_processes,
        timer_waiters,
        endpoint_waiters,
        exit_waiters,
        cached_stacks,
        parked_threads,
    }
}

/// A counter not back at its baseline: (name, before, after).
pub type Difference = (&'static str, u64, u64);

/// How much a later reading may differ from a baseline and still count as
/// "everything given back".
///
/// Only the kernel's stack cache may legitimately grow: an ended thread's
/// kernel stack goes back to the cache while it holds fewer than
/// [`capos_abi::limits::KERNEL_STACKS_CACHED`], so a loop can grow it up
/// to that bound. Each extra cached stack keeps its frames
/// ([`FRAMES_PER_CACHED_STACK`]; its page-table page is a margin now that
/// the kernel makes the stack region's tables at boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Extra cached kernel stacks tolerated.
    pub cached_stacks: u64,
}

/// Frames one cached kernel stack may hold: its 8 pages plus a page-table
/// page for the stack region.
pub const FRAMES_PER_CACHED_STACK: u64 = 9;

/// The counters of `after` that are not back at their `before` value beyond
/// `allowance`, as (name, before, after).
pub fn unrestored(
    before: &KernelCounters,
    after: &KernelCounters,
    allowance: Allowance,
) -> alloc::vec::Vec<Difference> {
    let grown = after.cached_stacks.saturating_sub(before.cached_stacks);
    let within = |name: &str, was: u64, now: u64| match name {
        "cached_stacks" => now >= was && now - was <= allowance.cached_stacks,
        "free_frames" => now <= was && was - now <= grown * FRAMES_PER_CACHED_STACK,
        _ => false,
    };
    fields(before)
        .into_iter()
        .zip(fields(after))
        .filter(|((name, was), (_, now))| was != now && !within(name, *was, *now))
        .map(|((name, was), (_, now))| (name, was, now))
        .collect()
}

/// `before` and `after` as `name=<before>-><after>` words, three counters a
/// line, so each line stays within one framed console piece.
pub fn describe(
    before: &KernelCounters,
    after: &KernelCounters,
) -> alloc::vec::Vec<alloc::string::String> {
    use alloc::string::String;
    let pairs: alloc::vec::Vec<String> = fields(before)
        .into_iter()
        .zip(fields(after))
        .map(|((name, was), (_, now))| alloc::format!("{name}={was}->{now}"))
        .collect();
    pairs.chunks(3).map(|chunk| chunk.join(" ")).collect()
}

impl Ring {
    /// `DiagnosticsRead`: the kernel's resource counters now.
    pub fn diagnostics_read(&self, diagnostics: CapabilityHandle) -> Result<KernelCounters, Error> {
        let mut bytes = [0u8; COUNTERS_SIZE];
        let submission = Submission {
            opcode: Opcode::DiagnosticsRead as u16,
            flags: 0,
            capability: diagnostics.0,
            user_data: self.fresh_user_data(),
            arguments: args::DiagnosticsRead {
                buffer_address: bytes.as_mut_ptr() as u64,
                buffer_capacity: COUNTERS_SIZE as u64,
            }
            .encode(),
        };
        // SAFETY: `bytes` is writable, untouched until the call returns, and
        // `call` returns only once the kernel has completed the request.
        let completion = unsafe { self.call(submission) };
        let written = decode_result(completion.result)?;
        if written != COUNTERS_SIZE as u64 {
            return Err(Error::InvalidArgument);
        }
        Ok(decode(&bytes))
    }

    /// Read the counters until `done` accepts a reading, sleeping
    /// [`SETTLE_POLL_NS`] between readings, for at most `timeout_ns`;
    /// returns the last reading either way. Teardown of an exited process
    /// finishes asynchronously (its last thread is reaped by a CPU's
    /// scheduler loop), so a reading right after `ProcessWait` may still
    /// count it.
    pub fn poll_counters(
        &self,
        diagnostics: CapabilityHandle,
        timer: CapabilityHandle,
        timeout_ns: u64,
        mut done: impl FnMut(&KernelCounters) -> bool,
    ) -> Result<KernelCounters, Error> {
        let start = self.timer_now(timer)?;
        loop {
            let now = self.diagnostics_read(diagnostics)?;
            if done(&now) || self.timer_now(timer)?.saturating_sub(start) >= timeout_ns {
                return Ok(now);
            }
            self.timer_sleep(timer, SETTLE_POLL_NS)?;
        }
    }

    /// A baseline for a later [`Ring::settle_counters`]: readings until
    /// `done` accepts one and the memory counters (free frames, heap bytes,
    /// cached stacks) have not moved for [`STABLE_READINGS`] readings in a
    /// row, for at most `timeout_ns`. An exited process's live counts drop
    /// before all its memory is back (a CPU may still have its address
    /// space loaded until it next switches or idles), and a baseline taken
    /// in between would make the later reading look like memory appeared.
    pub fn baseline_counters(
        &self,
        diagnostics: CapabilityHandle,
        timer: CapabilityHandle,
        timeout_ns: u64,
        mut done: impl FnMut(&KernelCounters) -> bool,
    ) -> Result<KernelCounters, Error> {
        let memory = |counters: &KernelCounters| {
            (
                counters.free_frames,
                counters.heap_used_bytes,
                counters.cached_stacks,
            )
        };
        let mut previous = None;
        let mut unchanged = 0;
        self.poll_counters(diagnostics, timer, timeout_ns, |now| {
            if previous == Some(memory(now)) {
                unchanged += 1;
            } else {
                unchanged = 0;
                previous = Some(memory(now));
            }
            done(now) && unchanged >= STABLE_READINGS
        })
    }

    /// [`Ring::poll_counters`] until [`unrestored`] finds nothing against
    /// `before`; returns the last reading and what was still not restored
    /// (empty on success).
    pub fn settle_counters(
        &self,
        diagnostics: CapabilityHandle,
        timer: CapabilityHandle,
        before: &KernelCounters,
        allowance: Allowance,
        timeout_ns: u64,
    ) -> Result<(KernelCounters, alloc::vec::Vec<Difference>), Error> {
        let now = self.poll_counters(diagnostics, timer, timeout_ns, |now| {
            unrestored(before, now, allowance).is_empty()
        })?;
        let missing = unrestored(before, &now, allowance);
        Ok((now, missing))
    }
}

impl Ring {
    /// `MeasureMark`: phase mark `mark` ([`MARK_SPAWN`] .. [`MARK_END`]).
    /// `InvalidOpcode` from a kernel without the `measure` feature;
    /// `InvalidArgument` for a mark out of order or range.
    pub fn measure_mark(&self, diagnostics: CapabilityHandle, mark: u64) -> Result<(), Error> {
        let arguments = args::MeasureMark { mark }.encode();
        let submission = self.request(Opcode::MeasureMark, diagnostics, arguments);
        decode_result(self.call_borrowing(submission).result).map(|_| ())
    }
}

impl Context {
    /// [`Ring::measure_mark`] on this thread's ring: phase mark `mark` of
    /// the guest measurement, through the Diagnostics capability
    /// `diagnostics`. Callable from any thread of the process.
    pub fn measure_mark(&self, diagnostics: CapabilityHandle, mark: u64) -> Result<(), Error> {
        self.shared_ring().measure_mark(diagnostics, mark)
    }
}

/// Readings in a row (after the first) whose memory counters must agree
/// before [`Ring::baseline_counters`] accepts them: 4 pauses of
/// [`SETTLE_POLL_NS`], two 10 ms timer ticks.
pub const STABLE_READINGS: u32 = 4;

/// Pause between two readings in [`Ring::settle_counters`].
pub const SETTLE_POLL_NS: u64 = 5_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stack_cache_and_what_it_holds_may_grow() {
        let before = KernelCounters {
            free_frames: 1000,
            heap_used_bytes: 5000,
            cached_stacks: 2,
            ..KernelCounters::default()
        };
        let allowance = Allowance { cached_stacks: 2 };
        assert!(unrestored(&before, &before, allowance).is_empty());
        let grown = KernelCounters {
            free_frames: 1000 - 2 * FRAMES_PER_CACHED_STACK,
            cached_stacks: 4,
            ..before
        };
        assert!(unrestored(&before, &grown, allowance).is_empty());
        // The cache keeps no heap of its own.
        let heap_grew = KernelCounters {
            heap_used_bytes: 5100,
            ..grown
        };
        assert_eq!(
            unrestored(&before, &heap_grew, allowance),
            [("heap_used_bytes", 5000, 5100)]
        );
        let too_many = KernelCounters {
            cached_stacks: 5,
            ..grown
        };
        assert_eq!(
            unrestored(&before, &too_many, allowance),
            [("cached_stacks", 2, 5)]
        );
        let leaked = KernelCounters {
            free_frames: 999,
            live_processes: 1,
            ..before
        };
        assert_eq!(
            unrestored(&before, &leaked, allowance),
            [("free_frames", 1000, 999), ("live_processes", 0, 1)]
        );
    }

    #[test]
    fn decode_reads_fields_in_abi_order() {
        let mut bytes = [0u8; COUNTERS_SIZE];
        for (index, chunk) in bytes.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&(100 + index as u64).to_le_bytes());
        }
        let counters = decode(&bytes);
        let values: Vec<u64> = fields(&counters).iter().map(|(_, value)| *value).collect();
        assert_eq!(values, (100..109).collect::<Vec<u64>>());
        assert_eq!(counters.free_frames, 100);
        assert_eq!(counters.parked_threads, 108);
    }
}
