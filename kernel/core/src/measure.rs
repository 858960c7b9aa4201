//! Guest measurement of the thread-scale benchmark (kernel feature `measure`):
//! what the kernel counts, how a program's phase marks cut the counts into
//! phases, and the `[measure]` serial lines the kernel prints and the host
//! parses. One definition, so kernel and host cannot drift.
//!
//! Invariants:
//! - The counters are event counts that only grow while a measurement is
//!   active; a phase's figure is the difference of two snapshots, so the
//!   total (mark 0 to mark 3) is exactly the sum of the three phases.
//! - Marks are taken in order 0, 1, 2, 3, each once per boot ([`Marks`]):
//!   anything else is refused and changes nothing.
//! - The line format is strict: the prefix [`LINE_PREFIX`], fields in a
//!   fixed order separated by one space, decimal counts, lower-case hex
//!   PCs. [`parse_line`] accepts exactly what the `Display` impls write.
//! - No allocation: the kernel formats into its console, the host parses
//!   one `&str` at a time.

use core::fmt;

/// Every `[measure]` line starts with this.
pub const LINE_PREFIX: &str = "[measure] ";

/// The most PCs the kernel prints (the most sampled first).
pub const TOP_PCS: usize = 64;

/// User-PC samples each CPU keeps; later ticks are counted as dropped.
pub const SAMPLES_PER_CPU: usize = 8192;

/// One kernel event counter. Each CPU counts its own events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Run-queue lock acquisitions.
    RunQueueLocks,
    /// Acquisitions whose first `try_lock` failed (the CPU had to spin).
    RunQueueContended,
    /// TSC cycles spent spinning for run-queue locks.
    RunQueueWaitCycles,
    /// TSC cycles run-queue locks were held.
    RunQueueHoldCycles,
    /// Threads a CPU took from its own queue.
    Picks,
    /// Threads a CPU took from another CPU's queue.
    Steals,
    /// Wake-ups (and new threads) queued on the waker's own CPU.
    WakeLocal,
    /// Wake-ups (and new threads) queued on another CPU.
    WakeRemote,
    /// Reschedule IPIs sent (wake-ups of idle CPUs and kills).
    RescheduleIpiSent,
    /// Reschedule IPIs taken.
    RescheduleIpiReceived,
    /// TLB shootdown IPIs sent (one per target CPU).
    TlbIpiSent,
    /// TLB shootdown IPIs taken.
    TlbIpiReceived,
    /// CR3 writes: address-space switches and full local TLB flushes.
    Cr3Writes,
    /// TLB shootdowns started (one per unmapping that needed one).
    Shootdowns,
    /// Timer ticks that interrupted user mode.
    TicksUser,
    /// Timer ticks that interrupted the kernel (the idle halt).
    TicksKernel,
    /// Bytes written to the serial port.
    SerialBytes,
}

impl Counter {
    /// How many counters there are.
    pub const COUNT: usize = 17;

    /// Every counter, in line order.
    pub const ALL: [Counter; Counter::COUNT] = [
        Counter::RunQueueLocks,
        Counter::RunQueueContended,
        Counter::RunQueueWaitCycles,
        Counter::RunQueueHoldCycles,
        Counter::Picks,
        Counter::Steals,
        Counter::WakeLocal,
        Counter::WakeRemote,
        Counter::RescheduleIpiSent,
        Counter::RescheduleIpiReceived,
        Counter::TlbIpiSent,
        Counter::TlbIpiReceived,
        Counter::Cr3Writes,
        Counter::Shootdowns,
        Counter::TicksUser,
        Counter::TicksKernel,
        Counter::SerialBytes,
    ];

