//! Fixed little-endian records between a coordinator and its workers: the
//! capOS endpoint messages and the Linux pipe records are the same bytes.
//!
//! Invariants: every record is exactly [`RECORD_BYTES`] long and starts
//! with its kind byte; decoding checks length and kind and never panics.

use crate::{Interval, Tally};

/// Length of every record.
pub const RECORD_BYTES: usize = 32;

const READY: u8 = b'R';
const ASSIGNMENT: u8 = b'A';
const REPORT: u8 = b'D';

/// A worker asking for its share.
pub const READY_RECORD: [u8; RECORD_BYTES] = {
    let mut record = [0u8; RECORD_BYTES];
    record[0] = READY;
    record
};

/// Whether `bytes` is a ready record.
pub fn is_ready(bytes: &[u8]) -> bool {
    bytes == READY_RECORD
}

/// Which share a worker counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Share index, `0..shares`.
    pub index: u32,
    /// Number of shares (workers).
    pub shares: u32,
    /// The whole interval (the worker computes its share itself).
    pub interval: Interval,
}

/// What a worker found in its share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Share index.
    pub index: u32,
    /// Primes in the share and their sum.
    pub count: u64,
    /// Wrapping sum of those primes.
    pub sum: u64,
}

impl Report {
    /// The tally this report carries (no work figure).
    pub fn tally(&self) -> Tally {
        Tally {
            count: self.count,
            sum: self.sum,
            work: 0,
        }
    }
}

fn put(record: &mut [u8; RECORD_BYTES], at: usize, bytes: &[u8]) {
    record[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl Assignment {
    /// The record bytes.
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut record = [0u8; RECORD_BYTES];
        record[0] = ASSIGNMENT;
        put(&mut record, 4, &self.index.to_le_bytes());
        put(&mut record, 8, &self.shares.to_le_bytes());
        put(&mut record, 16, &self.interval.low.to_le_bytes());
        put(&mut record, 24, &self.interval.high.to_le_bytes());
        record
    }

    /// Decode an assignment record; None for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Assignment> {
        (bytes.len() == RECORD_BYTES && bytes[0] == ASSIGNMENT).then(|| Assignment {
            index: u32_at(bytes, 4),
            shares: u32_at(bytes, 8),
            interval: Interval {
                low: u64_at(bytes, 16),
                high: u64_at(bytes, 24),
            },
        })
    }

    /// The interval this assignment's worker counts.
    pub fn share(&self) -> Result<Interval, crate::primes::PrimesError> {
        self.interval.share(self.shares, self.index)
    }
}

impl Report {
    /// The record bytes.
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut record = [0u8; RECORD_BYTES];
        record[0] = REPORT;
        put(&mut record, 4, &self.index.to_le_bytes());
        put(&mut record, 8, &self.count.to_le_bytes());
        put(&mut record, 16, &self.sum.to_le_bytes());
        record
    }

    /// Decode a report record; None for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Report> {
        (bytes.len() == RECORD_BYTES && bytes[0] == REPORT).then(|| Report {
            index: u32_at(bytes, 4),
            count: u64_at(bytes, 8),
            sum: u64_at(bytes, 16),
        })
    }
}

/// Collects the reports of one run and judges them: every share exactly
/// once, and together the known answer.
#[derive(Clone, Copy, Debug)]
pub struct Collector {
    shares: u32,
    seen: u64,
    duplicated: bool,
    total: Tally,
}

/// Most shares a [`Collector`] tracks.
pub const MAX_SHARES: u32 = 64;

impl Collector {
    /// A collector for `shares` shares (1..=[`MAX_SHARES`]).
    pub fn new(shares: u32) -> Option<Collector> {
        (1..=MAX_SHARES).contains(&shares).then_some(Collector {
            shares,
            seen: 0,
            duplicated: false,
            total: Tally::default(),
        })
    }

    /// Take one report; false if its index is out of range (the run then
    /// cannot verify).
    pub fn add(&mut self, report: &Report) -> bool {
        if report.index >= self.shares {
            self.duplicated = true;
            return false;
        }
        let bit = 1u64 << report.index;
        if self.seen & bit != 0 {
            self.duplicated = true;
        }
        self.seen |= bit;
        self.total = self.total.combine(report.tally());
        true
    }

    /// Whether every share reported.
    pub fn complete(&self) -> bool {
        self.seen.count_ones() == self.shares
    }

    /// The combined tally so far.
    pub fn total(&self) -> Tally {
        self.total
    }

    /// Every share reported exactly once and the total equals `known`.
    pub fn verified(&self, known: &Tally) -> bool {
        self.complete() && !self.duplicated && self.total.matches(known)
    }

    /// The result line of a run of the default interval: verified only if
    /// every worker exited cleanly and the reports give the known answer.
    pub fn process_scale_line<'a>(
        &self,
        os: Option<&'a str>,
        cpus: u32,
        elapsed: u64,
        workers_exited_cleanly: bool,
    ) -> crate::line::ProcessScaleLine<'a> {
        crate::line::ProcessScaleLine {
            os,
            cpus,
            workers: self.shares,
            interval: crate::DEFAULT_INTERVAL,
            primes: self.total.count,
            checksum: self.total.sum,
            elapsed,
            verified: workers_exited_cleanly && self.verified(&crate::DEFAULT_TALLY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_other_bytes() {
        let assignment = Assignment {
            index: 3,
            shares: 4,
            interval: crate::DEFAULT_INTERVAL,
        };
        assert_eq!(Assignment::decode(&assignment.encode()), Some(assignment));
        let report = Report {
            index: 1,
            count: 99,
            sum: u64::MAX,
        };
        assert_eq!(Report::decode(&report.encode()), Some(report));
        assert_eq!(Report::decode(&assignment.encode()), None);
        assert_eq!(Assignment::decode(&report.encode()[..8]), None);
        assert!(is_ready(&READY_RECORD) && !is_ready(&report.encode()));
    }

    #[test]
    fn the_collector_needs_every_share_once() {
        let known = Tally {
            count: 3,
            sum: 30,
            work: 0,
        };
        let report = |index, count, sum| Report { index, count, sum };
        let mut collector = Collector::new(2).unwrap();
        assert!(collector.add(&report(0, 1, 10)));
        assert!(!collector.verified(&known));
        assert!(collector.add(&report(1, 2, 20)));
        assert!(collector.verified(&known));

        let mut twice = Collector::new(2).unwrap();
        twice.add(&report(0, 1, 10));
        twice.add(&report(0, 2, 20));
        assert!(
            !twice.verified(&known),
            "a duplicated share must not verify"
        );

        let mut wrong = Collector::new(1).unwrap();
        wrong.add(&report(0, 3, 31));
        assert!(!wrong.verified(&known));
        assert!(!wrong.add(&report(5, 0, 0)));
        assert!(Collector::new(0).is_none() && Collector::new(65).is_none());
    }
}
