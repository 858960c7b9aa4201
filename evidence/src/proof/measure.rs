//! Guest measurement in a bundle (kernel feature `measure`,
//! `CAPOS_THREAD_SCALE_GUEST_MEASURE=1`; docs/scheduler.md): the
//! `[measure]` lines of a capOS run's serial log, checked as one block,
//! copied to [`MEASURE_FILE`], and their user PCs resolved to the
//! benchmark binary's symbols in [`SYMBOLS_FILE`].
//!
//! Invariants:
//! - A capOS run of a measuring kernel passes only if its serial log holds
//!   exactly one well-formed block ([`parse_block`]): the four phases in
//!   order, the total equal to the sum of the other three, at most
//!   `TOP_PCS` PC lines (most sampled first, no more samples than the
//!   total), then the sample totals. The judge checks this from
//!   `serial.log`, so recomputation reaches the same verdict.
//! - [`MEASURE_FILE`] holds exactly the serial lines that start with
//!   `[measure]`, in order ([`measure_log_text`]); user output cannot
//!   forge one, since the kernel frames every user line as `[u:<name>]`.
//! - A PC resolves to the nearest symbol at or below it, and only if it
//!   lies in an executable segment of the binary at or after its first
//!   symbol; otherwise it is shown as unresolved, never guessed.
//! - A [`BlockError`]'s text (with kcore's `LineError` text) becomes a
//!   run's failure sentence in summary.json, so like the sentences of
//!   `summary::wording` it never changes once released.

use anyhow::{bail, Context, Result};
use capos_kcore::measure::{
    self as format, Counter, Counters, Line, LineError, PcLine, Phase, SamplesLine, TOP_PCS,
};
use std::fmt::Write as _;
use std::path::Path;

/// The `[measure]` lines of one run, beside its serial log.
pub const MEASURE_FILE: &str = "measure.log";
/// The sampled user PCs resolved to the benchmark's symbols, beside it.
pub const SYMBOLS_FILE: &str = "user-pc-symbols.log";
/// Every serial line that starts with this belongs to the measurement
/// (a malformed one too, so it is reported rather than ignored).
pub const LINE_START: &str = "[measure]";

/// One run's measurement, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureBlock {
    /// Each phase's counters, in [`Phase::ALL`] order.
    pub phases: [Counters; 4],
    /// The most sampled PCs, most first.
    pub pcs: Vec<PcLine>,
    /// Sample totals.
    pub samples: SamplesLine,
}

/// Why a run's `[measure]` lines are not one well-formed block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// No line starts with `[measure]`.
    #[error(
        "no `[measure]` lines in the serial log (the kernel prints them at the last phase mark)"
    )]
    Missing,
    /// A line does not parse.
    #[error("serial line {line}: {reason}: {text:?}")]
    Malformed {
        /// 1-based serial line number.
        line: usize,
        /// What is wrong with it.
        reason: LineError,
        /// The line.
        text: String,
    },
    /// A line is well formed but not where the block has it.
    #[error("serial line {line}: expected {expected}, found {text:?}")]
    OutOfPlace {
        /// 1-based serial line number.
        line: usize,
        /// What belongs there.
        expected: &'static str,
        /// The line.
        text: String,
    },
    /// The block ended early.
    #[error("the `[measure]` lines end before {expected}")]
    Truncated {
        /// What is missing.
        expected: &'static str,
    },
    /// The total phase is not the sum of the others.
    #[error("phase total: {counter} is {total}, but spawn_ready + work + shutdown is {sum}")]
    TotalMismatch {
        /// The counter's name.
        counter: &'static str,
        /// The total line's value.
        total: u64,
        /// The sum of the three phases.
        sum: u64,
    },
    /// The PC lines are not ordered by their samples, most first.
    #[error("serial line {line}: PC lines are not ordered by samples, most first")]
    Unordered {
        /// 1-based serial line number.
        line: usize,
    },
    /// The PC lines count more samples than the total.
    #[error("the PC lines hold {listed} samples, more than the total {total}")]
    SamplesExceedTotal {
        /// Sum over the PC lines.
        listed: u64,
        /// The `pc_samples total=`.
        total: u64,
    },
}