    /// The counter's field name in a phase line.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::RunQueueLocks => "rq_lock",
            Counter::RunQueueContended => "rq_contended",
            Counter::RunQueueWaitCycles => "rq_wait_cycles",
            Counter::RunQueueHoldCycles => "rq_hold_cycles",
            Counter::Picks => "picks",
            Counter::Steals => "steals",
            Counter::WakeLocal => "wake_local",
            Counter::WakeRemote => "wake_remote",
            Counter::RescheduleIpiSent => "resched_ipi_sent",
            Counter::RescheduleIpiReceived => "resched_ipi_received",
            Counter::TlbIpiSent => "tlb_ipi_sent",
            Counter::TlbIpiReceived => "tlb_ipi_received",
            Counter::Cr3Writes => "cr3_writes",
            Counter::Shootdowns => "shootdowns",
            Counter::TicksUser => "ticks_user",
            Counter::TicksKernel => "ticks_kernel",
            Counter::SerialBytes => "serial_bytes",
        }
    }

    /// The counter's position in [`Counter::ALL`] and in [`Counters`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One value per [`Counter`], in [`Counter::ALL`] order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub [u64; Counter::COUNT]);

impl Counters {
    /// All zero.
    pub const ZERO: Counters = Counters([0; Counter::COUNT]);

    /// The value of `counter`.
    pub const fn get(&self, counter: Counter) -> u64 {
        self.0[counter.index()]
    }

    /// Add `other` counter by counter (wrapping, like the hardware counters).
    pub fn add(&mut self, other: &Counters) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = mine.wrapping_add(theirs);
        }
    }

    /// What happened between snapshot `earlier` and `self`, counter by
    /// counter (wrapping: the counters only grow, so this is exact).
    #[must_use]
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut difference = Counters::ZERO;
        for ((out, now), then) in difference.0.iter_mut().zip(self.0).zip(earlier.0) {
            *out = now.wrapping_sub(then);
        }
        difference
    }
}

/// A stretch of the benchmark between two marks, or all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Mark 0 to mark 1: spawning the workers until all are ready.
    SpawnReady,
    /// Mark 1 to mark 2: the timed work.
    Work,
    /// Mark 2 to mark 3: from the last worker done to the last join.
    Shutdown,
    /// Mark 0 to mark 3.
    Total,
}

impl Phase {
    /// Every phase, in line order (the total last).
    pub const ALL: [Phase; 4] = [
        Phase::SpawnReady,
        Phase::Work,
        Phase::Shutdown,
        Phase::Total,
    ];

    /// The phase's name in a phase line.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::SpawnReady => "spawn_ready",
            Phase::Work => "work",
            Phase::Shutdown => "shutdown",
            Phase::Total => "total",
        }
    }

    /// The phase called `name`.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.name() == name)
    }

    /// The marks that open and close the phase.
    pub const fn marks(self) -> (usize, usize) {
        match self {
            Phase::SpawnReady => (0, 1),
            Phase::Work => (1, 2),
            Phase::Shutdown => (2, 3),
            Phase::Total => (0, 3),
        }
    }
}

/// The last mark, which ends the measurement.
pub const LAST_MARK: u64 = 3;

/// Why a mark was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkError {
    /// Not 0..=[`LAST_MARK`].
    OutOfRange,
    /// Not the next mark.
    OutOfOrder {
        /// The mark that would have been taken; `None` after the last.
        expected: Option<u64>,
    },
}

/// What a successful mark means for the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum MarkOutcome {
    /// Mark 0: start counting and sampling.
    Started,
    /// Mark 1 or 2: a phase boundary.
    Recorded,
    /// The last mark: stop, then print [`Marks::phases`].
    Finished,
}

/// The snapshots taken at the marks of one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    /// The next mark expected (`LAST_MARK + 1`: finished).
    next: u64,
    snapshots: [Counters; 4],
}

impl Default for Marks {
    fn default() -> Self {
        Self::new()
    }
}

impl Marks {
    /// No mark taken yet.
    pub const fn new() -> Self {
        Self {
            next: 0,
            snapshots: [Counters::ZERO; 4],
        }
    }

