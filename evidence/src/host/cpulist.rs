//! Linux CPU list syntax (`0-3,8,10-11`), as sysfs and `/proc/<pid>/status`
//! (`Cpus_allowed_list`) print it.
//!
//! Invariants: a parsed list is sorted and free of duplicates; an empty or
//! whitespace-only text is the empty list (a NUMA node without CPUs prints
//! an empty line); [`format`] is the inverse of [`parse`] for sorted lists.

/// Why a CPU list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    /// A piece is not a number or `a-b` range.
    #[error("{piece:?} is not a CPU number or a range like 0-3")]
    Malformed {
        /// The offending comma-separated piece.
        piece: String,
    },
    /// A range runs backwards.
    #[error("range {first}-{last} runs backwards")]
    Backwards {
        /// Its first CPU.
        first: u32,
        /// Its last CPU.
        last: u32,
    },
    /// A range names more CPUs than any machine has.
    #[error("range {first}-{last} is larger than {MAX_CPUS} CPUs")]
    TooLarge {
        /// Its first CPU.
        first: u32,
        /// Its last CPU.
        last: u32,
    },
}

/// The largest CPU number a list may name (Linux's NR_CPUS ceiling).
pub const MAX_CPUS: u32 = 8192;

/// Parse `text` (`0-3,8`), trailing newline allowed.
pub fn parse(text: &str) -> Result<Vec<u32>, CpuListError> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Ok(cpus);
    }
    for piece in text.split(',') {
        let malformed = || CpuListError::Malformed {
            piece: piece.to_string(),
        };
        let number = |text: &str| -> Result<u32, CpuListError> {
            if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(malformed());
            }
            text.parse::<u32>().map_err(|_| malformed())
        };
        let (first, last) = match piece.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None => {
                let cpu = number(piece)?;
                (cpu, cpu)
            }
        };
        if last < first {
            return Err(CpuListError::Backwards { first, last });
        }
        if last >= MAX_CPUS {
            return Err(CpuListError::TooLarge { first, last });
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Print `cpus` (sorted, no duplicates) in the kernel's compact form.
pub fn format(cpus: &[u32]) -> String {
    let mut pieces = Vec::new();
    let mut index = 0;
    while index < cpus.len() {
        let first = cpus[index];
        let mut last = first;
        while index + 1 < cpus.len() && cpus[index + 1] == last + 1 {
            index += 1;
            last = cpus[index];
        }
        pieces.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        index += 1;
    }
    pieces.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_singles_and_empty() {
        assert_eq!(parse("0-3,8,10-11\n").unwrap(), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse("1").unwrap(), [1]);
        assert_eq!(parse("\n").unwrap(), Vec::<u32>::new());
        assert_eq!(parse("3,1-2,2").unwrap(), [1, 2, 3]);
    }

    #[test]
    fn rejects_malformed_lists() {
        assert!(matches!(parse("0-"), Err(CpuListError::Malformed { .. })));
        assert!(matches!(parse("a"), Err(CpuListError::Malformed { .. })));
        assert!(matches!(parse("1,,2"), Err(CpuListError::Malformed { .. })));
        assert!(matches!(parse("-1"), Err(CpuListError::Malformed { .. })));
        assert_eq!(
            parse("3-1"),
            Err(CpuListError::Backwards { first: 3, last: 1 })
        );
        assert!(matches!(
            parse("0-4294967295"),
            Err(CpuListError::TooLarge { .. })
        ));
    }

    #[test]
    fn format_inverts_parse() {
        for text in ["0-3,8,10-11", "0", "", "0,2,4", "5-6"] {
            assert_eq!(format(&parse(text).unwrap()), text);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_cpu_set_round_trips(cpus in proptest::collection::btree_set(0u32..300, 0..40)) {
            let cpus: Vec<u32> = cpus.into_iter().collect();
            proptest::prop_assert_eq!(parse(&format(&cpus)).unwrap(), cpus);
        }

        #[test]
        fn any_text_parses_or_errs_without_panicking(text in "[0-9,\\- \n]{0,24}") {
            let _ = parse(&text);
        }
    }
}