/// The serial lines (1-based number, text) that start with [`LINE_START`].
pub fn measure_lines<'a>(serial: impl IntoIterator<Item = &'a str>) -> Vec<(usize, &'a str)> {
    serial
        .into_iter()
        .enumerate()
        .filter(|(_, text)| text.starts_with(LINE_START))
        .map(|(index, text)| (index + 1, text))
        .collect()
}

/// The contents of [`MEASURE_FILE`] for a run with these serial lines.
pub fn measure_log_text<'a>(serial: impl IntoIterator<Item = &'a str>) -> String {
    measure_lines(serial)
        .into_iter()
        .fold(String::new(), |mut text, (_, line)| {
            text.push_str(line);
            text.push('\n');
            text
        })
}

/// Check the `[measure]` lines (from [`measure_lines`]) as one block.
pub fn parse_block(lines: &[(usize, &str)]) -> Result<MeasureBlock, BlockError> {
    if lines.is_empty() {
        return Err(BlockError::Missing);
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for &(line, text) in lines {
        let value = format::parse_line(text).map_err(|reason| BlockError::Malformed {
            line,
            reason,
            text: text.to_owned(),
        })?;
        parsed.push((line, text, value));
    }
    let mut rest = parsed.into_iter();
    let out_of_place = |line: usize, text: &str, expected: &'static str| BlockError::OutOfPlace {
        line,
        expected,
        text: text.to_owned(),
    };
    let mut phases = [Counters::ZERO; 4];
    for (slot, phase) in phases.iter_mut().zip(Phase::ALL) {
        let expected = phase_expectation(phase);
        match rest.next() {
            Some((_, _, Line::Phase(found))) if found.phase == phase => *slot = found.counters,
            Some((line, text, _)) => return Err(out_of_place(line, text, expected)),
            None => return Err(BlockError::Truncated { expected }),
        }
    }
    let mut sum = Counters::ZERO;
    for phase in &phases[..3] {
        sum.add(phase);
    }
    if let Some(counter) = Counter::ALL
        .into_iter()
        .find(|counter| sum.get(*counter) != phases[3].get(*counter))
    {
        return Err(BlockError::TotalMismatch {
            counter: counter.name(),
            total: phases[3].get(counter),
            sum: sum.get(counter),
        });
    }
    let mut pcs: Vec<PcLine> = Vec::new();
    const AFTER_PHASES: &str = "a `pc=` line or the `pc_samples` line";
    let samples = loop {
        match rest.next() {
            Some((line, _, Line::Pc(pc))) if pcs.len() < TOP_PCS => {
                if pcs.last().is_some_and(|last| last.samples < pc.samples) {
                    return Err(BlockError::Unordered { line });
                }
                pcs.push(pc);
            }
            Some((_, _, Line::Samples(samples))) => break samples,
            Some((line, text, _)) => return Err(out_of_place(line, text, AFTER_PHASES)),
            None => {
                return Err(BlockError::Truncated {
                    expected: "the `pc_samples` line",
                })
            }
        }
    };
    if let Some((line, text, _)) = rest.next() {
        return Err(out_of_place(
            line,
            text,
            "no more `[measure]` lines after `pc_samples`",
        ));
    }
    let listed = pcs
        .iter()
        .fold(0u64, |sum, pc| sum.saturating_add(pc.samples));
    if listed > samples.total {
        return Err(BlockError::SamplesExceedTotal {
            listed,
            total: samples.total,
        });
    }
    Ok(MeasureBlock {
        phases,
        pcs,
        samples,
    })
}