    /// Record mark `mark` with the counters `now`. Marks must come in order,
    /// each once; a refused mark changes nothing.
    pub fn mark(&mut self, mark: u64, now: Counters) -> Result<MarkOutcome, MarkError> {
        if mark > LAST_MARK {
            return Err(MarkError::OutOfRange);
        }
        if mark != self.next {
            return Err(MarkError::OutOfOrder {
                expected: (self.next <= LAST_MARK).then_some(self.next),
            });
        }
        self.snapshots[mark as usize] = now;
        self.next += 1;
        Ok(match mark {
            0 => MarkOutcome::Started,
            LAST_MARK => MarkOutcome::Finished,
            _ => MarkOutcome::Recorded,
        })
    }

    /// Whether mark 0 has been taken and the last one not yet.
    pub const fn active(&self) -> bool {
        self.next > 0 && self.next <= LAST_MARK
    }

    /// Each phase's counters, in [`Phase::ALL`] order, once every mark is in.
    pub fn phases(&self) -> Option<[(Phase, Counters); 4]> {
        if self.next <= LAST_MARK {
            return None;
        }
        Some(Phase::ALL.map(|phase| {
            let (open, close) = phase.marks();
            (phase, self.snapshots[close].since(&self.snapshots[open]))
        }))
    }
}

/// `[measure] phase=<name> rq_lock=<n> ... serial_bytes=<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseLine {
    /// Which phase.
    pub phase: Phase,
    /// Its counters.
    pub counters: Counters,
}

impl fmt::Display for PhaseLine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{LINE_PREFIX}phase={}", self.phase.name())?;
        for counter in Counter::ALL {
            write!(
                formatter,
                " {}={}",
                counter.name(),
                self.counters.get(counter)
            )?;
        }
        Ok(())
    }
}

/// `[measure] pc=0x<hex> samples=<n>`: one user PC and how many ticks found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcLine {
    /// The user-mode instruction pointer.
    pub pc: u64,
    /// Ticks that interrupted it.
    pub samples: u64,
}

impl fmt::Display for PcLine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{LINE_PREFIX}pc={:#x} samples={}",
            self.pc, self.samples
        )
    }
}

/// `[measure] pc_samples total=<n> dropped=<n>`: every sample kept (printed
/// or not) and the ticks that found a CPU's buffer full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplesLine {
    /// Samples kept, over all PCs.
    pub total: u64,
    /// Samples lost to full buffers.
    pub dropped: u64,
}

impl fmt::Display for SamplesLine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{LINE_PREFIX}pc_samples total={} dropped={}",
            self.total, self.dropped
        )
    }
}

/// One parsed `[measure]` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A phase's counters.
    Phase(PhaseLine),
    /// One sampled PC.
    Pc(PcLine),
    /// The sample totals.
    Samples(SamplesLine),
}

/// Why a line is not a well-formed `[measure]` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    /// It does not start with [`LINE_PREFIX`].
    NoPrefix,
    /// Its first word is none of `phase=`, `pc=`, `pc_samples`.
    UnknownKind,
    /// `phase=` names no [`Phase`].
    UnknownPhase,
    /// A field is missing or another field stands in its place.
    ExpectedField {
        /// The field's name.
        expected: &'static str,
    },
    /// A field is not a number of its form (decimal, or `0x` hex for `pc`).
    BadNumber {
        /// The field's name.
        field: &'static str,
    },
    /// Something follows the last field.
    TrailingText,
}

impl fmt::Display for LineError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NoPrefix => write!(formatter, "does not start with `{LINE_PREFIX}`"),
            LineError::UnknownKind => {
                write!(formatter, "is none of `phase=`, `pc=`, `pc_samples`")
            }
            LineError::UnknownPhase => write!(
                formatter,
                "names no phase (spawn_ready, work, shutdown, total)"
            ),
            LineError::ExpectedField { expected } => {
                write!(formatter, "lacks field `{expected}=` in its place")
            }
            LineError::BadNumber { field } => write!(formatter, "field `{field}` is not a number"),
            LineError::TrailingText => write!(formatter, "has text after its last field"),
        }
    }
}

