//! The compact result lines, formatted in one place for every system.
//!
//! `[smp-process-scale] [os=<os> ]cpus=<n> workers=<n> range=<lo>..<hi> primes=<count> checksum=<hex> elapsed=<cycles> verified=<bool>`
//!
//! `[thread-scale] [os=<os> ]cpus=<n> threads=<n> blocks=<b> rounds=<r> checksum=<hex> spawn_ready=<cycles> work=<cycles> shutdown=<cycles> total=<cycles> elapsed=<cycles> verified=<bool>`
//! (`elapsed` is `work`, as in the seed.)
//!
//! capOS prints no `os=` word (the contract's line is the capOS line);
//! baselines insert `os=linux` or `os=native` right after the tag, which is
//! the rule the host harness applies to every baseline line.

use core::fmt;

/// Tag of the smp-process-scale result line.
pub const PROCESS_SCALE_TAG: &str = "[smp-process-scale]";

/// One smp-process-scale result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessScaleLine<'a> {
    /// `None` on capOS; `Some("linux")` / `Some("native")` for baselines.
    pub os: Option<&'a str>,
    /// CPUs the system had (online CPUs, or the pinned set natively).
    pub cpus: u32,
    /// Worker processes.
    pub workers: u32,
    /// The counted interval.
    pub interval: crate::Interval,
    /// Primes found by all workers together.
    pub primes: u64,
    /// Sum of those primes.
    pub checksum: u64,
    /// Cycles from before the first worker started to after the last result arrived.
    pub elapsed: u64,
    /// Whether primes and checksum equal the known answer.
    pub verified: bool,
}

impl fmt::Display for ProcessScaleLine<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(PROCESS_SCALE_TAG)?;
        if let Some(os) = self.os {
            write!(formatter, " os={os}")?;
        }
        write!(
            formatter,
            " cpus={} workers={} range={}..{} primes={} checksum={:#018x} elapsed={} verified={}",
            self.cpus,
            self.workers,
            self.interval.low,
            self.interval.high,
            self.primes,
            self.checksum,
            self.elapsed,
            self.verified
        )
    }
}

/// Tag of the thread-scale result line.
pub const THREAD_SCALE_TAG: &str = "[thread-scale]";

/// One thread-scale result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadScaleLine<'a> {
    /// `None` on capOS; `Some("linux")` / `Some("native")` for baselines.
    pub os: Option<&'a str>,
    /// CPUs the system had.
    pub cpus: u32,
    /// Worker threads.
    pub threads: u32,
    /// The hashed shape.
    pub shape: crate::hash::Shape,
    /// First 8 bytes of the root over all slots.
    pub checksum: u64,
    /// The run's phases.
    pub phases: crate::thread_scale::Phases,
    /// Whether the root is the host's and every worker ended cleanly.
    pub verified: bool,
}

impl fmt::Display for ThreadScaleLine<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(THREAD_SCALE_TAG)?;
        if let Some(os) = self.os {
            write!(formatter, " os={os}")?;
        }
        let phases = &self.phases;
        write!(
            formatter,
            " cpus={} threads={} blocks={} rounds={} checksum={:#018x} spawn_ready={} work={} shutdown={} total={} elapsed={} verified={}",
            self.cpus,
            self.threads,
            self.shape.blocks,
            self.shape.rounds,
            self.checksum,
            phases.spawn_ready,
            phases.work,
            phases.shutdown,
            phases.total,
            phases.work,
            self.verified
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_seed_line() {
        let line = ProcessScaleLine {
            os: None,
            cpus: 2,
            workers: 2,
            interval: crate::Interval { low: 10, high: 20 },
            primes: 4,
            checksum: 60,
            elapsed: 1234,
            verified: true,
        };
        assert_eq!(
            std::format!("{line}"),
            "[smp-process-scale] cpus=2 workers=2 range=10..20 primes=4 checksum=0x000000000000003c elapsed=1234 verified=true"
        );
        let linux = ProcessScaleLine {
            os: Some("linux"),
            ..line
        };
        assert!(std::format!("{linux}").starts_with("[smp-process-scale] os=linux cpus=2 "));
    }

    #[test]
    fn formats_the_thread_scale_line() {
        let line = ThreadScaleLine {
            os: None,
            cpus: 2,
            threads: 2,
            shape: crate::hash::DEFAULT_SHAPE,
            checksum: 0xab,
            phases: crate::thread_scale::Phases {
                spawn_ready: 1,
                work: 20,
                shutdown: 3,
                total: 24,
            },
            verified: true,
        };
        assert_eq!(
            std::format!("{line}"),
            "[thread-scale] cpus=2 threads=2 blocks=262144 rounds=64 checksum=0x00000000000000ab spawn_ready=1 work=20 shutdown=3 total=24 elapsed=20 verified=true"
        );
        let native = ThreadScaleLine {
            os: Some("native"),
            ..line
        };
        assert!(std::format!("{native}").starts_with("[thread-scale] os=native cpus=2 "));
    }
}