/// What the block expects where phase `phase` belongs.
fn phase_expectation(phase: Phase) -> &'static str {
    match phase {
        Phase::SpawnReady => "the `phase=spawn_ready` line",
        Phase::Work => "the `phase=work` line",
        Phase::Shutdown => "the `phase=shutdown` line",
        Phase::Total => "the `phase=total` line",
    }
}

/// The function and object symbols of a user ELF, by address, and its
/// executable address ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolTable {
    /// (address, demangled name without hash), sorted by address.
    symbols: Vec<(u64, String)>,
    /// `[start, end)` of every executable `PT_LOAD`.
    executable: Vec<(u64, u64)>,
}

/// Where a PC lies in a [`SymbolTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The nearest symbol at or below the PC.
    pub symbol: &'a str,
    /// The PC's distance from it.
    pub offset: u64,
}

impl SymbolTable {
    /// Read the symbols (`.symtab`) and executable segments of an ELF.
    pub fn from_elf(bytes: &[u8]) -> Result<Self> {
        use xmas_elf::program::{ProgramHeader, Type};
        use xmas_elf::sections::SectionData;
        use xmas_elf::symbol_table::{Entry, Type as SymbolType};
        let elf = xmas_elf::ElfFile::new(bytes).map_err(|error| anyhow::anyhow!("{error}"))?;
        let mut executable = Vec::new();
        for header in elf.program_iter() {
            let ProgramHeader::Ph64(header) = header else {
                bail!("not a 64-bit ELF");
            };
            if header.get_type() == Ok(Type::Load) && header.flags.is_execute() {
                executable.push((
                    header.virtual_addr,
                    header.virtual_addr.saturating_add(header.mem_size),
                ));
            }
        }
        let mut symbols = Vec::new();
        for section in elf.section_iter() {
            let Ok(SectionData::SymbolTable64(entries)) = section.get_data(&elf) else {
                continue;
            };
            for entry in entries {
                let kind = entry.get_type();
                let named = matches!(kind, Ok(SymbolType::Func | SymbolType::NoType));
                if !named || entry.value() == 0 || entry.shndx() == 0 {
                    continue;
                }
                let Ok(name) = entry.get_name(&elf) else {
                    continue;
                };
                if name.is_empty() || name.starts_with(".L") || name.starts_with('$') {
                    continue;
                }
                symbols.push((entry.value(), demangle(name)));
            }
        }
        if symbols.is_empty() {
            bail!("the ELF has no function symbols (stripped?)");
        }
        symbols.sort();
        symbols.dedup_by(|later, earlier| later.0 == earlier.0);
        Ok(Self {
            symbols,
            executable,
        })
    }

    /// A table of the given symbols and executable ranges (for tests and
    /// callers that have them already).
    pub fn new(mut symbols: Vec<(u64, String)>, executable: Vec<(u64, u64)>) -> Self {
        symbols.sort();
        Self {
            symbols,
            executable,
        }
    }

    /// The nearest symbol at or below `pc`, or None when `pc` is outside
    /// every executable segment or below the first symbol.
    pub fn resolve(&self, pc: u64) -> Option<Resolved<'_>> {
        if !self
            .executable
            .iter()
            .any(|&(start, end)| (start..end).contains(&pc))
        {
            return None;
        }
        let after = self.symbols.partition_point(|(address, _)| *address <= pc);
        let (address, symbol) = self.symbols.get(after.checked_sub(1)?)?;
        Some(Resolved {
            symbol,
            offset: pc - address,
        })
    }
}

/// A Rust symbol demangled without its hash; other names as they are.
fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Shown for a PC that resolves to no symbol.
pub const UNRESOLVED: &str = "?";