/// Parse one serial line (without its line ending) written by the
/// `Display` impls above. Anything else is an error.
pub fn parse_line(text: &str) -> Result<Line, LineError> {
    let rest = text.strip_prefix(LINE_PREFIX).ok_or(LineError::NoPrefix)?;
    let mut words = Words(rest.split(' '));
    let first = words.0.next().ok_or(LineError::UnknownKind)?;
    let line = if let Some(name) = first.strip_prefix("phase=") {
        let phase = Phase::from_name(name).ok_or(LineError::UnknownPhase)?;
        let mut counters = Counters::ZERO;
        for counter in Counter::ALL {
            counters.0[counter.index()] = words.decimal(counter.name())?;
        }
        Line::Phase(PhaseLine { phase, counters })
    } else if let Some(hex) = first.strip_prefix("pc=") {
        let pc = parse_hex(hex).ok_or(LineError::BadNumber { field: "pc" })?;
        let samples = words.decimal("samples")?;
        Line::Pc(PcLine { pc, samples })
    } else if first == "pc_samples" {
        let total = words.decimal("total")?;
        let dropped = words.decimal("dropped")?;
        Line::Samples(SamplesLine { total, dropped })
    } else {
        return Err(LineError::UnknownKind);
    };
    match words.0.next() {
        None => Ok(line),
        Some(_) => Err(LineError::TrailingText),
    }
}

/// The space-separated words of a line after its kind.
struct Words<'a>(core::str::Split<'a, char>);

impl Words<'_> {
    /// The next word, which must be `<name>=<decimal>`.
    fn decimal(&mut self, name: &'static str) -> Result<u64, LineError> {
        let value = self
            .0
            .next()
            .and_then(|word| word.strip_prefix(name))
            .and_then(|word| word.strip_prefix('='))
            .ok_or(LineError::ExpectedField { expected: name })?;
        parse_decimal(value).ok_or(LineError::BadNumber { field: name })
    }
}

/// A decimal `u64` written without sign or leading zeros ("0" itself is fine).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// `0x` and lower-case hex digits without leading zeros, as `{:#x}` writes.
fn parse_hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    let canonical = !digits.is_empty()
        && digits
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        && (digits == "0" || !digits.starts_with('0'));
    canonical
        .then(|| u64::from_str_radix(digits, 16).ok())
        .flatten()
}

