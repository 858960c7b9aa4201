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
/// processes, and spawn-to-exit, in cycles.
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
        };
        assert_eq!(
            std::format!("{line}"),
            "[user-bench] os=linux nop_median=3 nop_p10=2 nop_p90=4 call_median=3 call_p10=2 call_p90=4 spawn_median=3 spawn_p10=2 spawn_p90=4 verified=true"
        );
    }
}
