//! `key=value` options in a process's argument string.
//!
//! The kernel appends every boot option `user.<key>=<value>` to every
//! process's arguments as ` <key>=<value>` (docs/abi.md, `ManifestRead`),
//! after the manifest's own arguments; so the last occurrence of a key wins
//! and a boot option overrides a manifest default.

/// The value of the last `key=value` word in `arguments`.
pub fn find<'a>(arguments: &'a str, key: &str) -> Option<&'a str> {
    arguments
        .split_ascii_whitespace()
        .filter_map(|word| word.split_once('='))
        .filter(|(name, _)| *name == key)
        .map(|(_, value)| value)
        .next_back()
}

/// The last `key=<decimal>` in `arguments`, `default` when absent, and
/// `Err(text)` when the value is not a decimal `u64`.
pub fn find_u64<'a>(arguments: &'a str, key: &str, default: u64) -> Result<u64, &'a str> {
    match find(arguments, key) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| text),
    }
}

/// Whether the word `flag` (without `=`) appears in `arguments`.
pub fn has_word(arguments: &str, flag: &str) -> bool {
    arguments.split_ascii_whitespace().any(|word| word == flag)
}

/// The first of `roles` that appears as a word in `arguments`: how one
/// binary serving several manifest processes learns which it is.
pub fn role<'a>(arguments: &str, roles: &[&'a str]) -> Option<&'a str> {
    roles.iter().copied().find(|role| has_word(arguments, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_occurrence_wins_and_defaults_apply() {
        let arguments = "server iterations=10 seed=3 iterations=500";
        assert_eq!(find(arguments, "iterations"), Some("500"));
        assert_eq!(find(arguments, "seed"), Some("3"));
        assert_eq!(find(arguments, "ops"), None);
        assert_eq!(find_u64(arguments, "iterations", 7), Ok(500));
        assert_eq!(find_u64(arguments, "ops", 7), Ok(7));
        assert_eq!(find_u64("ops=x1", "ops", 7), Err("x1"));
        assert!(has_word(arguments, "server"));
        assert!(!has_word(arguments, "seed"));
        assert_eq!(role(arguments, &["client", "server"]), Some("server"));
        assert_eq!(role("seed=1", &["client", "server"]), None);
    }
}