/// Fill `top` with the most frequent values of the sorted `samples` as
/// `(value, count)`, the most frequent first (equal counts: lower value
/// first), and return how many entries were filled.
pub fn most_frequent(samples: &[u64], top: &mut [(u64, u64)]) -> usize {
    debug_assert!(samples.windows(2).all(|pair| pair[0] <= pair[1]));
    let mut filled = 0;
    let mut start = 0;
    while start < samples.len() {
        let value = samples[start];
        let run = samples[start..]
            .iter()
            .take_while(|&&sample| sample == value)
            .count() as u64;
        start += run as usize;
        // Keep `top[..filled]` ordered: find where this run goes.
        let better = |entry: &(u64, u64)| entry.1 > run || (entry.1 == run && entry.0 < value);
        let position = top[..filled]
            .iter()
            .take_while(|entry| better(entry))
            .count();
        if position >= top.len() {
            continue;
        }
        if filled < top.len() {
            filled += 1;
        }
        top.copy_within(position..filled - 1, position + 1);
        top[position] = (value, run);
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counters(seed: u64) -> Counters {
        let mut counters = Counters::ZERO;
        for (index, value) in counters.0.iter_mut().enumerate() {
            *value = seed * 100 + index as u64;
        }
        counters
    }

    #[test]
    fn counter_names_are_distinct_and_in_order() {
        for (index, counter) in Counter::ALL.into_iter().enumerate() {
            assert_eq!(counter.index(), index);
            for other in &Counter::ALL[index + 1..] {
                assert_ne!(counter.name(), other.name());
            }
        }
    }

    #[test]
    fn marks_in_order_give_phases_that_sum_to_the_total() {
        let mut marks = Marks::new();
        assert!(!marks.active());
        assert_eq!(marks.mark(0, counters(1)), Ok(MarkOutcome::Started));
        assert!(marks.active());
        assert_eq!(marks.phases(), None);
        assert_eq!(marks.mark(1, counters(3)), Ok(MarkOutcome::Recorded));
        assert_eq!(marks.mark(2, counters(4)), Ok(MarkOutcome::Recorded));
        assert_eq!(marks.mark(3, counters(10)), Ok(MarkOutcome::Finished));
        assert!(!marks.active());
        let phases = marks.phases().unwrap();
        assert_eq!(phases[0], (Phase::SpawnReady, Counters([200; 17])));
        assert_eq!(phases[1], (Phase::Work, Counters([100; 17])));
        assert_eq!(phases[2], (Phase::Shutdown, Counters([600; 17])));
        let mut sum = Counters::ZERO;
        for (_, phase) in &phases[..3] {
            sum.add(phase);
        }
        assert_eq!(phases[3], (Phase::Total, sum));
    }

    #[test]
    fn marks_out_of_order_or_range_are_refused_and_change_nothing() {
        let mut marks = Marks::new();
        assert_eq!(marks.mark(4, counters(1)), Err(MarkError::OutOfRange));
        assert_eq!(
            marks.mark(1, counters(1)),
            Err(MarkError::OutOfOrder { expected: Some(0) })
        );
        assert_eq!(marks, Marks::new());
        let _ = marks.mark(0, counters(1)).unwrap();
        assert_eq!(
            marks.mark(0, counters(2)),
            Err(MarkError::OutOfOrder { expected: Some(1) })
        );
        assert_eq!(
            marks.mark(2, counters(2)),
            Err(MarkError::OutOfOrder { expected: Some(1) })
        );
        for mark in 1..=3 {
            let _ = marks.mark(mark, counters(mark + 1)).unwrap();
        }
        assert_eq!(
            marks.mark(0, counters(9)),
            Err(MarkError::OutOfOrder { expected: None })
        );
        assert_eq!(
            marks.mark(u64::MAX, counters(9)),
            Err(MarkError::OutOfRange)
        );
    }

    #[test]
    fn lines_render_as_documented() {
        let line = PhaseLine {
            phase: Phase::Work,
            counters: counters(0),
        };
        assert_eq!(
            line.to_string(),
            "[measure] phase=work rq_lock=0 rq_contended=1 rq_wait_cycles=2 rq_hold_cycles=3 \
             picks=4 steals=5 wake_local=6 wake_remote=7 resched_ipi_sent=8 \
             resched_ipi_received=9 tlb_ipi_sent=10 tlb_ipi_received=11 cr3_writes=12 \
             shootdowns=13 ticks_user=14 ticks_kernel=15 serial_bytes=16"
        );
        let pc = PcLine {
            pc: 0x40_1a2b,
            samples: 7,
        };
        assert_eq!(pc.to_string(), "[measure] pc=0x401a2b samples=7");
        let samples = SamplesLine {
            total: 9,
            dropped: 0,
        };
        assert_eq!(
            samples.to_string(),
            "[measure] pc_samples total=9 dropped=0"
        );
    }

    #[test]
    fn malformed_lines_are_rejected_with_the_reason() {
        let good = PhaseLine {
            phase: Phase::Total,
            counters: counters(2),
        }
        .to_string();
        assert!(parse_line(&good).is_ok());
        let cases: &[(&str, LineError)] = &[
            ("[measure]phase=work", LineError::NoPrefix),
            ("measure pc=0x1 samples=1", LineError::NoPrefix),
            ("[measure] ", LineError::UnknownKind),
            ("[measure] pcs=0x1 samples=1", LineError::UnknownKind),
            ("[measure] phase=warmup rq_lock=1", LineError::UnknownPhase),
            (
                "[measure] phase=work rq_lock=1",
                LineError::ExpectedField {
                    expected: "rq_contended",
                },
            ),
            (
                "[measure] pc=0x1 sample=1",
                LineError::ExpectedField {
                    expected: "samples",
                },
            ),
            (
                "[measure] pc=0x1  samples=1",
                LineError::ExpectedField {
                    expected: "samples",
                },
            ),
            (
                "[measure] pc=401000 samples=1",
                LineError::BadNumber { field: "pc" },
            ),
            (
                "[measure] pc=0x40AB samples=1",
                LineError::BadNumber { field: "pc" },
            ),
            (
                "[measure] pc=0x0400 samples=1",
                LineError::BadNumber { field: "pc" },
            ),
            (
                "[measure] pc=0x1 samples=-1",
                LineError::BadNumber { field: "samples" },
            ),
            (
                "[measure] pc=0x1 samples=01",
                LineError::BadNumber { field: "samples" },
            ),
            (
                "[measure] pc=0x1 samples=18446744073709551616",
                LineError::BadNumber { field: "samples" },
            ),
            ("[measure] pc=0x1 samples=1 extra", LineError::TrailingText),
            ("[measure] pc=0x1 samples=1 ", LineError::TrailingText),
            (
                "[measure] pc_samples total=1",
                LineError::ExpectedField {
                    expected: "dropped",
                },
            ),
        ];
        for (text, error) in cases {
            assert_eq!(parse_line(text), Err(*error), "{text:?}");
        }
    }

    #[test]
    fn most_frequent_orders_by_count_then_value() {
        let samples = [1, 1, 2, 3, 3, 3, 4, 4, 5];
        let mut top = [(0, 0); 3];
        assert_eq!(most_frequent(&samples, &mut top), 3);
        assert_eq!(top, [(3, 3), (1, 2), (4, 2)]);
        let mut wide = [(0, 0); 8];
        assert_eq!(most_frequent(&samples, &mut wide), 5);
        assert_eq!(&wide[..5], &[(3, 3), (1, 2), (4, 2), (2, 1), (5, 1)]);
        assert_eq!(most_frequent(&[], &mut wide), 0);
        assert_eq!(most_frequent(&samples, &mut []), 0);
    }

    proptest! {
        #[test]
        fn lines_round_trip(
            phase in 0usize..4,
            values in proptest::array::uniform17(any::<u64>()),
            pc in any::<u64>(),
            samples in any::<u64>(),
            dropped in any::<u64>(),
        ) {
            let phase_line = PhaseLine { phase: Phase::ALL[phase], counters: Counters(values) };
            prop_assert_eq!(parse_line(&phase_line.to_string()), Ok(Line::Phase(phase_line)));
            let pc_line = PcLine { pc, samples };
            prop_assert_eq!(parse_line(&pc_line.to_string()), Ok(Line::Pc(pc_line)));
            let samples_line = SamplesLine { total: samples, dropped };
            prop_assert_eq!(parse_line(&samples_line.to_string()), Ok(Line::Samples(samples_line)));
        }

        #[test]
        fn parse_never_panics(text in "(\\[measure\\] )?[a-z_=0-9x ]{0,60}") {
            let _ = parse_line(&text);
        }

        #[test]
        fn most_frequent_matches_a_full_count(
            mut samples in proptest::collection::vec(0u64..12, 0..80),
            width in 0usize..6,
        ) {
            samples.sort_unstable();
            let mut counts: std::vec::Vec<(u64, u64)> = std::vec::Vec::new();
            for &sample in &samples {
                match counts.iter_mut().find(|(value, _)| *value == sample) {
                    Some((_, count)) => *count += 1,
                    None => counts.push((sample, 1)),
                }
            }
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            counts.truncate(width);
            let mut top = std::vec![(0, 0); width];
            let filled = most_frequent(&samples, &mut top);
            prop_assert_eq!(&top[..filled], &counts[..]);
        }
    }
}