/// The contents of [`SYMBOLS_FILE`]: a header naming the binary, then one
/// line per sampled PC of `block`:
/// `pc=0x<hex> samples=<n> share=<percent of all samples> symbol=<name>+0x<offset>`.
pub fn render_symbols(
    block: &MeasureBlock,
    binary: &str,
    elf_sha256: &str,
    table: &SymbolTable,
) -> String {
    let mut text = format!(
        "# user PCs of `{binary}` (ELF sha256 {elf_sha256}) sampled at the timer tick; samples total={} dropped={}\n",
        block.samples.total, block.samples.dropped
    );
    for pc in &block.pcs {
        let symbol = match table.resolve(pc.pc) {
            Some(resolved) => format!("{}+{:#x}", resolved.symbol, resolved.offset),
            None => UNRESOLVED.to_owned(),
        };
        let _ = writeln!(
            text,
            "pc={:#x} samples={} share={} symbol={symbol}",
            pc.pc,
            pc.samples,
            share(pc.samples, block.samples.total)
        );
    }
    text
}

/// `part` of `total` as a percentage with two decimals.
fn share(part: u64, total: u64) -> String {
    if total == 0 {
        return "0.00%".into();
    }
    format!("{:.2}%", 100.0 * part as f64 / total as f64)
}

/// One line of [`SYMBOLS_FILE`], read back for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSample {
    /// The sampled PC.
    pub pc: u64,
    /// Its samples.
    pub samples: u64,
    /// The symbol without the offset ([`UNRESOLVED`] if none).
    pub symbol: String,
}

/// Read [`SYMBOLS_FILE`] text back (comment lines skipped).
pub fn parse_symbols(text: &str) -> Result<Vec<SymbolSample>> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let parsed = (|| {
            let rest = line.strip_prefix("pc=0x")?;
            let (pc, rest) = rest.split_once(" samples=")?;
            let (count, rest) = rest.split_once(" share=")?;
            let (_, symbol) = rest.split_once(" symbol=")?;
            let symbol = match symbol.rsplit_once("+0x") {
                Some((name, offset)) if u64::from_str_radix(offset, 16).is_ok() => name,
                _ => symbol,
            };
            Some(SymbolSample {
                pc: u64::from_str_radix(pc, 16).ok()?,
                samples: count.parse().ok()?,
                symbol: symbol.to_owned(),
            })
        })();
        match parsed {
            Some(sample) => samples.push(sample),
            None => bail!(
                "line {}: not `pc=0x.. samples=.. share=.. symbol=..`: {line:?}",
                index + 1
            ),
        }
    }
    Ok(samples)
}

/// The benchmark binary whose PCs a run samples.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// Its program name.
    pub binary: String,
    /// sha256 of its ELF.
    pub elf_sha256: String,
    /// Its symbols.
    pub symbols: SymbolTable,
}

impl Benchmark {
    /// Read the ELF of program `binary` at `elf`.
    pub fn load(binary: &str, elf: &Path) -> Result<Self> {
        let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
        Ok(Self {
            binary: binary.to_owned(),
            elf_sha256: crate::digest::sha256_hex(&bytes),
            symbols: SymbolTable::from_elf(&bytes)
                .with_context(|| format!("reading the symbols of {}", elf.display()))?,
        })
    }
}

