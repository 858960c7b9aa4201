//! Micro-benchmark statistics and the `[user-bench]` result line, shared by
//! the capOS `user-bench` program and its Linux counterpart.
//!
//! Invariants: percentiles are taken from the sorted samples by index
//! `(n - 1) * percent / 100` (no interpolation), the same on every system;
//! an empty sample set has no spread.

use core::fmt;

/// Tag of the user-bench result line.
pub const USER_BENCH_TAG: &str = "[user-bench]";

/// Iterations of each measured path (after [`WARM_UP`] untimed ones).
pub const NOP_ITERATIONS: usize = 2000;
/// Round trips of the call path.
pub const CALL_ITERATIONS: usize = 500;
/// Spawn-to-exit repetitions.
pub const SPAWN_ITERATIONS: usize = 30;
/// Thread spawn-to-join repetitions.
pub const THREAD_ITERATIONS: usize = 50;
/// Park/unpark round trips between two threads.
pub const PARK_ITERATIONS: usize = 500;
/// Batches of [`BATCH_NOPS`] null operations.
pub const BATCH_ITERATIONS: usize = 500;
/// Null operations per batch (one kernel entry each batch).
pub const BATCH_NOPS: usize = 32;
/// Untimed iterations before each measurement.
pub const WARM_UP: usize = 10;

/// Median and 10th/90th percentiles of a path's cycle counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    /// 50th percentile.
    pub median: u64,
    /// 10th percentile.
    pub p10: u64,
    /// 90th percentile.
    pub p90: u64,
}

impl Spread {
    /// Each percentile divided by `operations` (rounded down): the cost
    /// per operation of a sample that timed `operations` of them. Division
    /// keeps the order of samples, so these are the percentiles of the
    /// per-operation costs.
    pub fn per_operation(self, operations: u64) -> Self {
        let operations = operations.max(1);
        Self {
            median: self.median / operations,
            p10: self.p10 / operations,
            p90: self.p90 / operations,
        }
    }
}

/// Sort `samples` and take the spread; None when there are none.
pub fn spread(samples: &mut [u64]) -> Option<Spread> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |percent: usize| samples[(samples.len() - 1) * percent / 100];
    Some(Spread {
        median: at(50),
        p10: at(10),
        p90: at(90),
    })
}

/// Time `iterations` runs of `operation` with [`crate::cycles`] after
/// [`WARM_UP`] untimed runs; `samples` must hold `iterations` values (the
/// caller provides the memory). The first error stops the measurement.
pub fn measure<E>(
    samples: &mut [u64],
    mut operation: impl FnMut() -> Result<(), E>,
) -> Result<Option<Spread>, E> {
    for _ in 0..WARM_UP {
        operation()?;
    }
    for sample in samples.iter_mut() {
        let start = crate::cycles();
        operation()?;
        *sample = crate::cycles().wrapping_sub(start);
    }
    Ok(spread(samples))
}

/// One user-bench result: a null operation, a round trip between two
/// processes, spawn-to-exit, thread spawn-to-join, a park/unpark round trip
/// between two threads, and the per-operation cost of a batch of null
/// operations, in cycles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserBenchLine<'a> {
    /// `None` on capOS; `Some("linux")` for the Linux guest.
    pub os: Option<&'a str>,
    /// Null ring operation (capOS) or `getppid` (Linux).
    pub nop: Spread,
    /// Endpoint call (capOS) or 8-byte pipe ping-pong (Linux).
    pub call: Spread,
    /// Spawn and wait for exit of the empty program.
    pub spawn: Spread,
    /// Spawn a thread of this process that returns at once, and join it.
    pub thread: Spread,
    /// Hand a word back and forth between two threads that park on it
    /// (capOS ParkSpace, Linux futex): one round trip.
    pub park: Spread,
    /// [`BATCH_NOPS`] null operations with one kernel entry (capOS: 32
    /// `Nop`s, one `cap_enter`), per operation; Linux has no batched null
    /// system call, so its row is 32 `getppid`s, per call.
    pub batch: Spread,
}

impl fmt::Display for UserBenchLine<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(USER_BENCH_TAG)?;
        if let Some(os) = self.os {
            write!(formatter, " os={os}")?;
        }
        for (name, spread) in [
            ("nop", self.nop),
            ("call", self.call),
            ("spawn", self.spawn),
            ("thread", self.thread),
            ("park", self.park),
            ("batch", self.batch),
        ] {
            write!(
                formatter,
                " {name}_median={} {name}_p10={} {name}_p90={}",
                spread.median, spread.p10, spread.p90
            )?;
        }
        formatter.write_str(" verified=true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_sorted_percentiles() {
        let mut samples: std::vec::Vec<u64> = (1..=11).rev().collect();
        assert_eq!(
            spread(&mut samples),
            Some(Spread {
                median: 6,
                p10: 2,
                p90: 10
            })
        );
        assert_eq!(spread(&mut []), None);
    }

    #[test]
    fn formats_the_user_bench_line() {
        let one = Spread {
            median: 3,
            p10: 2,
            p90: 4,
        };
        let line = UserBenchLine {
            os: Some("linux"),
            nop: one,
            call: one,
            spawn: one,
            thread: one,
            park: one,
            batch: Spread {
                median: 7,
                p10: 6,
                p90: 8,
            },
        };
        assert_eq!(
            std::format!("{line}"),
            "[user-bench] os=linux nop_median=3 nop_p10=2 nop_p90=4 call_median=3 call_p10=2 call_p90=4 spawn_median=3 spawn_p10=2 spawn_p90=4 thread_median=3 thread_p10=2 thread_p90=4 park_median=3 park_p10=2 park_p90=4 batch_median=7 batch_p10=6 batch_p90=8 verified=true"
        );
    }

    #[test]
    fn per_operation_divides_every_percentile() {
        let batch = Spread {
            median: 3200,
            p10: 3100,
            p90: 6431,
        };
        assert_eq!(
            batch.per_operation(32),
            Spread {
                median: 100,
                p10: 96,
                p90: 200
            }
        );
        assert_eq!(batch.per_operation(0), batch);
    }
}
