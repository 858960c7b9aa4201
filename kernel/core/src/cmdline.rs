//! Boot command line options: space-separated `key=value` words, or bare `key` flags.
//!
//! Invariants:
//! - Words are separated by ASCII whitespace; a word splits at its first `=` into key and
//!   value, and a word without `=` is a key with the empty value.
//! - When a key appears several times, the last occurrence wins (so appended options override).
//! - Lookups borrow from the command line and never allocate or panic.

/// Iterate the `(key, value)` pairs of `cmdline`, in order.
pub fn options(cmdline: &str) -> impl DoubleEndedIterator<Item = (&str, &str)> + '_ {
    cmdline
        .split_ascii_whitespace()
        .map(|word| word.split_once('=').unwrap_or((word, "")))
}

/// The value of option `key` in `cmdline` (space separated `key=value`; bare `key` gives
/// `Some("")`). An empty `key` is never found; the last occurrence of a repeated key wins.
pub fn option<'s>(cmdline: &'s str, key: &str) -> Option<&'s str> {
    if key.is_empty() {
        return None;
    }
    options(cmdline)
        .rev()
        .find(|&(candidate, _)| candidate == key)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_values_and_flags() {
        let line = "mode=fault smp_test=1 verbose";
        assert_eq!(option(line, "mode"), Some("fault"));
        assert_eq!(option(line, "smp_test"), Some("1"));
        assert_eq!(option(line, "verbose"), Some(""));
        assert_eq!(option(line, "missing"), None);
    }

    #[test]
    fn keys_must_match_exactly() {
        let line = "smp_test=1 modex=2";
        assert_eq!(option(line, "smp"), None);
        assert_eq!(option(line, "mode"), None);
        assert_eq!(option(line, "smp_test=1"), None);
    }

    #[test]
    fn values_keep_later_equals_signs() {
        assert_eq!(option("root=LABEL=boot", "root"), Some("LABEL=boot"));
        assert_eq!(option("empty=", "empty"), Some(""));
    }

    #[test]
    fn whitespace_and_repeats() {
        let line = "  mode=one\tmode=two\n  other ";
        assert_eq!(option(line, "mode"), Some("two"));
        assert_eq!(option(line, "other"), Some(""));
        assert_eq!(option("", "mode"), None);
        assert_eq!(option("=x", ""), None);
    }

    #[test]
    fn options_iterates_in_order() {
        let pairs: Vec<_> = options("a=1 b c=").collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", ""), ("c", "")]);
    }

    proptest! {
        #[test]
        fn option_never_panics(line in ".{0,80}", key in ".{0,10}") {
            let _ = option(&line, &key);
        }

        #[test]
        fn built_line_round_trips(
            pairs in prop::collection::btree_map("[a-z_]{1,8}", "[a-z0-9=,.]{0,8}", 0..6),
        ) {
            let line = pairs
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(" ");
            for (key, value) in &pairs {
                prop_assert_eq!(option(&line, key), Some(value.as_str()));
            }
        }
    }
}