/// After a capOS run of a measuring kernel: write [`MEASURE_FILE`] (the
/// `[measure]` lines of `serial`, possibly none) into `log_dir`, and, when
/// they form a good block, [`SYMBOLS_FILE`] for `benchmark`. A bad block
/// writes no symbols; the judge fails the run from the serial log.
pub fn record_run<'a>(
    log_dir: &Path,
    serial: impl IntoIterator<Item = &'a str> + Clone,
    benchmark: &Benchmark,
) -> Result<()> {
    let measure = log_dir.join(MEASURE_FILE);
    std::fs::write(&measure, measure_log_text(serial.clone()))
        .with_context(|| format!("writing {}", measure.display()))?;
    if let Ok(block) = parse_block(&measure_lines(serial)) {
        let symbols = log_dir.join(SYMBOLS_FILE);
        let text = render_symbols(
            &block,
            &benchmark.binary,
            &benchmark.elf_sha256,
            &benchmark.symbols,
        );
        std::fs::write(&symbols, text).with_context(|| format!("writing {}", symbols.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_kcore::measure::PhaseLine;

    fn counters(value: u64) -> Counters {
        Counters([value; Counter::COUNT])
    }

    /// A good block: phases 1, 2, 3 (total 6), two PCs, the totals.
    fn good_block() -> Vec<String> {
        let mut lines: Vec<String> = [
            (Phase::SpawnReady, 1),
            (Phase::Work, 2),
            (Phase::Shutdown, 3),
            (Phase::Total, 6),
        ]
        .into_iter()
        .map(|(phase, value)| {
            PhaseLine {
                phase,
                counters: counters(value),
            }
            .to_string()
        })
        .collect();
        lines.push("[measure] pc=0x401000 samples=5".into());
        lines.push("[measure] pc=0x401010 samples=2".into());
        lines.push("[measure] pc_samples total=9 dropped=1".into());
        lines
    }

    fn numbered(lines: &[String]) -> Vec<(usize, &str)> {
        lines
            .iter()
            .enumerate()
            .map(|(index, line)| (index + 1, line.as_str()))
            .collect()
    }

    #[test]
    fn a_good_block_parses() {
        let lines = good_block();
        let block = parse_block(&numbered(&lines)).unwrap();
        assert_eq!(block.phases[1], counters(2));
        assert_eq!(block.phases[3], counters(6));
        assert_eq!(block.pcs.len(), 2);
        assert_eq!(
            block.samples,
            SamplesLine {
                total: 9,
                dropped: 1
            }
        );
    }

    #[test]
    fn only_measure_lines_are_taken_with_their_serial_numbers() {
        let serial = [
            "[boot] x",
            "[measure] pc=0x1 samples=1",
            "[u:p] [measure] pc=0x2 samples=1",
            "[measure]junk",
        ];
        assert_eq!(
            measure_lines(serial),
            vec![(2, "[measure] pc=0x1 samples=1"), (4, "[measure]junk")]
        );
        assert_eq!(
            measure_log_text(serial),
            "[measure] pc=0x1 samples=1\n[measure]junk\n"
        );
    }

    #[test]
    fn malformed_or_misplaced_blocks_are_rejected_with_the_reason() {
        assert_eq!(parse_block(&[]), Err(BlockError::Missing));
        let check = |edit: &dyn Fn(&mut Vec<String>), expected: &str| {
            let mut lines = good_block();
            edit(&mut lines);
            let error = parse_block(&numbered(&lines)).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{error} does not say {expected:?}"
            );
        };
        check(
            &|lines| lines[0] = "[measure]phase=spawn_ready".into(),
            "serial line 1: does not start with `[measure] `",
        );
        check(
            &|lines| lines[5] = "[measure] pc=0x401010 samples=two".into(),
            "serial line 6: field `samples` is not a number",
        );
        check(
            &|lines| lines.swap(0, 1),
            "serial line 1: expected the `phase=spawn_ready` line",
        );
        check(
            &|lines| lines.truncate(2),
            "end before the `phase=shutdown` line",
        );
        check(
            &|lines| lines.truncate(5),
            "end before the `pc_samples` line",
        );
        check(
            &|lines| lines[3] = lines[3].replace("ticks_user=6", "ticks_user=7"),
            "ticks_user is 7, but spawn_ready + work + shutdown is 6",
        );
        check(
            &|lines| lines.swap(4, 5),
            "serial line 6: PC lines are not ordered",
        );
        check(
            &|lines| lines[6] = "[measure] pc_samples total=6 dropped=0".into(),
            "hold 7 samples, more than the total 6",
        );
        check(
            &|lines| {
                let again = lines.clone();
                lines.extend(again);
            },
            "serial line 8: expected no more `[measure]` lines after `pc_samples`",
        );
        check(
            &|lines| lines.insert(4, lines[0].clone()),
            "serial line 5: expected a `pc=` line or the `pc_samples` line",
        );
    }

    #[test]
    fn more_than_the_top_pcs_is_rejected() {
        let mut lines = good_block();
        let totals = lines.pop().unwrap();
        lines.truncate(4);
        for index in 0..=TOP_PCS as u64 {
            lines.push(format!("[measure] pc={:#x} samples=1", 0x400000 + index));
        }
        lines.push(totals.replace("total=9", "total=100"));
        let error = parse_block(&numbered(&lines)).unwrap_err();
        assert!(matches!(error, BlockError::OutOfPlace { line, .. } if line == 5 + TOP_PCS));
    }

    fn table() -> SymbolTable {
        SymbolTable::new(
            vec![
                (0x401000, "main".into()),
                (0x401100, "spin".into()),
                (0x402000, "data_start".into()),
            ],
            vec![(0x401000, 0x401800)],
        )
    }

    #[test]
    fn pcs_resolve_to_the_nearest_preceding_symbol() {
        let table = table();
        assert_eq!(
            table.resolve(0x401000),
            Some(Resolved {
                symbol: "main",
                offset: 0
            })
        );
        assert_eq!(
            table.resolve(0x4010ff),
            Some(Resolved {
                symbol: "main",
                offset: 0xff
            })
        );
        assert_eq!(
            table.resolve(0x4017ff),
            Some(Resolved {
                symbol: "spin",
                offset: 0x6ff
            })
        );
    }

    #[test]
    fn pcs_out_of_range_are_unresolved() {
        let table = table();
        assert_eq!(table.resolve(0x400fff), None);
        assert_eq!(table.resolve(0x401800), None, "past the executable segment");
        assert_eq!(
            table.resolve(0x402000),
            None,
            "a symbol, but not executable"
        );
        assert_eq!(table.resolve(0), None);
        assert_eq!(table.resolve(u64::MAX), None);
        let below_first =
            SymbolTable::new(vec![(0x401100, "spin".into())], vec![(0x401000, 0x401800)]);
        assert_eq!(below_first.resolve(0x401050), None);
    }

    #[test]
    fn symbols_file_round_trips_for_the_report() {
        let lines = good_block();
        let mut block = parse_block(&numbered(&lines)).unwrap();
        block.pcs.push(PcLine {
            pc: 0x500000,
            samples: 1,
        });
        let text = render_symbols(&block, "measure-marks", "ab", &table());
        assert!(text.starts_with("# user PCs of `measure-marks` (ELF sha256 ab)"));
        assert!(text.contains("pc=0x401000 samples=5 share=55.56% symbol=main+0x0\n"));
        assert!(text.contains("pc=0x500000 samples=1 share=11.11% symbol=?\n"));
        let samples = parse_symbols(&text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[1].symbol, "main");
        assert_eq!(samples[2].symbol, "?");
        assert!(parse_symbols("pc=0x1 samples=x share=1% symbol=a").is_err());
    }

    #[test]
    fn symbols_are_read_from_a_real_elf() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let table = SymbolTable::from_elf(&bytes).unwrap();
        assert!(table.symbols.iter().any(|(_, name)| name == "main"));
        let (address, name) = table
            .symbols
            .iter()
            .find(|(address, _)| table.resolve(*address).is_some())
            .expect("a symbol in code")
            .clone();
        assert_eq!(
            table.resolve(address + 1),
            Some(Resolved {
                symbol: &name,
                offset: 1
            })
        );
        assert!(SymbolTable::from_elf(b"\x7fELF").is_err());
    }

    #[test]
    fn rust_symbols_are_demangled_without_hash() {
        assert_eq!(
            demangle("_RNvNtCsgEmfK2I1SDS_4core3fmt5write"),
            "core::fmt::write"
        );
        assert_eq!(demangle("memcpy"), "memcpy");
    }
}
